#!/usr/bin/env bash
# How the restore grows with the data: builds a database of about BENCH_MB (1024) MB on a local
# MariaDB (tests/backup/restore-lib.sh), backs it up with the backup tool (a full, then rows in
# shipped binlogs), wipes the data directory and restores it with scripts/restore.sh --from DIR
# --here. Prints the restore's time end to end and per phase, its rate in MB/s of data directory
# restored and its seconds per GB. Not part of the unit suite: it takes minutes.
# Usage: tests/backup/restore-bench.sh   (root; BENCH_MB to change the size)
set -euo pipefail
# shellcheck source=tests/backup/restore-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restore-lib.sh"

main() {
    local mb=${BENCH_MB:-1024} rows t0 backup_s want got
    export DB_BUFFER_POOL=512M DB_LOG_FILE_SIZE=256M
    lib_init bench
    new_db
    info "building about $mb MB: rows of 1 KB, half random (base64), half repeated text: it compresses about 2:1, like app data"
    sql -e "CREATE DATABASE app; CREATE TABLE app.notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB"
    rows=$((mb * 1024 * 1024 / 1100))
    t0=$SECONDS
    local done_rows=0 batch=100000
    while ((done_rows < rows)); do
        ((batch <= rows - done_rows)) || batch=$((rows - done_rows))
        sql app -e "INSERT INTO notes (body) SELECT CONCAT(TO_BASE64(RANDOM_BYTES(384)), REPEAT(SHA2(seq, 256), 8)) FROM seq_1_to_$batch"
        done_rows=$((done_rows + batch))
    done
    # The load is in the full: the binlogs start after it (as they would after the first full).
    sql -e "RESET MASTER"
    echo "loaded $rows rows in $((SECONDS - t0)) s; data directory $(du -sm "$DATADIR" | cut -f1) MB"
    t0=$SECONDS
    backup full >/dev/null 2>&1
    backup_s=$((SECONDS - t0))
    sql app -e "INSERT INTO notes (body) SELECT 'after the full' FROM seq_1_to_1000"
    backup ship-binlogs >/dev/null 2>&1
    want=$(sql app -e "SELECT COUNT(*) FROM notes")
    local data_mb full_mb
    data_mb=$(du -sm "$DATADIR" --exclude='mariadb-bin.*' | cut -f1)
    full_mb=$(du -m "$BASE"/target/full-*.age | cut -f1)
    echo "full backup: $backup_s s, $full_mb MB encrypted"

    info "the disk is lost: the data directory is wiped, then restore.sh --from --here"
    stop_db
    rm -rf "$DATADIR"
    sync
    local start end secs
    start=$EPOCHREALTIME
    restore >"$BASE/restore.log" 2>&1 || { cat "$BASE/restore.log"; fail "the restore failed"; }
    end=$EPOCHREALTIME
    got=$(sql app -e "SELECT COUNT(*) FROM notes")
    [[ "$got" == "$want" ]] || fail "restored $got rows, expected $want"
    grep -E 'phase:|prepared|replayed|done in' "$BASE/restore.log" | sed 's/, epoch [0-9.]*//'
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    awk -v s="$secs" -v mb="$data_mb" -v f="$full_mb" 'BEGIN {
        printf "\nRESULT: restored %d MB of data (%d MB backup) in %.1f s end to end: %.1f MB/s, %.1f s per GB\n", mb, f, s, mb / s, s * 1024 / mb }'
}

main "$@"
