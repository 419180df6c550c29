#!/usr/bin/env bash
# Shared by the local backup tests (tests/backup/*.sh): a throwaway mariadbd with the binlog on
# (the settings components/render/mariadb.ts renders), on a port and in BASE of the caller's.
# The caller sets BASE, PORT, DATADIR and DB_SOCKET before it calls start_db.

info() { printf '\n== %s\n' "$*" >&2; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# free_port FROM TO : a port nothing listens on: other tests (the app's) may run a MariaDB beside this one.
free_port() {
    local p
    for ((p = $1; p <= $2; p++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo "no free port in $1-$2" >&2
    return 1
}

start_db() {
    setsid mariadbd --no-defaults --user=root --datadir="$DATADIR" --socket="$DB_SOCKET" --pid-file="$BASE/mysqld.pid" \
        --log-error="$BASE/error.log" --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=32M \
        --log-bin="$DATADIR/mariadb-bin" --binlog-format=ROW --server-id=1 --gtid-strict-mode=ON --sync-binlog=1 \
        </dev/null >/dev/null 2>&1 &
    for _ in $(seq 1 120); do
        mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    tail -n 20 "$BASE/error.log" >&2
    fail "mariadbd did not start"
}

stop_db() {
    [[ -f "$BASE/mysqld.pid" ]] || return 0
    local pid
    pid=$(cat "$BASE/mysqld.pid")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$BASE/mysqld.pid"
}

# new_db : a fresh data directory with the app's database, and the server on it.
new_db() {
    install -d -m 0700 "$DATADIR"
    mariadb-install-db --no-defaults --datadir="$DATADIR" --user=root --auth-root-authentication-method=socket \
        --skip-test-db >"$BASE/install.log" 2>&1
    start_db
}

sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot -N -B "$@"; }

# insert N : N acknowledged rows; their count is the check after a restore.
insert() {
    local i
    for ((i = 0; i < $1; i++)); do
        sql app -e "INSERT INTO notes (body) VALUES (REPEAT('x', 200))"
    done
}
