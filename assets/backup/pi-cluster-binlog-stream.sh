#!/usr/bin/env bash
# pi-cluster-binlog-stream: the backup target's live copy of the database's binary log, so a
# lost database Pi loses at most the last second of acknowledged writes (the shipper alone
# loses up to backup.binlogShipSeconds). Installed on the backup target by the stream step
# (assets/scripts/backup-stream.sh); run by pi-cluster-binlog-stream.service as the backup account.
#
#   pi-cluster-binlog-stream run     the service: mariadb-binlog --read-from-remote-server --raw
#                                    --stop-never as a replication client of the database, over TLS
#                                    that checks the database's certificate, into
#                                    $BACKUP_DIR/stream/<SERIES>/<FILE>; it writes each event as
#                                    it arrives. Every second it compares the copy with the
#                                    database's binlog end, writes $BACKUP_DIR/.stream.json, and
#                                    every minute it tidies. It never exits on its own: a broken
#                                    stream is reported (state "down") and started again.
#   pi-cluster-binlog-stream tidy    deletes each copy whose FILE of its SERIES is committed as an
#                                    encrypted binlog backup, and copies of an older series past
#                                    RETENTION_DAYS
#   pi-cluster-binlog-stream status  prints .stream.json
# Pure, for the tests (source this file): plan_start COMMITTED_MAX STREAM_NEWEST < server's binlogs.
#
# SERIES is the database's current binlog series (docs: INTERFACES of issue 17; the shipper
# sends it to the target's receiver, which writes $BACKUP_DIR/.series). A copy is plaintext:
# 0600 in the backup account's 0700 directory, for as long as its file is not yet committed
# as an encrypted backup (at most backup.binlogShipSeconds after the database closes it).
#
# Reads /etc/pi-cluster/backup.env (or $BACKUP_ENV): BACKUP_DIR RETENTION_DAYS; and
# /etc/pi-cluster/binlog-stream.env (or $STREAM_ENV):
#   DB_HOST DB_PORT DB_USER   the database and the stream's account (REPLICATION SLAVE, BINLOG MONITOR)
#   DB_CA                      the CA that signed the database's certificate
#   DB_CLIENT_CNF              0600, "[client]\npassword=...": the account's password, never on a command line
#   SERVER_ID                  the replication client id the stream registers with (unique among the database's clients)
#   MAX_LAG_SECONDS            the bound the status API holds the stream to (reported in .stream.json)
#   STALL_SECONDS              no byte for this long while the database has more: reconnect
#   REPORT_SECONDS             an unchanged status is written again this often (default 10)
#   RUN_DIR                    scratch space (default /run/pi-cluster-binlog-stream)
set -euo pipefail

readonly SERIES_RE='^s[0-9]+x[0-9a-f]{8}$'
readonly TS_RE='[0-9]{8}T[0-9]{6}Z'

