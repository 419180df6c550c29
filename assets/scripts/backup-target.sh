#!/usr/bin/env bash
# Step "backup-target": the account the database Pi ships its backups to. Its own system
# user, whose only key is the database Pi's, accepted from the database's address only and
# forced to run the tool's receiver (no shell, no forwarding); the backups directory, which
# only it can write; the tool and its settings (retention); and a weekly re-hash of every
# file. Nothing here can decrypt a backup. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP               log prefix
#   BACKUP_USER        the account;  BACKUP_DIR the backups directory
#   TOOL_TEXT           the backup tool;  TOOL its path
#   ENV_TEXT            the tool's settings;  ENV_FILE their path
#   AUTHORIZED_TEXT     the account's authorized_keys (root-owned, so the account cannot widen it)
#   UNIT_NAMES         unit file names (array);  UNIT_<i>_TEXT the text of UNIT_NAMES[i];  TIMER the one to enable
set -euo pipefail

# @vars

# @lib

readonly UNIT_DIR=/etc/systemd/system

apply() {
    local home="/var/lib/$BACKUP_USER"
    if ! id -u "$BACKUP_USER" >/dev/null 2>&1; then
        # A shell, as sshd runs the forced command through it; no password, so no other login.
        useradd --system --home-dir "$home" --no-create-home --shell /bin/sh --user-group "$BACKUP_USER"
        info "made user $BACKUP_USER"
    fi
    # useradd locks the account ("!"), and sshd refuses a locked account when it does not
    # use PAM; "*" is no password at all, so the key is the only way in.
    [[ "$(getent shadow "$BACKUP_USER" | cut -d: -f2)" == "*" ]] || usermod -p '*' "$BACKUP_USER"
    install -d -m 0755 -o root -g root "$home" "$home/.ssh"
    install -d -m 0700 -o "$BACKUP_USER" -g "$BACKUP_USER" "$BACKUP_DIR"
    put_file "$TOOL_TEXT" "$TOOL" 0755 || true
    put_file "$ENV_TEXT" "$ENV_FILE" 0644 || true
    put_file "$AUTHORIZED_TEXT" "$home/.ssh/authorized_keys" 0644 || true
    local i changed=0 text
    for i in "${!UNIT_NAMES[@]}"; do
        text="UNIT_${i}_TEXT"
        put_file "${!text}" "$UNIT_DIR/${UNIT_NAMES[i]}" 0644 && changed=1
    done
    for i in "${!UNIT_NAMES[@]}"; do
        [[ "${UNIT_NAMES[i]}" == *.service ]] && verify_unit "$UNIT_DIR/${UNIT_NAMES[i]}"
    done
    ((changed)) && systemctl daemon-reload
    systemctl is-enabled --quiet "$TIMER" 2>/dev/null || systemctl enable --quiet --now "$TIMER"
    info "backup target ready: $BACKUP_USER@$(hostname):$BACKUP_DIR"
}

delete() {
    systemctl disable --now --quiet "$TIMER" 2>/dev/null || true
    local n
    for n in "${UNIT_NAMES[@]}"; do remove_paths "$UNIT_DIR/$n"; done
    systemctl daemon-reload
    # The account goes, so nothing can ship here any more; the backups are data and stay.
    remove_paths "/var/lib/$BACKUP_USER/.ssh" "$TOOL" "$ENV_FILE"
    info "backup target closed; $BACKUP_DIR is kept"
}

# expect_units : each unit as rendered.
expect_units() {
    local i text
    for i in "${!UNIT_NAMES[@]}"; do
        text="UNIT_${i}_TEXT"
        expect_file "${!text}" "$UNIT_DIR/${UNIT_NAMES[i]}" 0644
    done
}

# verify: the account with no password and only the database's forced key, the backups
# directory its own, the tool, its settings and units as rendered, the re-hash timer on.
verify() {
    local home="/var/lib/$BACKUP_USER"
    if ! id -u "$BACKUP_USER" >/dev/null 2>&1; then
        drift "user $BACKUP_USER: missing"
        return 0
    fi
    [[ "$(getent shadow "$BACKUP_USER" | cut -d: -f2)" == "*" ]] || drift "user $BACKUP_USER: has a password or is locked, expected none (*)"
    [[ "$(stat -c '%a %U' "$BACKUP_DIR" 2>/dev/null)" == "700 $BACKUP_USER" ]] || drift "$BACKUP_DIR: expected mode 700, owned by $BACKUP_USER"
    expect_file "$TOOL_TEXT" "$TOOL" 0755
    expect_file "$ENV_TEXT" "$ENV_FILE" 0644
    expect_file "$AUTHORIZED_TEXT" "$home/.ssh/authorized_keys" 0644
    expect_units
    expect_service "$TIMER"
}

main "$@" </dev/null
