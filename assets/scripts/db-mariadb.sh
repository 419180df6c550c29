#!/usr/bin/env bash
# Step "mariadb": MariaDB from Debian with the rendered config and secure defaults
# (no anonymous users, no test database, root by unix socket only).
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP              log prefix
#   SERVER_CNF_TEXT    static settings; a change restarts MariaDB
#   CONN_CNF_TEXT      max_connections; a change is applied live
#   MAX_CONNECTIONS   the value in CONN_CNF_TEXT
#   SEMISYNC_CNF_TEXT  semi-synchronous replication (rpl_semi_sync_*); a change is applied live
#   SEMISYNC          the same settings as NAME=VALUE words
#   PURGE_ON_DELETE   "true" to delete the data directory on delete
#   DROPIN_TEXT        mariadb.service drop-in: restart on failure;  DROPIN its path
set -euo pipefail

# @vars

# @lib

readonly CONF_DIR=/etc/mysql/mariadb.conf.d
readonly SERVER_CNF=$CONF_DIR/60-pi-cluster.cnf
readonly CONN_CNF=$CONF_DIR/61-pi-cluster-connections.cnf
readonly SEMISYNC_CNF=$CONF_DIR/63-pi-cluster-semisync.cnf

check_config() {
    # mariadbd parses every option file and exits non-zero on an unknown or bad option.
    mariadbd --help --verbose >/dev/null 2>"$1" || {
        cat "$1" >&2
        return 1
    }
}

secure_defaults() {
    mariadb --protocol=socket <<'SQL'
DELETE FROM mysql.global_priv WHERE User = '';
DROP DATABASE IF EXISTS test;
DELETE FROM mysql.db WHERE Db = 'test' OR Db = 'test\_%';
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket;
FLUSH PRIVILEGES;
SQL
}

# live_var NAME : a global variable's value in the running server, as SHOW prints it (ON/OFF).
live_var() { mariadb_sql -e "SHOW GLOBAL VARIABLES LIKE '$1'" | cut -f2; }

# semi_sync_live : each SEMISYNC setting the running server does not have, by SET GLOBAL, so
# the first replica added (or the last removed) never restarts the database.
semi_sync_live() {
    local kv name want have
    for kv in "${SEMISYNC[@]}"; do
        name=${kv%%=*} want=${kv#*=}
        [[ "$name" =~ ^rpl_semi_sync_[a-z_]+$ && "$want" =~ ^[A-Z0-9_]+$ ]] || fatal "bad semi-sync setting '$kv'"
        have=$(live_var "$name")
        [[ "$have" == "$want" ]] && continue
        mariadb_sql -e "SET GLOBAL $name = $want"
        info "$name set to $want live (was ${have:-unset})"
    done
}

apply() {
    apt_install mariadb-server
    local restart=0 conn=0 err
    err=$(mktemp)
    pending_begin mariadb-restart && restart=1
    if put_file "$DROPIN_TEXT" "$DROPIN" 0644; then
        systemctl daemon-reload
    fi
    put_file "$SERVER_CNF_TEXT" "$SERVER_CNF" 0644 && restart=1
    put_file "$CONN_CNF_TEXT" "$CONN_CNF" 0644 && conn=1
    put_file "$SEMISYNC_CNF_TEXT" "$SEMISYNC_CNF" 0644 || true
    check_config "$err" || fatal "MariaDB rejected the rendered config (see above); fix the stack config and run pulumi up again"
    rm -f "$err"
    hold_point written
    systemctl is-enabled --quiet mariadb || systemctl enable --quiet mariadb
    if ! systemctl is-active --quiet mariadb; then
        systemctl start mariadb
        info "mariadb started"
    elif ((restart)); then
        systemctl restart mariadb
        info "mariadb restarted for its new config"
    elif ((conn)); then
        mariadb --protocol=socket -e "SET GLOBAL max_connections = ${MAX_CONNECTIONS}"
        info "max_connections set to ${MAX_CONNECTIONS} live"
    fi
    pending_done mariadb-restart
    semi_sync_live
    secure_defaults
    info "mariadb $(mariadb --protocol=socket -N -e 'SELECT VERSION()') ready"
}

delete() {
    systemctl disable --now --quiet mariadb 2>/dev/null || true
    remove_paths "$SERVER_CNF" "$CONN_CNF" "$SEMISYNC_CNF" "$(dirname "$DROPIN")"
    systemctl daemon-reload
    apt_purge mariadb-server mariadb-server-core mariadb-client mariadb-client-core mariadb-common
    if [[ "$PURGE_ON_DELETE" == "true" ]]; then
        remove_paths /var/lib/mysql
        info "data purged (purgeDataOnDestroy=true)"
    else
        info "data kept in /var/lib/mysql (set purgeDataOnDestroy to delete it)"
    fi
}

# verify: MariaDB installed, running and enabled, its config files as rendered, and the
# max_connections and semi-sync settings in force.
verify() {
    local live kv
    expect_packages mariadb-server
    expect_file "$DROPIN_TEXT" "$DROPIN" 0644
    expect_file "$SERVER_CNF_TEXT" "$SERVER_CNF" 0644
    expect_file "$CONN_CNF_TEXT" "$CONN_CNF" 0644
    expect_file "$SEMISYNC_CNF_TEXT" "$SEMISYNC_CNF" 0644
    expect_service mariadb
    live=$(mariadb --protocol=socket -N -B -e 'SELECT @@max_connections' 2>/dev/null || true)
    [[ "$live" == "$MAX_CONNECTIONS" ]] || drift "mariadb: max_connections in force is ${live:-unreadable}, expected $MAX_CONNECTIONS"
    for kv in "${SEMISYNC[@]}"; do
        live=$(live_var "${kv%%=*}" 2>/dev/null || true)
        [[ "$live" == "${kv#*=}" ]] || drift "mariadb: ${kv%%=*} in force is ${live:-unreadable}, expected ${kv#*=}"
    done
}

main "$@" </dev/null
