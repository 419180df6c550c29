#!/usr/bin/env bash
# Step "base": what every Pi gets before its role. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP                 log prefix
#   CONFIG_DIR           the stack's settings directory (CONFIG_DIR in components/constants.ts)
#   STATE_DIR            the stack's state directory
#   UPLOAD_DIR           where the stack uploads artifacts
#   SSH_USER             the deploying user; owns the upload directory
#   PACKAGES             packages to install in one apt transaction: the base's, unattended-upgrades
#                        when UNATTENDED, and the Pi's roles' (array)
#   UNATTENDED           "true" to enable unattended security upgrades
#   AUTO_UPGRADES_TEXT    /etc/apt/apt.conf.d/20auto-upgrades
#   UU_POLICY_TEXT        /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades
#   SSHD_DROP_IN         path of sshd's drop-in;  SSHD_CONF_TEXT its content
#   SSHD_EXPECT          lines `sshd -T` must print for SSH_USER once it is in force (array)
#   SSHD_KEX_ALLOWED     the only key exchanges sshd may offer (array)
set -euo pipefail

# @vars

# @lib

readonly SSHD=/usr/sbin/sshd
readonly SSHD_CONFIG=/etc/ssh/sshd_config

prepare_dirs() {
    install -d -m 0755 "$CONFIG_DIR" "$STATE_DIR"
    install -d -m 0750 -o "$SSH_USER" -g "$SSH_USER" "$UPLOAD_DIR"
}

configure_upgrades() {
    if [[ "$UNATTENDED" == "true" ]]; then
        put_file "$AUTO_UPGRADES_TEXT" /etc/apt/apt.conf.d/20auto-upgrades 0644 || true
        put_file "$UU_POLICY_TEXT" /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades 0644 || true
    else
        remove_paths /etc/apt/apt.conf.d/20auto-upgrades /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades
    fi
}

# check_sshd : the whole sshd config parses, and a login of SSH_USER gets what the drop-in
# says: a file sshd reads first (one sorting before it, or a Match block) would override it.
# Says what is wrong on stdout and returns 1.
check_sshd() {
    local effective line got kex k
    if ! got=$("$SSHD" -t -f "$SSHD_CONFIG" 2>&1); then
        echo "sshd -t rejects the config: $got"
        return 1
    fi
    # A Match block for another address is not checked; the stack writes none.
    effective=$("$SSHD" -T -f "$SSHD_CONFIG" -C "user=$SSH_USER,host=$(hostname),addr=127.0.0.1" 2>&1) || {
        echo "sshd -T failed: $effective"
        return 1
    }
    for line in "${SSHD_EXPECT[@]}"; do
        got=$(grep "^${line%% *} " <<<"$effective" || true)
        if [[ "$got" != "$line" ]]; then
            echo "sshd -T shows '${got//$'\n'/; }' where $SSHD_DROP_IN says '$line': another file sets it first"
            return 1
        fi
    done
    kex=$(sed -n 's/^kexalgorithms //p' <<<"$effective")
    for k in ${kex//,/ }; do
        if [[ " ${SSHD_KEX_ALLOWED[*]} " != *" $k "* ]]; then
            echo "sshd would still offer the key exchange $k"
            return 1
        fi
    done
}

reload_sshd() {
    if systemctl is-active --quiet ssh.service; then
        # A reload re-reads the config for new logins; open sessions, this one too, go on.
        systemctl reload ssh.service
        info "sshd reloaded"
    else
        info "ssh.service is not running: sshd reads $SSHD_DROP_IN when it starts"
    fi
}

# configure_sshd : installs the drop-in, and keeps it only if sshd accepts the whole config
# and still lets SSH_USER in with a key; otherwise the previous file comes back, sshd is not
# reloaded, and the step fails.
configure_sshd() {
    [[ -x "$SSHD" ]] || fatal "$SSHD is missing: the stack expects OpenSSH's sshd (openssh-server) on the Pi"
    local owed=0 previous="" problem
    pending_begin sshd-reload && owed=1
    if [[ -f "$SSHD_DROP_IN" ]]; then
        previous=$(mktemp)
        cp -p "$SSHD_DROP_IN" "$previous"
    fi
    put_file "$SSHD_CONF_TEXT" "$SSHD_DROP_IN" 0644 && owed=1
    if ((owed)); then
        if ! problem=$(check_sshd); then
            if [[ -n "$previous" ]]; then mv -f "$previous" "$SSHD_DROP_IN"; else rm -f "$SSHD_DROP_IN"; fi
            fatal "sshd would not take $SSHD_DROP_IN, so the previous sshd config stays: $problem"
        fi
        reload_sshd
    fi
    [[ -z "$previous" ]] || rm -f "$previous"
    pending_done sshd-reload
}

apply() {
    prepare_dirs
    apt_install "${PACKAGES[@]}"
    configure_upgrades
    configure_sshd
    info "base ready on $(hostname)"
}

delete() {
    remove_paths /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades /etc/apt/apt.conf.d/20auto-upgrades "$UPLOAD_DIR"
    if [[ -f "$SSHD_DROP_IN" ]]; then
        remove_paths "$SSHD_DROP_IN"
        reload_sshd
    fi
}

# verify: the packages, the upgrade policy, the upload directory and sshd as applied.
verify() {
    local problem
    expect_packages "${PACKAGES[@]}"
    if [[ "$UNATTENDED" == "true" ]]; then
        expect_file "$AUTO_UPGRADES_TEXT" /etc/apt/apt.conf.d/20auto-upgrades 0644
        expect_file "$UU_POLICY_TEXT" /etc/apt/apt.conf.d/52pi-cluster-unattended-upgrades 0644
    fi
    [[ -d "$UPLOAD_DIR" ]] || drift "$UPLOAD_DIR: missing"
    expect_file "$SSHD_CONF_TEXT" "$SSHD_DROP_IN" 0644
    problem=$(check_sshd) || drift "sshd: $problem"
}

main "$@" </dev/null
