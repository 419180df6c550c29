#!/usr/bin/env bash
# pi-cluster-backup: the backup tool, installed on the database Pi and on the backup target.
#
# On the database Pi (root, from systemd timers; see components/render/backup.ts):
#   pi-cluster-backup full            mariadb-backup full, streamed, compressed, encrypted, shipped
#   pi-cluster-backup incremental     the same, against the last backup shipped (a full when none)
#   pi-cluster-backup ship-binlogs    FLUSH BINARY LOGS when there were writes, ship every closed binlog
# On the target (the backup user's forced command, or by hand as that user):
#   pi-cluster-backup receive         runs $SSH_ORIGINAL_COMMAND: put NAME | commit NAME SHA256 |
#                                     abort NAME | report KIND OK|FAILED MESSAGE | series SERIES | status
#   pi-cluster-backup prune [NOW]     deletes what retention no longer needs (NOW: epoch seconds)
#   pi-cluster-backup verify          re-hashes every file against the target's ledger
# Pure, for the tests and scripts/restore.sh (source this file): name_epoch NAME,
# plan_prune NOW DAYS < names, plan_restore TO [SKIP_FILE] < names.
#
# Names (TS = YYYYMMDDTHHMMSSZ, the DB Pi's UTC clock; SERIES = s<server_id>x<8 hex>):
#   full-TS-SERIES.xb.zst.age   inc-TS-of-FULLTS-SERIES.xb.zst.age   binlog-TS-SEQ-SERIES-FILE.zst.age
# Names without -SERIES (made before series existed) stay valid: their series is "legacy".
# A series is one incarnation of the database's binlog numbering. The DB Pi keeps it in
# $STATE_DIR/series and starts a new one when that is absent (a new host, a promoted
# replica), when the server_id changed, when the shipping state was reset (a restore clears
# it), or when the binlog numbering restarted (a file before the last one flushed or shipped).
# Binlogs of one series never complete a full of another, so a new series' mariadb-bin.000001
# is never replayed onto an old full; a new series starts a new chain (the next backup is a full).
#
# Nothing leaves the database Pi unencrypted: mariadb-backup's stream and each binlog go
# through zstd and `age -r AGE_RECIPIENT` before the pipe reaches ssh. Shipping is two steps:
# `put` stores the stream as a hidden partial file; `commit` makes it a backup only when the
# DB Pi saw every stage of its pipe exit 0, mariadb-backup said "completed OK!", its stream
# ends with the checkpoints file, and the target's sha256 of what it stored equals the DB
# Pi's. Anything less is aborted (the partial removed), so a failed run leaves nothing that a
# restore, status.json or the retention would take for a backup.
# The target is append-only for the DB Pi: put and commit refuse a name it has (or had), a
# committed file is never replaced, and each commit appends the file's sha256 to
# $BACKUP_DIR/.ledger, which nothing rewrites (prune appends what it deletes); verify checks
# every file against it, so a file changed after its commit is caught. put refuses to let the
# target's free space drop below MIN_FREE_MB, checked before it starts and before each chunk
# it writes, and reports the refusal in status.json.
#
# Reads /etc/pi-cluster/backup.env (or $BACKUP_ENV):
#   database Pi: TARGET_HOST TARGET_PORT TARGET_USER AGE_RECIPIENT, optional DB_SOCKET DATADIR
#                DB_NAME (the app's database, where the target's status is published for the
#                app's lastBackup; unset, nothing is published)
#                STATE_DIR (default /var/lib/pi-cluster-backup); TARGET_HOST=local runs the
#                target side in this process (tests)
#   target:      BACKUP_DIR RETENTION_DAYS STALE_FULL STALE_INCREMENTAL STALE_BINLOG (seconds)
#                MIN_FREE_MB (default 1024)
set -euo pipefail

readonly TS_RE='[0-9]{8}T[0-9]{6}Z'
readonly SERIES_RE='s[0-9]+x[0-9a-f]{8}'
readonly NAME_RE="^(full-${TS_RE}(-${SERIES_RE})?\\.xb\\.zst\\.age|inc-${TS_RE}-of-${TS_RE}(-${SERIES_RE})?\\.xb\\.zst\\.age|binlog-${TS_RE}-[0-9]{4}-(${SERIES_RE}-)?[A-Za-z0-9_.-]+\\.[0-9]+\\.zst\\.age)\$"

