#!/usr/bin/env bash
# Step "require-tls": MariaDB refuses any TCP connection without TLS (require_secure_transport,
# live and in a config file for restarts) and the app user's grants say REQUIRE SSL. The stack
# runs it after every web server's app connects with TLS, so no server is cut off on the way.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP         log prefix
#   DB_USER        the app's user
#   WEB_ADDRESSES  the web servers (array): DB_USER at each gets REQUIRE SSL, so a new web
#                  server's user gets it once that server runs with TLS
#   REQUIRE_TEXT  the config file;  REQUIRE_CNF  its path
set -euo pipefail

# @vars

# @lib

# require SSL|NONE ON|OFF : REQUIRE SSL (or NONE) on DB_USER at every web server, and the
# global switch.
require() {
    local addr stmts=""
    for addr in "${WEB_ADDRESSES[@]}"; do
        stmts+="ALTER USER IF EXISTS $(sql_quote "$DB_USER")@$(sql_quote "$addr") REQUIRE $1;
"
    done
    mariadb_sql -e "${stmts}SET GLOBAL require_secure_transport = $2;"
}

apply() {
    put_file "$REQUIRE_TEXT" "$REQUIRE_CNF" 0644 || true
    require SSL ON
    info "MariaDB refuses connections without TLS; $DB_USER requires SSL from ${WEB_ADDRESSES[*]}"
}

delete() {
    remove_paths "$REQUIRE_CNF"
    systemctl is-active --quiet mariadb || return 0
    require NONE OFF
    info "MariaDB takes connections without TLS again"
}

# verify: TLS required, in force and in the config file, from the app user at every web server.
verify() {
    local addr
    expect_file "$REQUIRE_TEXT" "$REQUIRE_CNF" 0644
    [[ "$(mariadb_sql -e 'SELECT @@require_secure_transport' 2>/dev/null)" == 1 ]] ||
        drift "mariadb: require_secure_transport is not ON: plaintext connections are taken"
    for addr in "${WEB_ADDRESSES[@]}"; do
        [[ "$(mariadb_sql -e "SELECT ssl_type FROM mysql.user WHERE User = $(sql_quote "$DB_USER") AND Host = $(sql_quote "$addr")" 2>/dev/null)" == ANY ]] ||
            drift "user $DB_USER@$addr: does not REQUIRE SSL"
    done
}

main "$@" </dev/null
