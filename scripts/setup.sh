#!/usr/bin/env bash
# Installs what the deploying (and testing) machine needs: Debian packages, the npm
# packages of the stack, the app and the dashboard, and the Pulumi toolchain (built from
# Go modules and the upstream source tarballs when no pulumi is installed). Idempotent: a second run only checks.
# Run as root (apt-get). Usage: scripts/setup.sh [--deploy-only] [--no-toolchain]
#   --deploy-only   only what deploying needs: no test packages, no app or dashboard npm ci
#   --no-toolchain  leave the Pulumi toolchain to the caller (scripts/test.sh builds it
#                   beside the checks that do not need it)
# Reads:
#   PI_CLUSTER_SKIP_APT   "1" to skip apt-get (packages installed some other way)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
# The lab (debootstrap, nspawn, nftables, iproute2), ssh for the lab hosts, and the real
# validators and servers the tests run: nginx -t, mariadbd, shellcheck, Chromium, wrk
# for scripts/bench.sh, sshd -t / -T for the Pis' sshd drop-in, for the TLS checks
# (tests/e2e/tlsChecks.ts) testssl.sh, tcpdump on the lab's bridge, curl and openssl, and
# mariadb-backup and zstd for the backup tests (tests/backup/local.sh). age encrypts and
# restores backups (scripts/restore.sh) and makes the lab's throwaway backup key. promtool
# and amtool (Debian's prometheus and prometheus-alertmanager) check the monitoring configs.
readonly DEPLOY_PACKAGES=(ca-certificates git tar gzip openssh-client debootstrap systemd-container nftables iproute2 util-linux age)
readonly TEST_PACKAGES=(python3 mariadb-server mariadb-backup zstd nginx-light shellcheck chromium wrk openssh-server testssl.sh tcpdump curl openssl prometheus prometheus-alertmanager)

info() { printf 'setup: %s\n' "$*" >&2; }
fatal() {
    printf 'setup: error: %s\n' "$*" >&2
    exit 1
}

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

install_packages() {
    local missing=() p
    for p in "$@"; do
        is_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ $EUID -eq 0 ]] || fatal "missing Debian packages (${missing[*]}); run as root or install them"
    info "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

check_node() {
    command -v node >/dev/null || fatal "Node.js 20 or newer is required (https://nodejs.org or your distribution)"
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 20)) || fatal "Node.js $major found; 20 or newer is required"
}

npm_ci() {
    local dir="$1"
    # npm writes node_modules/.package-lock.json on every install: newer than the lockfile
    # means node_modules was installed from this lockfile already.
    if [[ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
        return 0
    fi
    info "npm ci in ${dir#"$REPO"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

# The tests need sshd's binary, not a server: an sshd that setup installed is stopped and
# disabled again (apt starts it, listening on port 22 with Debian's defaults).
quiet_new_sshd() {
    [[ -d /run/systemd/system ]] || return 0
    systemctl disable --now --quiet ssh.service ssh.socket 2>/dev/null || true
    info "stopped and disabled the ssh service that installing openssh-server started"
}

# The tests need promtool and amtool, not servers: a Prometheus and an Alertmanager that
# setup installed are stopped and disabled again, as sshd is.
quiet_new_prometheus() {
    [[ -d /run/systemd/system ]] || return 0
    systemctl disable --now --quiet prometheus.service prometheus-alertmanager.service 2>/dev/null || true
    info "stopped and disabled the prometheus and alertmanager services that installing them started"
}

main() {
    local deploy_only=0 toolchain=1 had_sshd=0 had_prometheus=0 arg
    for arg in "$@"; do
        case "$arg" in
            --deploy-only) deploy_only=1 ;;
            --no-toolchain) toolchain=0 ;;
            *) fatal "unknown argument '$arg' (expected --deploy-only or --no-toolchain)" ;;
        esac
    done
    check_node
    if [[ "${PI_CLUSTER_SKIP_APT:-0}" != "1" ]]; then
        install_packages "${DEPLOY_PACKAGES[@]}"
        if ((!deploy_only)); then
            is_installed openssh-server && had_sshd=1
            is_installed prometheus && had_prometheus=1
            install_packages "${TEST_PACKAGES[@]}"
            ((had_sshd)) || quiet_new_sshd
            ((had_prometheus)) || quiet_new_prometheus
        fi
    fi
    npm_ci "$REPO"
    if ((!deploy_only)); then
        npm_ci "$REPO/assets/app"
        npm_ci "$REPO/assets/dashboard"
    fi
    if ((toolchain)); then
        bash "$REPO/toolchain/ensure.sh" >/dev/null || fatal "toolchain/ensure.sh failed (see above)"
    fi
    info "ready"
}

main "$@"
