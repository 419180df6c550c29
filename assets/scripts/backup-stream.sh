#!/usr/bin/env bash
# Step "stream" of the backup target: the service that streams the database's binlog into
# the backups directory as it is written (pi-cluster-binlog-stream, as the backup account).
# Its delete stops it and removes what it installed and the copies of the current series
# (the database still holds those files, and its shipper sends them); an older series'
# copies stay, as they may hold a lost database's last writes.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP            log prefix
#   PACKAGES        packages the stream needs (array)
#   BACKUP_USER     the backup account (made by the target's step);  BACKUP_DIR its directory
#   TOOL_TEXT        the stream tool;  TOOL its path
#   ENV_TEXT         its settings;  ENV_FILE their path
#   CA_TEXT          the database's CA;  CA_FILE its path
#   CLIENT_CNF_TEXT  the stream account's password as a client option file (secret);  CLIENT_CNF its path
#   UNIT_TEXT        the service;  UNIT its name
set -euo pipefail

# @vars

# @lib

unit_path() { printf '/etc/systemd/system/%s.service' "$UNIT"; }

apply() {
    id -u "$BACKUP_USER" >/dev/null 2>&1 || fatal "user $BACKUP_USER is missing: the backup target's step makes it first"
    [[ -d "$BACKUP_DIR" ]] || fatal "$BACKUP_DIR is missing: the backup target's step makes it first"
    apt_install "${PACKAGES[@]}"
    local changed=0
    pending_begin "$UNIT" && changed=1
    put_file "$TOOL_TEXT" "$TOOL" 0755 && changed=1
    put_file "$ENV_TEXT" "$ENV_FILE" 0644 && changed=1
    put_file "$CA_TEXT" "$CA_FILE" 0644 && changed=1
    put_file "$CLIENT_CNF_TEXT" "$CLIENT_CNF" 0600 "$BACKUP_USER:$BACKUP_USER" && changed=1
    if put_file "$UNIT_TEXT" "$(unit_path)" 0644; then
        verify_unit "$(unit_path)"
        systemctl daemon-reload
        changed=1
    fi
    systemctl is-enabled --quiet "$UNIT" 2>/dev/null || systemctl enable --quiet "$UNIT"
    if ((changed)) || ! systemctl is-active --quiet "$UNIT"; then
        systemctl restart "$UNIT"
        info "started $UNIT"
    fi
    pending_done "$UNIT"
    info "$UNIT is $(systemctl is-active "$UNIT" || true); its status: $BACKUP_DIR/.stream.json"
}

delete() {
    local series
    if [[ -f "$TOOL" ]] && id -u "$BACKUP_USER" >/dev/null 2>&1; then
        systemctl disable --now --quiet "$UNIT" 2>/dev/null || true
        runuser -u "$BACKUP_USER" -- "$TOOL" tidy || true
    fi
    remove_paths "$(unit_path)" "$TOOL" "$ENV_FILE" "$CA_FILE" "$CLIENT_CNF" "$BACKUP_DIR/.stream.json"
    systemctl daemon-reload
    series=$(head -n1 "$BACKUP_DIR/.series" 2>/dev/null || true)
    [[ -z "$series" || "$series" == */* ]] || remove_paths "$BACKUP_DIR/stream/$series"
    rmdir "$BACKUP_DIR/stream" 2>/dev/null || true
    info "the binlog stream is off; the shipper alone sends the binlog"
}

# verify: the files as rendered, the password file the backup account's alone, the service running.
verify() {
    expect_packages "${PACKAGES[@]}"
    expect_file "$TOOL_TEXT" "$TOOL" 0755
    expect_file "$ENV_TEXT" "$ENV_FILE" 0644
    expect_file "$CA_TEXT" "$CA_FILE" 0644
    expect_file "$CLIENT_CNF_TEXT" "$CLIENT_CNF" 0600 "$BACKUP_USER:$BACKUP_USER"
    expect_file "$UNIT_TEXT" "$(unit_path)" 0644
    expect_service "$UNIT"
}

main "$@" </dev/null
