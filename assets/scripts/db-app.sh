#!/usr/bin/env bash
# Step "app-db": the app's database and its user, granted once per web-server address
# with only the privileges the app needs (no GRANT OPTION, no DROP), and the firewall rule
# that lets exactly those addresses reach MariaDB (a file the Pi's ruleset includes).
# Users and rule entries for addresses no longer in the list are dropped. The stack runs
# this step after the load balancer's config, so on a scale-in the server has left the
# load balancer before it loses the database. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP            log prefix
#   DB_NAME         database name
#   DB_USER         user name
#   DB_PASSWORD     its password (secret; reaches MariaDB on stdin, never argv)
#   WEB_ADDRESSES   web server addresses (array)
#   PRIVILEGES      privileges on DB_NAME.*
#   CLIENTS_B64     the firewall rule for the web servers;  CLIENTS_FILE its path
#   RULESET         the Pi's ruleset, which includes CLIENTS_FILE
set -euo pipefail

# @vars

# @lib

apply() {
    local addr stmts existing
    stmts="CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    for addr in "${WEB_ADDRESSES[@]}"; do
        stmts+="
CREATE USER IF NOT EXISTS $(sql_quote "$DB_USER")@$(sql_quote "$addr") IDENTIFIED BY $(sql_quote "$DB_PASSWORD");
ALTER USER $(sql_quote "$DB_USER")@$(sql_quote "$addr") IDENTIFIED BY $(sql_quote "$DB_PASSWORD");
GRANT $PRIVILEGES ON \`$DB_NAME\`.* TO $(sql_quote "$DB_USER")@$(sql_quote "$addr");"
    done
    existing=$(mariadb_sql -e "SELECT Host FROM mysql.user WHERE User = $(sql_quote "$DB_USER")")
    while read -r addr; do
        [[ -n "$addr" ]] || continue
        if ! printf '%s\n' "${WEB_ADDRESSES[@]}" | grep -qxF "$addr"; then
            stmts+="
DROP USER $(sql_quote "$DB_USER")@$(sql_quote "$addr");"
            info "dropping $DB_USER@$addr (no longer a web server)"
        fi
    done <<<"$existing"
    mariadb_sql <<<"$stmts"
    # Grants first, then the rule: on a scale-out the new server finds its user in place;
    # on a scale-in it is already out of the load balancer, so neither order drops a request.
    local reload=0
    pending_begin db-clients && reload=1
    put_file "$CLIENTS_B64" "$CLIENTS_FILE" 0644 && reload=1
    if ((reload)); then
        nft -f "$RULESET"
        info "firewall reloaded: 3306 open to ${WEB_ADDRESSES[*]}"
    fi
    pending_done db-clients
    info "database $DB_NAME and user $DB_USER for ${#WEB_ADDRESSES[@]} web server(s) ready"
}

delete() {
    local addr
    if [[ -f "$CLIENTS_FILE" ]]; then
        rm -f "$CLIENTS_FILE"
        [[ -f "$RULESET" ]] && nft -f "$RULESET"
        info "removed the firewall rule for the web servers"
    fi
    systemctl is-active --quiet mariadb || return 0
    while read -r addr; do
        [[ -n "$addr" ]] && mariadb_sql <<<"DROP USER IF EXISTS $(sql_quote "$DB_USER")@$(sql_quote "$addr");"
    done < <(mariadb_sql -e "SELECT Host FROM mysql.user WHERE User = $(sql_quote "$DB_USER")")
    info "removed user $DB_USER; database $DB_NAME is data and stays"
}

main "$@" </dev/null
