#!/usr/bin/env bash
# Node and full recovery: brings replaced, wiped or drifted Pis back into the cluster, with
# one command.
#
#   scripts/recover.sh NAME [--host-key 'ssh-ed25519 AAAA...'] [--stack STACK] [-- PULUMI_UP_ARGS...]
#   scripts/recover.sh --all [--db-data DATA.tgz] [--stack STACK] [-- PULUMI_UP_ARGS...]
#
# A replaced Pi (a new SD card, a reflashed one) has a new SSH host key. The stack pins
# every Pi's host key and takes a new key for a new machine: every step on that Pi runs
# again from bare, in order, and a web server is drained from the load balancer first and
# admitted again only once it serves. So recovery is: pin the new key, then `pulumi up`.
#   --host-key KEY  the new key; check its fingerprint on the Pi itself (its console:
#                   ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), never trust the network
#   (lab stack)     `lab/lab reset NAME` already wrote the new key into Pulumi.lab.yaml
# It also bumps each named Pi's entry in the stack config's `reapply` map, so every step on it runs
# again even when its key did not change: that repairs what scripts/verify.sh reports (a
# hand-edited file, a stopped or disabled service, a firewall rule added by hand, extra DB
# grants). The steps are idempotent, so what did not drift stays as it is.
# Before the up, the key each Pi presents must be the pinned one; otherwise nothing runs.
# --all      every Pi of the stack (full recovery: pin each new key first, with --host-key
#            per Pi, or on the lab `lab/lab reset` each one)
# --db-data  a tar.gz of MariaDB's data directory, taken from the old database Pi with
#            MariaDB stopped (see README, "Day 2"). After the up, it replaces the fresh data
#            directory on the database Pi; what was there is kept beside it, never deleted.
#            The web servers reconnect by themselves: no restart, no manual SQL.
# PULUMI_UP_ARGS default to --yes --skip-preview on the lab stack, none elsewhere.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO

info() { printf 'recover: %s\n' "$*" >&2; }
fatal() {
    printf 'recover: error: %s\n' "$*" >&2
    exit 1
}

# all_hosts STACK : prints every host's name, one a line.
all_hosts() {
    # shellcheck disable=SC2016 # JavaScript, not shell
    pulumi config --stack "$1" --json | node -e '
        const cfg = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const get = (k) => { const v = cfg["pi-cluster:" + k]?.value; return v === undefined ? undefined : (typeof v === "string" ? JSON.parse(v) : v); };
        for (const h of [get("loadBalancer"), ...(get("webServers") ?? []), get("database"), ...(get("dbReplicas") ?? [])]) if (h) console.log(h.name);'
}

# config_path STACK NAME : prints the config path of host NAME, such as webServers[1].
config_path() {
    # shellcheck disable=SC2016 # JavaScript, not shell
    pulumi config --stack "$1" --json | node -e '
        const cfg = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const get = (k) => { const v = cfg["pi-cluster:" + k]?.value; return v === undefined ? undefined : (typeof v === "string" ? JSON.parse(v) : v); };
        const name = process.argv[1];
        if (get("loadBalancer")?.name === name) console.log("loadBalancer");
        else if (get("database")?.name === name) console.log("database");
        else {
            const i = (get("webServers") ?? []).findIndex((w) => w.name === name);
            const r = (get("dbReplicas") ?? []).findIndex((w) => w.name === name);
            if (i >= 0) console.log(`webServers[${i}]`);
            else if (r >= 0) console.log(`dbReplicas[${r}]`);
            else process.exit(3);
        }' "$2"
}

# host_value STACK PATH FIELD : a field of a host's config (empty when unset).
host_value() { pulumi config get --stack "$1" --path "pi-cluster:$2.$3" 2>/dev/null || true; }

# check_key STACK NAME : the Pi answers SSH with its pinned host key.
check_key() {
    local at address port pinned presented
    at=$(config_path "$1" "$2") || fatal "no host named '$2' in stack $1 (see pulumi config)"
    address=$(host_value "$1" "$at" address)
    port=$(host_value "$1" "$at" sshPort)
    pinned=$(host_value "$1" "$at" hostKey)
    presented=$(ssh-keyscan -p "${port:-22}" -t "${pinned%% *}" "$address" 2>/dev/null | cut -d' ' -f2-)
    [[ -n "$presented" ]] || fatal "$2 ($address:${port:-22}) does not answer SSH: power it on and try again"
    [[ "$presented" == "$pinned" ]] ||
        fatal "$2 presents another host key than the pinned one; check it on the Pi and pass it with --host-key (presented: $presented)"
    info "$2 presents its pinned host key"
}

