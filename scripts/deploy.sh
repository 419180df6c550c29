#!/usr/bin/env bash
# Deploys the cluster. With no arguments: onto the lab (simulated Pis on this machine),
# creating the lab first. With --stack NAME: onto the Pis that stack's config names.
# Usage: scripts/deploy.sh [--stack NAME] [--web N] [--yes]
# Reads:
#   PULUMI_BACKEND_URL         where state lives (lab default: file://<repo>/.state/backend)
#   PULUMI_CONFIG_PASSPHRASE(_FILE)  the stack's passphrase (lab default: see README "The lab")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
# Not a secret: it only guards the lab's throwaway state on this machine (README "The lab").
readonly LAB_PASSPHRASE="pi-cluster-lab"

info() { printf 'deploy: %s\n' "$*" >&2; }
fatal() {
    printf 'deploy: error: %s\n' "$*" >&2
    exit 1
}

main() {
    local stack=lab web=2 yes=0
    while (($#)); do
        case "$1" in
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --web) web="${2:?--web needs a number}"; shift 2 ;;
        --yes) yes=1; shift ;;
        -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
        *) fatal "unknown argument '$1' (see --help)" ;;
        esac
    done
    cd "$REPO"
    bash scripts/setup.sh --deploy-only
    # shellcheck source=/dev/null
    source toolchain/env.sh || fatal "the Pulumi toolchain is not available (see above)"
    if [[ "$stack" == "lab" ]]; then
        [[ $EUID -eq 0 ]] || fatal "the lab runs as root (containers, namespaces, nftables)"
        export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
        if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
            export PULUMI_CONFIG_PASSPHRASE="$LAB_PASSPHRASE"
        fi
        mkdir -p "$REPO/.state/backend"
        lab/lab up --web "$web"
        yes=1
    fi
    pulumi stack select --create "$stack" --non-interactive
    local args=(up --stack "$stack")
    ((yes)) && args+=(--yes --skip-preview)
    pulumi "${args[@]}"
    pulumi stack output --stack "$stack"
    info "dashboard: $(pulumi stack output httpsDashboardUrl --stack "$stack")"
}

main "$@"
