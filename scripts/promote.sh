#!/usr/bin/env bash
# Promotes a read replica when the database Pi is lost (the seed's "Node Recovery" for the
# database); scripts/promote/cli.ts does the work and says each step.
#
#   scripts/promote.sh [REPLICA] [--stack STACK] [--allow-behind] [--allow-unreachable-replicas]
#                      [--allow-unfenced] [--catch-up-seconds N] [--json]
#
# It refuses, changing nothing, while the lost database answers on its MariaDB port from a
# web server, while a web server cannot be reached to fence it off (--allow-unfenced: it is
# powered off), when REPLICA received less of the lost database's binlog than another
# replica (--allow-behind: drop those writes), when a replica cannot be asked
# (--allow-unreachable-replicas), and when the chosen replica does not apply its whole relay
# log with a running SQL thread within --catch-up-seconds (default 60). Without REPLICA it
# promotes the one that received the most. The web servers are fenced off from the lost
# database (in their firewall, until the next `pulumi up`) before the replicas are
# compared; a refusal after that leaves the fence. Then the replica turns writable with its
# own server id and GTID domain, the web servers switch to it half at a time (drained by
# the load balancer), and the state and config name it the database. Run `pulumi up` next:
# it finds the Pis as it renders them.
# Exit status: 0 promoted; 1 refused or failed; 2 usage.
# Reads: PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE(_FILE) (lab defaults: README "The lab").
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO

fatal() {
    printf 'promote: error: %s\n' "$*" >&2
    exit 2
}

main() {
    local stack=lab i
    for ((i = 1; i <= $#; i++)); do
        [[ "${!i}" == --stack ]] && { i=$((i + 1)); stack=${!i:-}; }
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
    exec node -r sucrase/register/ts "$REPO/scripts/promote/cli.ts" "$@"
}

main "$@"