log() { printf 'pi-cluster-binlog-stream: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# --- pure ------------------------------------------------------------------------------

# file_number FILE : the sequence number of a binlog name (mariadb-bin.000042 -> 42).
file_number() { printf '%d' "$((10#${1##*.}))"; }

# plan_start COMMITTED_MAX STREAM_NEWEST : reads the database's binlogs (SHOW BINARY LOGS,
# oldest first, one name per line) on stdin; prints the file to stream from, then, when the
# database no longer holds what the backups and copies of the series lack, a "# gap" note.
# COMMITTED_MAX is the highest file number committed as a backup of the series (0: none);
# STREAM_NEWEST the newest copy in the series' directory (empty: none). The newest copy may
# have stopped mid-file, so it is streamed again whole (mariadb-binlog rewrites it): nothing
# is skipped and nothing is written twice. Fails, with the reason on stdout, when the
# database's numbering is behind what the series already holds: it is another incarnation
# (a restore or a promotion reset it), which belongs to a new series.
plan_start() {
    local committed=$1 newest=$2 want f n max=0 start="" oldest=""
    want=$((committed + 1))
    if [[ -n "$newest" ]]; then
        n=$(file_number "$newest")
        ((n > want)) && want=$n
    fi
    while read -r f; do
        [[ -n "$f" ]] || continue
        n=$(file_number "$f")
        [[ -n "$oldest" ]] || oldest=$f
        ((n > max)) && max=$n
        [[ -z "$start" ]] && ((n >= want)) && start=$f
    done
    if [[ -z "$start" ]]; then
        if [[ -z "$oldest" ]]; then
            echo "the database lists no binary log"
        else
            echo "the database's binlog numbering restarted (its newest file is ${max}, this series goes on at ${want}): a restore or a promotion; waiting for its new series"
        fi
        return 1
    fi
    printf '%s\n' "$start"
    n=$(file_number "$start")
    # A series with nothing yet starts at the oldest file, which is no gap: its first full
    # backup is what a restore starts from.
    ((n == want || (committed == 0 && ${#newest} == 0))) ||
        printf '# gap: files %d to %d are neither backed up nor streamed, and the database no longer has them\n' "$want" $((n - 1))
}

# --- the copies --------------------------------------------------------------------------

iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "${s//[$'\n\r\t']/ }"
}

stream_env() {
    local f
    for f in "${BACKUP_ENV:-/etc/pi-cluster/backup.env}" "${STREAM_ENV:-/etc/pi-cluster/binlog-stream.env}"; do
        # shellcheck source=/dev/null
        [[ -f "$f" ]] && source "$f"
    done
    [[ -n "${BACKUP_DIR:-}" && -d "$BACKUP_DIR" ]] || die "BACKUP_DIR (${BACKUP_DIR:-unset}) is not a directory"
    RETENTION_DAYS=${RETENTION_DAYS:-30}
    STREAM_DIR="$BACKUP_DIR/stream"
    STATUS="$BACKUP_DIR/.stream.json"
}

# current_series : the database's series as the shipper last sent it; fails when there is none.
current_series() {
    local s
    s=$(head -n1 "$BACKUP_DIR/.series" 2>/dev/null) || return 1
    [[ "$s" =~ $SERIES_RE ]] || return 1
    printf '%s' "$s"
}

# committed_files SERIES : the FILE of every binlog of SERIES committed on the target: the
# receiver's commit makes NAME, then NAME.sha256 (pi-cluster-backup.sh); both are there.
committed_files() {
    find "$BACKUP_DIR" -maxdepth 1 -type f -name "binlog-*-$1-*.zst.age.sha256" -printf '%f\n' |
        sed -nE "s/^(binlog-${TS_RE}-[0-9]{4}-$1-(.+)\\.zst\\.age)\\.sha256\$/\\1 \\2/p" |
        while read -r name file; do if [[ -f "$BACKUP_DIR/$name" ]]; then printf '%s\n' "$file"; fi; done
}

# newest_copy DIR : the copy with the highest file number in DIR, or nothing.
newest_copy() {
    [[ -d "$1" ]] || return 0
    find "$1" -maxdepth 1 -type f -name '*.[0-9]*' -printf '%f\n' 2>/dev/null | sort -t. -k2,2n | tail -n1
}

# newest_path DIR : the same as a path, or nothing.
newest_path() {
    local f
    f=$(newest_copy "$1")
    [[ -z "$f" ]] || printf '%s/%s' "$1" "$f"
}

# tidy : a copy goes once its file is committed as an encrypted backup; an older series'
# copies that never were (the database was lost before its shipper ran) stay for the
# restore until they are RETENTION_DAYS old, like the backups.
tidy() {
    local dir series f current removed=0
    current=$(current_series || true)
    for dir in "$STREAM_DIR"/*/; do
        [[ -d "$dir" ]] || continue
        series=$(basename "$dir")
        while read -r f; do
            [[ -n "$f" && -f "$dir$f" ]] || continue
            rm -f -- "$dir$f"
            removed=$((removed + 1))
        done < <(committed_files "$series")
        if [[ "$series" != "$current" ]]; then
            find "$dir" -maxdepth 1 -type f -mtime +"$RETENTION_DAYS" -delete
            rmdir "$dir" 2>/dev/null || true
        fi
    done
    ((removed == 0)) || log "deleted $removed copy(ies) now committed as encrypted binlog backups"
}

# --- the database ------------------------------------------------------------------------

# db_sql SQL : one statement as the stream's account, over TLS that checks the certificate.
db_sql() {
    mariadb --defaults-extra-file="$DB_CLIENT_CNF" -N -B --connect-timeout=3 --host="$DB_HOST" --port="$DB_PORT" \
        --user="$DB_USER" --ssl --ssl-ca="$DB_CA" --ssl-verify-server-cert -e "$1"
}

# gtid_list_of_copy FILE : the Gtid_list event at the head of a copy ("[0-1-42]"), or nothing.
gtid_list_of_copy() {
    local head
    head=$(mktemp "$RUN_DIR/head.XXXXXX")
    head -c 65536 "$1" >"$head"
    mariadb-binlog "$head" 2>/dev/null | grep -m1 -oE 'Gtid list \[[^]]*\]' | sed 's/^Gtid list //' || true
    rm -f "$head"
}

# choose_start SERIES : the file to stream from (stdout), after checking the database is the
# series' incarnation; fails with the reason on stdout.
choose_start() {
    local series=$1 id files committed newest plan ours theirs
    id=$(db_sql 'SELECT @@server_id' 2>&1) || {
        echo "the database does not answer: ${id##*$'\n'}"
        return 1
    }
    if [[ "s${id}x" != "${series%x*}x" ]]; then
        echo "the database is server ${id}, series ${series} is server ${series%x*}'s: waiting for its shipper to send its series"
        return 1
    fi
    files=$(db_sql 'SHOW BINARY LOGS' 2>&1) || {
        echo "cannot list the database's binlogs: ${files##*$'\n'}"
        return 1
    }
    committed=$(committed_files "$series" | while read -r f; do file_number "$f"; echo; done | sort -n | tail -n1)
    newest=$(newest_copy "$STREAM_DIR/$series")
    plan=$(cut -f1 <<<"$files" | plan_start "${committed:-0}" "$newest") || {
        echo "$plan"
        return 1
    }
    # The copy about to be rewritten must be the head of the same file: a database that was
    # reset to the same number holds another history under that name.
    if [[ -n "$newest" && "$(head -n1 <<<"$plan")" == "$newest" ]]; then
        ours=$(gtid_list_of_copy "$STREAM_DIR/$series/$newest")
        theirs=$(db_sql "SHOW BINLOG EVENTS IN '$newest' LIMIT 4" 2>/dev/null | awk -F'\t' '$3 == "Gtid_list" { print $6; exit }' || true)
        if [[ -n "$ours" && "$ours" != "$theirs" ]]; then
            echo "the database's $newest starts at GTIDs ${theirs:-?}, the copy at $ours: another incarnation; waiting for its new series"
            return 1
        fi
    fi
    printf '%s\n' "$plan"
}

# --- the service -------------------------------------------------------------------------

# report STATE MESSAGE [FILE] : writes .stream.json, atomically. lagSeconds is how long the
# copy has lacked bytes the database had written (0: it holds all of them), to the second.
# An unchanged report is written again only every REPORT_SECONDS, to spare the Pi's storage
# a write a second while the database is quiet; checkedAt says how fresh it is.
report() {
    local state=$1 message=$2 file=${3:-} bytes=null at=null lag=null body now
    now=$(date -u +%s)
    if [[ -n "$file" && -f "$file" ]]; then
        bytes=$(stat -c %s "$file")
        at="\"$(iso "$(stat -c %Y "$file")")\""
    fi
    [[ -n "${LAG:-}" ]] && lag=$LAG
    body=$(printf '{"state":"%s","series":%s,"file":%s,"bytes":%s,"at":%s,"lagSeconds":%s,"maxLagSeconds":%d,' \
        "$state" "$( [[ -n "${SERIES:-}" ]] && json_string "$SERIES" || echo null)" "$( [[ -n "$file" ]] && json_string "$(basename "$file")" || echo null)" \
        "$bytes" "$at" "$lag" "${MAX_LAG_SECONDS:-5}")
    body+="\"message\":$(json_string "$message")"
    if [[ "$body" == "${REPORTED:-}" ]] && ((now - ${REPORTED_AT:-0} < REPORT_SECONDS)); then
        return 0
    fi
    local tmp
    tmp=$(mktemp "$BACKUP_DIR/.stream.json.XXXXXX")
    printf '%s,"checkedAt":"%s"}\n' "$body" "$(iso "$now")" >"$tmp"
    mv -f "$tmp" "$STATUS"
    REPORTED=$body REPORTED_AT=$now
}

stop_child() {
    [[ -n "${CHILD:-}" ]] || return 0
    kill "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
    CHILD=""
}

on_term() {
    stop_child
    REPORTED="" LAG="" report down "stopped" "${COPY:-}"
    exit 0
}

# covered FILE POS : the copy holds the database's binlog up to FILE at POS.
covered() {
    local newest size
    newest=$(newest_copy "$DIR")
    [[ -n "$newest" ]] || return 1
    (($(file_number "$newest") > $(file_number "$1"))) && return 0
    [[ "$newest" == "$1" ]] || return 1
    size=$(stat -c %s "$DIR/$newest" 2>/dev/null || echo 0)
    ((size >= $2))
}

# follow SERIES START : streams from START until the stream breaks (returns 1) or the
# series changes (returns 0). Each second: the database's binlog end joins a queue of
# positions the copy has yet to reach; those it reached leave; the lag is the age of the
# oldest left.
follow() {
    local series=$1 start=$2 tick=0 pos file size last_size=-1 last_growth now rc
    local -a q_t=() q_f=() q_p=()
    DIR="$STREAM_DIR/$series"
    install -d -m 0700 "$STREAM_DIR" "$DIR"
    log "streaming $DB_HOST:$DB_PORT from $start into $DIR"
    mariadb-binlog --defaults-extra-file="$DB_CLIENT_CNF" --read-from-remote-server --host="$DB_HOST" --port="$DB_PORT" \
        --user="$DB_USER" --ssl --ssl-ca="$DB_CA" --ssl-verify-server-cert --raw --stop-never \
        --stop-never-slave-server-id="$SERVER_ID" --result-file="$DIR/" "$start" 2>"$RUN_DIR/stderr" &
    CHILD=$!
    last_growth=$(date +%s)
    LAG=0
    while :; do
        sleep 1
        now=$(date +%s)
        COPY=$(newest_path "$DIR")
        if ! kill -0 "$CHILD" 2>/dev/null; then
            rc=0
            wait "$CHILD" || rc=$?
            CHILD=""
            cat "$RUN_DIR/stderr" >&2
            LAG="" report down "mariadb-binlog stopped (exit $rc): $(grep -v '^$' "$RUN_DIR/stderr" | tail -n1)" "$COPY"
            return 1
        fi
        if [[ "$(current_series || true)" != "$series" ]]; then
            log "the database's series is now $(current_series || echo unknown): leaving $series"
            stop_child
            return 0
        fi
        size=$([[ -n "$COPY" ]] && stat -c %s "$COPY" 2>/dev/null || echo 0)
        if [[ "$COPY:$size" != "${last_size}" ]]; then
            last_size="$COPY:$size"
            last_growth=$now
        fi
        if pos=$(db_sql 'SHOW MASTER STATUS' 2>&1); then
            file=$(cut -f1 <<<"$pos")
            pos=$(cut -f2 <<<"$pos")
            if ((${#q_t[@]} == 0)) || [[ "${q_f[-1]}:${q_p[-1]}" != "$file:$pos" ]]; then
                q_t+=("$now") q_f+=("$file") q_p+=("$pos")
            fi
            while ((${#q_t[@]} > 0)) && covered "${q_f[0]}" "${q_p[0]}"; do
                q_t=("${q_t[@]:1}") q_f=("${q_f[@]:1}") q_p=("${q_p[@]:1}")
            done
            LAG=$(( ${#q_t[@]} > 0 ? now - q_t[0] : 0 ))
            if ((${#q_t[@]} > 0 && now - last_growth >= STALL_SECONDS)); then
                log "no byte for ${STALL_SECONDS} s while the database is at $file:$pos: reconnecting"
                stop_child
                LAG="" report down "the stream stalled ${STALL_SECONDS} s behind the database ($file:$pos): reconnecting" "$COPY"
                return 1
            fi
            report up "${NOTE:-}" "$COPY"
        else
            LAG="" report down "the database does not answer: ${pos##*$'\n'}" "$COPY"
        fi
        tick=$((tick + 1))
        ((tick % 60)) || tidy
    done
}

run() {
    stream_env
    RUN_DIR=${RUN_DIR:-/run/pi-cluster-binlog-stream}
    STALL_SECONDS=${STALL_SECONDS:-10}
    REPORT_SECONDS=${REPORT_SECONDS:-10}
    [[ -d "$RUN_DIR" ]] || die "RUN_DIR ($RUN_DIR) is not a directory"
    [[ -r "$DB_CLIENT_CNF" ]] || die "cannot read the stream account's password file $DB_CLIENT_CNF"
    CHILD="" COPY="" SERIES=""
    trap on_term TERM INT
    local plan waited
    while :; do
        tidy
        LAG=""
        if ! SERIES=$(current_series); then
            SERIES=""
            report down "no binlog series yet: the database's shipper has not reached this target"
            sleep 2
            continue
        fi
        if ! plan=$(choose_start "$SERIES"); then
            report down "$plan" "$(newest_path "$STREAM_DIR/$SERIES")"
            log "$plan"
            # Wait for what can change it: the database coming back, or a new series.
            for ((waited = 0; waited < 2; waited++)); do
                sleep 1
                [[ "$(current_series || true)" == "$SERIES" ]] || break
            done
            continue
        fi
        NOTE=""
        [[ "$plan" != *$'\n'* ]] || NOTE=${plan#*$'\n# '}
        [[ -z "$NOTE" ]] || log "$NOTE"
        follow "$SERIES" "${plan%%$'\n'*}" || sleep 2
    done
}

main() {
    umask 077
    # Run by hand or by a step from a directory the backup account may not read (find
    # would complain on leaving it).
    cd /
    case "${1:-}" in
    run) run ;;
    tidy)
        stream_env
        tidy
        ;;
    status)
        stream_env
        cat "$STATUS"
        ;;
    *) die "usage: pi-cluster-binlog-stream run|tidy|status" ;;
    esac
}

# Sourced by the tests for the pure functions; run as a command otherwise.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
