#!/usr/bin/env bash
# Step "prometheus": Debian's Prometheus on the monitoring host, on loopback only, with the
# stack's scrape config and alerting rules, both checked by promtool before they are put in
# place. A changed config or rules file is reloaded; changed settings (retention, listen
# address) restart it. Delete removes the package, its config and its samples.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP           log prefix
#   PACKAGE        the package;  SERVICE its unit;  PORT its loopback port
#   CONFIG_TEXT    prometheus.yml;  CONFIG its path
#   RULES_TEXT     the alerting rules;  RULES their path (CONFIG names it)
#   DEFAULTS_TEXT  its settings;  DEFAULTS their path
#   DATA_DIR       its samples
set -euo pipefail

# @vars

# @lib

# api PATH : a GET on Prometheus's own API, on loopback.
api() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT$1"; }

# checked TEXT KIND : promtool accepts TEXT as KIND (config or rules), or the step fails
# with its words and nothing is put in place.
checked() {
    local tmp out
    tmp=$(mktemp --suffix=.yml)
    printf '%s' "$1" >"$tmp"
    if [[ $2 == config ]]; then
        out=$(promtool check config --syntax-only "$tmp" 2>&1) || { rm -f "$tmp"; fatal "promtool refuses the rendered config: $out"; }
    else
        out=$(promtool check rules "$tmp" 2>&1) || { rm -f "$tmp"; fatal "promtool refuses the rendered rules: $out"; }
    fi
    rm -f "$tmp"
}

apply() {
    apt_install "$PACKAGE" curl
    checked "$RULES_TEXT" rules
    checked "$CONFIG_TEXT" config
    local owed=1 restart=0 reload=0
    pending_begin prometheus || owed=0
    put_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644 && restart=1
    put_file "$RULES_TEXT" "$RULES" 0644 && reload=1
    put_file "$CONFIG_TEXT" "$CONFIG" 0644 && reload=1
    ((owed)) && restart=1
    settle_service "$SERVICE" "$restart" "$reload"
    # It replays its write-ahead log before it is ready.
    wait_http_ok "http://127.0.0.1:$PORT/-/ready" "$SERVICE" 60
    # Read from its own /metrics, not queried: a query would see the last self-scrape's sample.
    wait_config_loaded "http://127.0.0.1:$PORT/metrics" "$SERVICE" prometheus_config_last_reload_successful
    pending_done prometheus
    info "prometheus ready on 127.0.0.1:$PORT"
}

delete() {
    purge_service_package "$SERVICE" "$PACKAGE"
    remove_paths "$CONFIG" "$RULES" "$DEFAULTS" "$DATA_DIR"
    rmdir --ignore-fail-on-non-empty /etc/prometheus /var/lib/prometheus 2>/dev/null || true
}

# verify: the package, its files as rendered, the service on and ready.
verify() {
    expect_packages "$PACKAGE"
    expect_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644
    expect_file "$RULES_TEXT" "$RULES" 0644
    expect_file "$CONFIG_TEXT" "$CONFIG" 0644
    expect_service "$SERVICE"
    api /-/ready >/dev/null 2>&1 || drift "$SERVICE: not ready on 127.0.0.1:$PORT"
}

main "$@" </dev/null
