#!/usr/bin/env bash
# Step "base": what every Pi gets before its role. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP                 log prefix
#   SSH_USER             the deploying user; owns the upload directory
#   PACKAGES             base packages to install (array)
#   UNATTENDED           "true" to enable unattended security upgrades
#   AUTO_UPGRADES_B64    /etc/apt/apt.conf.d/20auto-upgrades
#   UU_POLICY_B64        /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades
set -euo pipefail

# @vars

# @lib

readonly UPLOAD_DIR=/var/lib/pi-cluster/incoming

prepare_dirs() {
    install -d -m 0755 /etc/pi-cluster /var/lib/pi-cluster
    install -d -m 0750 -o "$SSH_USER" -g "$SSH_USER" "$UPLOAD_DIR"
}

configure_upgrades() {
    if [[ "$UNATTENDED" == "true" ]]; then
        apt_install unattended-upgrades
        put_file "$AUTO_UPGRADES_B64" /etc/apt/apt.conf.d/20auto-upgrades 0644 || true
        put_file "$UU_POLICY_B64" /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades 0644 || true
    else
        remove_paths /etc/apt/apt.conf.d/20auto-upgrades /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades
    fi
}

apply() {
    prepare_dirs
    apt_install "${PACKAGES[@]}"
    configure_upgrades
    info "base ready on $(hostname)"
}

delete() {
    remove_paths /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades /etc/apt/apt.conf.d/20auto-upgrades "$UPLOAD_DIR"
}

main "$@" </dev/null