log() { printf 'pi-cluster-backup: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# --- pure: names, retention and restore plans -------------------------------------------
# No process per name: the planners are one grep, one sort and one awk over all names.

# ts_epoch TS : YYYYMMDDTHHMMSSZ as epoch seconds (days from the civil date, H. Hinnant's
# algorithm), in bash arithmetic: no fork.
ts_epoch() {
    local t=$1 y m d era yoe doy doe
    y=$((10#${t:0:4})) m=$((10#${t:4:2})) d=$((10#${t:6:2}))
    ((m <= 2)) && y=$((y - 1))
    era=$((y / 400)) yoe=$((y % 400))
    doy=$(((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1))
    doe=$((yoe * 365 + yoe / 4 - yoe / 100 + doy))
    printf '%d\n' $(((era * 146097 + doe - 719468) * 86400 + 10#${t:9:2} * 3600 + 10#${t:11:2} * 60 + 10#${t:13:2}))
}

# epoch_ts EPOCH : the inverse (the civil date from days); 0 for a time before 1970.
epoch_ts() {
    local s=$1 z era doe yoe doy mp d m y
    ((s >= 0)) || s=0
    z=$((s / 86400 + 719468)) era=$((z / 146097)) doe=$((z % 146097))
    yoe=$(((doe - doe / 1460 + doe / 36524 - doe / 146096) / 365))
    doy=$((doe - (365 * yoe + yoe / 4 - yoe / 100)))
    mp=$(((5 * doy + 2) / 153))
    d=$((doy - (153 * mp + 2) / 5 + 1)) m=$((mp < 10 ? mp + 3 : mp - 9)) y=$((yoe + era * 400 + (mp >= 10)))
    printf '%04d%02d%02dT%02d%02d%02dZ\n' "$y" "$m" "$d" $((s % 86400 / 3600)) $((s % 3600 / 60)) $((s % 60))
}

# name_epoch NAME : the time in NAME (its first timestamp), as epoch seconds.
name_epoch() {
    [[ "$1" =~ $TS_RE ]] || return 1
    ts_epoch "${BASH_REMATCH[0]}"
}

# name_kind NAME : full, incremental or binlog.
name_kind() {
    case "$1" in
    full-*) echo full ;;
    inc-*) echo incremental ;;
    binlog-*) echo binlog ;;
    *) return 1 ;;
    esac
}

# backup_names : the backup names on stdin, once each, in name order (for one kind, that
# is time order); anything else (status.json, a .sha256, a path) is dropped.
backup_names() { { grep -E "$NAME_RE" || true; } | LC_ALL=C sort -u; }

# The awk that reads a name (already matched by NAME_RE), by position: K kind, TS its time,
# OF the full an incremental builds on, S its series ("legacy" without one), and for a
# binlog SEQ, F its file, FB the file's base name, FN its number and FW the number's width.
readonly PARSE_AWK='
function parse(n,   r, i) {
    K = ""; OF = ""; S = "legacy"; SEQ = ""; F = ""; FB = ""; FN = -1; FW = 0
    if (substr(n, 1, 5) == "full-") {
        K = "full"; TS = substr(n, 6, 16); r = substr(n, 22)
        if (r != ".xb.zst.age") S = substr(r, 2, length(r) - 12)
    } else if (substr(n, 1, 4) == "inc-") {
        K = "incremental"; TS = substr(n, 5, 16); OF = substr(n, 25, 16); r = substr(n, 41)
        if (r != ".xb.zst.age") S = substr(r, 2, length(r) - 12)
    } else {
        K = "binlog"; TS = substr(n, 8, 16); SEQ = substr(n, 25, 4)
        F = substr(n, 30, length(n) - 29 - 8)
        i = index(F, "-")
        if (i > 0 && substr(F, 1, i - 1) ~ /^s[0-9]+x[0-9a-f]+$/ && i - index(F, "x") == 9) { S = substr(F, 1, i - 1); F = substr(F, i + 1) }
        match(F, /[.][0-9]+$/)
        FB = substr(F, 1, RSTART - 1); FN = substr(F, RSTART + 1) + 0; FW = RLENGTH - 1
    }
}
function iso(ts) { return substr(ts, 1, 4) "-" substr(ts, 5, 2) "-" substr(ts, 7, 2) "T" substr(ts, 10, 2) ":" substr(ts, 12, 2) ":" substr(ts, 14, 2) "Z" }
'

# plan_prune NOW DAYS : reads backup names on stdin, prints the ones to delete.
# Every point in the last DAYS must stay restorable, so the anchor is the newest full taken
# at or before NOW - DAYS: it, its incrementals and every binlog shipped after it are kept,
# and only what is older than the anchor goes. With no full that old, nothing goes. The
# newest full is never deleted, and an incremental that is kept keeps the full it was taken
# against (its name says which, and its series) and that full's older incrementals, whatever
# their age.
plan_prune() {
    [[ "${1:-}" =~ ^[0-9]+$ && "${2:-}" =~ ^[0-9]+$ ]] || die "plan_prune: expected NOW (epoch seconds) and DAYS, got '${1:-}' '${2:-}'"
    backup_names | awk -v cut="$(epoch_ts $(($1 - $2 * 86400)))" "$PARSE_AWK"'
        {
            parse($0); n[NR] = $0; k[NR] = K; ts[NR] = TS
            # A full and the incrementals built on it share a key: the full'"'"'s time and series.
            key[NR] = K == "full" ? TS " " S : K == "incremental" ? OF " " S : ""
            if (K == "full" && TS <= cut && TS >= anchor) anchor = TS
        }
        END {
            if (anchor == "") exit
            for (i = 1; i <= NR; i++) if (k[i] == "incremental" && ts[i] >= anchor) need[key[i]] = 1
            for (i = 1; i <= NR; i++) if (ts[i] < anchor && !(key[i] in need)) print n[i]
        }'
}

# plan_restore TO [SKIP_FILE] : reads backup names on stdin, prints what a restore to TO
# (epoch seconds) applies, one name a line in apply order, and notes for the operator on
# lines that start with "# ":
# - the newest full at or before TO that SKIP_FILE does not list (a note for each listed
#   one passed over);
# - its incrementals (same full, same series) at or before TO, in time order, stopping
#   before the first one SKIP_FILE lists;
# - the binlogs of the full's series shipped from the full's time on, in file-number order,
#   up to and including the first shipped after TO (it holds the events just before TO; the
#   replay stops at TO), stopping at a missing file number or a listed binlog, with a
#   "# gap: SERIES FILE missing after FILE: binlogs stop at TIME" note.
# SKIP_FILE holds names the restore found bad, one a line (a missing file lists none).
# Without a full, prints no name.
plan_restore() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] || die "plan_restore: expected TO (epoch seconds), got '${1:-}'"
    backup_names | awk -v to="$(epoch_ts "$1")" -v skipfile="${2:-}" "$PARSE_AWK"'
        BEGIN { if (skipfile != "") while ((getline l < skipfile) > 0) if (split(l, w, " ") && substr(w[1], 1, 1) != "#") bad[w[1]] = 1 }
        { parse($0); n[NR] = $0; k[NR] = K; ts[NR] = TS; of[NR] = OF; s[NR] = S; fb[NR] = FB; fn[NR] = FN; fw[NR] = FW }
        END {
            for (i = 1; i <= NR; i++) if (k[i] == "full" && ts[i] <= to && !(n[i] in bad)) f = i
            for (i = 1; i <= NR; i++) if (k[i] == "full" && ts[i] <= to && (n[i] in bad) && (!f || ts[i] >= ts[f])) print "# skipped " n[i] ": listed as bad"
            if (!f) exit
            # A series that began after the full (a restore or a promotion started it) holds
            # writes this chain cannot reach: the first such series up to TO is a gap.
            for (i = 1; i <= NR; i++) if (!(s[i] in began) || ts[i] < began[s[i]]) { began[s[i]] = ts[i]; first[s[i]] = n[i] }
            for (g in began) if (g != s[f] && began[g] > ts[f] && began[g] <= to && (!later || began[g] < began[later])) later = g
            print n[f]; last = f
            chain()
            if (later != "" && !gap) print "# gap: series " later " began at " iso(began[later]) " (" first[later] "), after " n[f] ": its writes are not on this chain"
        }
        function chain() {
            for (i = 1; i <= NR; i++) {
                if (k[i] != "incremental" || of[i] != ts[f] || s[i] != s[f] || ts[i] > to) continue
                if (n[i] in bad) { print "# skipped " n[i] ": listed as bad; the incrementals after it are not applied"; break }
                print n[i]; last = i
            }
            # The binlogs of the series from the full on, by base name and number; the first
            # shipped copy of a number counts. The base is that of the first one shipped.
            for (i = 1; i <= NR; i++) {
                if (k[i] != "binlog" || s[i] != s[f] || ts[i] < ts[f] || fn[i] < 0) continue
                if (base == "") { base = fb[i]; lo = hi = fn[i] }
                if (fb[i] != base) continue
                if (!((fn[i]) in at)) at[fn[i]] = i
                if (fn[i] < lo) lo = fn[i]
                if (fn[i] > hi) hi = fn[i]
            }
            if (base == "") return
            # A missing or bad file is harmless when it closed before the last backup applied
            # began (that backup holds its events): its next shipped file went before that.
            # Otherwise the binlogs stop there.
            lb = last; prev = n[f]
            for (m = lo; m <= hi; m++) {
                if ((m in at) && !(n[at[m]] in bad)) {
                    i = at[m]; print n[i]; last = i; prev = sprintf("%s.%0" fw[i] "d", base, m)
                    if (ts[i] > to) return
                    continue
                }
                if (m in at) { print "# skipped " n[at[m]] ": listed as bad"; t = ts[at[m]] }
                else { for (m2 = m + 1; !(m2 in at); m2++) ; t = ts[at[m2]] }
                file = sprintf("%s.%0" fw[at[lo]] "d", base, m)
                if (t < ts[lb]) { print "# covered: " s[f] " " file " is missing or bad, but closed before " n[lb]; continue }
                print "# gap: " s[f] " " file " missing after " prev ": binlogs stop at " iso(ts[last] > ts[lb] ? ts[last] : ts[lb])
                gap = 1
                return
            }
        }'
}

