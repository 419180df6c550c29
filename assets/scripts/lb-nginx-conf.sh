#!/usr/bin/env bash
# Step "nginx-conf": installs the site and cluster.json, checks the config with nginx -t
# and reloads, never restarts. The round-robin's members are each web server's own file
# (see lb-member.sh); this step removes the files of web servers no longer in NODES, so a
# scale-in takes a server out of the load balancer before its database grant and firewall
# rule go (the database's step runs after this one).
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP               log prefix
#   SITE_TEXT          /etc/nginx/sites-available/pi-cluster
#   CLUSTER_JSON_TEXT  cluster.json for the dashboard, public: names only
#   CLUSTER_JSON       where cluster.json goes
#   CLUSTER_INTERNAL_JSON_TEXT  cluster.json with addresses, for the management network
#   CLUSTER_INTERNAL_JSON      where that goes
#   NODES              the web servers' names (array)
#   NGINX_CLUSTER_DIR  the stack's nginx files besides the site; holds MEMBERS_DIR
#   MEMBERS_DIR        the web servers' member files (lb-member.sh)
#   LEASE_DIR          where lb-member.sh puts a drain's lease runner
#   LEASE_UNIT_PREFIX  a lease's transient unit is this and the web server's name
set -euo pipefail

# @vars

# @lib

readonly SITE=/etc/nginx/sites-available/pi-cluster
readonly ENABLED=/etc/nginx/sites-enabled/pi-cluster

# remove_members : deletes the member files of web servers that left the cluster, and
# stops their drain leases. Prints each name removed.
remove_members() {
    local f name
    for f in "$MEMBERS_DIR"/*.conf; do
        [[ -e "$f" ]] || continue
        name=$(basename "$f" .conf)
        printf '%s\n' "${NODES[@]}" | grep -qxF "$name" && continue
        systemctl stop "$LEASE_UNIT_PREFIX$name.timer" "$LEASE_UNIT_PREFIX$name.service" 2>/dev/null || true
        rm -f "$f" "$LEASE_DIR/lease-$name.sh"
        echo "$name"
    done
}

# adopt_members : on a Pi set up before each web server had its own member file, the old
# site lists the servers in its upstream block. Before that site is replaced, each listed
# server that is still in NODES gets its member file, in service, so the upgrade itself
# takes no server out of the load balancer (their admit steps then find them in place).
adopt_members() {
    [[ -f "$SITE" ]] && ! grep -qF "include $MEMBERS_DIR/" "$SITE" || return 0
    local address name
    while read -r address name; do
        printf '%s\n' "${NODES[@]}" | grep -qxF "$name" || continue
        [[ -e "$MEMBERS_DIR/$name.conf" ]] && continue
        printf 'server %s max_fails=1 fail_timeout=10s; # %s\n' "$address" "$name" >"$MEMBERS_DIR/$name.conf"
        info "kept $name in service while the site moves to member files"
    done < <(sed -n '/^upstream pi_cluster_backend {/,/^}/s/^ *server \([^ ]*\) .*; # \(.*\)$/\1 \2/p' "$SITE")
}

apply() {
    command -v nginx >/dev/null || fatal "nginx is missing: the nginx step installs it"
    local changed=0 backup="" removed
    pending_begin nginx-conf && changed=1
    install -d -m 0755 "$MEMBERS_DIR"
    adopt_members
    put_file "$CLUSTER_JSON_TEXT" "$CLUSTER_JSON" 0644 || true
    put_file "$CLUSTER_INTERNAL_JSON_TEXT" "$CLUSTER_INTERNAL_JSON" 0644 || true
    removed=$(remove_members)
    [[ -n "$removed" ]] && changed=1
    if [[ -f "$SITE" ]]; then
        backup=$(mktemp)
        cp -p "$SITE" "$backup"
    fi
    put_file "$SITE_TEXT" "$SITE" 0644 && changed=1
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
        if [[ -n "$removed" ]]; then
            reload_nginx_settled
            # shellcheck disable=SC2086 # one name a word
            info "nginx reloaded; out of the load balancer, requests finished: $(echo $removed)"
        else
            systemctl reload nginx
            info "nginx reloaded"
        fi
    else
        info "nginx config unchanged"
    fi
    pending_done nginx-conf
}

delete() {
    remove_paths "$ENABLED" "$SITE" "$CLUSTER_JSON" "$CLUSTER_INTERNAL_JSON" "$NGINX_CLUSTER_DIR"
    if systemctl is-active --quiet nginx && nginx -t -q; then systemctl reload nginx; fi
}

# verify: the site and cluster.json as rendered, the site enabled, and a member file for no
# server the stack does not have.
verify() {
    local f
    expect_file "$SITE_TEXT" "$SITE" 0644
    expect_file "$CLUSTER_JSON_TEXT" "$CLUSTER_JSON" 0644
    expect_file "$CLUSTER_INTERNAL_JSON_TEXT" "$CLUSTER_INTERNAL_JSON" 0644
    [[ "$(readlink "$ENABLED" 2>/dev/null)" == "$SITE" ]] || drift "$ENABLED: not a link to $SITE"
    for f in "$MEMBERS_DIR"/*.conf; do
        [[ -e "$f" ]] || continue
        printf '%s\n' "${NODES[@]}" | grep -qxF "$(basename "$f" .conf)" || drift "$f: the member of a server the stack does not have"
    done
}

main "$@" </dev/null
