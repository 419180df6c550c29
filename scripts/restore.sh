#!/usr/bin/env bash
# Restores the database from the encrypted backups on the backup target, onto a bare or
# wiped database Pi, with one command. Then `npx pi-cluster recover DB_NAME` (a `pulumi up`)
# brings the rest back: the restored data holds the app's users and grants, so the web
# servers reconnect with no manual SQL.
#
#   scripts/restore.sh --identity FILE|- [--to 'YYYY-MM-DD HH:MM:SS'] [--accept-gap] [--stack STACK]
#   scripts/restore.sh --identity FILE|- --from DIR --here [--to ...] [--accept-gap]
#   scripts/restore.sh --attach [--stack STACK]
#
#   --identity    the age private key (the operator's; no Pi holds it): a file, or - to read
#                 it from stdin. Without it, the path is asked for on the terminal. The key is
#                 never put on a command line and never leaves this machine.
#   --to          restore to this moment (UTC) instead of the latest: the newest good full before
#                 it, its incrementals before it, then the binlogs replayed up to it
#   --accept-gap  restore although the binlogs stop before --to (or the latest point) at a
#                 missing or bad file: what comes after that point is lost, as said when refused
#   --attach      start no restore: follow the one applying on the DB Pi to its end (or report
#                 the last one, or recover an interrupted one)
#   --stack       the Pulumi stack (default lab); the target and the DB Pi come from its
#                 `backup` output, the SSH user and key, the DB Pi's pinned host key and the
#                 replicas from its config (pin a replaced Pi's new key first, as for pi-cluster recover)
#   --from DIR    read the backups from a local copy of the target's directory instead
#   --here        restore onto this machine (run as root on the DB Pi), not over SSH
#
# Which files: the newest complete, verified chain. A file whose sha256 is not the one the
# target recorded, that age refuses or that does not unpack is skipped (said, with why) and the
# plan is made again without it, so a bad full falls back to the one before with its binlogs.
# After the shipped binlogs come the target's stream files that continue them (the last
# seconds before the loss). The DB Pi's half (pi-cluster-restore) then applies it as a
# transient systemd unit: an SSH drop does not stop it, and running this again follows it
# to its end, or recovers an apply that was interrupted (rolled back, or finished when only
# reopening was left) and restores anew. One restore at a time: another one is refused, named.
# Replicas are stopped (STOP SLAVE) before the apply and marked for a reseed after it
# (`reseed.<name>` in the stack config), so none serves stale reads; pi-cluster recover reseeds them.
#
# Exit: 0 restored; 1 not restored (nothing changed, or the apply was rolled back: said
# why); 3 another restore holds the DB Pi; 4 restored, but a replica could not be stopped.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
# shellcheck source=/dev/null
source "$REPO/assets/backup/pi-cluster-backup.sh"
# The DB Pi's command, installed by the stack's backup step (components/render/backup.ts).
readonly RESTORE_TOOL=/usr/local/sbin/pi-cluster-restore


info() { printf 'restore: %s\n' "$*" >&2; }
# fatal MESSAGE [CODE]
fatal() {
    printf 'restore: error: %s\n' "$1" >&2
    exit "${2:-1}"
}

# --- pure decisions -----------------------------------------------------------------------

