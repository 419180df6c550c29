#!/usr/bin/env bash
# Node recovery: brings a replaced or wiped Pi back into the cluster, with one command.
#
#   scripts/recover.sh NAME [--host-key 'ssh-ed25519 AAAA...'] [--stack STACK] [-- PULUMI_UP_ARGS...]
#
# A replaced Pi (a new SD card, a reflashed one) has a new SSH host key. The stack pins
# every Pi's host key and takes a new key for a new machine: every step on that Pi runs
# again from bare, in order, and a web server is drained from the load balancer first and
# admitted again only once it serves. So recovery is: pin the new key, then `pulumi up`.
#   --host-key KEY  the new key; check its fingerprint on the Pi itself (its console:
#                   ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), never trust the network
#   (lab stack)     `lab/lab reset NAME` already wrote the new key into Pulumi.lab.yaml
# Before the up, the key the Pi presents must be the pinned one; otherwise nothing runs.
# PULUMI_UP_ARGS default to --yes --skip-preview on the lab stack, none elsewhere.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO

info() { printf 'recover: %s\n' "$*" >&2; }
fatal() {
    printf 'recover: error: %s\n' "$*" >&2
    exit 1
}

# config_path STACK NAME : prints the config path of host NAME, such as webServers[1].
config_path() {
    pulumi config --stack "$1" --json | node -e '
        const cfg = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const get = (k) => { const v = cfg["pi-cluster:" + k]?.value; return v === undefined ? undefined : (typeof v === "string" ? JSON.parse(v) : v); };
        const name = process.argv[1];
        if (get("loadBalancer")?.name === name) console.log("loadBalancer");
        else if (get("database")?.name === name) console.log("database");
        else {
            const i = (get("webServers") ?? []).findIndex((w) => w.name === name);
            if (i < 0) process.exit(3);
            console.log(`webServers[${i}]`);
        }' "$2"
}

main() {
    local name="" key="" stack=lab
    while (($#)); do
        case "$1" in
        --host-key) key="${2:?--host-key needs the key}"; shift 2 ;;
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --) shift; break ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) fatal "unknown option '$1' (see --help)" ;;
        *) [[ -z "$name" ]] || fatal "one host at a time (got '$name' and '$1')"; name=$1; shift ;;
        esac
    done
    [[ -n "$name" ]] || fatal "which host? usage: scripts/recover.sh NAME [--host-key KEY] [--stack STACK]"
    local up_args=("$@")
    cd "$REPO"
    # shellcheck source=/dev/null
    source toolchain/env.sh || fatal "the Pulumi toolchain is not available (bash scripts/setup.sh builds it)"
    if [[ "$stack" == lab ]]; then
        export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
        [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] || export PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
        ((${#up_args[@]})) || up_args=(--yes --skip-preview)
    fi
    local at address port pinned presented
    at=$(config_path "$stack" "$name") || fatal "no host named '$name' in stack $stack (see pulumi config)"
    if [[ -n "$key" ]]; then
        pulumi config set --stack "$stack" --path "pi-cluster:$at.hostKey" "$key"
        info "pinned the new host key of $name ($at.hostKey)"
    fi
    address=$(pulumi config get --stack "$stack" --path "pi-cluster:$at.address")
    port=$(pulumi config get --stack "$stack" --path "pi-cluster:$at.sshPort" 2>/dev/null || echo 22)
    pinned=$(pulumi config get --stack "$stack" --path "pi-cluster:$at.hostKey")
    presented=$(ssh-keyscan -p "$port" -t "${pinned%% *}" "$address" 2>/dev/null | cut -d' ' -f2-)
    [[ -n "$presented" ]] || fatal "$name ($address:$port) does not answer SSH: power it on and try again"
    [[ "$presented" == "$pinned" ]] ||
        fatal "$name presents another host key than the pinned one; check it on the Pi and pass it with --host-key (presented: $presented)"
    info "$name presents its pinned host key; rebuilding it with pulumi up"
    pulumi up --stack "$stack" "${up_args[@]}"
}

main "$@"
