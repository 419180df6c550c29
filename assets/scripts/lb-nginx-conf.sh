#!/usr/bin/env bash
# Step "nginx-conf": installs the site and cluster.json, checks the config with nginx -t
# and reloads, never restarts. The round-robin's members are each web server's own file
# (see lb-member.sh); this step removes the files of web servers no longer in NODES, so a
# scale-in takes a server out of the load balancer before its database grant and firewall
# rule go (the database's step runs after this one).
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP               log prefix
#   SITE_B64           /etc/nginx/sites-available/pi-cluster
#   CLUSTER_JSON_B64   cluster.json for the dashboard
#   CLUSTER_JSON       where cluster.json goes
#   NODES              the web servers' names (array)
set -euo pipefail

# @vars

# @lib

readonly SITE=/etc/nginx/sites-available/pi-cluster
readonly ENABLED=/etc/nginx/sites-enabled/pi-cluster
readonly MEMBERS=/etc/nginx/pi-cluster/upstream

# remove_members : deletes the member files of web servers that left the cluster, and
# stops their drain leases. Prints each name removed.
remove_members() {
    local f name
    for f in "$MEMBERS"/*.conf; do
        [[ -e "$f" ]] || continue
        name=$(basename "$f" .conf)
        printf '%s\n' "${NODES[@]}" | grep -qxF "$name" && continue
        systemctl stop "pi-cluster-lease-$name.timer" "pi-cluster-lease-$name.service" 2>/dev/null || true
        rm -f "$f" "/usr/local/lib/pi-cluster/lease-$name.sh"
        echo "$name"
    done
}

# settle : waits (at most 30 s) until the given nginx workers have finished their requests.
settle() {
    local pid deadline=$((SECONDS + 30))
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    done
}

apply() {
    command -v nginx >/dev/null || fatal "nginx is missing: the nginx step installs it"
    local changed=0 backup="" removed old
    pending_begin nginx-conf && changed=1
    install -d -m 0755 "$MEMBERS"
    put_file "$CLUSTER_JSON_B64" "$CLUSTER_JSON" 0644 || true
    removed=$(remove_members)
    [[ -n "$removed" ]] && changed=1
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
    hold_point written
    if ((changed)); then
        old=$(pgrep -P "$(cat /run/nginx.pid)" || true)
        systemctl reload nginx
        info "nginx reloaded"
        if [[ -n "$removed" ]]; then
            # shellcheck disable=SC2086 # one PID a word
            settle $old
            info "out of the load balancer, requests finished: $(echo $removed)"
        fi
    else
        info "nginx config unchanged"
    fi
    pending_done nginx-conf
}

delete() {
    remove_paths "$ENABLED" "$SITE" "$CLUSTER_JSON" /etc/nginx/pi-cluster
    if systemctl is-active --quiet nginx && nginx -t -q; then systemctl reload nginx; fi
}

main "$@" </dev/null
