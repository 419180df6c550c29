#!/usr/bin/env bash
# Drift detection: checks every Pi of a stack against what its last `pulumi up` applied,
# and changes nothing. For each Pi it prints what differs: a managed file's checksum (with
# a diff, unless the file is secret), a package, a service that is not active or not
# enabled, the firewall rules in force, the DB user's hosts, password and grants. Each
# step's script from the state runs on its Pi with "verify" (see README, "Drift").
# Usage: scripts/verify.sh [--stack NAME] [--json]
#   --stack NAME   the stack (default: lab)
#   --json         the report as JSON
# Exit status: 0 every Pi as desired; 3 drift, or a Pi that cannot be checked; 2 usage.
# Repair: what the report names, usually npx pi-cluster recover NAME (every step runs again).
# Reads:
#   PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE(_FILE): the stack's state and secrets
#   (lab defaults: see README "The lab")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO

fatal() {
    printf 'verify: error: %s\n' "$*" >&2
    exit 2
}

main() {
    local stack=lab json=()
    while (($#)); do
        case "$1" in
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --json) json=(--json); shift ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) fatal "unknown argument '$1' (see --help)" ;;
        esac
    done
    [[ -d "$REPO/node_modules/sucrase" ]] || fatal "$REPO/node_modules is missing; run npm ci in $REPO"
    command -v ssh >/dev/null || fatal "ssh (OpenSSH's client) is missing"
    if ! command -v pulumi >/dev/null; then
        # shellcheck source=/dev/null
        source "$REPO/toolchain/env.sh" || fatal "no pulumi on PATH, and toolchain/env.sh cannot provide one"
    fi
    if [[ "$stack" == lab ]]; then
        export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
        [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] || export PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
    fi
    cd "$REPO"
    exec node -r sucrase/register/ts scripts/verify/cli.ts "$stack" "${json[@]}"
}

main "$@"
