#!/usr/bin/env bash
# Step "app": unpacks an app release, installs its env file (0600, holds the DB password)
# and PM2 ecosystem, then starts or reloads the app and waits until it is healthy, so
# the next web server rolls only after this one serves again.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP            log prefix
#   ARTIFACT        uploaded tarball of the built app (dist/, package.json, node_modules/)
#   APP_DIR         install directory (current -> releases/<sha>)
#   APP_USER        the user PM2 runs as
#   ENV_FILE        path of the env file;  ENV_B64 its content (secret)
#   ECOSYSTEM_FILE  path of the ecosystem; ECOSYSTEM_B64 its content
#   PORT            the app's port, for the health check
#   HEALTH_TIMEOUT  seconds to wait for /health
set -euo pipefail

# @vars

# @lib

readonly SERVICE=pi-cluster-app.service

wait_healthy() {
    local deadline=$((SECONDS + HEALTH_TIMEOUT)) body
    while ((SECONDS < deadline)); do
        if body=$(node -e '
            const http = require("http");
            const req = http.get({ host: "127.0.0.1", port: Number(process.argv[1]), path: "/health", timeout: 2000 }, (res) => {
                let b = ""; res.on("data", (c) => (b += c));
                res.on("end", () => { process.stdout.write(b); process.exit(res.statusCode === 200 ? 0 : 1); });
            });
            req.on("timeout", () => req.destroy(new Error("timeout")));
            req.on("error", () => process.exit(1));' "$PORT" 2>/dev/null); then
            info "healthy: $body"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" -n 30 --no-pager >&2 || true
    fatal "the app did not answer /health on port $PORT within ${HEALTH_TIMEOUT}s: see the log above and $APP_DIR/current"
}

apply() {
    local changed=0
    unpack_release "$ARTIFACT" "$APP_DIR" && changed=1
    prune_uploads "$ARTIFACT"
    put_file "$ENV_B64" "$ENV_FILE" 0600 "$APP_USER:$APP_USER" && changed=1
    put_file "$ECOSYSTEM_B64" "$ECOSYSTEM_FILE" 0644 && changed=1
    systemctl is-enabled --quiet "$SERVICE" || systemctl enable --quiet "$SERVICE"
    if ! systemctl is-active --quiet "$SERVICE"; then
        systemctl start "$SERVICE"
        info "app started"
    elif ((changed)); then
        systemctl reload "$SERVICE"
        info "app reloaded"
    else
        info "app unchanged"
    fi
    wait_healthy
}

delete() {
    systemctl disable --now --quiet "$SERVICE" 2>/dev/null || true
    remove_paths "$ENV_FILE" "$ECOSYSTEM_FILE" "$APP_DIR"
}

main "$@" </dev/null
