#!/usr/bin/env bash
# Step "replica" (on a read replica): GTID replication from the database, TLS verified
# against the database's CA.
#   - A new replica (or one whose data is not a copy of this database) is seeded from a
#     mariadb-backup stream of the database over SSH (its seeding account runs only that),
#     which takes no lock on the database's writes; the stream is unpacked, prepared and
#     moved in, and replication starts at the backup's GTID.
#   - A replica that follows another host (the database moved: a promotion) is pointed at
#     the new one by GTID, and seeded again only if the new one cannot serve its position.
#   - A changed password or CA is applied in place; stopped threads are started.
#   - It never seeds over a data directory that holds the app's data (its database with
#     rows: a promoted database, a replica cut off from its database), unless the config's
#     reseed generation for this replica was bumped since its last seed. A bump seeds it
#     again whatever it holds (the restore does, after replacing the database's data).
# The step returns once the replica has caught up with the database's position at that
# moment, so the web servers, which come after it, read fresh data from the start.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP              log prefix
#   PRIMARY_ADDRESS   the database;  PRIMARY_PORT its MariaDB port;  PRIMARY_SSH_PORT its SSH port
#   KNOWN_HOSTS_TEXT   its pinned SSH host key;  KNOWN_HOSTS the path
#   PRIMARY_CA_TEXT    the CA of its MariaDB certificate;  PRIMARY_CA the path
#   SEED_USER         the seeding account on it;  KEY this replica's key (the seed-key step made it)
#   REPL_USER         the replication user;  REPL_PASSWORD its password (secret; to MariaDB on stdin)
#   CATCH_UP_SECONDS  how long the step waits for the replica to catch up
#   NAME              this replica's name, for messages;  DB_NAME the app's database
#   RESEED            the config's reseed generation for it;  RESEED_FILE where the last seed's is kept
#   SEED_DIR          where a seed stream is unpacked and prepared
#   REPLICA_STATE_DIR  this step's own state (what the replica was pointed at, a seed under way)
set -euo pipefail

# @vars

# @lib

readonly DATADIR=/var/lib/mysql
# What the replica was last pointed at (address and a digest of the settings), 0600.
readonly PARAMS_FILE=$REPLICA_STATE_DIR/params
# Present while a seed runs: what a seed cut short leaves is its own, not the app's data.
readonly SEEDING_FILE=$REPLICA_STATE_DIR/seeding

