#!/usr/bin/env bash
# Step "firewall": installs and loads the role's nftables ruleset, and a unit that loads it
# at boot. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP          log prefix
#   RULESET        where the ruleset goes (FIREWALL_RULESET)
#   RULESET_TEXT   its text (owns only table inet pi_cluster)
#   FIREWALL_SERVICE  the unit that loads the ruleset at boot;  UNIT_TEXT its unit file
set -euo pipefail

# @vars

# @lib

readonly UNIT="/etc/systemd/system/$FIREWALL_SERVICE"

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
    systemctl is-enabled --quiet "$FIREWALL_SERVICE" 2>/dev/null || systemctl enable --quiet "$FIREWALL_SERVICE"
    if ! systemctl is-active --quiet "$FIREWALL_SERVICE"; then
        # Loads the ruleset as at boot, and the unit is active from now on, as after a boot.
        systemctl start "$FIREWALL_SERVICE"
        info "firewall loaded ($FIREWALL_SERVICE started)"
    elif ((changed)) || ! rules_in_force >/dev/null; then
        # The ruleset deletes and recreates only its own table, in one transaction.
        nft -f "$RULESET"
        info "firewall loaded"
    else
        info "firewall unchanged"
    fi
}

delete() {
    systemctl disable --quiet "$FIREWALL_SERVICE" 2>/dev/null || true
    nft delete table inet pi_cluster 2>/dev/null || true
    remove_paths "$UNIT" "$RULESET"
    systemctl daemon-reload
}

# rules_in_force : true when the table in force is the one the files on disk load. They
# are loaded into a throwaway network namespace to compare, so a rule added or deleted by
# hand (nft add rule ...) shows, and so does a ruleset file that was never loaded. Prints
# why when not, with a diff.
rules_in_force() {
    local have want
    if ! have=$(nft -s list table inet pi_cluster 2>/dev/null); then
        echo "table inet pi_cluster is not loaded: this Pi accepts everything"
        return 1
    fi
    # shellcheck disable=SC2016 # $1 is for the inner sh
    if ! want=$(unshare --net sh -c 'nft -f "$1" && nft -s list table inet pi_cluster' sh "$RULESET" 2>&1); then
        echo "$RULESET does not load: $want"
        return 1
    fi
    [[ "$have" != "$want" ]] || return 0
    echo "the rules in force are not what $RULESET loads"
    diff -u --label "$RULESET" --label "in force" <(printf '%s\n' "$want") <(printf '%s\n' "$have") | head -n 40 | sed 's/^/    /' || true
    return 1
}

# verify: the ruleset and its unit as rendered, the unit enabled, and those rules in force.
verify() {
    expect_file "$RULESET_TEXT" "$RULESET" 0644
    expect_file "$UNIT_TEXT" "$UNIT" 0644
    expect_service "$FIREWALL_SERVICE"
    local why
    [[ ! -f "$RULESET" ]] || why=$(rules_in_force) || drift "firewall: $why"
}

main "$@" </dev/null
