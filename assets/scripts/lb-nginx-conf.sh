#!/usr/bin/env bash
# Step "nginx-conf": installs the site (upstream from the web servers) and cluster.json,
# checks the config with nginx -t and reloads, never restarts.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP               log prefix
#   SITE_B64           /etc/nginx/sites-available/pi-cluster
#   CLUSTER_JSON_B64   cluster.json for the dashboard
#   CLUSTER_JSON       where cluster.json goes
set -euo pipefail

# @vars

# @lib

readonly SITE=/etc/nginx/sites-available/pi-cluster
readonly ENABLED=/etc/nginx/sites-enabled/pi-cluster

apply() {
    command -v nginx >/dev/null || fatal "nginx is missing: the nginx step installs it"
    local changed=0 backup=""
    put_file "$CLUSTER_JSON_B64" "$CLUSTER_JSON" 0644 || true
    if [[ -f "$SITE" ]]; then
        backup=$(mktemp)
        cp -p "$SITE" "$backup"
    fi
    put_file "$SITE_B64" "$SITE" 0644 && changed=1
    if [[ "$(readlink "$ENABLED" 2>/dev/null)" != "$SITE" ]]; then
        ln -sfn "$SITE" "$ENABLED"
        changed=1
    fi
    if ! nginx -t -q; then
        # Put the last good site back so a reboot or reload keeps serving.
        if [[ -n "$backup" ]]; then cp -p "$backup" "$SITE"; else rm -f "$ENABLED"; fi
        fatal "nginx -t rejected the new site; the previous one was kept"
    fi
    rm -f "$backup"
    if ((changed)); then
        systemctl reload nginx
        info "nginx reloaded"
    else
        info "nginx config unchanged"
    fi
}

delete() {
    remove_paths "$ENABLED" "$SITE" "$CLUSTER_JSON"
    if systemctl is-active --quiet nginx && nginx -t -q; then systemctl reload nginx; fi
}

main "$@" </dev/null