slave_status() { mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G' 2>/dev/null || true; }

# field NAME STATUS : one field of SHOW SLAVE STATUS\G.
field() {
    awk -v k="$1" '{ i = index($0, ": "); if (i == 0) next; n = substr($0, 1, i - 1); gsub(/^ +/, "", n); if (n == k) { print substr($0, i + 2); exit } }' <<<"$2"
}

params_digest() {
    printf '%s\n' "$PRIMARY_ADDRESS" "$PRIMARY_PORT" "$REPL_USER" "$REPL_PASSWORD" "$PRIMARY_CA" "$PRIMARY_CA_TEXT" | sha256sum | cut -d' ' -f1
}

change_master_sql() {
    printf "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_SSL=1, MASTER_SSL_CA=%s, MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_CONNECT_RETRY=2, MASTER_HEARTBEAT_PERIOD=1;\n" \
        "$(sql_quote "$PRIMARY_ADDRESS")" "$PRIMARY_PORT" "$(sql_quote "$REPL_USER")" "$(sql_quote "$REPL_PASSWORD")" "$(sql_quote "$PRIMARY_CA")"
}

remember_params() {
    install -d -m 0700 "$REPLICA_STATE_DIR"
    (umask 077 && printf '%s %s\n' "$PRIMARY_ADDRESS" "$(params_digest)" >"$PARAMS_FILE")
}

# primary_sql SQL : runs SQL on the database as the replication user (TLS, verified), with
# the password in a 0600 file, never on a command line.
primary_sql() {
    local cnf rc=0
    cnf=$(mktemp)
    printf '[client]\npassword=%s\n' "$REPL_PASSWORD" >"$cnf"
    mariadb --defaults-extra-file="$cnf" -N -B --host="$PRIMARY_ADDRESS" --port="$PRIMARY_PORT" --user="$REPL_USER" \
        --ssl --ssl-ca="$PRIMARY_CA" --ssl-verify-server-cert -e "$1" || rc=$?
    rm -f "$cnf"
    return $rc
}

seed() {
    info "seeding from $PRIMARY_ADDRESS: a mariadb-backup stream of it (no lock on its writes)"
    local t0=$SECONDS gtid
    install -d -m 0700 "$REPLICA_STATE_DIR"
    : >"$SEEDING_FILE"
    systemctl stop mariadb
    rm -rf "$SEED_DIR"
    install -d -m 0700 "$SEED_DIR"
    ssh -i "$KEY" -p "$PRIMARY_SSH_PORT" -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile="$KNOWN_HOSTS" \
        -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o LogLevel=ERROR "$SEED_USER@$PRIMARY_ADDRESS" |
        mbstream -x -C "$SEED_DIR" || fatal "the seeding stream from $PRIMARY_ADDRESS failed (its log: /var/log/pi-cluster-seed.log there)"
    mariadb-backup --prepare --target-dir="$SEED_DIR" >"$SEED_DIR.log" 2>&1 || fatal "preparing the seed failed (see $SEED_DIR.log)"
    gtid=$(awk '{print $3}' "$SEED_DIR/mariadb_backup_binlog_info" 2>/dev/null || true)
    [[ "$gtid" =~ ^[0-9]+-[0-9]+-[0-9]+(,[0-9]+-[0-9]+-[0-9]+)*$ ]] || fatal "the seed carries no GTID position (is the binlog on at $PRIMARY_ADDRESS?)"
    # One copy of what was here is kept, as the restore does.
    rm -rf "$DATADIR.before-seed"
    [[ -d "$DATADIR" ]] && mv "$DATADIR" "$DATADIR.before-seed"
    install -d -m 0755 -o mysql -g mysql "$DATADIR"
    mariadb-backup --move-back --target-dir="$SEED_DIR" --datadir="$DATADIR" >>"$SEED_DIR.log" 2>&1 || fatal "moving the seed in failed (see $SEED_DIR.log)"
    chown -R mysql:mysql "$DATADIR"
    rm -rf "$SEED_DIR"
    systemctl start mariadb
    # The backup's position can be a few transactions behind the pages it copied (seen with
    # 11.8, scripts/restore.sh says more): the catch-up applies row images idempotently,
    # then the replica goes back to strict.
    mariadb_sql <<<"STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = $(sql_quote "$gtid"); SET GLOBAL slave_exec_mode = 'IDEMPOTENT';
$(change_master_sql)
START SLAVE;"
    remember_params
    # Only a seed that got this far counts: one cut short is seeded again by the next run.
    printf '%s\n' "$RESEED" >"$RESEED_FILE"
    rm -f "$SEEDING_FILE"
    info "seeded in $((SECONDS - t0)) s at GTID $gtid; replicating"
}

# last_seed : the reseed generation of the last seed here (0 when none was recorded).
last_seed() {
    local n
    n=$(cat "$RESEED_FILE" 2>/dev/null || true)
    [[ "$n" =~ ^[0-9]+$ ]] && echo "$n" || echo 0
}

# app_tables_with_rows : the app's tables that hold at least one row here, space-separated.
app_tables_with_rows() {
    local t found=()
    for t in $(mariadb_sql -e "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = $(sql_quote "$DB_NAME") AND TABLE_TYPE = 'BASE TABLE'"); do
        [[ "$(mariadb_sql -e "SELECT EXISTS (SELECT 1 FROM \`$DB_NAME\`.\`$t\`)")" == 1 ]] && found+=("$t")
    done
    echo "${found[*]}"
}

# guarded_seed WHY : seeds, unless this data directory holds the app's data (then stops,
# naming the reseed flag): a seed replaces it with the database's.
guarded_seed() {
    local tables
    if [[ -f "$SEEDING_FILE" ]]; then
        info "$1: the seed before was cut short, so what is here is that seed's: seeding again"
        seed
        return
    fi
    tables=$(app_tables_with_rows)
    if [[ -n "$tables" ]]; then
        fatal "$1, and $NAME holds the app's data ($DB_NAME, rows in: $tables): seeding would replace it with $PRIMARY_ADDRESS's. Nothing was changed. If it is a replica to seed again from $PRIMARY_ADDRESS, bump its reseed generation (pulumi config set --path 'pi-cluster:reseed.$NAME' $(($(last_seed) + 1))) and run pulumi up again; if it holds the stack's only copy (a promoted database), make the stack config name it the database (database, dbReplicas) instead"
    fi
    seed
}

# caught_up : waits until the replica has applied the database's position of now.
caught_up() {
    local target left st
    target=$(primary_sql 'SELECT @@gtid_binlog_pos') || fatal "cannot read the database's GTID position as $REPL_USER over TLS"
    left=$CATCH_UP_SECONDS
    while ((left > 0)); do
        st=$(slave_status)
        if [[ "$(field Slave_IO_Running "$st")" != Yes && -n "$(field Last_IO_Error "$st")" ]] || [[ "$(field Slave_SQL_Running "$st")" != Yes && -n "$(field Last_SQL_Error "$st")" ]]; then
            return 1
        fi
        [[ "$(mariadb_sql -e "SELECT MASTER_GTID_WAIT($(sql_quote "$target"), 5)")" == 0 ]] && return 0
        left=$((left - 5))
    done
    return 1
}

# semi_sync_follows : the IO thread acks semi-sync writes exactly when rpl_semi_sync_slave_enabled says.
semi_sync_follows() {
    [[ "$(mariadb_sql -e "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'" | cut -f2)" == "$(mariadb_sql -e "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_slave_enabled'" | cut -f2)" ]]
}

# semi_sync_ack : a replica acks only from its IO thread's next start after
# rpl_semi_sync_slave_enabled changed (the mariadb step sets it live), so the IO thread is
# restarted when they disagree. What it received stays in the relay log.
semi_sync_ack() {
    local i
    semi_sync_follows && return 0
    mariadb_sql -e 'STOP SLAVE IO_THREAD; START SLAVE IO_THREAD'
    # It follows once the IO thread has asked the database for the stream again.
    for ((i = 0; i < 50; i++)); do
        semi_sync_follows && { info "IO thread restarted: Rpl_semi_sync_slave_status $(mariadb_sql -e "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'" | cut -f2)"; return 0; }
        sleep 0.2
    done
    fatal "the IO thread restarted but does not follow rpl_semi_sync_slave_enabled: $(field Last_IO_Error "$(slave_status)")"
}

apply() {
    apt_install mariadb-server mariadb-backup openssh-client
    put_file "$PRIMARY_CA_TEXT" "$PRIMARY_CA" 0644 || true
    put_file "$KNOWN_HOSTS_TEXT" "$KNOWN_HOSTS" 0644 || true
    systemctl is-active --quiet mariadb || systemctl start mariadb
    local st host was digest
    st=$(slave_status)
    host=$(field Master_Host "$st")
    read -r was digest <"$PARAMS_FILE" 2>/dev/null || true
    if ((RESEED > $(last_seed))); then
        info "reseed generation $RESEED (the last seed's: $(last_seed)): seeding again over what is here"
        seed
    elif [[ -z "$host" || "$was" != "$host" ]]; then
        # Not replicating, or not from what this step set up (a wiped or foreign data dir).
        guarded_seed "$NAME is not replicating from $PRIMARY_ADDRESS"
    elif [[ "$host" != "$PRIMARY_ADDRESS" ]]; then
        info "following $PRIMARY_ADDRESS instead of $host (the database moved): by GTID"
        mariadb_sql <<<"STOP SLAVE; $(change_master_sql) START SLAVE;"
        remember_params
    elif [[ "$digest" != "$(params_digest)" ]]; then
        info "replication settings changed (password or CA): applied in place"
        mariadb_sql <<<"STOP SLAVE; $(change_master_sql) START SLAVE;"
        remember_params
    elif [[ "$(field Slave_IO_Running "$st")" != Yes || "$(field Slave_SQL_Running "$st")" != Yes ]]; then
        info "replication threads were stopped: started"
        mariadb_sql <<<"START SLAVE;"
    fi
    if ! caught_up; then
        st=$(slave_status)
        if [[ "$(field Last_IO_Errno "$st")" == 1236 ]]; then
            # The database cannot serve this replica's position (a new primary without it).
            info "$PRIMARY_ADDRESS cannot serve this replica's GTID position: seeding again"
            guarded_seed "$PRIMARY_ADDRESS cannot serve $NAME's GTID position ($(field Last_IO_Error "$st"))"
            caught_up || fatal "the replica did not catch up within ${CATCH_UP_SECONDS} s: $(field Last_IO_Error "$(slave_status)") $(field Last_SQL_Error "$(slave_status)")"
        else
            fatal "the replica did not catch up within ${CATCH_UP_SECONDS} s: IO $(field Slave_IO_Running "$st") $(field Last_IO_Error "$st"); SQL $(field Slave_SQL_Running "$st") $(field Last_SQL_Error "$st")"
        fi
    fi
    [[ "$(mariadb_sql -e 'SELECT @@global.slave_exec_mode')" == STRICT ]] || mariadb_sql -e "SET GLOBAL slave_exec_mode = 'STRICT'"
    semi_sync_ack
    info "replicating from $PRIMARY_ADDRESS, caught up at $(mariadb_sql -e 'SELECT @@gtid_slave_pos'), lag $(field Seconds_Behind_Master "$(slave_status)") s"
}

delete() {
    if systemctl is-active --quiet mariadb; then
        mariadb_sql <<<"STOP SLAVE; RESET SLAVE ALL;" || true
        info "replication stopped and forgotten (the data stays)"
    fi
    remove_paths "$PARAMS_FILE" "$RESEED_FILE" "$SEEDING_FILE" "$PRIMARY_CA" "$KNOWN_HOSTS"
}

# verify: replicating from the database with the stack's settings, both threads running,
# read-only.
verify() {
    local st was digest
    expect_file "$PRIMARY_CA_TEXT" "$PRIMARY_CA" 0644
    expect_file "$KNOWN_HOSTS_TEXT" "$KNOWN_HOSTS" 0644
    st=$(slave_status)
    [[ "$(field Master_Host "$st")" == "$PRIMARY_ADDRESS" ]] || drift "replication: from '$(field Master_Host "$st")', expected $PRIMARY_ADDRESS"
    local err
    err=$(field Last_IO_Error "$st")
    [[ "$(field Slave_IO_Running "$st")" == Yes ]] || drift "replication: IO thread not running (${err:-stopped})"
    err=$(field Last_SQL_Error "$st")
    [[ "$(field Slave_SQL_Running "$st")" == Yes ]] || drift "replication: SQL thread not running (${err:-stopped})"
    [[ "$(field Slave_IO_Running "$st")" != Yes ]] || semi_sync_follows || drift "replication: the IO thread does not ack semi-sync as rpl_semi_sync_slave_enabled says (scripts/recover.sh restarts it)"
    read -r was digest <"$PARAMS_FILE" 2>/dev/null || true
    [[ "$was $digest" == "$PRIMARY_ADDRESS $(params_digest)" ]] || drift "replication: settings differ from the stack's (password, CA or address)"
    [[ "$(mariadb_sql -e 'SELECT @@global.read_only' 2>/dev/null)" == 1 ]] || drift "mariadb: read_only is off on a replica"
}

main "$@" </dev/null
