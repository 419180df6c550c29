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
#   MONITOR         "true" with read replicas: SLAVE MONITOR too, so the app reads their lag
#   CLIENTS_TEXT     the firewall rule for the web servers;  CLIENTS_FILE its path
#   RULESET         the Pi's ruleset, which includes CLIENTS_FILE
set -euo pipefail

# @vars

# @lib

# granted ADDR : the app user's grants from ADDR, one a line, but the USAGE line, the
# password's hash, which is never printed, and REQUIRE SSL (the require-tls step's).
granted() {
    mariadb_sql -e "SHOW GRANTS FOR $(sql_quote "$DB_USER")@$(sql_quote "$1")" 2>/dev/null |
        grep -v '^GRANT USAGE ON \*\.\* TO ' | sed -e "s/ IDENTIFIED BY PASSWORD '[^']*'//" -e 's/ REQUIRE SSL$//' || true
}

# wanted_grant ADDR : the only grants the app user from ADDR has, as SHOW GRANTS prints them.
wanted_grant() {
    [[ "$MONITOR" == true ]] && printf 'GRANT SLAVE MONITOR ON *.* TO `%s`@`%s`\n' "$DB_USER" "$1"
    printf 'GRANT %s ON `%s`.* TO `%s`@`%s`' "$PRIVILEGES" "$DB_NAME" "$DB_USER" "$1"
}

# grant_sql ADDR : the statements that give the app user from ADDR its grants.
grant_sql() {
    local u
    u="$(sql_quote "$DB_USER")@$(sql_quote "$1")"
    printf 'GRANT %s ON `%s`.* TO %s;' "$PRIVILEGES" "$DB_NAME" "$u"
    [[ "$MONITOR" == true ]] && printf '\nGRANT SLAVE MONITOR ON *.* TO %s;' "$u"
    return 0
}

apply() {
    local addr stmts existing
    stmts="CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    for addr in "${WEB_ADDRESSES[@]}"; do
        stmts+="
CREATE USER IF NOT EXISTS $(sql_quote "$DB_USER")@$(sql_quote "$addr") IDENTIFIED BY $(sql_quote "$DB_PASSWORD");
ALTER USER $(sql_quote "$DB_USER")@$(sql_quote "$addr") IDENTIFIED BY $(sql_quote "$DB_PASSWORD");
$(grant_sql "$addr")"
        # Privileges granted by hand beyond those go (revoked and granted in one batch, and
        # only when they differ, so the app never runs without its own).
        if [[ -n "$(granted "$addr")" && "$(granted "$addr")" != "$(wanted_grant "$addr")" ]]; then
            stmts+="
REVOKE ALL PRIVILEGES, GRANT OPTION FROM $(sql_quote "$DB_USER")@$(sql_quote "$addr");
$(grant_sql "$addr")"
            info "$DB_USER@$addr had other privileges than its own: reset to those"
        fi
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
    put_file "$CLIENTS_TEXT" "$CLIENTS_FILE" 0644 && reload=1
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

# verify: the app user exists for each web server and no other host, with the stack's
# password and exactly its privileges on the app's database; the 3306 rule as rendered.
verify() {
    local addr hosts grants
    expect_file "$CLIENTS_TEXT" "$CLIENTS_FILE" 0644
    if ! hosts=$(mariadb_sql -e "SELECT Host FROM mysql.user WHERE User = $(sql_quote "$DB_USER")" 2>/dev/null); then
        drift "mariadb: cannot read its users (is it running?)"
        return 0
    fi
    for addr in "${WEB_ADDRESSES[@]}"; do
        if ! grep -qxF "$addr" <<<"$hosts"; then
            drift "user $DB_USER@$addr: missing"
            continue
        fi
        grants=$(granted "$addr")
        [[ "$grants" == "$(wanted_grant "$addr")" ]] ||
            drift "user $DB_USER@$addr: grants are '${grants//$'\n'/; }', expected '$(wanted_grant "$addr" | paste -sd';')'"
        [[ "$(mariadb_sql <<<"SELECT authentication_string = PASSWORD($(sql_quote "$DB_PASSWORD")) FROM mysql.user WHERE User = $(sql_quote "$DB_USER") AND Host = $(sql_quote "$addr");")" == 1 ]] ||
            drift "user $DB_USER@$addr: its password is not the stack's"
    done
    while read -r addr; do
        [[ -z "$addr" ]] || printf '%s\n' "${WEB_ADDRESSES[@]}" | grep -qxF "$addr" || drift "user $DB_USER@$addr: not a web server of the stack"
    done <<<"$hosts"
}

main "$@" </dev/null