# gap_refusal TARGET NAMES_FILE < plan : when the plan's binlogs stop at a gap, prints why the
# restore would lose writes (TARGET: "the latest point" or "'TIME'"), what exactly, and how to
# go on, and fails; prints nothing otherwise. NAMES_FILE lists every backup name on the target.
gap_refusal() {
    local target=$1 names=$2 note="" line
    while IFS= read -r line; do
        [[ "$line" == "# gap: "* ]] && note=${line#\# gap: }
    done
    [[ -n "$note" ]] || return 0
    local re='^([^ ]+) ([^ ]+) missing after ([^:]*): binlogs stop at (.+)$'
    if [[ "$note" =~ $re ]]; then
        local series=${BASH_REMATCH[1]} missing=${BASH_REMATCH[2]} stop=${BASH_REMATCH[4]} later
        # The planner says when in ISO 8601 (2026-11-27T09:30:00Z); --to takes 'YYYY-MM-DD HH:MM:SS'.
        [[ "$stop" =~ ^([0-9-]{10})T([0-9:]{8})Z$ ]] && stop="${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
        # The binlogs of the series from the missing one on: shipped, but past the gap.
        later=$(sed -nE "s/^binlog-([0-9]{8}T[0-9]{6}Z)-[0-9]{4}-(${series}-)?(${missing%.*}\.[0-9]+)\.zst\.age\$/\3 \1/p" "$names" | sort |
            awk -v from="${missing##*.}" '{ k = $1; sub(/.*\./, "", k); if (k + 0 >= from + 0) { n++; if (n == 1) first = $1; last = $1; t = $2 } }
                END { if (n) printf "%d shipped binlog file(s) after it (%s to %s, the last shipped %s-%s-%s %s:%s:%s UTC)", n, first, last, substr(t,1,4), substr(t,5,2), substr(t,7,2), substr(t,10,2), substr(t,12,2), substr(t,14,2) }')
        printf '%s\n' "the binlogs of series $series stop at $stop UTC: $missing is missing or bad, so every write after $stop up to $target would be lost${later:+, with $later}." \
            "Restore to a point before it (--to '$stop'), or accept losing those writes with --accept-gap."
    else
        printf '%s\n' "the binlogs stop before $target: $note; the writes after that point would be lost." \
            "Restore to a point before it with --to, or accept losing those writes with --accept-gap."
    fi
    return 1
}

# series_refusal CURRENT FULL NAMES_FILE : when the database's current binlog series (CURRENT,
# the target's .series) is not the series of the plan's FULL and the target has no backup of
# it (a restore or a promotion began it, and its first full has not landed), prints why a
# restore to the latest point would lose its writes and how to go on, and fails. With backups
# of it on the target, plan_restore judges them (a series begun after the full is a gap).
series_refusal() {
    local current=$1 full=$2 names=$3 series
    [[ -n "$current" ]] || return 0
    series=$(plan_series "$full")
    [[ "$series" != "$current" ]] || return 0
    grep -qE -- "-${current}[-.]" "$names" && return 0
    printf '%s\n' "the database's binlog series is now $current (the target's .series), and no backup of it is on the target: the newest chain, of series $series, cannot reach its writes, so every write since $current began would be lost." \
        "Take a full backup first if the database still runs (systemctl start pi-cluster-backup-full on it), restore to a point before $current began with --to, or accept losing those writes with --accept-gap."
    return 1
}

# stream_tail LAST < files : the stream files (FILE names, one a line) that continue the
# planned binlogs, whose last is LAST (base.number), in order, stopping at the first missing
# number. Without LAST (no binlog planned), every file from the lowest number on: the DB Pi
# skips those the backup already holds.
stream_tail() {
    local last=$1
    sort -t. -k2,2n | awk -v last="$last" '
        { k = match($0, /\.[0-9]+$/); if (!k) next; base = substr($0, 1, k - 1); n = substr($0, k + 1) + 0 }
        last != "" { lk = match(last, /\.[0-9]+$/); if (base != substr(last, 1, lk - 1)) next; if (!started) { want = substr(last, lk + 1) + 1; started = 1 } }
        last == "" && !started { want = n; started = 1; firstbase = base }
        last == "" && base != firstbase { next }
        n < want || stop { next }
        n > want { stop = 1; next }
        { print; want++ }'
}

# first_binlog_gap FILE < files : the backup stops in binlog FILE; reads the planned binlog
# files (shipped, then streamed) in order. Those of an earlier file are inside the backup; the
# first that is not must be FILE itself. Prints that first file when it is a later one (the
# files between are missing); nothing when the chain holds, or when no binlog follows.
first_binlog_gap() {
    awk -v file="$1" '
        BEGIN { k = match(file, /\.[0-9]+$/); base = substr(file, 1, k - 1); n = substr(file, k + 1) + 0 }
        # Reads to the end: a writer cut off by an early exit would fail with SIGPIPE.
        done { next }
        { k = match($0, /\.[0-9]+$/); if (substr($0, 1, k - 1) == base && substr($0, k + 1) + 0 < n) next
          if ($0 != file) print; done = 1 }'
}

# binlog_name_file NAME : the binlog file (base.number) a shipped binlog's name holds.
binlog_name_file() {
    [[ "$1" =~ ^binlog-[0-9]{8}T[0-9]{6}Z-[0-9]{4}-(s[0-9]+x[0-9a-f]{8}-)?(.+\.[0-9]+)\.zst\.age$ ]] && echo "${BASH_REMATCH[2]}"
}

# plan_series NAME : the series token in a full's name ("legacy" for an old name).
plan_series() {
    if [[ "$1" =~ -(s[0-9]+x[0-9a-f]{8})\.xb\.zst\.age$ ]]; then echo "${BASH_REMATCH[1]}"; else echo legacy; fi
}

# previous_outcome PENDING STATUS [ATTACH] : what to do before a new restore, given this
# machine's pending run (empty: none), the DB Pi's status line and --attach (1: follow any
# run). An apply this machine started is followed; another one is refused. Prints one of:
#   attach RUN | recover | report RUN OUTCOME... | refuse STATUS... | go
previous_outcome() {
    local pending=$1 status=$2 any=${3:-0}
    local -a w
    read -r -a w <<<"$status"
    case "${w[0]:-}" in
    applying)
        if [[ "${w[1]}" == "$pending" ]] || ((any)); then echo "attach ${w[1]}"; else echo "refuse $status"; fi
        ;;
    interrupted) echo recover ;;
    staging) echo "refuse $status" ;;
    idle)
        if [[ "${w[1]:-}" == last ]] && { [[ "${w[2]:-}" == "$pending" ]] || ((any)); }; then
            echo "report ${status#idle last }"
        else
            echo go
        fi
        ;;
    *) echo go ;;
    esac
}