# --- target side ---------------------------------------------------------------------

LEDGER=""
target_env() {
    [[ -n "${BACKUP_DIR:-}" && -d "$BACKUP_DIR" ]] || die "BACKUP_DIR (${BACKUP_DIR:-unset}) is not a directory"
    RETENTION_DAYS=${RETENTION_DAYS:-30}
    MIN_FREE_MB=${MIN_FREE_MB:-1024}
    [[ "$MIN_FREE_MB" =~ ^[0-9]+$ ]] || die "MIN_FREE_MB ($MIN_FREE_MB) is not a whole number of MB"
    LEDGER="$BACKUP_DIR/.ledger"
}

valid_name() { [[ "$1" =~ $NAME_RE ]] || die "refused name '$1': not a backup name"; }

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# target_lock : serialises what changes the committed set (commit, prune, the ledger's
# start), across the receivers of concurrent runs. Held until the process exits. The lock
# is on the directory itself: no lock file beside the backups.
TARGET_LOCKED=0
target_lock() {
    ((TARGET_LOCKED)) && return 0
    exec 7<"$BACKUP_DIR"
    flock 7
    TARGET_LOCKED=1
}

# ledger_init : the ledger, made once. A directory from before the ledger existed has its
# files adopted with the hashes their .sha256 recorded ("adopt" lines); from then on only
# commits add to it. Lines: commit|adopt SHA256 NAME AT, prune - NAME AT.
ledger_init() {
    [[ -f "$LEDGER" ]] && return 0
    target_lock
    [[ -f "$LEDGER" ]] && return 0
    local tmp
    tmp=$(mktemp "$BACKUP_DIR/.ledger.XXXXXX")
    {
        printf '# pi-cluster backup ledger, appended to only: commit|adopt SHA256 NAME AT, prune - NAME AT\n'
        find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.age.sha256' -exec cat -- {} + 2>/dev/null |
            awk -v at="$(iso "$(date -u +%s)")" 'NF == 2 && $1 ~ /^[0-9a-f]+$/ && length($1) == 64 { print "adopt " $1 " " $2 " " at }'
    } >"$tmp"
    ln -- "$tmp" "$LEDGER" 2>/dev/null || true
    rm -f -- "$tmp"
    log "started the ledger $LEDGER ($(grep -c '^adopt ' "$LEDGER") file(s) adopted from their .sha256)"
}

# known_name NAME : whether the target has or had NAME (a committed file, or any ledger line).
known_name() { [[ -e "$BACKUP_DIR/$1" ]] || grep -qF -- " $1 " "$LEDGER" 2>/dev/null; }

# record_failure KIND MESSAGE : a failure for status.json, until that kind's next success.
record_failure() {
    printf '{"kind":"%s","at":"%s","message":%s}' "$1" "$(iso "$(date -u +%s)")" "$(json_string "$2")" >"$BACKUP_DIR/.failed-$1"
    write_status
}

# refuse NAME MESSAGE : a refused put or commit: reported in status.json, and fatal.
refuse() {
    record_failure "$(name_kind "$1")" "$2"
    die "$2"
}

# newest_json KIND : {"name","at","ageSeconds","bytes"} of the newest stored file of KIND, or null.
newest_json() {
    local prefix=$1 now=$2 n t
    n=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "$prefix-*.age" -printf '%f\n' | backup_names | tail -n1)
    if [[ -z "$n" ]]; then
        printf 'null'
        return
    fi
    t=$(name_epoch "$n")
    printf '{"name":"%s","at":"%s","ageSeconds":%d,"bytes":%d}' "$n" "$(iso "$t")" $((now - t)) "$(stat -c %s "$BACKUP_DIR/$n")"
}

