#!/usr/bin/env bash
# Step "pm2": unpacks the pinned PM2 build and installs its systemd unit.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP       log prefix
#   ARTIFACT   uploaded tarball holding node_modules/pm2
#   PM2_DIR    install directory (current -> releases/<sha>)
#   UNIT_B64   /etc/systemd/system/pi-cluster-app.service
set -euo pipefail

# @vars

# @lib

readonly UNIT=/etc/systemd/system/pi-cluster-app.service

apply() {
    local moved=0
    unpack_release "$ARTIFACT" "$PM2_DIR" && moved=1
    prune_uploads "$ARTIFACT"
    [[ -f "$PM2_DIR/current/node_modules/pm2/bin/pm2" ]] || fatal "the PM2 artifact has no node_modules/pm2/bin/pm2"
    if put_file "$UNIT_B64" "$UNIT" 0644; then
        systemd-analyze verify "$UNIT" || fatal "systemd-analyze verify rejected $UNIT"
        systemctl daemon-reload
    fi
    if ((moved)) && systemctl is-active --quiet pi-cluster-app.service; then
        # A new PM2 must take over its own daemon; the app restarts under it.
        systemctl restart pi-cluster-app.service
        info "PM2 upgraded and restarted"
    fi
    info "pm2 $(node -p "require('$PM2_DIR/current/node_modules/pm2/package.json').version") installed"
}

delete() {
    systemctl disable --now --quiet pi-cluster-app.service 2>/dev/null || true
    remove_paths "$UNIT" "$PM2_DIR"
    systemctl daemon-reload
}

main "$@" </dev/null
