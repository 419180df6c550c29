#!/usr/bin/env bash
# Step "backup-metrics" (monitoring on, on the backup target when Prometheus scrapes it): the
# target's status.json and binlog stream report as Prometheus metrics, in node-exporter's
# textfile directory, rewritten by a timer (assets/backup/pi-cluster-backup-metrics.py;
# the alerts on them are in components/render/alerts.ts). Delete removes the script, the
# units and the metrics file. Run as root via `sudo bash -s -- apply|delete|verify`.
# Reads:
#   STEP          log prefix
#   SCRIPT_TEXT   the converter;  SCRIPT where it goes
#   UNIT          the service and timer's name (UNIT.service, UNIT.timer)
#   SERVICE_TEXT  UNIT.service;  TIMER_TEXT UNIT.timer
#   TEXTFILE_DIR  node-exporter's textfile directory;  METRICS_FILE the file in it
set -euo pipefail

# @vars

# @lib

apply() {
    local changed=0
    install -d -m 0755 "$TEXTFILE_DIR"
    put_file "$SCRIPT_TEXT" "$SCRIPT" 0755 && changed=1
    put_file "$SERVICE_TEXT" "/etc/systemd/system/$UNIT.service" 0644 && changed=1
    put_file "$TIMER_TEXT" "/etc/systemd/system/$UNIT.timer" 0644 && changed=1
    if ((changed)); then
        verify_unit "/etc/systemd/system/$UNIT.service"
        verify_unit "/etc/systemd/system/$UNIT.timer"
        systemctl daemon-reload
    fi
    # One run now, so the metrics are there before the first tick; it fails the step when the
    # converter cannot run here (its log is in the error).
    systemctl start "$UNIT.service" || fatal "$UNIT.service failed: $(journalctl -u "$UNIT.service" -n 20 --no-pager 2>&1)"
    [[ -s "$METRICS_FILE" ]] || fatal "$UNIT.service ran but wrote no $METRICS_FILE"
    systemctl is-enabled --quiet "$UNIT.timer" || systemctl enable --quiet "$UNIT.timer"
    if ((changed)) || ! systemctl is-active --quiet "$UNIT.timer"; then systemctl restart "$UNIT.timer"; fi
    info "backup metrics in $METRICS_FILE"
}

delete() {
    systemctl disable --now --quiet "$UNIT.timer" 2>/dev/null || true
    systemctl stop "$UNIT.service" 2>/dev/null || true
    remove_paths "/etc/systemd/system/$UNIT.timer" "/etc/systemd/system/$UNIT.service" "$SCRIPT" "$METRICS_FILE"
    systemctl daemon-reload
    systemctl reset-failed "$UNIT.service" 2>/dev/null || true
}

# verify: the script and units as rendered, the timer on, the metrics file fresh.
verify() {
    expect_file "$SCRIPT_TEXT" "$SCRIPT" 0755
    expect_file "$SERVICE_TEXT" "/etc/systemd/system/$UNIT.service" 0644
    expect_file "$TIMER_TEXT" "/etc/systemd/system/$UNIT.timer" 0644
    expect_service "$UNIT.timer"
    if [[ ! -s "$METRICS_FILE" ]]; then
        drift "$METRICS_FILE: missing"
    elif (($(date +%s) - $(stat -c %Y "$METRICS_FILE") > 300)); then
        drift "$METRICS_FILE: not rewritten for over 5 minutes (systemctl status $UNIT.service)"
    fi
}

main "$@" </dev/null
