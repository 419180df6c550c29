#!/usr/bin/env bash
# Step "pm2": unpacks the pinned PM2 build and installs its systemd unit. A new PM2 or
# unit restarts the app (the load balancer has drained this server first) and waits
# until it is healthy again.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP       log prefix
#   NODE       this web server's name, for messages
#   APP_HOME   the app user's home (PM2's logs)
#   ARTIFACT   uploaded tarball holding node_modules/pm2
#   PM2_DIR    install directory (current -> releases/<sha>)
#   APP_SERVICE  the app's systemd unit;  UNIT_TEXT its unit file
#   PORT            the app's port, for the health check after a restart
#   HEALTH_TIMEOUT  seconds the restarted app has to become healthy
set -euo pipefail

# @vars

# @lib

readonly UNIT="/etc/systemd/system/$APP_SERVICE"

apply() {
    local changed=0
    pending_begin pm2-restart && changed=1
    unpack_release "$ARTIFACT" "$PM2_DIR" && changed=1
    prune_uploads "$ARTIFACT"
    [[ -f "$PM2_DIR/current/node_modules/pm2/bin/pm2" ]] || fatal "the PM2 artifact has no node_modules/pm2/bin/pm2"
    put_file "$UNIT_TEXT" "$UNIT" 0644 && changed=1
    hold_point written
    if ((changed)); then
        verify_unit "$UNIT"
        systemctl daemon-reload
        if systemctl is-active --quiet "$APP_SERVICE"; then
            # A new PM2 must take over its own daemon; the app restarts under it.
            systemctl restart "$APP_SERVICE"
            wait_app_healthy "$PORT" "$HEALTH_TIMEOUT" ||
                fatal "$NODE: the app is not healthy ${HEALTH_TIMEOUT}s after PM2 restarted; see journalctl -u ${APP_SERVICE%.service} and $APP_HOME/.pm2/logs"
            info "PM2 restarted the app"
        fi
    fi
    pending_done pm2-restart
    info "pm2 $(node -p "require('$PM2_DIR/current/node_modules/pm2/package.json').version") installed"
}

delete() {
    systemctl disable --now --quiet "$APP_SERVICE" 2>/dev/null || true
    remove_paths "$UNIT" "$PM2_DIR"
    systemctl daemon-reload
}

# verify: the PM2 release shipped, and the unit that runs it as rendered.
verify() {
    expect_release "$ARTIFACT" "$PM2_DIR"
    expect_file "$UNIT_TEXT" "$UNIT" 0644
}

main "$@" </dev/null