# bump_reapply STACK NAME : runs every step on NAME again at the next up (withReapply).
bump_reapply() {
    local n
    n=$(pulumi config get --stack "$1" --path "pi-cluster:reapply.$2" 2>/dev/null || true)
    pulumi config set --stack "$1" --path "pi-cluster:reapply.$2" "$((${n:-0} + 1))"
    info "$2: reapply $((${n:-0} + 1)), so every step on it runs again"
}

# restore_db_data STACK FILE : puts the data directory from FILE in place on the database Pi.
restore_db_data() {
    local stack=$1 file=$2 address port user key dir
    address=$(host_value "$stack" database address)
    port=$(host_value "$stack" database sshPort)
    user=$(pulumi config get --stack "$stack" pi-cluster:sshUser 2>/dev/null || echo pi)
    dir=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the directory is known
    trap "rm -rf '$dir'" EXIT
    key=$(pulumi config get --stack "$stack" pi-cluster:sshPrivateKeyPath 2>/dev/null || true)
    if [[ -z "$key" ]]; then
        key="$dir/key"
        (umask 077 && pulumi config get --stack "$stack" pi-cluster:sshPrivateKey >"$key")
    fi
    # known_hosts names a host by address on port 22, and as [address]:port on any other.
    local known=$address
    [[ "${port:-22}" == 22 ]] || known="[$address]:$port"
    printf '%s %s\n' "$known" "$(host_value "$stack" database hostKey)" >"$dir/known_hosts"
    local ssh=(ssh -p "${port:-22}" -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
        -o UserKnownHostsFile="$dir/known_hosts" -o GlobalKnownHostsFile=/dev/null "$user@$address")
    info "restoring MariaDB's data on $address from $file"
    "${ssh[@]}" 'sudo install -m 0600 /dev/stdin /var/tmp/pi-cluster-db-data.tgz' <"$file"
    "${ssh[@]}" 'sudo bash -s' <<'SCRIPT'
set -euo pipefail
data=/var/lib/mysql
tar -tzf /var/tmp/pi-cluster-db-data.tgz ./mysql/ >/dev/null 2>&1 || { echo "restore: the archive holds no MariaDB data directory (no ./mysql/)" >&2; exit 1; }
systemctl stop mariadb
# What the fresh install made is kept beside the restored directory, never deleted.
mv "$data" "$data.before-restore-$(date +%Y%m%d%H%M%S)"
install -d -m 0755 -o mysql -g mysql "$data"
tar -xzf /var/tmp/pi-cluster-db-data.tgz -C "$data" --no-same-owner
chown -R mysql:mysql "$data"
rm -f /var/tmp/pi-cluster-db-data.tgz
systemctl start mariadb
echo "restore: MariaDB runs on the restored data"
SCRIPT
}

main() {
    local names=() key="" stack=lab all=0 data=""
    while (($#)); do
        case "$1" in
        --host-key) key="${2:?--host-key needs the key}"; shift 2 ;;
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --all) all=1; shift ;;
        --db-data) data="${2:?--db-data needs a tar.gz of the data directory}"; shift 2 ;;
        --) shift; break ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        -*) fatal "unknown option '$1' (see --help)" ;;
        *) names+=("$1"); shift ;;
        esac
    done
    ((all || ${#names[@]})) || fatal "which host? usage: scripts/recover.sh NAME [--host-key KEY] | --all [--db-data FILE]"
    ((all && ${#names[@]})) && fatal "give host names or --all, not both"
    [[ -z "$key" || ${#names[@]} -eq 1 ]] || fatal "--host-key goes with exactly one host name"
    [[ -z "$data" || -f "$data" ]] || fatal "--db-data: no such file: $data"
    local up_args=("$@")
    cd "$REPO"
    # shellcheck source=/dev/null
    source toolchain/env.sh || fatal "the Pulumi toolchain is not available (bash scripts/setup.sh builds it)"
    if [[ "$stack" == lab ]]; then
        export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
        [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] || export PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
        ((${#up_args[@]})) || up_args=(--yes --skip-preview)
    fi
    ((all)) && mapfile -t names < <(all_hosts "$stack")
    if [[ -n "$key" ]]; then
        pulumi config set --stack "$stack" --path "pi-cluster:$(config_path "$stack" "${names[0]}").hostKey" "$key"
        info "pinned the new host key of ${names[0]}"
    fi
    local name
    for name in "${names[@]}"; do check_key "$stack" "$name"; done
    for name in "${names[@]}"; do bump_reapply "$stack" "$name"; done
    info "rebuilding ${names[*]} with pulumi up"
    pulumi up --stack "$stack" "${up_args[@]}"
    [[ -z "$data" ]] || restore_db_data "$stack" "$data"
}

main "$@"
