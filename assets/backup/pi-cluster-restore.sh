#!/usr/bin/env bash
# pi-cluster-restore: the database Pi's half of scripts/restore.sh. It never sees the age key:
# the operator's machine decrypts and streams each file in, one call per file.
#
#   pi-cluster-restore begin                  empties the staging directory (a re-run starts clean)
#   pi-cluster-restore abort                  deletes the staging directory (what a failed run decrypted)
#   pi-cluster-restore stage-backup NAME      stdin: a decrypted full or incremental (zstd xbstream)
#   pi-cluster-restore stage-binlog NAME      stdin: a decrypted binlog (zstd)
#   pi-cluster-restore apply [TO]             prepares full + incrementals, moves them in as the data directory
#                                             (the old one is kept beside it), starts MariaDB and
#                                             replays the binlogs up to TO ('YYYY-MM-DD HH:MM:SS', UTC)
#
# Reads (environment; the defaults are a Pi's):
#   STAGE        staging directory            (/var/lib/pi-cluster-restore)
#   DATADIR      MariaDB's data directory     (/var/lib/mysql)
#   DB_SOCKET    MariaDB's socket             (/run/mysqld/mysqld.sock)
#   DB_OWNER     owner of the data directory  (mysql:mysql)
#   STOP_CMD / START_CMD  how to stop and start MariaDB (systemctl stop|start mariadb)
#   BACKUP_STATE the backup tool's state, cleared so the next backup is a full (/var/lib/pi-cluster-backup)
#   FULL_UNIT    the full backup's unit, started once the restore is done (pi-cluster-backup-full.service; empty: none)
set -euo pipefail

STAGE=${STAGE:-/var/lib/pi-cluster-restore}
DATADIR=${DATADIR:-/var/lib/mysql}
DB_SOCKET=${DB_SOCKET:-/run/mysqld/mysqld.sock}
DB_OWNER=${DB_OWNER:-mysql:mysql}
STOP_CMD=${STOP_CMD:-systemctl stop mariadb}
START_CMD=${START_CMD:-systemctl start mariadb}
BACKUP_STATE=${BACKUP_STATE:-/var/lib/pi-cluster-backup}
FULL_UNIT=${FULL_UNIT-pi-cluster-backup-full.service}

