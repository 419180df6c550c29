#!/usr/bin/env bash
# Promotion, on a read replica (scripts/promote). Not a step of `pulumi up`: the promote
# command runs it over SSH with one of these actions, and decides between them itself.
#   status    prints SHOW SLAVE STATUS\G and @@gtid_slave_pos (pi-cluster:gtid_slave_pos=...).
#             It stops nothing: with GTID, MariaDB discards a replica's relay log when
#             replication starts again after both its threads were stopped, and with the
#             database lost, what the relay log holds exists nowhere else.
#   promote FILE:POS
#             makes this replica the database, if it received exactly up to FILE:POS of
#             the lost database's binlog (what the command compared) and applies all of
#             it: the IO thread stops, the SQL thread applies the rest of the relay log
#             (else: the IO thread runs again, nothing changed). Then the database role's
#             firewall with its clients' rule and its MariaDB config (what the next
#             `pulumi up` renders, so that up restarts nothing), replication forgotten,
#             read_only off. Prints pi-cluster:gtid_binlog_pos=...
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

# field NAME STATUS : one field of SHOW SLAVE STATUS\G.
field() {
    awk -v k="$1" '{ i = index($0, ": "); if (i == 0) next; n = substr($0, 1, i - 1); gsub(/^ +/, "", n); if (n == k) { print substr($0, i + 2); exit } }' <<<"$2"
}

# applied_all : waits (10 s at most) until the SQL thread, running without error, has
# executed all the relay log holds, or has read it all (a transaction received in part
# stays unapplied). The IO thread is stopped, so nothing more comes.
applied_all() {
    local st i
    for ((i = 0; i < 50; i++)); do
        st=$(mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G')
        [[ "$(field Slave_SQL_Running "$st")" == Yes ]] || return 1
        [[ "$(field Relay_Master_Log_File "$st"):$(field Exec_Master_Log_Pos "$st")" == "$(field Master_Log_File "$st"):$(field Read_Master_Log_Pos "$st")" ]] && return 0
        [[ "$(field Slave_SQL_Running_State "$st")" == *"has read all relay log"* ]] && return 0
        sleep 0.2
    done
    return 1
}

# since : milliseconds since the action started, for its progress lines.
T0_US=${EPOCHREALTIME/./}
since() { echo "$(((${EPOCHREALTIME/./} - T0_US) / 1000)) ms"; }

promote() {
    local received=$1 st tmp
    tmp=$(mktemp)
    printf '%s' "$RULESET_TEXT" >"$tmp"
    nft -c -f "$tmp" || fatal "the database role's ruleset does not parse (nft -c); nothing was changed"
    rm -f "$tmp"
    st=$(mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G')
    [[ "$(field Slave_SQL_Running "$st")" == Yes ]] || fatal "its SQL thread is not running ($(field Last_SQL_Error "$st")): nothing was changed"
    # Only the IO thread stops first; the SQL thread runs on, so the relay log is kept. A
    # semi-sync replica's STOP SLAVE first connects to its primary to kill its dump thread,
    # waiting up to rpl_semi_sync_slave_kill_conn_timeout (5 s by default) on a primary that
    # is lost: 5.1-5.5 s of each lab promotion. The primary is fenced and silent: 1 s.
    mariadb_sql -e 'SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1; STOP SLAVE IO_THREAD'
    st=$(mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G')
    if [[ "$(field Master_Log_File "$st"):$(field Read_Master_Log_Pos "$st")" != "$received" ]] || ! applied_all; then
        st=$(mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G')
        if [[ "$(field Slave_SQL_Running "$st")" == Yes ]]; then
            mariadb_sql -e 'START SLAVE IO_THREAD'
            fatal "it received up to $(field Master_Log_File "$st"):$(field Read_Master_Log_Pos "$st") (compared: $received), or did not apply it all in 10 s: nothing was changed, run promote again"
        fi
        fatal "its SQL thread stopped ($(field Last_SQL_Error "$st")) with both threads stopped now: nothing was changed. Do not start replication on it (with GTID, MariaDB then discards its relay log); promote another replica, or apply its relay log by hand"
    fi
    info "the IO thread stopped, the relay log applied ($(since))"
    # The clients' rule first: the database role's ruleset takes 3306 from the web servers
    # through it, and the replica role's took it inline.
    install -d -m 0755 "$(dirname "$CLIENTS_FILE")"
    put_file "$CLIENTS_TEXT" "$CLIENTS_FILE" 0644 || true
    put_file "$RULESET_TEXT" "$RULESET" 0644 || true
    nft -f "$RULESET"
    # Applied by the next restart; everything it changes is set live below or is of no use
    # to a database (relay log, log_slave_updates).
    put_file "$SERVER_CNF_TEXT" "$SERVER_CNF" 0644 || true
    info "the database's firewall and config in place ($(since))"
    mariadb_sql -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL slave_exec_mode = 'STRICT'; SET GLOBAL read_only = OFF"
    # Its own replication grant (from its own address) is of no use to a database.
    mariadb_sql -e "DROP USER IF EXISTS $(sql_quote "$REPL_USER")@$(sql_quote "$OWN_ADDRESS")"
    printf 'pi-cluster:gtid_binlog_pos=%s\n' "$(mariadb_sql -e 'SELECT @@gtid_binlog_pos')"
    info "$(hostname) is the database: writable, applied up to $(mariadb_sql -e 'SELECT @@gtid_slave_pos') ($(since))"
}

# The actions replace lib.sh's apply|delete|verify: this is no step of `pulumi up`.
main() {
    case "${1:-}" in
    status) status ;;
    promote) promote "${2:?promote needs the binlog position compared, FILE:POS}" ;;
    *) fatal "unknown action '${1:-}': expected status or promote FILE:POS" ;;
    esac
}

main "$@" </dev/null
