#!/usr/bin/env bash
# Runs a throwaway MariaDB server for the app's tests: its own datadir, loopback TCP and a
# private socket, database webapp_db, user webapp_user with a random password, and the
# migrations in ../migrations applied in order (recorded in schema_migrations, as the
# stack's DB script does).
#
# Usage: test-mariadb.sh start|stop|env|restart|pause|resume
#   start    starts the server (or reuses the one already running) and prints the env
#   stop     shuts it down and deletes its directory
#   env      prints DB_HOST=... DB_PORT=... DB_NAME=... DB_USER=... DB_PASSWORD=...
#   restart  shuts the server down and starts it on the same datadir, as `systemctl restart
#            mariadb` does; returns once it answers again
#   pause    freezes mariadbd with SIGSTOP, like a power cut: the kernel still completes TCP
#            handshakes, but nothing ever answers and no connection is closed
#   resume   thaws it with SIGCONT
#
# Reads:
#   TEST_MARIADB_DIR   state directory (default ${TMPDIR:-/tmp}/pi-cluster-app-mariadb-$TEST_MARIADB_PORT)
#   TEST_MARIADB_PORT  TCP port on 127.0.0.1 (default 3307)
#   TMPDIR             see TEST_MARIADB_DIR
#   TEST_MARIADB_TLS_DIR  when set, a directory with ca.crt, server.crt and server.key: the server
#                      then takes TLS with them and refuses TCP connections without it
#                      (require_secure_transport), as the stack's database does
# Needs mariadbd, mariadb-install-db, mariadb and mariadb-admin (Debian: mariadb-server).
set -euo pipefail

PORT="${TEST_MARIADB_PORT:-3307}"
BASE="${TEST_MARIADB_DIR:-${TMPDIR:-/tmp}/pi-cluster-app-mariadb-${PORT}}"
DATADIR="${BASE}/data"
SOCKET="${BASE}/mariadbd.sock"
PIDFILE="${BASE}/mariadbd.pid"
ENVFILE="${BASE}/env"
LOGFILE="${BASE}/error.log"
MIGRATIONS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../migrations" && pwd)"
DB_NAME=webapp_db
DB_USER=webapp_user

info() { echo "test-mariadb: $*" >&2; }
fatal() { echo "test-mariadb: error: $*" >&2; exit 1; }

as_root() { mariadb --no-defaults --protocol=socket --socket="${SOCKET}" -uroot "$@"; }

require_tools() {
  local tool
  # mariadbd lives in /usr/sbin, which a non-root PATH may lack.
  PATH="${PATH}:/usr/sbin:/sbin"
  for tool in mariadbd mariadb-install-db mariadb mariadb-admin openssl; do
    command -v "${tool}" >/dev/null 2>&1 ||
      fatal "${tool} not found; install it with: apt-get install -y mariadb-server openssl"
  done
}

is_running() {
  [[ -f "${PIDFILE}" ]] && kill -0 "$(cat "${PIDFILE}")" 2>/dev/null &&
    mariadb-admin --no-defaults --protocol=socket --socket="${SOCKET}" -uroot ping >/dev/null 2>&1
}

init_datadir() {
  rm -rf "${BASE}"
  install -d -m 0700 "${BASE}" "${DATADIR}"
  # root@localhost authenticates over the socket only (unix_socket), so no root password exists.
  mariadb-install-db --no-defaults --datadir="${DATADIR}" --user="$(id -un)" \
    --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
    >"${BASE}/install.log" 2>&1 || fatal "mariadb-install-db failed; see ${BASE}/install.log"
}

start_server() {
  local user_opt=() tls_opt=()
  # mariadbd refuses to run as root unless told to.
  [[ "$(id -u)" == 0 ]] && user_opt=(--user=root)
  if [[ -n "${TEST_MARIADB_TLS_DIR:-}" ]]; then
    tls_opt=(--ssl-ca="${TEST_MARIADB_TLS_DIR}/ca.crt" --ssl-cert="${TEST_MARIADB_TLS_DIR}/server.crt"
      --ssl-key="${TEST_MARIADB_TLS_DIR}/server.key" --require-secure-transport=ON)
  fi
  setsid mariadbd --no-defaults "${user_opt[@]}" "${tls_opt[@]}" --datadir="${DATADIR}" --socket="${SOCKET}" \
    --pid-file="${PIDFILE}" --log-error="${LOGFILE}" --port="${PORT}" --bind-address=127.0.0.1 \
    --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --max-connections=100 \
    </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    is_running && return 0
    sleep 0.25
  done
  tail -n 20 "${LOGFILE}" >&2 || true
  fatal "mariadbd did not answer on ${SOCKET} within 30 s (port ${PORT} in use? set TEST_MARIADB_PORT)"
}

