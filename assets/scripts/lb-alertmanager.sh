#!/usr/bin/env bash
# Step "alertmanager": Debian's Alertmanager beside Prometheus on the monitoring host, on
# loopback only and with its gossip port off, routing every alert to the configured webhook.
# The config holds the webhook URL (a secret): it is checked by amtool from a 0600 copy,
# installed root:prometheus 0640, and never printed. Delete removes the package, its files
# and its state (silences, notification log). Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP           log prefix
#   PACKAGE        the package
#   SERVICE        its unit
#   PORT           its loopback port
#   CONFIG_TEXT    alertmanager.yml (holds the webhook URL)
#   CONFIG         its path
#   DEFAULTS_TEXT  its settings
#   DEFAULTS       their path
#   DATA_DIR       its state: silences and the notification log
set -euo pipefail

# @vars

# @lib

apply() {
    apt_install "$PACKAGE" curl
    local tmp
    tmp=$(mktemp --suffix=.yml)
    printf '%s' "$CONFIG_TEXT" >"$tmp"
    # amtool's words may quote the webhook URL: they are not shown.
    if ! amtool check-config "$tmp" >/dev/null 2>&1; then
        rm -f "$tmp"
        fatal "amtool refuses the rendered Alertmanager config (its message is withheld: the config holds the webhook URL)"
    fi
    rm -f "$tmp"
    local owed=1 restart=0 reload=0
    pending_begin alertmanager || owed=0
    put_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644 && restart=1
    put_file "$CONFIG_TEXT" "$CONFIG" 0640 root:prometheus && reload=1
    ((owed)) && restart=1
    settle_service "$SERVICE" "$restart" "$reload"
    wait_http_ok "http://127.0.0.1:$PORT/-/ready" "$SERVICE" 30
    wait_config_loaded "http://127.0.0.1:$PORT/metrics" "$SERVICE" alertmanager_config_last_reload_successful
    pending_done alertmanager
    info "alertmanager ready on 127.0.0.1:$PORT"
}

delete() {
    purge_service_package "$SERVICE" "$PACKAGE"
    remove_paths "$CONFIG" "$DEFAULTS" "$DATA_DIR"
    rmdir --ignore-fail-on-non-empty /etc/prometheus /var/lib/prometheus 2>/dev/null || true
}

# verify: the package, its files as rendered (the config's content is not shown), the service on and ready.
verify() {
    expect_packages "$PACKAGE"
    expect_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644
    expect_file "$CONFIG_TEXT" "$CONFIG" 0640 root:prometheus
    expect_service "$SERVICE"
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/-/ready" 2>/dev/null || drift "$SERVICE: not ready on 127.0.0.1:$PORT"
}

main "$@" </dev/null
