#!/usr/bin/env bash
# Step "node-exporter": Debian's prometheus-node-exporter on this Pi, listening on the Pi's
# own address (its firewall opens the port to the Prometheus host only), with its textfile
# collector's directory. Delete removes the package, its settings and the directory: a
# cluster without monitoring keeps nothing of it. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP           log prefix
#   PACKAGE        the package;  SERVICE its unit
#   DEFAULTS_TEXT  its settings;  DEFAULTS their path
#   TEXTFILE_DIR   the textfile collector's directory
#   LISTEN         address:port it serves its metrics on
set -euo pipefail

# @vars

# @lib

# metrics_served : the exporter answers on LISTEN, within 30 s of a (re)start.
metrics_served() {
    local i
    for ((i = 0; i < 150; i++)); do
        curl -fsS -o /dev/null --max-time 2 "http://$LISTEN/metrics" 2>/dev/null && return 0
        systemctl is-failed --quiet "$SERVICE" && break
        sleep 0.2
    done
    fatal "$SERVICE does not serve http://$LISTEN/metrics: journalctl -u $SERVICE on $(hostname) says why"
}

apply() {
    apt_install "$PACKAGE" curl
    install -d -m 0755 "$TEXTFILE_DIR"
    local owed=1
    pending_begin node-exporter || owed=0
    if put_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644 || ((owed)) || ! systemctl is-active --quiet "$SERVICE"; then
        systemctl restart "$SERVICE"
        info "restarted $SERVICE"
    fi
    systemctl is-enabled --quiet "$SERVICE" 2>/dev/null || systemctl enable --quiet "$SERVICE"
    metrics_served
    pending_done node-exporter
    info "node metrics served on $LISTEN"
}

delete() {
    purge_service_package "$SERVICE" "$PACKAGE"
    remove_paths "$DEFAULTS" "$TEXTFILE_DIR"
    rmdir --ignore-fail-on-non-empty /var/lib/prometheus 2>/dev/null || true
}

# verify: the package, its settings as rendered, the service on and serving.
verify() {
    expect_packages "$PACKAGE"
    expect_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644
    expect_service "$SERVICE"
    curl -fsS -o /dev/null --max-time 2 "http://$LISTEN/metrics" 2>/dev/null || drift "$SERVICE: nothing served on http://$LISTEN/metrics"
}

main "$@" </dev/null
