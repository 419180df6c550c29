#!/usr/bin/env bash
# pi-cluster-backup: the backup tool, installed on the database Pi and on the backup target.
#
# On the database Pi (root, from systemd timers; see components/render/backup.ts):
#   pi-cluster-backup full            mariadb-backup full, streamed, compressed, encrypted, shipped
#   pi-cluster-backup incremental     the same, against the last backup shipped (a full when none)
#   pi-cluster-backup ship-binlogs    FLUSH BINARY LOGS when there were writes, ship every closed binlog
# On the target (the backup user's forced command, or by hand as that user):
#   pi-cluster-backup receive         runs $SSH_ORIGINAL_COMMAND: put NAME | commit NAME SHA256 |
#                                     abort NAME | report KIND OK|FAILED MESSAGE | status
#   pi-cluster-backup prune [NOW]     deletes what retention no longer needs (NOW: epoch seconds)
#   pi-cluster-backup verify          re-hashes every file against its .sha256 sidecar
# Pure, for the tests and scripts/restore.sh (source this file): name_epoch NAME,
# plan_prune NOW DAYS < names, plan_restore TO [SKIP_FILE] < names.
#
# Nothing leaves the database Pi unencrypted: mariadb-backup's stream and each binlog go
# through zstd and `age -r AGE_RECIPIENT` before the pipe reaches ssh. The target stores NAME (the age
# file) and NAME.sha256; a file is renamed into place only when the hash the target computed
# equals the one the database Pi computed, so a truncated transfer never looks like a backup.
#
# Reads /etc/pi-cluster/backup.env (or $BACKUP_ENV):
#   database Pi: TARGET_HOST TARGET_PORT TARGET_USER AGE_RECIPIENT, optional DB_SOCKET DATADIR
#                DB_NAME (the app's database, where the target's status is published for the
#                app's lastBackup; unset, nothing is published)
#                STATE_DIR (default /var/lib/pi-cluster-backup); TARGET_HOST=local runs the
#                target side in this process (tests)
#   target:      BACKUP_DIR RETENTION_DAYS STALE_FULL STALE_INCREMENTAL STALE_BINLOG (seconds)
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
            print n[f]; last = f
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
            if (base == "") exit
            # A missing or bad file is harmless when it closed before the last backup applied
            # began (that backup holds its events): its next shipped file went before that.
            # Otherwise the binlogs stop there.
            lb = last; prev = n[f]
            for (m = lo; m <= hi; m++) {
                if ((m in at) && !(n[at[m]] in bad)) {
                    i = at[m]; print n[i]; last = i; prev = sprintf("%s.%0" fw[i] "d", base, m)
                    if (ts[i] > to) exit
                    continue
                }
                if (m in at) { print "# skipped " n[at[m]] ": listed as bad"; t = ts[at[m]] }
                else { for (m2 = m + 1; !(m2 in at); m2++) ; t = ts[at[m2]] }
                file = sprintf("%s.%0" fw[at[lo]] "d", base, m)
                if (t < ts[lb]) { print "# covered: " s[f] " " file " is missing or bad, but closed before " n[lb]; continue }
                print "# gap: " s[f] " " file " missing after " prev ": binlogs stop at " iso(ts[last] > ts[lb] ? ts[last] : ts[lb])
                exit
            }
        }'
}

# --- target side ---------------------------------------------------------------------

target_env() {
    [[ -n "${BACKUP_DIR:-}" && -d "$BACKUP_DIR" ]] || die "BACKUP_DIR (${BACKUP_DIR:-unset}) is not a directory"
    RETENTION_DAYS=${RETENTION_DAYS:-30}
}

valid_name() { [[ "$1" =~ $NAME_RE ]] || die "refused name '$1': not a backup name"; }

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# newest_json KIND : {"name","at","ageSeconds","bytes"} of the newest stored file of KIND, or null.
newest_json() {
    local prefix=$1 now=$2 n t
    n=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "$prefix-*.age" -printf '%f\n' | sort | tail -n1)
    if [[ -z "$n" ]]; then
        printf 'null'
        return
    fi
    t=$(name_epoch "$n")
    printf '{"name":"%s","at":"%s","ageSeconds":%d,"bytes":%d}' "$n" "$(iso "$t")" $((now - t)) "$(stat -c %s "$BACKUP_DIR/$n")"
}

# write_status : status.json beside the backups, for the app and the dashboard.
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
    printf '{"generatedAt":"%s","full":%s,"incremental":%s,"binlog":%s,"lastSuccess":{%s},"staleAfterSeconds":{"full":%d,"incremental":%d,"binlog":%d},"retentionDays":%d,"failures":[%s],"verify":%s}\n' \
        "$(iso "$now")" "$(newest_json full "$now")" "$(newest_json inc "$now")" "$(newest_json binlog "$now")" "$ok" \
        "${STALE_FULL:-93600}" "${STALE_INCREMENTAL:-7200}" "${STALE_BINLOG:-900}" "$RETENTION_DAYS" \
        "$failures" "$(cat "$BACKUP_DIR/.verify" 2>/dev/null || echo null)" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$BACKUP_DIR/status.json"
}

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "${s//[$'\n\r\t']/ }"
}

