#!/usr/bin/env bash
# Step "node": Node.js from the Pi's own Debian packages (no npm: the app ships built)
# and the unprivileged user the app runs as. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP       log prefix
#   PACKAGES   Node.js's packages (array)
#   APP_USER   system user for PM2 and the app
#   APP_HOME   its home (PM2_HOME lives here)
set -euo pipefail

# @vars

# @lib

apply() {
    apt_install "${PACKAGES[@]}"
    if ! id -u "$APP_USER" >/dev/null 2>&1; then
        useradd --system --home-dir "$APP_HOME" --create-home --shell /usr/sbin/nologin "$APP_USER"
        info "created user $APP_USER"
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 20)) || fatal "Node.js $major is too old: the app needs 20 or newer (Debian trixie ships 20)"
    info "node $(node --version) ready"
}

delete() {
    if id -u "$APP_USER" >/dev/null 2>&1; then
        userdel --remove "$APP_USER" 2>/dev/null || userdel "$APP_USER"
        info "removed user $APP_USER"
    fi
    apt_purge nodejs
}

# verify: Node.js installed and the app's user present.
verify() {
    expect_packages "${PACKAGES[@]}"
    id -u "$APP_USER" >/dev/null 2>&1 || drift "user $APP_USER: missing"
}

main "$@" </dev/null
