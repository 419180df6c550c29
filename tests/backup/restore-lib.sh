#!/usr/bin/env bash
# Shared by tests/backup/restore-*.sh: a throwaway MariaDB on this machine, configured like a
# Pi's (binlog on, row format; an option-file directory, so the restore's isolation file is
# read the way a Pi's /etc/mysql/mariadb.conf.d is), the backup tool against a local "target"
# directory (TARGET_HOST=local), and scripts/restore.sh --here with the settings that point
# the DB Pi's half at it. What differs from a Pi: no systemd (the apply runs detached, not as a
# transient unit; STOP_CMD/START_CMD are the functions below).
# Reads: RESTORE_TEST_PORTS (default "3410 3419", the first free port of the range is used), KEEP.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOL="$REPO/assets/backup/pi-cluster-backup.sh"
PATH="$PATH:/usr/sbin:/sbin"

info() { printf '\n== %s\n' "$*" >&2; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# lib_init NAME : BASE, PORT and the settings every helper below reads.
lib_init() {
    BASE=$(mktemp -d "/tmp/pi-restore-$1.XXXXXX")
    local range=${RESTORE_TEST_PORTS:-3410 3419} p
    PORT=""
    for ((p = ${range% *}; p <= ${range#* }; p++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { PORT=$p; break; }
    done
    [[ -n "$PORT" ]] || fail "no free port in $range"
    export BASE PORT DATADIR="$BASE/data" DB_SOCKET="$BASE/mysqld.sock" STOP_WAIT=${STOP_WAIT:-30}
    install -d -m 0700 "$BASE/conf.d" "$BASE/target" "$BASE/state"
    cat >"$BASE/my.cnf" <<EOF
[mariadbd]
datadir=$DATADIR
socket=$DB_SOCKET
pid-file=$BASE/mysqld.pid
log-error=$BASE/error.log
port=$PORT
bind-address=127.0.0.1
skip-name-resolve
innodb-buffer-pool-size=${DB_BUFFER_POOL:-128M}
innodb-log-file-size=${DB_LOG_FILE_SIZE:-64M}
log-bin=$DATADIR/mariadb-bin
binlog-format=ROW
server-id=1
gtid-strict-mode=ON
sync-binlog=1
!includedir $BASE/conf.d
EOF
    # The restore's settings, for scripts/restore.sh --here and the DB Pi's half it runs.
    export STAGE="$BASE/stage" LOCK="$BASE/restore.lock" LOG_DIR="$BASE/restore-logs" DB_OWNER=root:root \
        STOP_CMD=stop_db START_CMD=start_db ISOLATION_CNF="$BASE/conf.d/99-pi-cluster-restore.cnf" \
        BACKUP_STATE="$BASE/state" FULL_UNIT="" START_TIMEOUT=60 XDG_STATE_HOME="$BASE/operator" BACKUP_ENV="$BASE/db.env"
    trap lib_cleanup EXIT
}

lib_cleanup() {
    local pid
    pid=$(cat "$BASE/mysqld.pid" 2>/dev/null || true)
    [[ -z "$pid" ]] || kill -CONT "$pid" 2>/dev/null || true
    STOP_WAIT=30 stop_db || true
    [[ -n "${KEEP:-}" ]] || rm -rf "$BASE"
}

# start_db : starts MariaDB on DATADIR unless it runs; waits until it answers on its socket.
start_db() {
    local pid
    pid=$(cat "$BASE/mysqld.pid" 2>/dev/null || true)
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then return 0; fi
    setsid mariadbd --defaults-file="$BASE/my.cnf" --user=root </dev/null >/dev/null 2>&1 &
    for _ in $(seq 1 240); do
        mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    tail -n 20 "$BASE/error.log" >&2
    return 1
}

# stop_db : SIGTERM, then up to STOP_WAIT s for the server to exit (systemctl stop's
# TimeoutStopSec); fails when it is still there.
stop_db() {
    local pid end
    pid=$(cat "$BASE/mysqld.pid" 2>/dev/null || true)
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    end=$((SECONDS + STOP_WAIT))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < end)) || return 1
        sleep 0.1
    done
}
export -f start_db stop_db

sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot -N -B "$@"; }

backup() { bash "$TOOL" "$@"; }

# new_db : an initialised data directory, MariaDB on it, an age key pair and the backup env.
new_db() {
    mariadb-install-db --no-defaults --datadir="$DATADIR" --user=root --auth-root-authentication-method=socket \
        --skip-test-db >"$BASE/install.log" 2>&1
    start_db || fail "mariadbd did not start"
    age-keygen -o "$BASE/identity" 2>/dev/null
    cat >"$BASE/db.env" <<EOF
TARGET_HOST=local
AGE_RECIPIENT=$(age-keygen -y "$BASE/identity")
STATE_DIR=$BASE/state
DB_SOCKET=$DB_SOCKET
DATADIR=$DATADIR
BACKUP_DIR=$BASE/target
RETENTION_DAYS=30
EOF
}

# restore ARGS... : scripts/restore.sh --here from the local target.
restore() { bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here "$@"; }