# --- the operator's side -------------------------------------------------------------------

WORK="" FROM="" HERE=0 TARGET_DIR="" STACK=lab RUN="" PENDING="" SSH_USER=pi
declare -a TARGET_SSH=() DB_SSH=() SSH_COMMON=()
declare -A HASH=()
CONFIG_JSON="{}"

# read_identity SOURCE : copies the age identity into a 0600 file of WORK.
read_identity() {
    local src=$1
    if [[ -z "$src" ]]; then
        [[ -t 0 ]] || fatal "no --identity and no terminal to ask on: pass --identity FILE or --identity - (stdin)"
        read -r -p "age identity file (the backup private key): " src
    fi
    (umask 077 && if [[ "$src" == - ]]; then cat; else cat -- "$src"; fi >"$WORK/identity") ||
        fatal "cannot read the age identity from ${src}"
    grep -q '^AGE-SECRET-KEY-' "$WORK/identity" || fatal "the identity holds no AGE-SECRET-KEY line"
}

# cfg KEY : a value of the stack config (JSON), from the one `pulumi config --json` read.
cfg() {
    node -e 'const c = JSON.parse(process.argv[1])["pi-cluster:" + process.argv[2]]; if (c && c.value !== undefined) console.log(c.value)' "$CONFIG_JSON" "$1"
}