create_db_and_user() {
  local password
  password="$(openssl rand -hex 16)"
  # The password goes in on stdin, never in a command line.
  as_root <<SQL
CREATE DATABASE IF NOT EXISTS ${DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE OR REPLACE USER '${DB_USER}'@'127.0.0.1' IDENTIFIED BY '${password}';
CREATE OR REPLACE USER '${DB_USER}'@'localhost' IDENTIFIED BY '${password}';
GRANT SELECT, INSERT, UPDATE, DELETE ON ${DB_NAME}.* TO '${DB_USER}'@'127.0.0.1';
GRANT SELECT, INSERT, UPDATE, DELETE ON ${DB_NAME}.* TO '${DB_USER}'@'localhost';
SQL
  install -m 0600 /dev/null "${ENVFILE}"
  printf 'DB_HOST=127.0.0.1\nDB_PORT=%s\nDB_NAME=%s\nDB_USER=%s\nDB_PASSWORD=%s\n' \
    "${PORT}" "${DB_NAME}" "${DB_USER}" "${password}" >"${ENVFILE}"
}

apply_migrations() {
  as_root "${DB_NAME}" <<'SQL'
CREATE TABLE IF NOT EXISTS schema_migrations (
  version VARCHAR(255) NOT NULL PRIMARY KEY,
  applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
SQL
  local file version applied
  for file in "${MIGRATIONS}"/[0-9]*.sql; do
    [[ -e "${file}" ]] || continue
    version="$(basename "${file}" .sql)"
    applied="$(as_root -N -B "${DB_NAME}" -e "SELECT COUNT(*) FROM schema_migrations WHERE version = '${version}'")"
    [[ "${applied}" == 0 ]] || continue
    as_root "${DB_NAME}" <"${file}" || fatal "migration ${version} failed"
    as_root "${DB_NAME}" -e "INSERT INTO schema_migrations (version) VALUES ('${version}')"
    info "applied ${version}"
  done
}

cmd_start() {
  require_tools
  if is_running && [[ -f "${ENVFILE}" ]]; then
    info "reusing the server in ${BASE}"
  else
    [[ -f "${PIDFILE}" ]] && cmd_stop
    info "starting MariaDB in ${BASE} on 127.0.0.1:${PORT}"
    init_datadir
    start_server
    create_db_and_user
  fi
  apply_migrations
  cat "${ENVFILE}"
}

server_pid() {
  [[ -f "${PIDFILE}" ]] || fatal "no server in ${BASE}; run: $0 start"
  cat "${PIDFILE}"
}

stop_server() {
  local pid="$1"
  # A paused server would hold SIGTERM until the 30 s below run out.
  kill -CONT "${pid}" 2>/dev/null || true
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 1 120); do
    kill -0 "${pid}" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -KILL "${pid}" 2>/dev/null || true
}

cmd_stop() {
  if [[ -f "${PIDFILE}" ]]; then
    stop_server "$(cat "${PIDFILE}")"
  fi
  rm -rf "${BASE}"
}

cmd_restart() {
  require_tools
  stop_server "$(server_pid)"
  start_server
}

cmd_pause() {
  kill -STOP "$(server_pid)"
}

cmd_resume() {
  kill -CONT "$(server_pid)"
}

cmd_env() {
  [[ -f "${ENVFILE}" ]] || fatal "no server in ${BASE}; run: $0 start"
  cat "${ENVFILE}"
}

main() {
  case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    restart) cmd_restart ;;
    pause) cmd_pause ;;
    resume) cmd_resume ;;
    *) fatal "usage: $0 start|stop|env|restart|pause|resume" ;;
  esac
}

main "$@"
