#!/usr/bin/env bash
# Step "firewall": installs and loads the role's nftables ruleset, and a unit that loads it
# at boot. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP          log prefix
#   RULESET_TEXT   /etc/pi-cluster/firewall.nft (owns only table inet pi_cluster)
#   UNIT_TEXT      /etc/systemd/system/pi-cluster-firewall.service
set -euo pipefail

# @vars

# @lib

readonly RULESET=/etc/pi-cluster/firewall.nft
readonly UNIT=/etc/systemd/system/pi-cluster-firewall.service

apply() {
    command -v nft >/dev/null || fatal "nft is missing: the base step installs nftables"
    local tmp changed=0
    tmp=$(mktemp)
    printf '%s' "$RULESET_TEXT" >"$tmp"
    nft -c -f "$tmp" || fatal "the rendered ruleset does not parse (nft -c); nothing was changed"
    rm -f "$tmp"
    put_file "$RULESET_TEXT" "$RULESET" 0644 && changed=1
    if put_file "$UNIT_TEXT" "$UNIT" 0644; then
        # The unit runs only at boot: a sandbox setting this systemd ignores would go unseen.
        verify_unit "$UNIT"
        systemctl daemon-reload
    fi
    systemctl is-enabled --quiet pi-cluster-firewall.service 2>/dev/null || systemctl enable --quiet pi-cluster-firewall.service
    if ((changed)) || ! nft list table inet pi_cluster >/dev/null 2>&1; then
        # The ruleset deletes and recreates only its own table, in one transaction.
        nft -f "$RULESET"
        info "firewall loaded"
    else
        info "firewall unchanged"
    fi
}

delete() {
    systemctl disable --quiet pi-cluster-firewall.service 2>/dev/null || true
    nft delete table inet pi_cluster 2>/dev/null || true
    remove_paths "$UNIT" "$RULESET"
    systemctl daemon-reload
}

main "$@" </dev/null