setup_ssh() {
    local out user key dbkey
    # The two Pulumi reads are independent: in parallel, they cost one.
    (
        trap - EXIT
        pulumi stack output --stack "$STACK" --json backup
    ) >"$WORK/output.json" 2>"$WORK/output.err" &
    local outpid=$!
    CONFIG_JSON=$(pulumi config --stack "$STACK" --json) || fatal "cannot read the config of stack $STACK"
    wait "$outpid" || fatal "no 'backup' output in stack $STACK: was it deployed with backups? ($(cat "$WORK/output.err"))"
    out=$(cat "$WORK/output.json")
    user=$(cfg sshUser)
    SSH_USER=${user:-pi}
    key=$(cfg sshPrivateKeyPath)
    key=${key/#\~/$HOME}
    if [[ -z "$key" ]]; then
        key="$WORK/key"
        (umask 077 && pulumi config get --stack "$STACK" pi-cluster:sshPrivateKey >"$key")
    fi
    # The database Pi's key as pinned now: a replaced Pi has a new one (pi-cluster recover --host-key,
    # or lab reset), which the last deployment's output does not know yet.
    dbkey=$(node -e 'console.log(JSON.parse(process.argv[1]).hostKey || "")' "$(cfg database)")
    [[ -n "$dbkey" ]] || fatal "no database.hostKey in stack $STACK's config"
    # shellcheck disable=SC2016 # JavaScript, not shell
    node -e '
        const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
        o.database.hostKey = process.argv[2];
        const known = (h) => (h.port === 22 ? h.address : `[${h.address}]:${h.port}`) + " " + h.hostKey;
        console.log(known(o.target)); console.log(known(o.database));
        require("fs").writeFileSync(process.argv[1], [o.target.address, o.target.port, o.target.path, o.database.address, o.database.port].join("\n") + "\n");' \
        "$WORK/hosts" "$dbkey" <<<"$out" >"$WORK/known_hosts"
    local -a h
    mapfile -t h <"$WORK/hosts"
    TARGET_DIR=${h[2]}
    # One connection per host, shared by every call (a call then costs no handshake).
    SSH_COMMON=(-i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o LogLevel=ERROR
        -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 -o ServerAliveInterval=10
        -o ControlMaster=auto -o ControlPath="$WORK/ssh-%C" -o ControlPersist=30)
    TARGET_SSH=(ssh "${SSH_COMMON[@]}" -o UserKnownHostsFile="$WORK/known_hosts" -p "${h[1]}" "$SSH_USER@${h[0]}")
    DB_SSH=(ssh "${SSH_COMMON[@]}" -o UserKnownHostsFile="$WORK/known_hosts" -p "${h[4]}" "$SSH_USER@${h[3]}")
}

# on_target SCRIPT : runs SCRIPT as root in the target's backup directory, or in FROM.
on_target() {
    if [[ -n "$FROM" ]]; then
        (cd "$FROM" && bash -c "$1")
    else
        "${TARGET_SSH[@]}" "sudo bash -c $(printf '%q' "cd $(printf '%q' "$TARGET_DIR") && $1")"
    fi
}

# list_target : the backup names (into WORK/names), their recorded hashes (HASH), the
# stream files (WORK/stream, SERIES/FILE a line) and the database's current binlog series
# as its backups last told the target (WORK/series), in one call.
list_target() {
    on_target 'find . -maxdepth 1 -type f -name "*.age" -printf "%f\n"; echo "--hashes"; find . -maxdepth 1 -type f -name "*.age.sha256" -exec cat {} +; echo "--stream"; [ ! -d stream ] || find stream -mindepth 2 -maxdepth 2 -type f -printf "%P\n"; echo "--series"; cat .series 2>/dev/null || true' >"$WORK/listing" ||
        fatal "cannot list the backups ${FROM:-on the target}"
    sed -n '1,/^--hashes$/p' "$WORK/listing" | sed '$d' >"$WORK/names"
    sed -n '/^--stream$/,/^--series$/p' "$WORK/listing" | sed '1d;$d' >"$WORK/stream"
    sed -n '/^--series$/,$p' "$WORK/listing" | sed '1d' | head -n1 >"$WORK/series"
    local h n
    while read -r h n; do
        [[ -n "$n" ]] && HASH[$n]=$h
    done < <(sed -n '/^--hashes$/,/^--stream$/p' "$WORK/listing" | sed '1d;$d')
}

# on_db ARGS... : runs pi-cluster-restore on the DB Pi (or here), stdin passed through.
on_db() {
    if ((HERE)); then
        bash "$REPO/assets/backup/pi-cluster-restore.sh" "$@"
    else
        "${DB_SSH[@]}" "sudo $RESTORE_TOOL $(printf '%q ' "$@")"
    fi
}

install_tool() {
    ((HERE)) && return 0
    "${DB_SSH[@]}" "sudo install -m 0755 /dev/stdin $RESTORE_TOOL" <"$REPO/assets/backup/pi-cluster-restore.sh" ||
        fatal "cannot install $RESTORE_TOOL on the DB Pi"
}

install_packages() {
    ((HERE)) && return 0
    "${DB_SSH[@]}" 'sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install --no-install-recommends mariadb-server mariadb-backup zstd >/dev/null || { sudo apt-get -q update >/dev/null && sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends mariadb-server mariadb-backup zstd >/dev/null; }'
}

# --- the hold: this run owns the DB Pi's restore while this process lives -------------------

HOLDER="" HEARTBEAT_PID="" HOLD_IN="" HOLD_OUT=""
start_hold() {
    local who line
    who="$(id -un)@$(hostname)/pid$$"
    mkfifo "$WORK/hold.in" "$WORK/hold.out"
    (
        trap - EXIT
        on_db hold "$RUN" "$who"
    ) <"$WORK/hold.in" >"$WORK/hold.out" 2>&1 &
    HOLDER=$!
    exec {HOLD_IN}>"$WORK/hold.in" {HOLD_OUT}<"$WORK/hold.out"
    local said=""
    while IFS= read -r -t 120 -u "$HOLD_OUT" line; do
        [[ "$line" != "held $RUN" ]] || break
        info "DB Pi: ${line#restore: }"
        said=$line
    done
    if [[ "$line" != "held $RUN" ]]; then
        release_hold
        case "$said" in
        *"another restore holds"*) fatal "${said#restore: } (wait for it; a staging whose operator is gone is dropped within a minute)" 3 ;;
        *) fatal "the DB Pi did not take the restore: ${said#restore: }" ;;
        esac
    fi
    # A line every 4 s keeps the hold; it stops when this process is gone.
    {
        trap - EXIT
        while sleep 4 >/dev/null 2>&1; do
            kill -0 "$$" 2>/dev/null || exit 0
            echo || exit 0
        done
    } 1>&"$HOLD_IN" 2>/dev/null &
    HEARTBEAT_PID=$!
}

# release_hold : the hold ends (its staging goes if no apply took it), and is waited for.
release_hold() {
    [[ -n "$HOLDER" ]] || return 0
    [[ -z "$HEARTBEAT_PID" ]] || kill "$HEARTBEAT_PID" 2>/dev/null || true
    exec {HOLD_IN}>&-
    cat <&"$HOLD_OUT" >/dev/null || true
    exec {HOLD_OUT}<&-
    wait "$HOLDER" 2>/dev/null || true
    HOLDER=""
}