# json_file FILE : FILE's JSON (written whole by its owner), or null.
json_file() { if [[ -s "$1" ]]; then tr -d '\n' <"$1"; else printf null; fi; }

# write_status : status.json beside the backups, for the app and the dashboard. "stream" is
# the binlog stream's own report ($BACKUP_DIR/.stream.json, written by the stream's service).
write_status() {
    local now failures="" f tmp
    now=$(date -u +%s)
    for f in "$BACKUP_DIR"/.failed-*; do
        [[ -f "$f" ]] || continue
        failures+="${failures:+,}$(cat "$f")"
    done
    local ok="" k
    # The last run that succeeded, per kind: a quiet database ships no binlog, yet its
    # shipper runs, so the binlog's freshness is this, not the newest file's age.
    for k in full incremental binlog; do
        ok+="${ok:+,}\"$k\":$( [[ -f "$BACKUP_DIR/.ok-$k" ]] && printf '"%s"' "$(cat "$BACKUP_DIR/.ok-$k")" || printf null)"
    done
    tmp=$(mktemp "$BACKUP_DIR/.status.XXXXXX")
    printf '{"generatedAt":"%s","full":%s,"incremental":%s,"binlog":%s,"lastSuccess":{%s},"staleAfterSeconds":{"full":%d,"incremental":%d,"binlog":%d},"retentionDays":%d,"failures":[%s],"verify":%s,"stream":%s}\n' \
        "$(iso "$now")" "$(newest_json full "$now")" "$(newest_json inc "$now")" "$(newest_json binlog "$now")" "$ok" \
        "${STALE_FULL:-93600}" "${STALE_INCREMENTAL:-7200}" "${STALE_BINLOG:-900}" "$RETENTION_DAYS" \
        "$failures" "$(json_file "$BACKUP_DIR/.verify")" "$(json_file "$BACKUP_DIR/.stream.json")" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$BACKUP_DIR/status.json"
}

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "${s//[$'\n\r\t']/ }"
}

# avail_bytes : the free space in BACKUP_DIR for its (unprivileged) owner.
avail_bytes() { df -B1 --output=avail "$BACKUP_DIR" | tail -n1 | tr -d ' '; }

# store FILE : stdin appended to FILE in chunks, never taking the filesystem's free space
# below MIN_FREE_MB: the room is checked again before each chunk, so a stream larger than it
# or a disk that something else fills meanwhile (binlogs, the stream) stops it. A chunk
# takes whole blocks and some metadata besides its bytes: 1 MB of the room is left for
# that (a tmpfs test saw 4 KB taken past the bytes written). FILE is opened once: an abort
# that removes it meanwhile is not undone by a later chunk. Returns 0 at the end of the
# stream, 2 at the reserve.
store() {
    local out reserve=$(((MIN_FREE_MB + 1) * 1048576)) chunk=$((16 * 1048576)) size=0 room n got
    exec {out}>>"$1"
    while :; do
        room=$(($(avail_bytes) - reserve))
        if ((room <= 0)); then
            # No room left: fine only when the stream ended exactly here.
            (($(head -c1 | wc -c) == 0)) && return 0
            return 2
        fi
        n=$((room < chunk ? room : chunk))
        dd bs=1M count="$n" iflag=count_bytes,fullblock status=none >&"$out" || return 1
        got=$(($(stat -L -c %s "/dev/fd/$out") - size))
        size=$((size + got))
        ((got == n)) || return 0
    done
}

# receive_put NAME : the stream on stdin, stored as the hidden partial .NAME.partial.
receive_put() {
    local name=$1 part avail
    valid_name "$name"
    part="$BACKUP_DIR/.$name.partial"
    ledger_init
    known_name "$name" && refuse "$name" "put $name refused: the target has (or had) a backup of that name, and never replaces one"
    avail=$(avail_bytes)
    ((avail > MIN_FREE_MB * 1048576)) ||
        refuse "$name" "put $name refused: the target has $((avail / 1048576)) MB free, at or below backup.target.minFreeMb ($MIN_FREE_MB MB); free space on $(hostname):$BACKUP_DIR or lower the reserve"
    (set -C && : >"$part") 2>/dev/null || die "put $name refused: another put of it is in progress"
    local rc=0
    store "$part" || rc=$?
    if ((rc == 2)); then
        avail=$(stat -c %s "$part")
        rm -f -- "$part"
        refuse "$name" "put $name refused after $((avail / 1048576)) MB: storing more would take the target's free space below backup.target.minFreeMb ($MIN_FREE_MB MB); free space on $(hostname):$BACKUP_DIR or lower the reserve"
    elif ((rc != 0)); then
        rm -f -- "$part"
        die "put $name: writing $part failed"
    fi
    echo "stored $name ($(stat -c %s "$part") bytes, not committed)"
}

# receive_commit NAME SHA256 : the partial becomes NAME when its sha256 is the one given.
receive_commit() {
    local name=$1 want=$2 got part
    valid_name "$name"
    [[ "$want" =~ ^[0-9a-f]{64}$ ]] || die "commit $name: expected a sha256, got '$want'"
    ledger_init
    target_lock
    part="$BACKUP_DIR/.$name.partial"
    [[ -f "$part" ]] || die "commit $name: nothing was put"
    if known_name "$name" || [[ -e "$BACKUP_DIR/$name.sha256" ]]; then
        rm -f -- "$part"
        refuse "$name" "commit $name refused: the target has (or had) a backup of that name, and never replaces one"
    fi
    got=$(sha256sum <"$part" | cut -d' ' -f1)
    if [[ "$got" != "$want" ]]; then
        rm -f -- "$part"
        die "commit $name: the target holds sha256 $got, the database Pi sent $want; discarded"
    fi
    # ln, not mv: it refuses an existing name.
    ln -- "$part" "$BACKUP_DIR/$name"
    printf 'commit %s %s %s\n' "$got" "$name" "$(iso "$(date -u +%s)")" >>"$LEDGER"
    (set -C && printf '%s  %s\n' "$got" "$name" >"$BACKUP_DIR/$name.sha256")
    rm -f -- "$part"
    # Durable before the database Pi hears "committed" and counts on it.
    sync -- "$BACKUP_DIR/$name" "$BACKUP_DIR/$name.sha256" "$LEDGER" "$BACKUP_DIR"
    rm -f "$BACKUP_DIR/.failed-$(name_kind "$name")"
    if [[ "$name" == full-* ]]; then prune_locked "$(date -u +%s)"; else write_status; fi
    echo "committed $name"
}

