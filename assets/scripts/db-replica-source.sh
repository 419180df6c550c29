#!/usr/bin/env bash
# Step "source" of a read replica, run on the database (the primary): what lets that one
# replica in, and nothing for any other address.
#   - The replication user from the replica's address: REPLICATION SLAVE only, TLS required.
#   - 3306 open to that address (a file the database's ruleset includes).
#   - The seeding account: the replica's key, accepted from its address only, forced to run
#     the stream (mariadb-backup of this database to stdout; no shell, no forwarding).
# Its delete, after the web servers stopped reading from the replica, drops all three.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP            log prefix
#   REPL_USER       the replication user;  REPL_PASSWORD its password (secret; to MariaDB on stdin)
#   REPLICA_NAME    the replica;  REPLICA_ADDRESS its address
#   CLIENT_TEXT      the 3306 rule for it;  CLIENT_FILE its path;  RULESET the Pi's ruleset
#   SEED_USER       the seeding account;  SEED_PUBLIC_KEY the replica's key ("ssh-ed25519 AAAA...")
#   STREAM_TEXT      the stream command;  STREAM_TOOL its path
#   SUDOERS_TEXT     lets SEED_USER run STREAM_TOOL as root and nothing else;  SUDOERS its path
set -euo pipefail

# @vars

# @lib

seed_home() { printf '/var/lib/%s' "$SEED_USER"; }

# authorized_line : this replica's line in the seeding account's authorized_keys.
authorized_line() {
    printf 'from="%s",command="sudo -n %s",restrict %s pi-cluster-replica:%s\n' "$REPLICA_ADDRESS" "$STREAM_TOOL" "$SEED_PUBLIC_KEY" "$REPLICA_NAME"
}

# authorized_keys_with [LINE] : the account's authorized_keys without this replica's line, plus LINE.
authorized_keys_with() {
    local file
    file="$(seed_home)/.ssh/authorized_keys"
    { [[ -f "$file" ]] && grep -v " pi-cluster-replica:${REPLICA_NAME}\$" "$file"; printf '%s' "${1:-}"; } || true
}

apply() {
    apt_install mariadb-backup
    # The seeding account, as the backup target's: a shell for the forced command, no password.
    if ! id -u "$SEED_USER" >/dev/null 2>&1; then
        useradd --system --home-dir "$(seed_home)" --no-create-home --shell /bin/sh --user-group "$SEED_USER"
        info "made user $SEED_USER"
    fi
    [[ "$(getent shadow "$SEED_USER" | cut -d: -f2)" == "*" ]] || usermod -p '*' "$SEED_USER"
    install -d -m 0755 -o root -g root "$(seed_home)" "$(seed_home)/.ssh"
    put_file "$STREAM_TEXT" "$STREAM_TOOL" 0755 || true
    local check
    check=$(mktemp)
    printf '%s' "$SUDOERS_TEXT" >"$check"
    visudo -cqf "$check" || fatal "visudo refused the rendered sudoers entry"
    rm -f "$check"
    put_file "$SUDOERS_TEXT" "$SUDOERS" 0440 || true
    # Two replicas' steps can run at once here: one writer of authorized_keys at a time.
    exec 8>/run/pi-cluster-seed-keys.lock
    flock 8
    put_file "$(authorized_keys_with "$(authorized_line)")" "$(seed_home)/.ssh/authorized_keys" 0644 || true
    exec 8>&-

    grant_only "$REPL_USER" "$REPLICA_ADDRESS" "$REPL_PASSWORD" "REPLICATION SLAVE"
    local reload=0
    pending_begin "replica-client-$REPLICA_NAME" && reload=1
    put_file "$CLIENT_TEXT" "$CLIENT_FILE" 0644 && reload=1
    if ((reload)); then
        nft -f "$RULESET"
        info "firewall reloaded: 3306 open to $REPLICA_ADDRESS ($REPLICA_NAME)"
    fi
    pending_done "replica-client-$REPLICA_NAME"
    info "$REPLICA_NAME ($REPLICA_ADDRESS) may replicate from here and be seeded"
}

delete() {
    if [[ -f "$CLIENT_FILE" ]]; then
        rm -f "$CLIENT_FILE"
        [[ -f "$RULESET" ]] && nft -f "$RULESET"
        info "removed the firewall rule for $REPLICA_NAME"
    fi
    if [[ -f "$(seed_home)/.ssh/authorized_keys" ]]; then
        exec 8>/run/pi-cluster-seed-keys.lock
        flock 8
        put_file "$(authorized_keys_with)" "$(seed_home)/.ssh/authorized_keys" 0644 || true
        exec 8>&-
    fi
    if systemctl is-active --quiet mariadb; then
        mariadb_sql <<<"DROP USER IF EXISTS $(sql_quote "$REPL_USER")@$(sql_quote "$REPLICA_ADDRESS");"
    fi
    info "$REPLICA_NAME ($REPLICA_ADDRESS) can no longer replicate from here"
}

# verify: the replication user from the replica's address with exactly its grant and the
# stack's password, the 3306 rule, the seeding account's line, tool and sudoers entry.
verify() {
    expect_file "$CLIENT_TEXT" "$CLIENT_FILE" 0644
    expect_file "$STREAM_TEXT" "$STREAM_TOOL" 0755
    expect_file "$SUDOERS_TEXT" "$SUDOERS" 0440
    grep -qxF "$(authorized_line)" "$(seed_home)/.ssh/authorized_keys" 2>/dev/null ||
        drift "$(seed_home)/.ssh/authorized_keys: $REPLICA_NAME's seeding key is missing or changed"
    expect_grant "$REPL_USER" "$REPLICA_ADDRESS" "$REPL_PASSWORD" "REPLICATION SLAVE"
}

main "$@" </dev/null
