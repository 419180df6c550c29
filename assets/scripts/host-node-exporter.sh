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

apply() {
    apt_install "$PACKAGE" curl
    install -d -m 0755 "$TEXTFILE_DIR"
    local restart=1
    pending_begin node-exporter || restart=0
    put_file "$DEFAULTS_TEXT" "$DEFAULTS" 0644 && restart=1
    settle_service "$SERVICE" "$restart" 0
    wait_http_ok "http://$LISTEN/metrics" "$SERVICE" 30
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