receive() {
    target_env
    local -a words
    read -r -a words <<<"${SSH_ORIGINAL_COMMAND:-}"
    case "${words[0]:-}" in
    put)
        valid_name "${words[1]:-}"
        # The hash of what arrived, computed while it is written.
        tee "$BACKUP_DIR/.${words[1]}.partial" | sha256sum | cut -d' ' -f1
        ;;
    commit)
        local name=${words[1]:-} want=${words[2]:-} got
        valid_name "$name"
        [[ -f "$BACKUP_DIR/.$name.partial" ]] || die "commit $name: nothing was put"
        got=$(sha256sum "$BACKUP_DIR/.$name.partial" | cut -d' ' -f1)
        if [[ "$got" != "$want" ]]; then
            rm -f "$BACKUP_DIR/.$name.partial"
            die "commit $name: the target holds sha256 $got, the database Pi sent $want; discarded"
        fi
        printf '%s  %s\n' "$got" "$name" >"$BACKUP_DIR/$name.sha256"
        mv -f "$BACKUP_DIR/.$name.partial" "$BACKUP_DIR/$name"
        rm -f "$BACKUP_DIR/.failed-$(name_kind "$name")"
        [[ "$name" == full-* ]] && prune "$(date -u +%s)"
        write_status
        echo "committed $name"
        ;;
    abort)
        valid_name "${words[1]:-}"
        rm -f "$BACKUP_DIR/.${words[1]}.partial"
        ;;
    report)
        local kind=${words[1]:-} outcome=${words[2]:-}
        [[ "$kind" =~ ^(full|incremental|binlog)$ && "$outcome" =~ ^(OK|FAILED)$ ]] || die "report: expected KIND OK|FAILED MESSAGE"
        if [[ "$outcome" == FAILED ]]; then
            printf '{"kind":"%s","at":"%s","message":%s}' "$kind" "$(iso "$(date -u +%s)")" "$(json_string "${words[*]:3}")" >"$BACKUP_DIR/.failed-$kind"
        else
            rm -f "$BACKUP_DIR/.failed-$kind"
            iso "$(date -u +%s)" >"$BACKUP_DIR/.ok-$kind"
        fi
        write_status
        ;;
    status) write_status && cat "$BACKUP_DIR/status.json" ;;
    *) die "refused command '${SSH_ORIGINAL_COMMAND:-}': this key may only put, commit, abort, report and status" ;;
    esac
}

prune() {
    target_env
    local now=${1:-$(date -u +%s)} n count=0
    while read -r n; do
        [[ -n "$n" ]] || continue
        rm -f "$BACKUP_DIR/$n" "$BACKUP_DIR/$n.sha256"
        count=$((count + 1))
    done < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name '*.age' -printf '%f\n' | plan_prune "$now" "$RETENTION_DAYS")
    # Partial uploads older than a day are from a transfer that died.
    find "$BACKUP_DIR" -maxdepth 1 -type f -name '.*.partial' -mmin +1440 -delete
    log "pruned $count file(s) older than what the last ${RETENTION_DAYS} days need"
    write_status
}

