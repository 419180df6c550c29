#!/usr/bin/env bash
# Step "nginx": installs nginx from Debian and prepares the static root.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP               log prefix
#   PACKAGES           nginx and curl (array; curl: the drain and admit steps probe with it)
#   WWW_DIR            where dashboard releases and cluster.json live
#   PLACEHOLDER_TEXT    the page served at / until a dashboard release is installed
#   DROPIN_TEXT         nginx.service drop-in: restart on failure;  DROPIN its path
set -euo pipefail

# @vars

# @lib

apply() {
    apt_install "${PACKAGES[@]}"
    if put_file "$DROPIN_TEXT" "$DROPIN" 0644; then
        systemctl daemon-reload
    fi
    install -d -m 0755 "$WWW_DIR" "$WWW_DIR/releases" "$WWW_DIR/placeholder"
    put_file "$PLACEHOLDER_TEXT" "$WWW_DIR/placeholder/index.html" 0644 || true
    if [[ ! -e "$WWW_DIR/current" ]]; then
        ln -sfn "$WWW_DIR/placeholder" "$WWW_DIR/current"
    fi
    # Debian's default site would answer before ours on port 80.
    remove_paths /etc/nginx/sites-enabled/default
    systemctl is-enabled --quiet nginx || systemctl enable --quiet nginx
    if ! systemctl is-active --quiet nginx; then
        nginx -t -q || fatal "nginx -t failed: see the message above"
        systemctl start nginx
    fi
    info "nginx $(nginx -v 2>&1 | sed 's|.*/||') ready"
}

delete() {
    systemctl disable --now --quiet nginx 2>/dev/null || true
    apt_purge nginx nginx-common
    remove_paths "$(dirname "$DROPIN")"
    systemctl daemon-reload
    remove_paths "$WWW_DIR"
}

# verify: nginx installed, running and enabled, with its drop-in, the placeholder page and
# a config that passes nginx -t.
verify() {
    expect_packages "${PACKAGES[@]}"
    expect_file "$DROPIN_TEXT" "$DROPIN" 0644
    expect_file "$PLACEHOLDER_TEXT" "$WWW_DIR/placeholder/index.html" 0644
    [[ ! -e /etc/nginx/sites-enabled/default ]] || drift "/etc/nginx/sites-enabled/default: present, expected removed"
    expect_service nginx
    nginx -t -q 2>/dev/null || drift "nginx -t: the config on disk does not pass"
}

main "$@" </dev/null
