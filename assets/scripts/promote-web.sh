#!/usr/bin/env bash
# Promotion, on a web server (scripts/promote). Not a step of `pulumi up`: the promote
# command runs it over SSH with one of these actions.
#   probe    whether the lost database answers on its MariaDB port from here, where the
#            firewall lets the app reach it (the operator's machine cannot tell): prints
#            pi-cluster:probe=answers, or pi-cluster:probe=silent and why
#   fence    installs and loads the web role's ruleset for the new topology, with the lost
#            database cut off both ways before any accept, established connections
#            included, so that it takes no write from here even if it comes back. The
#            ruleset file is loaded at boot, so the fence holds until the next `pulumi up`
#            loads the ruleset without it (the lost database is no longer in it).
#   switch   installs the app's settings and database CAs for the new database (what the
#            next `pulumi up` renders, so that up restarts nothing) and restarts the app;
#            returns once it answers /health with the database reachable. The load
#            balancer has drained this server first.
# Run as root via `sudo bash -s -- ACTION`.
# Reads:
#   STEP            log prefix
#   LOST_ADDRESS    the lost database;  DB_PORT its MariaDB port
#   RULESET         the firewall ruleset;  RULESET_TEXT the fenced one
#   ENV_FILE        the app's settings;  ENV_TEXT the new ones
#   DB_CA_FILE      the database CAs the app checks against;  DB_CA_TEXT the new bundle
#   APP_USER        the app's user (it reads ENV_FILE);  APP_SERVICE its unit
#   PORT            the app's port;  HEALTH_TIMEOUT seconds it has to become healthy
set -euo pipefail

# @vars

# @lib

probe() {
    local why
    # bash's /dev/tcp: no client is assumed on a web server. 1 s: on the cluster's network a
    # live MariaDB's kernel answers a connection in milliseconds, and this wait is on the
    # promotion's clock.
    # shellcheck disable=SC2016 # expanded by the inner bash
    if why=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$LOST_ADDRESS" "$DB_PORT" 2>&1); then
        echo "pi-cluster:probe=answers"
    else
        echo "pi-cluster:probe=silent"
        echo "pi-cluster:why=${why:-no answer within 1 s}" | head -n 1
    fi
}

fence() {
    local tmp rules
    command -v nft >/dev/null || fatal "nft is missing"
    tmp=$(mktemp)
    printf '%s' "$RULESET_TEXT" >"$tmp"
    nft -c -f "$tmp" || fatal "the fenced ruleset does not parse (nft -c); nothing was changed"
    rm -f "$tmp"
    put_file "$RULESET_TEXT" "$RULESET" 0644 || true
    nft -f "$RULESET"
    # Read whole, then matched: grep -q in a pipe would end nft early (SIGPIPE, under pipefail).
    rules=$(nft list table inet pi_cluster)
    [[ "$rules" == *"ip saddr $LOST_ADDRESS drop"* ]] || fatal "the fence against $LOST_ADDRESS is not in force"
    echo "pi-cluster:fenced=$LOST_ADDRESS"
}

switch() {
    local deadline
    put_file "$ENV_TEXT" "$ENV_FILE" 0640 "root:$APP_USER" || true
    put_file "$DB_CA_TEXT" "$DB_CA_FILE" 0644 || true
    systemctl restart "$APP_SERVICE"
    # Checked every 0.2 s, not every second: this wait is on the promotion's clock.
    deadline=$((SECONDS + HEALTH_TIMEOUT))
    until app_healthy "$PORT"; do
        ((SECONDS < deadline)) || fatal "the app did not answer /health with the new database reachable within ${HEALTH_TIMEOUT} s; see journalctl -u $APP_SERVICE"
        sleep 0.2
    done
    info "the app writes to the new database"
}

# The actions replace lib.sh's apply|delete|verify: this is no step of `pulumi up`.
main() {
    case "${1:-}" in
    probe) probe ;;
    fence) fence ;;
    switch) switch ;;
    *) fatal "unknown action '${1:-}': expected probe, fence or switch" ;;
    esac
}

main "$@" </dev/null