# verify : every stored file matches the hash it was committed with; exits 1 on a mismatch.
verify() {
    target_env
    local f bad=() n=0
    for f in "$BACKUP_DIR"/*.age; do
        [[ -f "$f" ]] || continue
        n=$((n + 1))
        if [[ ! -f "$f.sha256" ]] || ! (cd "$BACKUP_DIR" && sha256sum --quiet --strict -c "$(basename "$f").sha256" >/dev/null 2>&1); then
            bad+=("$(basename "$f")")
        fi
    done
    local list
    list=$(printf '"%s",' "${bad[@]}")
    printf '{"at":"%s","files":%d,"bad":[%s]}' "$(iso "$(date -u +%s)")" "$n" "${list%,}" >"$BACKUP_DIR/.verify"
    write_status
    ((${#bad[@]} == 0)) || die "${#bad[@]} of $n file(s) do not match their sha256: ${bad[*]}"
    log "verified $n file(s)"
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

# ship NAME : encrypts stdin to AGE_RECIPIENT, sends it, and commits it when both hashes agree.
ship() {
    local name=$1 dir ours theirs
    dir=$(mktemp -d)
    mkfifo "$dir/fifo"
    sha256sum <"$dir/fifo" | cut -d' ' -f1 >"$dir/sum" &
    theirs=$(age -r "$AGE_RECIPIENT" | tee "$dir/fifo" | remote put "$name") || {
        wait || true
        rm -rf "$dir"
        remote abort "$name" || true
        return 1
    }
    wait
    ours=$(cat "$dir/sum")
    rm -rf "$dir"
    [[ "$ours" == "$theirs" ]] || {
        remote abort "$name" || true
        log "$name: sent sha256 $ours, the target received $theirs"
        return 1
    }
    remote commit "$name" "$ours" >/dev/null
    log "shipped $name (sha256 $ours)"
}

stamp() { date -u +%Y%m%dT%H%M%SZ; }

# local_status KIND OUTCOME DETAIL : the database Pi's own record of its last runs.
local_status() {
    printf '{"kind":"%s","outcome":"%s","at":"%s","detail":%s}\n' "$1" "$2" "$(iso "$(date -u +%s)")" "$(json_string "$3")" >"$STATE_DIR/last-$1.json"
}

# backup full|incremental : one mariadb-backup run, streamed through zstd and age to the target.
backup() {
    db_env
    local kind=$1 ts name base=() full_ts start log
    exec 9>"$STATE_DIR/backup.lock"
    flock 9
    wait_target || fail "$kind" "the target $TARGET_USER@$TARGET_HOST does not answer"
    ts=$(stamp)
    if [[ "$kind" == incremental ]]; then
        full_ts=$(cat "$STATE_DIR/chain" 2>/dev/null || true)
        # MariaDB 10.x names the LSN file xtrabackup_checkpoints, 11.x mariadb_backup_checkpoints.
        if [[ -z "$full_ts" || ! (-f "$STATE_DIR/lsn/xtrabackup_checkpoints" || -f "$STATE_DIR/lsn/mariadb_backup_checkpoints") ]]; then
            log "no full backup to build on yet: taking a full one"
            kind=full
        else
            base=(--incremental-basedir="$STATE_DIR/lsn")
        fi
    fi
    if [[ "$kind" == full ]]; then
        name="full-$ts.xb.zst.age"
        full_ts=$ts
    else
        name="inc-$ts-of-$full_ts.xb.zst.age"
    fi
    rm -rf "$STATE_DIR/lsn.new" "$STATE_DIR/work"
    install -d -m 0700 "$STATE_DIR/work"
    log="$STATE_DIR/mariadb-backup.log"
    start=$(date +%s)
    # mariadb-backup takes no lock that stops InnoDB writes: it copies pages while the app
    # writes, and BACKUP STAGE BLOCK_COMMIT holds commits only for the moment it takes to
    # read the binlog position at the end (MariaDB docs, "mariadb-backup Overview").
    if ! mariadb-backup --backup "${DB_OPTS[@]}" ${DATADIR:+--datadir="$DATADIR"} --stream=xbstream \
        --target-dir="$STATE_DIR/work" --extra-lsndir="$STATE_DIR/lsn.new" "${base[@]}" 2>"$log" |
        zstd -q -3 | ship "$name"; then
        tail -n 5 "$log" >&2 || true
        rm -rf "$STATE_DIR/work" "$STATE_DIR/lsn.new"
        fail "$kind" "$name failed (see $log)"
    fi
    rm -rf "$STATE_DIR/lsn" "$STATE_DIR/work"
    mv "$STATE_DIR/lsn.new" "$STATE_DIR/lsn"
    printf '%s\n' "$full_ts" >"$STATE_DIR/chain"
    local_status "$kind" OK "$name in $(($(date +%s) - start)) s"
    remote report "$kind" OK >/dev/null || true
    publish_status
    log "$kind backup $name done in $(($(date +%s) - start)) s"
}

# wait_target : a target that is briefly away (rebooting, or not set up yet on the first
# deploy, where the database's step runs first) costs a wait of up to 5 minutes, not a backup.
wait_target() {
    local i
    for ((i = 0; i < 10; i++)); do
        remote status >/dev/null 2>&1 && return 0
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
    local basename dir pos last now shipped=0 f seq
    basename=$(sql -e 'SELECT @@log_bin_basename')
    [[ "$basename" != NULL && -n "$basename" ]] || fail binlog "the binary log is off (log_bin): nothing to ship"
    dir=$(dirname "$basename")
    pos=$(sql -e 'SHOW MASTER STATUS' | cut -f1,2)
    last=$(cat "$STATE_DIR/flushed-at" 2>/dev/null || true)
    if [[ "$pos" != "$last" ]]; then
        sql -e 'FLUSH BINARY LOGS'
        sql -e 'SHOW MASTER STATUS' | cut -f1,2 >"$STATE_DIR/flushed-at"
    fi
    touch "$STATE_DIR/shipped"
    # Every binlog but the active one (the last listed) is closed.
    local -a logs=()
    mapfile -t logs < <(sql -e 'SHOW BINARY LOGS' | cut -f1)
    unset 'logs[-1]'
    for f in "${logs[@]}"; do
        grep -qxF "$f" "$STATE_DIR/shipped" && continue
        now=$(stamp)
        # A sequence number keeps the order of files shipped within the same second.
        seq=$(printf '%04d' $(( $(wc -l <"$STATE_DIR/shipped") % 10000 )))
        zstd -q -3 <"$dir/$f" | ship "binlog-$now-$seq-$f.zst.age" || fail binlog "shipping $f failed"
        printf '%s\n' "$f" >>"$STATE_DIR/shipped"
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
