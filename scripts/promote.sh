#!/usr/bin/env bash
# Promotes a read replica when the database Pi is lost (the seed's "Node Recovery" for the
# database).
#
#   scripts/promote.sh REPLICA [--stack STACK] [--force]
#
# 1. Refuses while the database still answers on its MariaDB or SSH port: two writable
#    databases would split the cluster's writes. --force skips this, for a database you
#    have fenced yourself (powered off, unplugged) that the check cannot tell from alive.
# 2. On the replica: stops fetching from the lost database, applies what it had already
#    received (its relay log), forgets the replication and turns read_only off.
# 3. Takes the lost database's steps out of the stack's state (scripts/promote/state.ts):
#    their delete would run on a Pi that is gone. The state is exported and imported
#    as it is, secrets encrypted.
# 4. Makes the replica the database in the stack config (its name, address, port, host
#    key, RAM), drops it from dbReplicas and drops the lost host's reapply entry.
# Then one `pulumi up` makes it the database: the web servers write to it (rolled one at a
# time), the other replicas follow it by GTID, backups run there, and the firewall and
# grants follow. The lost Pi, once repaired, comes back as a new replica (reset it, add it
# to dbReplicas), never as the database: its data stopped where it was lost.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO

info() { printf 'promote: %s\n' "$*" >&2; }
fatal() {
    printf 'promote: error: %s\n' "$*" >&2
    exit 1
}

# cfg STACK KEY : a structured config value as JSON ("null" when unset).
cfg() {
    local v
    v=$(pulumi config get --stack "$1" "pi-cluster:$2" 2>/dev/null || true)
    [[ -n "$v" ]] && printf '%s' "$v" || printf 'null'
}

# field JSON EXPR : a field of a JSON value, by a JavaScript expression on `v` (empty when undefined).
field() { node -e 'const v = JSON.parse(process.argv[1]); const x = eval(process.argv[2]); if (x !== undefined && x !== null) console.log(typeof x === "string" ? x : JSON.stringify(x));' "$1" "$2"; }

# answers ADDRESS PORT : whether something accepts a TCP connection there within 3 s.
# shellcheck disable=SC2016 # the inner bash expands them
answers() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# on_replica : runs stdin as root on the replica over SSH, pinned to its host key.
on_replica() {
    local known=$address
    [[ "$port" == 22 ]] || known="[$address]:$port"
    printf '%s %s\n' "$known" "$hostkey" >"$work/known_hosts"
    ssh -p "$port" -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
        -o UserKnownHostsFile="$work/known_hosts" -o GlobalKnownHostsFile=/dev/null "$user@$address" "sudo bash -s -- $address"
}