# receive_series SERIES : the database's current binlog series, for the binlog stream.
receive_series() {
    local tmp
    [[ "$1" =~ ^${SERIES_RE}$ ]] || die "series: expected a series such as s1x0123abcd, got '$1'"
    [[ "$(cat "$BACKUP_DIR/.series" 2>/dev/null)" == "$1" ]] && return 0
    tmp=$(mktemp "$BACKUP_DIR/.series.XXXXXX")
    printf '%s\n' "$1" >"$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$BACKUP_DIR/.series"
    log "the database's binlog series is now $1"
}

receive() {
    target_env
    local -a words
    read -r -a words <<<"${SSH_ORIGINAL_COMMAND:-}"
    case "${words[0]:-}" in
    put) receive_put "${words[1]:-}" ;;
    commit) receive_commit "${words[1]:-}" "${words[2]:-}" ;;
    abort)
        # A partial only: a committed backup is never removed by the database Pi.
        valid_name "${words[1]:-}"
        rm -f "$BACKUP_DIR/.${words[1]}.partial"
        ;;
    report)
        local kind=${words[1]:-} outcome=${words[2]:-}
        [[ "$kind" =~ ^(full|incremental|binlog)$ && "$outcome" =~ ^(OK|FAILED)$ ]] || die "report: expected KIND OK|FAILED MESSAGE"
        if [[ "$outcome" == FAILED ]]; then
            record_failure "$kind" "${words[*]:3}"
        else
            rm -f "$BACKUP_DIR/.failed-$kind"
            iso "$(date -u +%s)" >"$BACKUP_DIR/.ok-$kind"
            write_status
        fi
        ;;
    series) receive_series "${words[1]:-}" ;;
    status) write_status && cat "$BACKUP_DIR/status.json" ;;
    *) die "refused command '${SSH_ORIGINAL_COMMAND:-}': this key may only put, commit, abort, report, series and status" ;;
    esac
}

prune() {
    target_env
    ledger_init
    target_lock
    prune_locked "${1:-$(date -u +%s)}"
}

# prune_locked NOW : prune, with the target's lock held. Each deletion is in the ledger
# before the file goes, so verify tells a pruned file from a lost one.
prune_locked() {
    local now=$1 n count=0 at
    at=$(iso "$(date -u +%s)")
    while read -r n; do
        [[ -n "$n" ]] || continue
        printf 'prune - %s %s\n' "$n" "$at" >>"$LEDGER"
        rm -f -- "$BACKUP_DIR/$n" "$BACKUP_DIR/$n.sha256"
        count=$((count + 1))
    done < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.age' -printf '%f\n' | plan_prune "$now" "$RETENTION_DAYS")
    # Partial uploads older than a day are from a transfer that died.
    find "$BACKUP_DIR" -maxdepth 1 -type f -name '.*.partial' -mmin +1440 -delete
    log "pruned $count file(s) older than what the last ${RETENTION_DAYS} days need"
    write_status
}