log() { printf 'restore: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

safe_name() { [[ "$1" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad file name '$1'"; }

begin() {
    rm -rf "$STAGE"
    install -d -m 0700 "$STAGE" "$STAGE/backups" "$STAGE/binlogs"
}

stage_backup() {
    safe_name "$1"
    local dir="$STAGE/backups/$1"
    rm -rf "$dir"
    install -d -m 0700 "$dir"
    zstd -q -d | mbstream -x -C "$dir" || die "$1: the stream does not unpack (truncated or corrupt)"
    # MariaDB 10.x names it xtrabackup_checkpoints, 11.x mariadb_backup_checkpoints.
    [[ -f "$dir/xtrabackup_checkpoints" || -f "$dir/mariadb_backup_checkpoints" ]] ||
        die "$1: no mariadb_backup_checkpoints: not a complete mariadb-backup stream"
}

stage_binlog() {
    safe_name "$1"
    zstd -q -d >"$STAGE/binlogs/$1" || die "$1: does not decompress (truncated or corrupt)"
}

# binlog_info DIR : "file position" where the backup in DIR stops.
binlog_info() {
    local f
    for f in "$1/mariadb_backup_binlog_info" "$1/xtrabackup_binlog_info"; do
        [[ -f "$f" ]] && { cut -f1,2 "$f"; return; }
    done
}

apply() {
    local to=${1:-} full inc last info file pos started=0
    full=$(find "$STAGE/backups" -mindepth 1 -maxdepth 1 -name 'full-*' -printf '%f\n' | sort | tail -n1)
    [[ -n "$full" ]] || die "no full backup staged"
    local t0=$SECONDS
    mariadb-backup --prepare --target-dir="$STAGE/backups/$full" >"$STAGE/prepare.log" 2>&1 ||
        die "preparing $full failed (see $STAGE/prepare.log)"
    last="$STAGE/backups/$full"
    # Incremental names sort by their time, which is their order.
    while read -r inc; do
        [[ -n "$inc" ]] || continue
        mariadb-backup --prepare --target-dir="$STAGE/backups/$full" --incremental-dir="$STAGE/backups/$inc" >>"$STAGE/prepare.log" 2>&1 ||
            die "applying $inc failed (see $STAGE/prepare.log)"
        last="$STAGE/backups/$inc"
    done < <(find "$STAGE/backups" -mindepth 1 -maxdepth 1 -name 'inc-*' -printf '%f\n' | sort)
    log "prepared $full and $(find "$STAGE/backups" -mindepth 1 -maxdepth 1 -name 'inc-*' | wc -l) incremental(s) in $((SECONDS - t0)) s"
    info=$(binlog_info "$last")
    [[ -n "$info" ]] || info=$(binlog_info "$STAGE/backups/$full")

    # The backup timers keep running: hold their locks until the restore is done (a shipper
    # that ran in between would take the new server's binlogs for the old ones it shipped),
    # and forget the old chain and series before the restored server starts.
    if [[ -d "$BACKUP_STATE" ]]; then
        exec 7>"$BACKUP_STATE/backup.lock" 8>"$BACKUP_STATE/ship.lock"
        flock 7
        flock 8
    fi
    $STOP_CMD 7>&- 8>&- || true
    if [[ -d "$DATADIR" ]] && [[ -n "$(ls -A "$DATADIR")" ]]; then
        local aside
        aside="$DATADIR.before-restore-$(date -u +%Y%m%d%H%M%S)"
        mv "$DATADIR" "$aside"
        log "kept what was in $DATADIR as $aside"
    fi
    install -d -m 0755 "$DATADIR"
    # Moved, not copied: the staged copy goes anyway, and a Pi then needs room for the data once.
    mariadb-backup --move-back --target-dir="$STAGE/backups/$full" --datadir="$DATADIR" >>"$STAGE/prepare.log" 2>&1 ||
        die "move-back failed (see $STAGE/prepare.log)"
    chown -R "$DB_OWNER" "$DATADIR"
    # The next backup starts a new chain on the restored data, and the restored server's
    # binlogs are a new series: nothing of the old series is "already shipped".
    rm -rf "$BACKUP_STATE/lsn" "$BACKUP_STATE/chain" "$BACKUP_STATE/shipped" "$BACKUP_STATE/flushed-at"
    # Without the lock descriptors: a server started as a child would hold the locks for good.
    $START_CMD 7>&- 8>&-
    for _ in $(seq 1 120); do
        mariadb-admin --user=root --socket="$DB_SOCKET" ping >/dev/null 2>&1 && started=1 && break
        sleep 0.5
    done
    ((started)) || die "MariaDB did not start on the restored data"

    replay "$info" "$to"
    rm -rf "$STAGE"
    # A new full at once: until it exists, a restore would start from the old full and
    # replay binlogs past the point this restore stopped at.
    if [[ -n "$FULL_UNIT" ]] && systemctl cat "$FULL_UNIT" >/dev/null 2>&1; then
        systemctl start --no-block "$FULL_UNIT"
        log "started a full backup of the restored data ($FULL_UNIT)"
    else
        log "no backup unit here yet: the stack's backup step takes the first full when it runs"
    fi
    log "done in $((SECONDS - t0)) s"
}

# older_binlog STAGED FILE : whether the staged binlog STAGED (binlog-TIME-SEQ-BASE.NNNNNN.zst.age)
# holds a binlog of FILE's series (BASE.NNNNNN) that comes before FILE.
older_binlog() {
    local staged=${1%.zst.age} file=$2 base n
    [[ -n "$file" && "$staged" =~ ^binlog-[0-9]{8}T[0-9]{6}Z-[0-9]{4}-(.+)\.([0-9]+)$ ]] || return 1
    base=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]}
    [[ "$base" == "${file%.*}" && "${file##*.}" =~ ^[0-9]+$ ]] || return 1
    ((10#$n < 10#${file##*.}))
}

# replay "FILE POS" TO : applies the staged binlogs from FILE at POS on, up to TO.
replay() {
    local file=${1%%[[:space:]]*} pos=${1##*[[:space:]]} to=$2 n first=""
    local -a files=()
    # Staged binlogs are named binlog-TIME-SEQ-FILE: their names sort in shipping order. The
    # one to start from is the first shipped that carries the backup's binlog file. Those of
    # an earlier file are inside the backup already: an incremental taken after the last
    # shipping stops in the binlog that was active then, which no shipped file holds yet.
    # Only a later file without the backup's own is a gap.
    while read -r n; do
        if [[ -z "$first" ]]; then
            if [[ -n "$file" && "$n" == *"-$file.zst.age" ]]; then
                first=$n
            elif older_binlog "$n" "$file"; then
                continue
            else
                die "binlog $n was staged but none holds $file, where the backup stops: a gap in the shipped binlogs; restore with --to before it or without binlogs"
            fi
        fi
        files+=("$STAGE/binlogs/$n")
    done < <(find "$STAGE/binlogs" -mindepth 1 -maxdepth 1 -type f -printf '%f\n' | sort)
    if ((${#files[@]} == 0)); then
        log "no binlog after the backup (${file:-none} at ${pos:-?}): restored to the backup's own point"
        return 0
    fi
    local opts=(--start-position="$pos")
    [[ -n "$to" ]] && opts+=(--stop-datetime="$to")
    # mariadb-binlog reads --stop-datetime in its time zone; --to is UTC. The replay is not
    # written to the binlog again: those events are already shipped, and a later restore
    # from the same full would apply them twice. The next full backup holds them instead.
    #
    # The position mariadb-backup records can be a few transactions behind the pages and redo
    # log it copied (seen with 11.8: rows committed a second after the recorded position were
    # in the backup). The binlog is row-based with full images, so the replay runs in
    # IDEMPOTENT mode: a row that is already there is written again with the same image, a
    # delete of a row that is gone is skipped, and the overlap cannot fail or differ.
    local db=(mariadb --user=root --socket="$DB_SOCKET")
    "${db[@]}" -e "SET GLOBAL slave_exec_mode = 'IDEMPOTENT'" || die "cannot set slave_exec_mode for the replay"
    local status=0
    {
        echo 'SET SESSION sql_log_bin = 0;'
        TZ=UTC mariadb-binlog "${opts[@]}" "${files[@]}"
    } | "${db[@]}" || status=$?
    "${db[@]}" -e "SET GLOBAL slave_exec_mode = 'STRICT'" || log "could not set slave_exec_mode back to STRICT"
    ((status == 0)) || die "replaying the binlogs failed"
    log "replayed ${#files[@]} binlog(s) from $file:$pos${to:+ up to $to UTC}"
}

main() {
    umask 077
    case "${1:-}" in
    begin) begin ;;
    abort) rm -rf "$STAGE" ;;
    stage-backup) stage_backup "${2:?name}" ;;
    stage-binlog) stage_binlog "${2:?name}" ;;
    apply) apply "${2:-}" ;;
    *) die "usage: pi-cluster-restore begin | abort | stage-backup NAME | stage-binlog NAME | apply [TO]" ;;
    esac
}

# Sourced by the tests for the pure functions; run as a command otherwise.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