main() {
    local name="" stack=lab force=0
    while (($#)); do
        case "$1" in
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --force) force=1; shift ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) fatal "unknown option '$1' (see --help)" ;;
        *) [[ -z "$name" ]] || fatal "one replica at a time"; name=$1; shift ;;
        esac
    done
    [[ -n "$name" ]] || fatal "which replica? usage: scripts/promote.sh REPLICA [--stack STACK] [--force]"
    cd "$REPO"
    # shellcheck source=/dev/null
    source toolchain/env.sh || fatal "the Pulumi toolchain is not available (bash scripts/setup.sh builds it)"
    [[ -d "$REPO/node_modules/ts-node" ]] || fatal "$REPO/node_modules is missing; run npm ci in $REPO"
    if [[ "$stack" == lab ]]; then
        export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
        [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] || export PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
    fi
    local db replicas replica lost lost_address db_port
    db=$(cfg "$stack" database)
    replicas=$(cfg "$stack" dbReplicas)
    lost=$(field "$db" 'v && v.name')
    lost_address=$(field "$db" 'v && v.address')
    [[ -n "$lost" ]] || fatal "stack $stack has no database in its config"
    replica=$(field "$replicas" "(v || []).find((r) => r.name === '${name//\'/}')")
    [[ -n "$replica" ]] || fatal "$name is not a replica of stack $stack (dbReplicas: $(field "$replicas" '(v || []).map((r) => r.name).join(", ") || "none"'))"
    db_port=$(pulumi config get --stack "$stack" pi-cluster:dbPort 2>/dev/null || echo 3306)

    local p
    for p in "$db_port" "$(field "$db" 'v.sshPort || 22')"; do
        if answers "$lost_address" "$p"; then
            ((force)) || fatal "$lost ($lost_address) still answers on port $p: promoting now would leave two writable databases; stop it first, or pass --force if it is fenced"
            info "$lost ($lost_address) answers on port $p; going on (--force)"
        fi
    done
    info "$lost ($lost_address) does not answer: promoting $name"

    address=$(field "$replica" 'v.address')
    port=$(field "$replica" 'v.sshPort || 22')
    hostkey=$(field "$replica" 'v.hostKey')
    user=$(pulumi config get --stack "$stack" pi-cluster:sshUser 2>/dev/null || echo pi)
    work=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the directory is known
    trap "rm -rf '$work'" EXIT
    key=$(pulumi config get --stack "$stack" pi-cluster:sshPrivateKeyPath 2>/dev/null || true)
    key=${key/#\~/$HOME}
    if [[ -z "$key" ]]; then
        key="$work/key"
        (umask 077 && pulumi config get --stack "$stack" pi-cluster:sshPrivateKey >"$key")
    fi

    local t0=$SECONDS
    on_replica <<'SCRIPT'
set -euo pipefail
sql() { mariadb --protocol=socket -N -B "$@"; }
st() { mariadb --protocol=socket -e 'SHOW SLAVE STATUS\G' | awk -v k="$1" '{ i = index($0, ": "); if (!i) next; n = substr($0, 1, i - 1); gsub(/^ +/, "", n); if (n == k) { print substr($0, i + 2); exit } }'; }
# Nothing more from the lost database; what it already sent is applied before the switch.
sql -e 'STOP SLAVE IO_THREAD'
for _ in $(seq 1 120); do
    if [[ "$(st Slave_SQL_Running)" != Yes ]]; then
        echo "promote: the replica's SQL thread is stopped: $(st Last_SQL_Error)" >&2
        break
    fi
    [[ "$(st Relay_Master_Log_File) $(st Exec_Master_Log_Pos)" == "$(st Master_Log_File) $(st Read_Master_Log_Pos)" ]] && break
    sleep 0.5
done
sql -e "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF; SET GLOBAL slave_exec_mode = 'STRICT'"
# Its own replication user (from its own address) is of no use to a database.
sql -e "DROP USER IF EXISTS 'pi_repl'@'$1'"
echo "promote: $(hostname) is writable at GTID $(sql -e 'SELECT @@gtid_current_pos')" >&2
SCRIPT
    info "$name is writable ($((SECONDS - t0)) s)"

    local others=()
    mapfile -t others < <(field "$replicas" "v.map((r) => r.name).join('\n')")
    pulumi stack export --stack "$stack" --file "$work/state.json"
    node -r ts-node/register/transpile-only scripts/promote/state.ts "$work/state.json" "$work/state.new.json" "$lost" "${others[@]}" >"$work/removed"
    pulumi stack import --stack "$stack" --file "$work/state.new.json" >/dev/null
    info "took $(wc -l <"$work/removed") resource(s) of $lost out of the state (their delete would run on the lost Pi)"

    local k v
    for k in name address hostKey sshPort ramMb; do
        v=$(field "$replica" "v.$k")
        if [[ -n "$v" ]]; then
            pulumi config set --stack "$stack" --path "pi-cluster:database.$k" "$v"
        else
            pulumi config rm --stack "$stack" --path "pi-cluster:database.$k" >/dev/null 2>&1 || true
        fi
    done
    pulumi config rm --stack "$stack" pi-cluster:dbReplicas
    local i=0 r
    while read -r r; do
        [[ -n "$r" ]] || continue
        for k in name address hostKey sshPort ramMb; do
            v=$(field "$r" "v.$k")
            [[ -z "$v" ]] || pulumi config set --stack "$stack" --path "pi-cluster:dbReplicas[$i].$k" "$v"
        done
        i=$((i + 1))
    done < <(field "$replicas" "v.filter((r) => r.name !== '${name//\'/}').map((r) => JSON.stringify(r)).join('\n')")
    pulumi config rm --stack "$stack" --path "pi-cluster:reapply.$lost" >/dev/null 2>&1 || true
    info "the stack config now names $name ($address) the database, with $i replica(s)"
    info "next: pulumi up --stack $stack (it makes $name the database; the web servers then write to it)"
}

main "$@"
