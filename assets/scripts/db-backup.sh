#!/usr/bin/env bash
# Step "backup": the database Pi's backups. mariadb-backup, age and zstd from Debian, the
# backup tool, its settings (the target and the age PUBLIC key only), the Pi's own SSH key
# for the target (made here, once; its private half never leaves this Pi), the target's
# pinned host key, and the timers: full, incremental and binlog shipping. The last line of
# stdout carries the public key to the target's step.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP              log prefix
#   PACKAGES          Debian packages the tool needs (array)
#   TOOL_TEXT          the backup tool;  TOOL its path
#   RESTORE_TEXT       the restore helper (scripts/restore.sh drives it);  RESTORE_TOOL its path
#   ENV_TEXT           the tool's settings;  ENV_FILE their path
#   STATE_DIR         the tool's state;  KEY its SSH key there;  KNOWN_HOSTS_TEXT / KNOWN_HOSTS the target's host key
#   UNIT_NAMES        unit file names (array);  UNIT_<i>_TEXT the text of UNIT_NAMES[i]
#   TIMERS            the timers to enable (array);  FIRST_FULL the full backup's service, started when no full exists yet
#   PUBLIC_KEY_MARK   the word before the public key on stdout
set -euo pipefail

# @vars

# @lib

readonly UNIT_DIR=/etc/systemd/system

apply() {
    apt_install "${PACKAGES[@]}"
    put_file "$TOOL_TEXT" "$TOOL" 0755 || true
    put_file "$RESTORE_TEXT" "$RESTORE_TOOL" 0755 || true
    put_file "$ENV_TEXT" "$ENV_FILE" 0644 || true
    install -d -m 0700 "$STATE_DIR" "$(dirname "$KEY")"
    if [[ ! -f "$KEY" ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "pi-cluster-backup@$(hostname)" -f "$KEY"
        info "made this Pi's SSH key for the backup target"
    fi
    put_file "$KNOWN_HOSTS_TEXT" "$KNOWN_HOSTS" 0644 || true
    local i changed=0 dir text
    dir=$(mktemp -d)
    for i in "${!UNIT_NAMES[@]}"; do
        text="UNIT_${i}_TEXT"
        printf '%s' "${!text}" >"$dir/${UNIT_NAMES[i]}"
    done
    # Checked together, as a timer names its service.
    for i in "${!UNIT_NAMES[@]}"; do
        [[ "${UNIT_NAMES[i]}" == *.service ]] && verify_unit "$dir/${UNIT_NAMES[i]}"
    done
    rm -rf "$dir"
    for i in "${!UNIT_NAMES[@]}"; do
        text="UNIT_${i}_TEXT"
        put_file "${!text}" "$UNIT_DIR/${UNIT_NAMES[i]}" 0644 && changed=1
    done
    ((changed)) && systemctl daemon-reload
    local t
    for t in "${TIMERS[@]}"; do
        systemctl is-enabled --quiet "$t" 2>/dev/null || systemctl enable --quiet "$t"
        if ((changed)) || ! systemctl is-active --quiet "$t"; then systemctl restart "$t"; fi
    done
    # The first full at once (and after a restore, which clears the chain, and on a tool from
    # before binlog series, whose first run starts a series): incrementals and binlogs need
    # one of their series to build on. If the target's step has not run yet, the unit retries.
    if [[ ! -f "$STATE_DIR/chain" || ! -f "$STATE_DIR/series" ]] && ! systemctl is-active --quiet "$FIRST_FULL"; then
        systemctl start --no-block "$FIRST_FULL"
        info "first full backup started"
    fi
    info "backups scheduled: $(systemctl list-timers --no-legend "${TIMERS[@]}" | awk '{print $NF}' | paste -sd' ')"
    printf '%s %s\n' "$PUBLIC_KEY_MARK" "$(cut -d' ' -f1-2 "$KEY.pub")"
}

delete() {
    local t
    for t in "${TIMERS[@]}"; do systemctl disable --now --quiet "$t" 2>/dev/null || true; done
    local n
    # A run going now (the first full waiting for the target, say) stops before its tool, key
    # and state go: left running, it went on with them gone after the next up had made new
    # ones, failed, and showed as drift (CI, the replica suite after the cluster suite's destroy).
    for n in "${UNIT_NAMES[@]}"; do
        [[ "$n" == *.service ]] && systemctl stop "$n" 2>/dev/null || true
    done
    for n in "${UNIT_NAMES[@]}"; do remove_paths "$UNIT_DIR/$n"; done
    systemctl daemon-reload
    # And no unit stays behind in systemd as failed.
    for n in "${UNIT_NAMES[@]}"; do systemctl reset-failed "$n" 2>/dev/null || true; done
    remove_paths "$TOOL" "$RESTORE_TOOL" "$ENV_FILE" "$STATE_DIR"
    info "backups off on this Pi; the backups on the target stay"
}

# expect_backup_runs : a backup run that failed is drift: its unit is failed, or the tool's
# record of that kind's last run ($STATE_DIR/last-KIND.json) says FAILED, with its reason.
expect_backup_runs() {
    local i f detail
    for i in "${!UNIT_NAMES[@]}"; do
        [[ "${UNIT_NAMES[i]}" == *.service ]] || continue
        if systemctl is-failed --quiet "${UNIT_NAMES[i]}" 2>/dev/null; then
            drift "service ${UNIT_NAMES[i]}: its last run failed (journalctl -u ${UNIT_NAMES[i]})"
        fi
    done
    for f in "$STATE_DIR"/last-*.json; do
        [[ -f "$f" ]] && grep -q '"outcome":"FAILED"' "$f" || continue
        detail=$(sed -n 's/.*"at":"\([^"]*\)","detail":"\(.*\)"}$/at \1: \2/p' "$f")
        f=${f##*/last-}
        drift "backup: the last ${f%.json} run failed ${detail:-(see $STATE_DIR)}"
    done
}

# verify: the packages, the tool, the restore helper, their settings and units as rendered,
# this Pi's key for the target, every timer on, and no backup run failed.
verify() {
    local i text t
    expect_packages "${PACKAGES[@]}"
    expect_file "$TOOL_TEXT" "$TOOL" 0755
    expect_file "$RESTORE_TEXT" "$RESTORE_TOOL" 0755
    expect_file "$ENV_TEXT" "$ENV_FILE" 0644
    expect_file "$KNOWN_HOSTS_TEXT" "$KNOWN_HOSTS" 0644
    [[ -s "$KEY" ]] || drift "$KEY: missing (the target knows another key: run the step again)"
    for i in "${!UNIT_NAMES[@]}"; do
        text="UNIT_${i}_TEXT"
        expect_file "${!text}" "$UNIT_DIR/${UNIT_NAMES[i]}" 0644
    done
    for t in "${TIMERS[@]}"; do expect_service "$t"; done
    expect_backup_runs
}

main "$@" </dev/null
