#!/usr/bin/env bash
# The backup tool and the restore, for real, on this machine: a throwaway mariadbd with the
# binlog on (the settings components/render/mariadb.ts renders), a full, an incremental and
# shipped binlogs while rows are written, all encrypted with a throwaway age key into a local
# "target" directory; then the data directory is wiped and scripts/restore.sh --here brings
# it back, to the latest point and to a point in time; a truncated newest full is skipped,
# and falling back past its series' writes is refused without --accept-gap.
# What differs from a Pi: the target is a directory (TARGET_HOST=local, no ssh), and MariaDB
# is started by this script, not systemd.
# Usage: tests/backup/local.sh        (needs mariadbd, mariadb-backup, age, zstd; run as root)
# Prints sizes and durations; exits non-zero on the first check that fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOL="$REPO/assets/backup/pi-cluster-backup.sh"
# shellcheck source=tests/backup/lib.sh
source "$REPO/tests/backup/lib.sh"
BASE=$(mktemp -d /tmp/pi-backup-test.XXXXXX)
# Above the app suite's servers (3307-3320), which may run at the same time.
PORT=${TEST_BACKUP_PORT:-$(free_port 3340 3399)}
export DATADIR="$BASE/data" DB_SOCKET="$BASE/mysqld.sock"
PATH="$PATH:/usr/sbin:/sbin"

cleanup() {
    stop_db || true
    [[ -n "${KEEP:-}" ]] || rm -rf "$BASE"
}
trap cleanup EXIT

export -f start_db stop_db fail
export BASE PORT

backup() { BACKUP_ENV="$BASE/db.env" bash "$TOOL" "$@"; }

