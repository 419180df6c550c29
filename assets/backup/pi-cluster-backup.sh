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
# plan_prune NOW DAYS < names, plan_restore TO < names.
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
readonly NAME_RE="^(full-${TS_RE}\\.xb\\.zst\\.age|inc-${TS_RE}-of-${TS_RE}\\.xb\\.zst\\.age|binlog-${TS_RE}-[0-9]{4}-[A-Za-z0-9_.-]+\\.zst\\.age)\$"

log() { printf 'pi-cluster-backup: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# --- pure: names and retention --------------------------------------------------------

# name_epoch NAME : the time in NAME (its first timestamp), as epoch seconds.
name_epoch() {
    local ts
    ts=$(grep -oE "$TS_RE" <<<"$1" | head -n1) || return 1
    date -u -d "${ts:0:4}-${ts:4:2}-${ts:6:2} ${ts:9:2}:${ts:11:2}:${ts:13:2}" +%s
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

# plan_prune NOW DAYS : reads backup names on stdin, prints the ones to delete.
# Every point in the last DAYS must stay restorable, so the anchor is the newest full taken
# at or before NOW - DAYS: it, its incrementals and every binlog shipped after it are kept,
# and only what is older than the anchor goes. With no full that old, nothing goes. The
# newest full is never deleted, and an incremental that is kept keeps the full it was taken
# against (its name says which) and that full's older incrementals, whatever their age.
plan_prune() {
    local now=$1 days=$2 cutoff anchor="" anchor_t=0 n t kind
    cutoff=$((now - days * 86400))
    local -a names=()
    mapfile -t names < <(grep -E "$NAME_RE" | sort -u)
    for n in "${names[@]}"; do
        [[ "$(name_kind "$n")" == full ]] || continue
        t=$(name_epoch "$n")
        if ((t <= cutoff && t >= anchor_t)); then
            anchor=$n
            anchor_t=$t
        fi
    done
    [[ -n "$anchor" ]] || return 0
    # The fulls that a kept incremental needs, by their timestamp.
    local -A needed=()
    for n in "${names[@]}"; do
        t=$(name_epoch "$n")
        kind=$(name_kind "$n")
        if [[ "$kind" == incremental ]] && ((t >= anchor_t)); then
            needed[$(grep -oE "$TS_RE" <<<"$n" | sed -n 2p)]=1
        fi
    done
    for n in "${names[@]}"; do
        t=$(name_epoch "$n")
        ((t < anchor_t)) || continue
        kind=$(name_kind "$n")
        case "$kind" in
        full) [[ -n "${needed[$(grep -oE "$TS_RE" <<<"$n")]:-}" ]] && continue ;;
        incremental) [[ -n "${needed[$(grep -oE "$TS_RE" <<<"$n" | sed -n 2p)]:-}" ]] && continue ;;
        esac
        printf '%s\n' "$n"
    done
}

# plan_restore TO : reads backup names on stdin, prints what a restore to TO (epoch seconds)
# applies, in order: the newest full at or before TO, its incrementals at or before TO, then
# every binlog shipped after that full up to and including the first shipped after TO (it
# holds the events just before TO; the replay stops at TO). Prints nothing without a full.
plan_restore() {
    local to=$1 n t full="" full_t=0 full_ts
    local -a names=()
    mapfile -t names < <(grep -E "$NAME_RE" | sort -u)
    for n in "${names[@]}"; do
        [[ "$n" == full-* ]] || continue
        t=$(name_epoch "$n")
        ((t <= to && t >= full_t)) && full=$n full_t=$t
    done
    [[ -n "$full" ]] || return 0
    full_ts=$(grep -oE "$TS_RE" <<<"$full")
    printf '%s\n' "$full"
    for n in "${names[@]}"; do
        [[ "$n" == inc-*-of-"$full_ts".* ]] || continue
        t=$(name_epoch "$n")
        ((t <= to)) && printf '%s\n' "$n"
    done
    for n in "${names[@]}"; do
        [[ "$n" == binlog-* ]] || continue
        t=$(name_epoch "$n")
        ((t >= full_t)) || continue
        printf '%s\n' "$n"
        ((t <= to)) || break
    done
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
