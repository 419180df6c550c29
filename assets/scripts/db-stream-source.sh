#!/usr/bin/env bash
# Step "stream source", run on the database: what lets the backup target's binlog stream in,
# and nothing for any other address.
#   - The stream's account from the target's address: the binlog and nothing else
#     (REPLICATION SLAVE, BINLOG MONITOR), TLS required.
#   - MariaDB's port open to the target (a file the database's ruleset includes).
# Its delete drops both. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP             log prefix
#   STREAM_USER      the account;  STREAM_PASSWORD its password (secret; to MariaDB on stdin)
#   PRIVILEGES       its privileges
#   TARGET_ADDRESS   the backup target's address
#   CLIENT_TEXT       the port's rule for the target;  CLIENT_FILE its path;  RULESET the Pi's ruleset
set -euo pipefail

# @vars

# @lib

apply() {
    grant_only "$STREAM_USER" "$TARGET_ADDRESS" "$STREAM_PASSWORD" "$PRIVILEGES"
    local reload=0
    pending_begin binlog-stream-client && reload=1
    put_file "$CLIENT_TEXT" "$CLIENT_FILE" 0644 && reload=1
    if ((reload)); then
        nft -f "$RULESET"
        info "firewall reloaded: MariaDB open to the backup target $TARGET_ADDRESS"
    fi
    pending_done binlog-stream-client
    info "the backup target ($TARGET_ADDRESS) may stream the binlog from here"
}

delete() {
    if [[ -f "$CLIENT_FILE" ]]; then
        rm -f "$CLIENT_FILE"
        [[ -f "$RULESET" ]] && nft -f "$RULESET"
        info "removed the firewall rule for the backup target $TARGET_ADDRESS"
    fi
    if systemctl is-active --quiet mariadb; then
        mariadb_sql <<<"DROP USER IF EXISTS $(sql_quote "$STREAM_USER")@$(sql_quote "$TARGET_ADDRESS");"
    fi
    info "the backup target ($TARGET_ADDRESS) can no longer stream the binlog from here"
}

# verify: the account from the target's address with exactly its grant and the stack's
# password, and the port's rule.
verify() {
    expect_file "$CLIENT_TEXT" "$CLIENT_FILE" 0644
    expect_grant "$STREAM_USER" "$TARGET_ADDRESS" "$STREAM_PASSWORD" "$PRIVILEGES"
}

main "$@" </dev/null