main() {
    info "a throwaway MariaDB $(mariadbd --version | awk '{print $3}') with the binlog on"
    install -d -m 0700 "$BASE/target" "$BASE/state"
    new_db
    age-keygen -o "$BASE/identity" 2>/dev/null
    local recipient
    recipient=$(age-keygen -y "$BASE/identity")
    cat >"$BASE/db.env" <<EOF
TARGET_HOST=local
AGE_RECIPIENT=$recipient
STATE_DIR=$BASE/state
DB_SOCKET=$DB_SOCKET
DATADIR=$DATADIR
BACKUP_DIR=$BASE/target
RETENTION_DAYS=30
EOF
    sql -e "CREATE DATABASE app; CREATE TABLE app.notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
    # Some bulk, so the sizes mean something: 20000 rows of about 1 KB.
    sql app -e "INSERT INTO notes (body) SELECT REPEAT(MD5(seq), 32) FROM seq_1_to_20000"
    info "full backup"
    local t0=$SECONDS
    backup full
    echo "full: $((SECONDS - t0)) s, $(stat -c %s "$BASE"/target/full-*.age) bytes encrypted (data dir $(du -sb "$DATADIR" | cut -f1) bytes)"
    insert 50
    sleep 1
    info "incremental backup"
    t0=$SECONDS
    backup incremental
    echo "incremental: $((SECONDS - t0)) s, $(stat -c %s "$BASE"/target/inc-*.age) bytes"
    insert 50
    backup ship-binlogs
    sleep 2
    local pit pit_rows
    pit=$(date -u '+%Y-%m-%d %H:%M:%S')
    pit_rows=$(sql app -e "SELECT COUNT(*) FROM notes")
    sleep 2
    insert 30
    # One transaction larger than MariaDB's default max_allowed_packet (16 MB): the replay
    # must take it whole.
    sql app -e "CREATE TABLE big (id INT PRIMARY KEY, b BLOB NOT NULL); INSERT INTO big SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_24576"
    backup ship-binlogs
    local final_rows
    final_rows=$(sql app -e "SELECT COUNT(*) FROM notes")
    ls -l "$BASE/target"
    cat "$BASE/target/status.json"
    echo

    info "nothing on the target is plaintext"
    if grep -rl -e 'xtrabackup' -e 'notes' -e 'InnoDB' "$BASE/target"/*.age; then fail "plaintext in the target"; fi
    BACKUP_ENV="$BASE/db.env" bash "$TOOL" verify

    info "disaster: MariaDB stops, its data directory is wiped"
    stop_db
    rm -rf "$DATADIR"
    local restore_env=(STAGE="$BASE/stage" DATADIR="$DATADIR" DB_SOCKET="$DB_SOCKET" DB_OWNER=root:root
        STOP_CMD=stop_db START_CMD=start_db BACKUP_STATE="$BASE/state" LOCK="$BASE/restore.lock" LOG_DIR="$BASE/restore-logs"
        ISOLATION_CNF="$BASE/isolation.cnf" XDG_STATE_HOME="$BASE/operator" FULL_UNIT="")
    t0=$SECONDS
    env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity - --from "$BASE/target" --here <"$BASE/identity"
    echo "restore to the latest point: $((SECONDS - t0)) s"
    local got
    got=$(sql app -e "SELECT COUNT(*) FROM notes")
    [[ "$got" == "$final_rows" ]] || fail "latest restore has $got rows, expected $final_rows"
    echo "latest: $got rows, as acknowledged"
    [[ "$(sql app -e "SELECT COUNT(*) FROM big")" == 24576 ]] || fail "the 24 MB transaction was not replayed whole"

    info "life after a restore: the next backup is a new full, new binlogs follow, and a restore takes them"
    backup incremental
    ls "$BASE"/target/full-*.age | wc -l | grep -qx 2 || fail "the first backup after a restore was not a full"
    insert 20
    backup ship-binlogs
    final_rows=$(sql app -e "SELECT COUNT(*) FROM notes")
    stop_db
    rm -rf "$DATADIR"
    env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here
    got=$(sql app -e "SELECT COUNT(*) FROM notes")
    [[ "$got" == "$final_rows" ]] || fail "second-generation restore has $got rows, expected $final_rows"
    echo "after a restore, a backup and 20 more rows: $got rows, as acknowledged"
    # The series this restore starts has no full: the one before is the fallback's last point.
    local fallback_rows=$got

    info "an incremental taken after the last shipping stops in a binlog no shipped file holds: the restore ends at it"
    insert 10
    backup ship-binlogs
    insert 10
    backup incremental
    final_rows=$(sql app -e "SELECT COUNT(*) FROM notes")
    stop_db
    rm -rf "$DATADIR"
    env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here 2>&1 |
        tee "$BASE/restore.log"
    grep -q 'no binlog after the backup' "$BASE/restore.log" || fail "the restore did not stop at the incremental's own point"
    got=$(sql app -e "SELECT COUNT(*) FROM notes")
    [[ "$got" == "$final_rows" ]] || fail "restore to an incremental past the shipped binlogs has $got rows, expected $final_rows"
    echo "to the incremental taken after the last shipping: $got rows, as acknowledged"

    info "again, to $pit (a point in time), from the same files: a re-run"
    t0=$SECONDS
    env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here --to "$pit"
    echo "point-in-time restore: $((SECONDS - t0)) s"
    got=$(sql app -e "SELECT COUNT(*) FROM notes")
    [[ "$got" == "$pit_rows" ]] || fail "point-in-time restore has $got rows, expected $pit_rows at $pit"
    echo "at $pit: $got rows, as then"

    info "a truncated backup is refused"
    local full
    full=$(find "$BASE/target" -name 'full-*.age' | sort | tail -n1)
    truncate -s -100 "$full"
    if BACKUP_ENV="$BASE/db.env" bash "$TOOL" verify; then fail "verify passed a truncated file"; fi
    grep -q '"bad":\["full-' "$BASE/target/status.json" || fail "status.json does not report the bad file"
    local before
    before=$(sql app -e "SELECT COUNT(*) FROM notes")
    # The newest full is the only one of the series the restore started: falling back to the
    # older full cannot reach that series' writes, so the restore refuses it as a gap.
    if env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here 2>"$BASE/err"; then
        fail "restore went on from a truncated file, or fell back past the writes of a newer series"
    fi
    cat "$BASE/err"
    grep -q "skipping $(basename "$full")" "$BASE/err" || fail "the restore did not name the truncated file it skipped"
    grep -q 'its writes are not on this chain' "$BASE/err" || fail "the restore did not refuse the fallback as a gap"
    [[ "$(sql app -e "SELECT COUNT(*) FROM notes")" == "$before" ]] || fail "a refused restore touched the data"
    # Even when the sidecar is made to match, age refuses the truncated file.
    (cd "$BASE/target" && sha256sum "$(basename "$full")" >"$(basename "$full").sha256")
    if env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here 2>"$BASE/err"; then
        fail "restore went on from a truncated file with a matching sha256"
    fi
    grep -q 'age refuses it' "$BASE/err" || { cat "$BASE/err"; fail "age did not refuse the truncated file"; }
    [[ ! -e "$BASE/stage" ]] || fail "the refused restore left its decrypted staging behind"
    [[ "$(sql app -e "SELECT COUNT(*) FROM notes")" == "$before" ]] || fail "a refused restore touched the data"
    info "with --accept-gap, the restore falls back to the previous good full and its binlogs"
    env "${restore_env[@]}" bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here --accept-gap
    got=$(sql app -e "SELECT COUNT(*) FROM notes")
    [[ "$got" == "$fallback_rows" ]] || fail "the fallback restore has $got rows, expected $fallback_rows (the older series' last point)"
    echo "fell back past the truncated full: $got rows, the older series' last point"
    echo "refused without --accept-gap, and the data was left alone until then"
    info "all backup checks passed"
}

main "$@"
