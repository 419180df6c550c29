#!/usr/bin/env bash
# Step "require-tls": MariaDB refuses any TCP connection without TLS (require_secure_transport,
# live and in a config file for restarts) and the app user's grants say REQUIRE SSL. The stack
# runs it after every web server's app connects with TLS, so no server is cut off on the way.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP         log prefix
#   DB_USER      the app's user, whose every host gets REQUIRE SSL
#   REQUIRE_B64  the config file;  REQUIRE_CNF  its path
set -euo pipefail

# @vars

# @lib

# require USING ON|OFF : REQUIRE SSL (or NONE) on every host of DB_USER, and the global switch.
require() {
    local host stmts=""
    while read -r host; do
        [[ -n "$host" ]] && stmts+="ALTER USER $(sql_quote "$DB_USER")@$(sql_quote "$host") REQUIRE $1;
"
    done < <(mariadb_sql -e "SELECT Host FROM mysql.user WHERE User = $(sql_quote "$DB_USER")")
    mariadb_sql <<<"${stmts}SET GLOBAL require_secure_transport = $2;"
}

apply() {
    put_file "$REQUIRE_B64" "$REQUIRE_CNF" 0644 || true
    require SSL ON
    info "MariaDB refuses connections without TLS; $DB_USER requires SSL"
}

delete() {
    remove_paths "$REQUIRE_CNF"
    systemctl is-active --quiet mariadb || return 0
    require NONE OFF
    info "MariaDB takes connections without TLS again"
}

main "$@" </dev/null