# verify : every stored file matches the sha256 the ledger recorded at its commit, every
# .sha256 says the same, and every committed file not pruned is still there; exits 1 and
# names each file otherwise. One sha256sum and one awk for all files.
verify() {
    target_env
    ledger_init
    local w n problems before
    w=$(mktemp -d)
    # The ledger's length, then the files, then the ledger under the lock. A file listed was
    # committed (ln, then its ledger line, under that lock) before the ledger is read. A file
    # must be listed only if its commit is within that first length: one committed while the
    # files are read is in the ledger but not in the list, and is not missing.
    target_lock
    before=$(stat -c %s -- "$LEDGER")
    exec 7>&-
    TARGET_LOCKED=0
    find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.age' -printf '%f\0' >"$w/files"
    (cd "$BACKUP_DIR" && xargs -0r sha256sum -- <"$w/files" >"$w/sums" 2>/dev/null) || true
    find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.age.sha256' -exec cat -- {} + >"$w/sidecars" 2>/dev/null || true
    target_lock
    cp -- "$LEDGER" "$w/ledger"
    exec 7>&-
    TARGET_LOCKED=0
    head -c "$before" -- "$w/ledger" >"$w/listed-by"
    n=$(tr -cd '\0' <"$w/files" | wc -c)
    problems=$(tr '\0' '\n' <"$w/files" | awk '
        FILENAME == ARGV[1] { if ($1 == "commit" || $1 == "adopt") sum[$3] = $2; else if ($1 == "prune") pruned[$3] = 1; next }
        FILENAME == ARGV[2] { if ($1 == "commit" || $1 == "adopt") due[$3] = 1; next }
        FILENAME == ARGV[3] { got[$2] = $1; next }
        FILENAME == ARGV[4] { side[$2] = $1; next }
        { listed[$0] = 1
          if (!($0 in got)) { if (!($0 in pruned)) print $0 ": unreadable" }
          else if (!($0 in sum)) print $0 ": not in the ledger (never committed here)"
          else if (got[$0] != sum[$0]) print $0 ": sha256 " got[$0] ", the ledger recorded " sum[$0] " at its commit"
          else if (side[$0] != sum[$0]) print $0 ": its .sha256 does not match the ledger" }
        END { for (f in due) if (!(f in listed) && !(f in pruned)) print f ": committed, not pruned, and missing" }
    ' "$w/ledger" "$w/listed-by" "$w/sums" "$w/sidecars" - | LC_ALL=C sort)
    rm -rf "$w"
    local bad="" p
    while IFS= read -r p; do
        [[ -n "$p" ]] && bad+="${bad:+,}\"${p%%:*}\""
    done <<<"$problems"
    printf '{"at":"%s","files":%d,"bad":[%s]}' "$(iso "$(date -u +%s)")" "$n" "$bad" >"$BACKUP_DIR/.verify"
    write_status
    if [[ -n "$problems" ]]; then
        log "these files do not match the ledger:"
        printf '  %s\n' "${problems//$'\n'/$'\n'  }" >&2
        die "$(wc -l <<<"$problems") problem(s) in $n file(s) (above)"
    fi
    log "verified $n file(s) against the ledger"
}

# --- database side -------------------------------------------------------------------

db_env() {
    STATE_DIR=${STATE_DIR:-/var/lib/pi-cluster-backup}
    [[ -n "${AGE_RECIPIENT:-}" ]] || die "AGE_RECIPIENT is not set in ${BACKUP_ENV:-/etc/pi-cluster/backup.env}"
    [[ -n "${TARGET_HOST:-}" ]] || die "TARGET_HOST is not set in ${BACKUP_ENV:-/etc/pi-cluster/backup.env}"
    install -d -m 0700 "$STATE_DIR"
    DB_OPTS=(--user=root --socket="${DB_SOCKET:-/run/mysqld/mysqld.sock}")
}

# remote COMMAND : runs one receiver command on the target, with stdin passed through.
remote() {
    if [[ "$TARGET_HOST" == local ]]; then
        SSH_ORIGINAL_COMMAND="$*" bash "${BASH_SOURCE[0]}" receive
    else
        ssh -F /dev/null -i "$STATE_DIR/ssh/id_ed25519" -p "${TARGET_PORT:-22}" -o BatchMode=yes -o IdentitiesOnly=yes \
            -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$STATE_DIR/ssh/known_hosts" -o GlobalKnownHostsFile=/dev/null \
            -o ConnectTimeout=20 -o ServerAliveInterval=15 "$TARGET_USER@$TARGET_HOST" "$*"
    fi
}

# hash_into FILE : passes stdin through, writing its sha256 to FILE; fails if either fails.
hash_into() { tee >(sha256sum >"$1") && wait "$!"; }

# keep_tail FILE : passes stdin through, keeping its last MiB in FILE.
keep_tail() { tee >(tail -c 1048576 >"$1") && wait "$!"; }

# stage_failures "NAME..." STATUS... : names each stage of a pipe that did not exit 0.
stage_failures() {
    local -a names
    read -r -a names <<<"$1"
    shift
    local i out=""
    for ((i = 1; i <= $#; i++)); do
        ((${!i} == 0)) || out+="${out:+, }${names[i - 1]} exited ${!i}"
    done
    printf '%s' "$out"
}

# commit_or_abort NAME WORK PROBLEMS : commits NAME when PROBLEMS is empty and the target
# agrees on its sha256 (in WORK/sum); aborts it otherwise. Prints why it did not commit.
commit_or_abort() {
    local name=$1 work=$2 problems=$3 err=""
    [[ -s "$work/put.err" ]] && err=$(grep -v '^stored ' "$work/put.err" | tail -n 3 | tr '\n' ' ')
    if [[ -z "$problems" ]]; then
        remote commit "$name" "$(cut -d' ' -f1 "$work/sum")" >/dev/null 2>"$work/commit.err" && return 0
        problems="the target did not commit it: $(tail -n 2 "$work/commit.err" | tr '\n' ' ')"
    fi
    remote abort "$name" 2>/dev/null || log "could not abort $name on the target either (its partial file goes at the next prune)"
    printf '%s not committed: %s%s' "$name" "$problems" "${err:+ (the target said: ${err% })}"
    return 1
}

stamp() { date -u +%Y%m%dT%H%M%SZ; }

# local_status KIND OUTCOME DETAIL : the database Pi's own record of its last runs.
local_status() {
    printf '{"kind":"%s","outcome":"%s","at":"%s","detail":%s}\n' "$1" "$2" "$(iso "$(date -u +%s)")" "$(json_string "$3")" >"$STATE_DIR/last-$1.json"
}

# restarted CUR SEEN [NEXT] : whether the current binlog file CUR cannot follow SEEN, a file
# this series had (another base name, or a number below SEEN's, or below SEEN's + 1 with NEXT=1).
restarted() { [[ "${1%.*}" != "${2%.*}" ]] || ((10#${1##*.} < 10#${2##*.} + ${3:-0})); }

# ensure_series : SERIES, the current binlog series, made anew when needed (see the header).
# Called with ship.lock held: a new series resets the shipping state of the old one.
ensure_series() {
    local sid cur last reason=""
    sid=$(sql -e 'SELECT @@server_id')
    cur=$(sql -e 'SHOW MASTER STATUS' | cut -f1)
    SERIES=$(cat "$STATE_DIR/series" 2>/dev/null || true)
    if [[ ! "$SERIES" =~ ^${SERIES_RE}$ ]]; then
        reason="none yet"
    elif [[ "${SERIES%x*}" != "s$sid" ]]; then
        reason="server_id is $sid now"
    elif [[ ! -f "$STATE_DIR/shipped" ]]; then
        reason="the shipping state was reset (a restore does that)"
    elif [[ -n "$cur" ]]; then
        last=$(cut -f1 "$STATE_DIR/flushed-at" 2>/dev/null || true)
        if [[ -n "$last" ]] && restarted "$cur" "$last"; then reason="the binlog numbering restarted ($cur, after $last)"; fi
        last=$(tail -n1 "$STATE_DIR/shipped")
        if [[ -z "$reason" && -n "$last" ]] && restarted "$cur" "$last" 1; then reason="the binlog numbering restarted ($cur, after $last was shipped)"; fi
    fi
    [[ -n "$reason" ]] || return 0
    SERIES="s${sid}x$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    # Upgraded from before series (none yet, and a shipping state): the numbering goes on,
    # and what was shipped stays shipped. Otherwise nothing of the new series is shipped yet.
    if [[ "$reason" != "none yet" || ! -f "$STATE_DIR/shipped" ]]; then
        : >"$STATE_DIR/shipped"
        rm -f "$STATE_DIR/flushed-at"
    fi
    printf '%s\n' "$SERIES" >"$STATE_DIR/series.new"
    mv -f "$STATE_DIR/series.new" "$STATE_DIR/series"
    log "new binlog series $SERIES: $reason; the next backup is a full"
}

# series_for KIND : ensure_series under ship.lock (taken here unless the caller holds it),
# then tells the target. A failure fails the run as KIND.
series_for() {
    local kind=$1 held=${2:-}
    if [[ -z "$held" ]]; then
        exec 8>"$STATE_DIR/ship.lock"
        flock 8
    fi
    ensure_series
    [[ -n "$held" ]] || exec 8>&-
    remote series "$SERIES" >/dev/null || fail "$kind" "the target did not take the binlog series $SERIES"
}

# check_clock KIND TARGET_STATUS : STAMP, this run's time for its names, later than every
# backup this Pi or the target has. A Pi has no RTC: booted before time sync, its clock can
# be hours or years behind, and a name in the past would sort before backups it follows.
check_clock() {
    local kind=$1 newest
    newest=$({
        cat "$STATE_DIR/newest" 2>/dev/null || true
        grep -oE "\"name\":\"(full|inc|binlog)-$TS_RE" <<<"$2" | grep -oE "$TS_RE" || true
    } | LC_ALL=C sort | tail -n1)
    STAMP=$(stamp)
    if [[ -n "$newest" && "$STAMP" < "$newest" ]]; then
        fail "$kind" "the clock says $STAMP, before the newest backup ($newest): refusing to name a backup in the past. Is the time synced (timedatectl)? A Pi has no RTC."
    fi
    # Same second as the newest: wait for the next one, so names stay strictly in time order.
    while [[ "$STAMP" == "$newest" ]]; do
        sleep 0.2
        STAMP=$(stamp)
    done
}

# committed NAME : remembers the newest time this Pi named a committed backup.
committed() {
    local ts
    ts=$(grep -oE "$TS_RE" <<<"$1" | head -n1)
    [[ "$ts" > "$(cat "$STATE_DIR/newest" 2>/dev/null || true)" ]] && printf '%s\n' "$ts" >"$STATE_DIR/newest"
    log "shipped $1"
}

# backup full|incremental : one mariadb-backup run, streamed through zstd and age to the target.
backup() {
    db_env
    local kind=$1 name base=() full_ts="" chain_series="" start log target work problems
    exec 9>"$STATE_DIR/backup.lock"
    flock 9
    target=$(wait_target) || fail "$kind" "the target $TARGET_USER@$TARGET_HOST does not answer"
    touch "$STATE_DIR/target-answered"
    series_for "$kind"
    check_clock "$kind" "$target"
    if [[ "$kind" == incremental ]]; then
        read -r full_ts chain_series 2>/dev/null <"$STATE_DIR/chain" || true
        # MariaDB 10.x names the LSN file xtrabackup_checkpoints, 11.x mariadb_backup_checkpoints.
        if [[ -z "$full_ts" || "$chain_series" != "$SERIES" || ! (-f "$STATE_DIR/lsn/xtrabackup_checkpoints" || -f "$STATE_DIR/lsn/mariadb_backup_checkpoints") ]]; then
            log "no full backup of series $SERIES to build on yet: taking a full one"
            kind=full
        else
            base=(--incremental-basedir="$STATE_DIR/lsn")
        fi
    fi
    if [[ "$kind" == full ]]; then
        name="full-$STAMP-$SERIES.xb.zst.age"
        full_ts=$STAMP
    else
        name="inc-$STAMP-of-$full_ts-$SERIES.xb.zst.age"
    fi
    rm -rf "$STATE_DIR/lsn.new" "$STATE_DIR/work"
    install -d -m 0700 "$STATE_DIR/work"
    work=$(mktemp -d)
    log="$STATE_DIR/mariadb-backup.log"
    start=$(date +%s)
    # mariadb-backup takes no lock that stops InnoDB writes: it copies pages while the app
    # writes, and BACKUP STAGE BLOCK_COMMIT holds commits only for the moment it takes to
    # read the binlog position at the end (MariaDB docs, "mariadb-backup Overview").
    local -a st
    mariadb-backup --backup "${DB_OPTS[@]}" ${DATADIR:+--datadir="$DATADIR"} --stream=xbstream \
        --target-dir="$STATE_DIR/work" --extra-lsndir="$STATE_DIR/lsn.new" "${base[@]}" 2>"$log" |
        keep_tail "$work/tail" | zstd -q -3 | age -r "$AGE_RECIPIENT" | hash_into "$work/sum" |
        remote put "$name" 2>"$work/put.err" && st=("${PIPESTATUS[@]}") || st=("${PIPESTATUS[@]}")
    [[ -s "$work/put.err" ]] && cat "$work/put.err" >&2
    problems=$(stage_failures "mariadb-backup tail-keeper zstd age hash put" "${st[@]}")
    # The stream is complete only when mariadb-backup finished: its log says so, the
    # checkpoints file is in its LSN copy, and the stream ends with that file's last chunk
    # (xbstream: "XBSTCK01", flags, type E = end of file, path length, path).
    tail -n 1 "$log" | grep -q 'completed OK!' || problems+="${problems:+, }mariadb-backup's log does not end with 'completed OK!'"
    [[ -f "$STATE_DIR/lsn.new/xtrabackup_checkpoints" || -f "$STATE_DIR/lsn.new/mariadb_backup_checkpoints" ]] ||
        problems+="${problems:+, }no checkpoints file in its --extra-lsndir"
    LC_ALL=C grep -qaP '(?s)XBSTCK01.E.{4}(xtrabackup|mariadb_backup)_checkpoints' "$work/tail" 2>/dev/null ||
        problems+="${problems:+, }the stream does not end with the checkpoints file"
    if ! problems=$(commit_or_abort "$name" "$work" "$problems"); then
        tail -n 5 "$log" >&2 || true
        rm -rf "$STATE_DIR/work" "$STATE_DIR/lsn.new" "$work"
        fail "$kind" "$problems (see $log)"
    fi
    rm -rf "$STATE_DIR/lsn" "$STATE_DIR/work" "$work"
    mv "$STATE_DIR/lsn.new" "$STATE_DIR/lsn"
    printf '%s %s\n' "$full_ts" "$SERIES" >"$STATE_DIR/chain"
    committed "$name"
    local_status "$kind" OK "$name in $(($(date +%s) - start)) s"
    remote report "$kind" OK >/dev/null || true
    publish_status
    log "$kind backup $name done in $(($(date +%s) - start)) s"
}

# wait_target : the target's status.json, once it answers. A target that is briefly away
# (rebooting, or not set up yet on the first deploy, where the database's step runs first)
# costs a wait of up to 5 minutes, not a backup.
wait_target() {
    local i
    for ((i = 0; i < 10; i++)); do
        remote status 2>/dev/null && return 0
        sleep "${WAIT_TARGET_SECONDS:-30}"
    done
    return 1
}

# fail KIND MESSAGE : records the failure here and on the target, and fails the unit.
fail() {
    local_status "$1" FAILED "$2"
    remote report "$1" FAILED "$2" >/dev/null 2>&1 || log "could not report the failure to the target either"
    publish_status
    die "$2"
}

sql() { mariadb "${DB_OPTS[@]}" -N -B "$@"; }

# publish_status : the target's status.json into the app's database (table backup_status,
# made by the app's migrations), where the app reads it for lastBackup: the web servers
# reach the database, never the target. Not binlogged: it is this tool's bookkeeping, not
# the app's data. A failure here costs only a stale lastBackup, never a backup.
publish_status() {
    local json
    [[ -n "${DB_NAME:-}" ]] || return 0
    json=$(remote status 2>/dev/null) || {
        log "could not read the target's status to publish it"
        return 0
    }
    json=${json//\\/\\\\}
    json=${json//\'/\'\'}
    sql "$DB_NAME" <<<"SET sql_log_bin = 0; REPLACE INTO backup_status (id, status) VALUES (1, '$json');" ||
        log "could not publish the backup status to $DB_NAME.backup_status"
}

# ship_binlogs : rotates the binlog when it holds new events, then ships each closed one once.
ship_binlogs() {
    db_env
    exec 8>"$STATE_DIR/ship.lock"
    flock -n 8 || {
        log "another ship-binlogs run is still going"
        return 0
    }
    local basename dir pos last shipped=0 f seq name target work problems
    basename=$(sql -e 'SELECT @@log_bin_basename')
    [[ "$basename" != NULL && -n "$basename" ]] || fail binlog "the binary log is off (log_bin): nothing to ship"
    dir=$(dirname "$basename")
    if ! target=$(remote status 2>/dev/null); then
        # On the first deploy the database's step (which starts this timer) runs before the
        # target's, which needs this Pi's key: until the target has answered once, the binlogs
        # wait here and nothing has failed. After that, a silent target is a failure.
        if [[ ! -f "$STATE_DIR/target-answered" ]]; then
            log "the target $TARGET_USER@$TARGET_HOST does not answer yet (it never has: its step has not run); the binlogs wait here"
            return 0
        fi
        fail binlog "the target $TARGET_USER@$TARGET_HOST does not answer"
    fi
    touch "$STATE_DIR/target-answered"
    series_for binlog held
    check_clock binlog "$target"
    pos=$(sql -e 'SHOW MASTER STATUS' | cut -f1,2)
    last=$(cat "$STATE_DIR/flushed-at" 2>/dev/null || true)
    if [[ "$pos" != "$last" ]]; then
        sql -e 'FLUSH BINARY LOGS'
        sql -e 'SHOW MASTER STATUS' | cut -f1,2 >"$STATE_DIR/flushed-at"
    fi
    # Every binlog but the active one (the last listed) is closed.
    local -a logs=() st
    mapfile -t logs < <(sql -e 'SHOW BINARY LOGS' | cut -f1)
    unset 'logs[-1]'
    for f in "${logs[@]}"; do
        grep -qxF "$f" "$STATE_DIR/shipped" && continue
        # A sequence number keeps the order of files shipped within the same second.
        seq=$(printf '%04d' $(($(wc -l <"$STATE_DIR/shipped") % 10000)))
        name="binlog-$(stamp)-$seq-$SERIES-$f.zst.age"
        work=$(mktemp -d)
        zstd -q -3 <"$dir/$f" | age -r "$AGE_RECIPIENT" | hash_into "$work/sum" | remote put "$name" 2>"$work/put.err" &&
            st=("${PIPESTATUS[@]}") || st=("${PIPESTATUS[@]}")
        [[ -s "$work/put.err" ]] && cat "$work/put.err" >&2
        problems=$(stage_failures "zstd age hash put" "${st[@]}")
        if ! problems=$(commit_or_abort "$name" "$work" "$problems"); then
            rm -rf "$work"
            fail binlog "shipping $f failed: $problems"
        fi
        rm -rf "$work"
        printf '%s\n' "$f" >>"$STATE_DIR/shipped"
        committed "$name"
        shipped=$((shipped + 1))
    done
    local_status binlog OK "$shipped file(s) shipped"
    # Every run reports, so the target can tell a quiet database from a dead shipper.
    remote report binlog OK >/dev/null || log "could not report to the target"
    publish_status
}

main() {
    local env=${BACKUP_ENV:-/etc/pi-cluster/backup.env}
    # shellcheck source=/dev/null
    [[ -f "$env" ]] && source "$env"
    umask 077
    case "${1:-}" in
    full | incremental) backup "$1" ;;
    ship-binlogs) ship_binlogs ;;
    receive) receive ;;
    prune) prune "${2:-}" ;;
    verify) verify ;;
    *) die "usage: pi-cluster-backup full|incremental|ship-binlogs|receive|prune [NOW]|verify" ;;
    esac
}

# Sourced by the tests for the pure functions; run as a command otherwise.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
