#!/usr/bin/env bash
# Full recovery's data step, on the database Pi (`npx pi-cluster recover --all --db-data
# FILE`). Not a step of `pulumi up`: the recover command runs it over SSH after the up, with
#   restore   puts the data directory archived in ARCHIVE (a tar.gz of MariaDB's data
#             directory, taken with MariaDB stopped) in place of DATADIR, and starts MariaDB
#             on it. What DATADIR held is kept beside it (DATADIR.before-restore-TIME), never
#             deleted. The backup timers' locks are held meanwhile, and their state of the
#             old data forgotten after (the next backup starts a new chain and binlog
#             series), then a full of the restored data starts at once.
# Run as root via `sudo bash -s -- restore`. Exits 1, with the data directory as it was and
# MariaDB running on it, when the archive holds no data directory or MariaDB did not stop.
# Reads:
#   STEP             log prefix
#   ARCHIVE          the uploaded archive (root's, 0600); removed once restored
#   DATADIR          MariaDB's data directory
#   DB_OWNER         its owner, user:group
#   BACKUP_STATE     the backup tool's state directory (its locks and chain state)
#   FULL_UNIT        the full backup's service
set -euo pipefail

# @vars

# @lib

restore() {
    [[ -s "$ARCHIVE" ]] || fatal "no archive at $ARCHIVE"
    tar -tzf "$ARCHIVE" ./mysql/ >/dev/null 2>&1 || fatal "the archive holds no MariaDB data directory (no ./mysql/ in it); nothing changed"
    # A backup running now would read the data as it is replaced, and a shipper would take
    # the restored server's binlogs for the old ones it shipped: hold both locks.
    if [[ -d "$BACKUP_STATE" ]]; then
        exec 7>"$BACKUP_STATE/backup.lock" 8>"$BACKUP_STATE/ship.lock"
        info "waiting for a running backup or shipment to end"
        flock 7
        flock 8
    fi
    systemctl stop mariadb
    # Any MariaDB server left running, whoever started it, would write into the moved directory.
    if pgrep -x mariadbd >/dev/null; then
        systemctl start mariadb
        fatal "MariaDB did not stop (mariadbd pid(s) $(pgrep -x mariadbd | tr '\n' ' ')still run); nothing changed"
    fi
    local aside
    aside="$DATADIR.before-restore-$(date -u +%Y%m%d%H%M%S)"
    rm -rf "$DATADIR.incoming"
    install -d -m 0755 -o "${DB_OWNER%%:*}" -g "${DB_OWNER##*:}" "$DATADIR.incoming"
    tar -xzf "$ARCHIVE" -C "$DATADIR.incoming" --no-same-owner
    chown -R "$DB_OWNER" "$DATADIR.incoming"
    [[ -e "$DATADIR" ]] && mv "$DATADIR" "$aside"
    mv "$DATADIR.incoming" "$DATADIR"
    info "kept what was in $DATADIR as $aside"
    if [[ -d "$BACKUP_STATE" ]]; then
        # The next backup starts a new chain on the restored data, and its binlogs are a new series.
        rm -rf "$BACKUP_STATE/lsn" "$BACKUP_STATE/chain" "$BACKUP_STATE/shipped" "$BACKUP_STATE/flushed-at" "$BACKUP_STATE/series"
    fi
    systemctl start mariadb
    rm -f "$ARCHIVE"
    info "MariaDB runs on the restored data"
    if systemctl cat "$FULL_UNIT" >/dev/null 2>&1; then
        systemctl start --no-block "$FULL_UNIT"
        info "started a full backup of the restored data ($FULL_UNIT)"
    fi
}

main() {
    case "${1:-}" in
    restore) restore ;;
    *) fatal "unknown action '${1:-}': expected restore" ;;
    esac
}

main "$@" </dev/null