cleanup() {
    release_hold
    if ((${#DB_SSH[@]})); then
        "${DB_SSH[@]}" -O exit 2>/dev/null || true
        "${TARGET_SSH[@]}" -O exit 2>/dev/null || true
    fi
    [[ -z "$WORK" ]] || rm -rf "$WORK"
}

# --- choosing and staging the chain --------------------------------------------------------

# read_backup NAME : the stored file on stdout.
read_backup() {
    if [[ -n "$FROM" ]]; then
        cat -- "$FROM/$1"
    else
        "${TARGET_SSH[@]}" "sudo cat $(printf '%q' "$TARGET_DIR/$1")"
    fi
}

# stage_one NAME : reads, hashes, decrypts and stages one file in one pass; a bad file leaves
# WORK/NAME.bad with why (and nothing staged), a good one WORK/NAME.staged.
stage_one() {
    local n=$1 cmd got codes=()
    case "$n" in
    binlog-*) cmd=stage-binlog ;;
    *) cmd=stage-backup ;;
    esac
    if [[ -z "${HASH[$n]:-}" ]]; then
        echo "no sha256 was recorded for it" >"$WORK/$n.bad"
        return 0
    fi
    rm -f "$WORK/$n.fifo"
    mkfifo "$WORK/$n.fifo"
    sha256sum <"$WORK/$n.fifo" | cut -c1-64 >"$WORK/$n.sum" &
    local summer=$!
    if read_backup "$n" 2>"$WORK/$n.read.err" | tee "$WORK/$n.fifo" |
        age -d -i "$WORK/identity" 2>"$WORK/$n.age.err" | on_db "$cmd" "$RUN" "$n" >"$WORK/$n.info" 2>"$WORK/$n.stage.err"; then
        codes=(0 0 0 0)
    else
        codes=("${PIPESTATUS[@]}")
    fi
    wait "$summer" || true
    got=$(cat "$WORK/$n.sum")
    # The first stage that failed for a reason of its own says why; one that only lost its
    # reader (141, SIGPIPE) does not. A hash is only known when tee read the whole file.
    if ((codes[0] != 0 && codes[0] != 141)); then
        echo "cannot be read: $(tail -n1 "$WORK/$n.read.err")" >"$WORK/$n.unreadable"
    elif ((codes[1] == 0)) && [[ "$got" != "${HASH[$n]}" ]]; then
        echo "its sha256 is not the one recorded when it was committed" >"$WORK/$n.bad"
    elif ((codes[2] != 0 && codes[2] != 141)); then
        echo "age refuses it (truncated or altered): $(grep -m1 . "$WORK/$n.age.err")" >"$WORK/$n.bad"
    elif ((codes[3] != 0)); then
        echo "it does not unpack: $(tail -n1 "$WORK/$n.stage.err" | sed 's/^restore: ERROR: //')" >"$WORK/$n.bad"
    elif [[ "$got" != "${HASH[$n]}" ]]; then
        echo "its sha256 is not the one recorded when it was committed" >"$WORK/$n.bad"
    else
        : >"$WORK/$n.staged"
        return 0
    fi
    # Whatever part of it reached the DB Pi goes (its own failure already removed it).
    on_db unstage "$RUN" "$n" 2>/dev/null || true
}

# stage_plan NAME... : stages what is not staged yet, a few at a time (the full streams while
# the binlogs go beside it).
stage_plan() {
    local n
    local -a jobs=()
    for n in "$@"; do
        [[ -e "$WORK/$n.staged" ]] && continue
        # A background job runs the EXIT trap too: only the main shell cleans up.
        (
            trap - EXIT
            stage_one "$n"
        ) &
        jobs+=($!)
        # Not `wait -n` nor a bare `wait`: the hold and its heartbeat are jobs of this shell too.
        if ((${#jobs[@]} >= 4)); then
            wait "${jobs[0]}" || true
            jobs=("${jobs[@]:1}")
        fi
    done
    for n in "${jobs[@]}"; do wait "$n" || true; done
}

# choose_chain TO_EPOCH TARGET ACCEPT_GAP : stages the newest complete, verified chain; its
# names, in apply order, into WORK/plan.
choose_chain() {
    local to_epoch=$1 target=$2 accept=$3 n any
    : >"$WORK/skip"
    local -a names staged
    while :; do
        plan_restore "$to_epoch" "$WORK/skip" <"$WORK/names" >"$WORK/plan.raw"
        while IFS= read -r n; do info "plan: $n"; done < <(sed -n 's/^# //p' "$WORK/plan.raw")
        mapfile -t names < <(grep -v '^# ' "$WORK/plan.raw")
        if ((${#names[@]} == 0)); then
            [[ -s "$WORK/skip" ]] && report_skipped
            fatal "no complete, verified full backup for $target on the target"
        fi
        # Either refusal (a gap in the plan's binlogs, or the database's newer series without
        # a backup) stops the restore, or with --accept-gap is said and accepted.
        gap_refusal "$target" "$WORK/names" <"$WORK/plan.raw" >"$WORK/gap" || true
        if [[ "$target" == "the latest point" ]]; then
            series_refusal "$(cat "$WORK/series")" "${names[0]}" "$WORK/names" >>"$WORK/gap" || true
        fi
        if [[ -s "$WORK/gap" ]]; then
            if ((accept)); then
                info "accepted (--accept-gap): $(cat "$WORK/gap")"
            else
                report_skipped
                fatal "$(cat "$WORK/gap")"
            fi
        fi
        wait_packages
        stage_plan "${names[@]}"
        any=0
        for n in "${names[@]}"; do
            if [[ -e "$WORK/$n.unreadable" ]]; then
                fatal "$n $(cat "$WORK/$n.unreadable"): not restoring"
            elif [[ -e "$WORK/$n.bad" ]]; then
                info "skipping $n: $(cat "$WORK/$n.bad")"
                printf '%s\n' "$n" >>"$WORK/skip"
                rm -f "$WORK/$n.bad"
                any=1
            fi
        done
        ((any)) || break
        info "planning again without the skipped file(s)"
    done
    # Staged for an earlier plan, not in this one: dropped.
    mapfile -t staged < <(find "$WORK" -maxdepth 1 -name '*.staged' -printf '%f\n' | sed 's/\.staged$//')
    local -a dropped=()
    local -A planned=()
    for n in "${names[@]}"; do planned[$n]=1; done
    for n in "${staged[@]}"; do
        [[ -n "${planned[$n]:-}" ]] || dropped+=("$n")
    done
    ((${#dropped[@]} == 0)) || on_db unstage "$RUN" "${dropped[@]}"
    printf '%s\n' "${names[@]}" >"$WORK/plan"
}

report_skipped() {
    local n
    while read -r n; do
        [[ -n "$n" ]] && info "skipped $n"
    done <"$WORK/skip"
}

# stage_stream TO_EPOCH : after the planned binlogs, the target's stream files that continue
# them (plaintext; zstd on the wire only), appended to WORK/plan.
stage_stream() {
    local to_epoch=$1 full series last f n
    full=$(head -n1 "$WORK/plan")
    series=$(plan_series "$full")
    [[ "$series" != legacy ]] || return 0
    last=$(grep '^binlog-' "$WORK/plan" | tail -n1 || true)
    # A replay that already reaches past --to needs no stream.
    if [[ -n "$last" ]] && (($(name_epoch "$last") > to_epoch)); then return 0; fi
    [[ -z "$last" ]] || last=$(binlog_name_file "$last")
    local -a files
    mapfile -t files < <(sed -n "s|^$series/||p" "$WORK/stream" | stream_tail "$last")
    ((${#files[@]})) || return 0
    for f in "${files[@]}"; do
        n="stream-$series-$f"
        if on_target "cat stream/$(printf '%q' "$series/$f")" | zstd -q -1 | on_db stage-stream "$RUN" "$n" 2>"$WORK/stream.err"; then
            printf '%s\n' "$n" >>"$WORK/plan"
        else
            info "the stream tail stops before $series/$f: $(tail -n1 "$WORK/stream.err" | sed 's/^restore: ERROR: //')"
            break
        fi
    done
    info "stream tail: $(grep -c '^stream-' "$WORK/plan" || true) file(s) of $series after the shipped binlogs"
}

# check_backup_start TARGET ACCEPT_GAP : the planned binlogs start where the last staged backup
# stops (it said where when it was staged); a missing first binlog is refused like a gap
# before anything on the DB Pi changes, or with --accept-gap restores to the backup's own point.
check_backup_start() {
    local target=$1 accept=$2 last file first n at
    last=$(grep -E '^(full|inc)-' "$WORK/plan" | tail -n1)
    read -r _ file _ <"$WORK/$last.info" || true
    [[ -n "${file:-}" ]] || return 0
    first=$(while read -r n; do
        case "$n" in
        binlog-*) binlog_name_file "$n" ;;
        stream-*) echo "${n#stream-*-}" ;;
        esac
    done < <(grep -E '^(binlog|stream)-' "$WORK/plan") | first_binlog_gap "$file")
    [[ -n "$first" ]] || return 0
    at=$(date -u -d "@$(name_epoch "$last")" '+%Y-%m-%d %H:%M:%S')
    local msg="the backup $last stops in binlog $file, but the first binlog after it on the target is $first: $file is missing, so every write after $at UTC (the backup's time) up to $target would be lost. Put $file back on the target, or accept losing those writes with --accept-gap (restores to the backup's own point)."
    ((accept)) || fatal "$msg"
    info "accepted (--accept-gap): $msg"
    grep -Ev '^(binlog|stream)-' "$WORK/plan" >"$WORK/plan.new"
    mv "$WORK/plan.new" "$WORK/plan"
}

PACKAGES_PID=""
wait_packages() {
    [[ -n "$PACKAGES_PID" ]] || return 0
    wait "$PACKAGES_PID" || fatal "installing MariaDB, mariadb-backup and zstd on the DB Pi failed"
    PACKAGES_PID=""
}

# --- replicas ---------------------------------------------------------------------------

# replicas : "name address port hostKey" of each replica in the stack config.
replicas() {
    ((HERE)) && return 0
    # shellcheck disable=SC2016 # JavaScript, not shell
    node -e 'for (const r of JSON.parse(process.argv[1] || "[]")) console.log([r.name, r.address, r.sshPort || 22, r.hostKey].join(" "))' "$(cfg dbReplicas)"
}

# stop_replicas : STOP SLAVE on each replica, so none serves reads that the restore makes stale.
# Prints the names it could not stop.
STOPPED_FAILED=()
stop_replicas() {
    local name address port hostkey known
    while read -r name address port hostkey; do
        [[ -n "$name" ]] || continue
        known=$address
        [[ "$port" == 22 ]] || known="[$address]:$port"
        printf '%s %s\n' "$known" "$hostkey" >"$WORK/known_$name"
        if ssh -n "${SSH_COMMON[@]}" -o UserKnownHostsFile="$WORK/known_$name" -o ControlPath=none -p "$port" "$SSH_USER@$address" \
            "sudo mariadb --protocol=socket -e 'STOP SLAVE'" 2>"$WORK/replica.err"; then
            info "$name: replication stopped (it leaves the read set until it is reseeded)"
        else
            info "WARNING: could not stop replication on $name ($(tail -n1 "$WORK/replica.err")): it may serve stale reads until it is reseeded"
            STOPPED_FAILED+=("$name")
        fi
    done < <(replicas)
}

# mark_reseed : bumps reseed.<replica> in the stack config, so the next up reseeds each replica
# from the restored database.
mark_reseed() {
    local name n
    local -a names=()
    while read -r name _; do
        [[ -n "$name" ]] || continue
        n=$(pulumi config get --stack "$STACK" --path "pi-cluster:reseed.$name" 2>/dev/null || echo 0)
        [[ "$n" =~ ^[0-9]+$ ]] || n=0
        pulumi config set --stack "$STACK" --path "pi-cluster:reseed.$name" "$((n + 1))"
        names+=("$name")
    done < <(replicas)
    ((${#names[@]} == 0)) || info "marked for a reseed: ${names[*]} (reseed.<name> in stack $STACK's config)"
}

# after_restore : once the DB Pi reports the restore done (now, or a run this machine lost).
after_restore() {
    mark_reseed
    rm -f "$PENDING"
    if ((HERE == 0)); then
        local db extra=""
        db=$(node -e 'console.log(JSON.parse(process.argv[1]).name)' "$(cfg database)")
        [[ -z "$(replicas)" ]] || extra=" and reseeds the replicas"
        info "next: npx pi-cluster recover $db --stack $STACK (brings the web servers back$extra)"
    fi
    if ((${#STOPPED_FAILED[@]})); then
        info "WARNING: replication could not be stopped on ${STOPPED_FAILED[*]}: stop it by hand (STOP SLAVE) until pi-cluster recover reseeds it"
        exit 4
    fi
}

# settle_previous : before a new run, what an earlier one left: follow an apply still running,
# recover an interrupted one, report the result this machine missed, or refuse.
settle_previous() {
    local any=$1 status pending="" action
    status=$(on_db status) || fatal "cannot read the restore status on the DB Pi"
    pending=$(pending_run)
    action=$(previous_outcome "$pending" "$status" "$any")
    case "$action" in
    go) return 0 ;;
    refuse*)
        local -a w
        read -r -a w <<<"$status"
        fatal "another restore holds the DB Pi: ${w[1]} by ${w[2]} since ${w[3]}, ${w[0]}${w[4]:+ (phase ${w[4]})}; wait for it (scripts/restore.sh --attach follows it), or if its operator is gone, a staging is dropped within a minute" 3
        ;;
    attach*)
        local run=${action#attach }
        info "the restore $run is applying on the DB Pi: following it to its end"
        if on_db attach "$run"; then
            after_restore
            exit 0
        fi
        status=$(on_db status)
        [[ "$status" == interrupted* ]] || exit 1
        ;&
    recover)
        info "an apply was interrupted on the DB Pi ($status): recovering it"
        local out
        out=$(on_db recover) || fatal "recovering the interrupted apply failed: $out"
        info "recovered: $out"
        if [[ "$out" == *" ok "* ]]; then
            info "the interrupted restore is complete: not restoring again (run again for a new restore)"
            after_restore
            exit 0
        fi
        ;;
    report*)
        local r=${action#report }
        info "the restore ${r%% *} ended${pending:+ while this machine was away}: ${r#* }"
        if [[ "$r" == *" ok"* && "${r%% *}" == "$pending" ]]; then
            after_restore
            exit 0
        fi
        rm -f "$PENDING"
        ;;
    esac
}

# pending_run : the run this machine started an apply for and has not seen end, unless the
# restore.sh that started it still runs (then it is a restore beside this one, not a lost one).
pending_run() {
    local run pid
    [[ -f "$PENDING" ]] || return 0
    read -r run pid <"$PENDING"
    if [[ -n "$pid" ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'restore\.sh'; then
        return 0
    fi
    echo "$run"
}

new_run_id() { printf '%s-%s\n' "$(date -u +%Y%m%dT%H%M%SZ)" "$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"; }

main() {
    local identity="" to="" accept=0 attach=0 to_epoch started=$SECONDS target
    while (($#)); do
        case "$1" in
        --identity) identity="${2:?--identity needs a file or -}"; shift 2 ;;
        --to) to="${2:?--to needs 'YYYY-MM-DD HH:MM:SS'}"; shift 2 ;;
        --accept-gap) accept=1; shift ;;
        --attach) attach=1; shift ;;
        --stack) STACK="${2:?--stack needs a name}"; shift 2 ;;
        --from) FROM="${2:?--from needs a directory}"; shift 2 ;;
        --here) HERE=1; shift ;;
        -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
        *) fatal "unknown argument '$1' (see --help)" ;;
        esac
    done
    if [[ -n "$to" ]]; then
        [[ "$to" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] || fatal "--to: expected 'YYYY-MM-DD HH:MM:SS' (UTC), got '$to'"
        to_epoch=$(date -u -d "$to" +%s) || fatal "--to: not a time: $to"
        target="'$to'"
    else
        to_epoch=$(($(date -u +%s) + 86400))
        target="the latest point"
    fi
    ((HERE == 0)) || [[ -n "$FROM" ]] || fatal "--here needs --from DIR"
    WORK=$(mktemp -d)
    chmod 0700 "$WORK"
    trap cleanup EXIT
    ((attach)) || read_identity "$identity"
    if ((HERE == 0)); then
        cd "$REPO"
        # shellcheck source=/dev/null
        source toolchain/env.sh || fatal "the Pulumi toolchain is not available (bash scripts/setup.sh builds it)"
        if [[ "$STACK" == lab ]]; then
            export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
            [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] || export PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
        fi
        setup_ssh
        PENDING="${XDG_STATE_HOME:-$HOME/.local/state}/pi-cluster/restore-stack-$STACK"
    else
        PENDING="${XDG_STATE_HOME:-$HOME/.local/state}/pi-cluster/restore-here-$(printf '%s' "${STAGE:-default}" | sha256sum | cut -c1-12)"
    fi
    install -d -m 0700 "$(dirname "$PENDING")"
    install_tool
    settle_previous "$attach"
    if ((attach)); then
        info "no restore is applying on the DB Pi: $(on_db status)"
        exit 0
    fi
    RUN=$(new_run_id)
    start_hold
    info "run $RUN holds the DB Pi's restore"
    if ((HERE == 0)); then
        info "installing MariaDB, mariadb-backup and zstd on the DB Pi (nothing happens when they are there)"
        (
            trap - EXIT
            install_packages
        ) &
        PACKAGES_PID=$!
    fi
    list_target
    choose_chain "$to_epoch" "$target" "$accept"
    stage_stream "$to_epoch"
    check_backup_start "$target" "$accept"
    info "staged $(grep -c . "$WORK/plan") file(s): $(grep -v '^stream-' "$WORK/plan" | tr '\n' ' ')"
    stop_replicas
    printf '%s %s\n' "$RUN" "$$" >"$PENDING"
    local rc=0
    if [[ -n "$to" ]]; then on_db apply "$RUN" "$to" <"$WORK/plan" || rc=$?; else on_db apply "$RUN" <"$WORK/plan" || rc=$?; fi
    case "$rc" in
    0) ;;
    1) rm -f "$PENDING"; fatal "the restore failed and was rolled back (see above): the DB Pi runs on its data from before" ;;
    3) fatal "the apply stopped with no result: run scripts/restore.sh again to recover it" ;;
    *) fatal "the connection to the DB Pi dropped during the apply (exit $rc); it goes on there: run scripts/restore.sh again to follow it" ;;
    esac
    release_hold
    info "restored in $((SECONDS - started)) s${to:+ to $to UTC}"
    after_restore
}

# Sourced by the tests for the pure functions; run as a command otherwise.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
