#!/usr/bin/env bash
# Promotion, on a read replica (scripts/promote). Not a step of `pulumi up`: the promote
# command runs it over SSH with one of these actions, and decides between them itself.
#   status    prints SHOW SLAVE STATUS\G and @@gtid_slave_pos (pi-cluster:gtid_slave_pos=...)
#   hold      stops the IO thread (nothing more comes from the lost database), then status,
#             with whether it ran before (pi-cluster:io_was=Yes|No|Connecting)
#   release   starts the IO thread again (a refused promotion leaves a replica it held as it was)
#   promote GTID_POS
#             makes this replica the database: refuses unless @@gtid_slave_pos is still
#             the GTID_POS given (what the command saw applied, IO thread stopped); then the
#             database role's firewall with its clients' rule and its MariaDB config (what
#             the next `pulumi up` renders, so that up restarts nothing), replication
#             forgotten, read_only off. Prints pi-cluster:gtid_binlog_pos=...
# Run as root via `sudo bash -s -- ACTION [ARG]`.
# Reads:
#   STEP             log prefix
#   OWN_ADDRESS      this Pi's address;  REPL_USER the replication user (its grant from here goes)
#   SERVER_CNF       MariaDB's static config;  SERVER_CNF_TEXT the database role's
#   RULESET          the firewall ruleset;  RULESET_TEXT the database role's
#   CLIENTS_FILE     the database's clients rule (3306 from the web servers);  CLIENTS_TEXT its text
set -euo pipefail

# @vars

# @lib

status() {
    mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G'
    printf 'pi-cluster:gtid_slave_pos=%s\n' "$(mariadb_sql -e 'SELECT @@gtid_slave_pos')"
    printf 'pi-cluster:read_only=%s\n' "$(mariadb_sql -e 'SELECT @@read_only')"
}

hold() {
    local was
    was=$(mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G' | awk -F': ' '$1 ~ /^ *Slave_IO_Running$/ { print $2 }')
    mariadb_sql -e 'STOP SLAVE IO_THREAD'
    printf 'pi-cluster:io_was=%s\n' "${was:-No}"
    status
}

release() {
    mariadb_sql -e 'START SLAVE IO_THREAD'
    info "IO thread started again"
}

promote() {
    local expected=$1 applied tmp
    applied=$(mariadb_sql -e 'SELECT @@gtid_slave_pos')
    [[ "$applied" == "$expected" ]] || fatal "applied GTIDs moved from $expected to $applied since the check; nothing was changed, run promote again"
    tmp=$(mktemp)
    printf '%s' "$RULESET_TEXT" >"$tmp"
    nft -c -f "$tmp" || fatal "the database role's ruleset does not parse (nft -c); nothing was changed"
    rm -f "$tmp"
    # The clients' rule first: the database role's ruleset takes 3306 from the web servers
    # through it, and the replica role's took it inline.
    install -d -m 0755 "$(dirname "$CLIENTS_FILE")"
    put_file "$CLIENTS_TEXT" "$CLIENTS_FILE" 0644 || true
    put_file "$RULESET_TEXT" "$RULESET" 0644 || true
    nft -f "$RULESET"
    # Applied by the next restart; everything it changes is set live below or is of no use
    # to a database (relay log, log_slave_updates).
    put_file "$SERVER_CNF_TEXT" "$SERVER_CNF" 0644 || true
    mariadb_sql -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL slave_exec_mode = 'STRICT'; SET GLOBAL read_only = OFF"
    # Its own replication grant (from its own address) is of no use to a database.
    mariadb_sql -e "DROP USER IF EXISTS $(sql_quote "$REPL_USER")@$(sql_quote "$OWN_ADDRESS")"
    printf 'pi-cluster:gtid_binlog_pos=%s\n' "$(mariadb_sql -e 'SELECT @@gtid_binlog_pos')"
    info "$(hostname) is the database: writable, applied up to $applied"
}

# The actions replace lib.sh's apply|delete|verify: this is no step of `pulumi up`.
main() {
    case "${1:-}" in
    status) status ;;
    hold) hold ;;
    release) release ;;
    promote) promote "${2:?promote needs the applied GTID position}" ;;
    *) fatal "unknown action '${1:-}': expected status, hold, release or promote GTID_POS" ;;
    esac
}

main "$@" </dev/null
