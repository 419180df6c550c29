#!/usr/bin/env bash
# Restores the database from the encrypted backups on the backup target, onto a bare or
# wiped database Pi, with one command. Then `scripts/recover.sh DB_NAME` (a `pulumi up`)
# brings the rest back: the restored data holds the app's users and grants, so the web
# servers reconnect with no manual SQL.
#
#   scripts/restore.sh --identity FILE|- [--to 'YYYY-MM-DD HH:MM:SS'] [--stack STACK]
#   scripts/restore.sh --identity FILE|- --from DIR --here [--to ...]
#
#   --identity  the age private key (the operator's; no Pi holds it): a file, or - to read
#               it from stdin. Without it, the path is asked for on the terminal. The key is
#               never put on a command line and never leaves this machine.
#   --to        restore to this moment (UTC) instead of the latest: the newest full before it,
#               its incrementals before it, then the binlogs replayed up to it
#   --stack     the Pulumi stack (default lab); the target and the DB Pi come from its
#               `backup` output, the SSH user and key and the DB Pi's pinned host key
#               from its config (pin a replaced Pi's new key first, as for recover.sh)
#   --from DIR  read the backups from a local copy of the target's directory instead
#   --here      restore onto this machine (run as root on the DB Pi), not over SSH
#
# Safe to re-run: every run stages from scratch, and the data directory a run replaces is
# kept beside it (/var/lib/mysql.before-restore-TIME). Each file's sha256 is checked against
# the one the target recorded before anything is decrypted; age refuses a truncated or
# altered file. Either stops the restore: a damaged backup is reported, never restored.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
# shellcheck source=/dev/null
source "$REPO/assets/backup/pi-cluster-backup.sh"

info() { printf 'restore: %s\n' "$*" >&2; }
fatal() {
    printf 'restore: error: %s\n' "$*" >&2
    exit 1
}

WORK=$(mktemp -d)
readonly WORK
trap 'rm -rf "$WORK"' EXIT
chmod 0700 "$WORK"

# read_identity SOURCE : copies the age identity into a 0600 file of WORK.
read_identity() {
    local src=$1
    if [[ -z "$src" ]]; then
        [[ -t 0 ]] || fatal "no --identity and no terminal to ask on: pass --identity FILE or --identity - (stdin)"
        read -r -p "age identity file (the backup private key): " src
    fi
    (umask 077 && if [[ "$src" == - ]]; then cat; else cat -- "$src"; fi >"$WORK/identity") ||
        fatal "cannot read the age identity from ${src}"
    grep -q '^AGE-SECRET-KEY-' "$WORK/identity" || fatal "the identity holds no AGE-SECRET-KEY line"
}

# ssh_to WHO : the ssh command for the target or the DB Pi, from the stack.
declare -a TARGET_SSH DB_SSH
setup_ssh() {
    local stack=$1 out user key dbkey
    out=$(pulumi stack output --stack "$stack" --json backup) || fatal "no 'backup' output in stack $stack: was it deployed with backups?"
    user=$(pulumi config get --stack "$stack" pi-cluster:sshUser 2>/dev/null || echo pi)
    key=$(pulumi config get --stack "$stack" pi-cluster:sshPrivateKeyPath 2>/dev/null || true)
    key=${key/#\~/$HOME}
    if [[ -z "$key" ]]; then
        key="$WORK/key"
        (umask 077 && pulumi config get --stack "$stack" pi-cluster:sshPrivateKey >"$key")
    fi
    # The database Pi's key as pinned now: a replaced Pi has a new one (recover.sh --host-key,
    # or lab reset), which the last deployment's output does not know yet.
    dbkey=$(pulumi config get --stack "$stack" --path pi-cluster:database.hostKey) || fatal "no database.hostKey in stack $stack's config"
    # shellcheck disable=SC2016 # JavaScript, not shell
    node -e '
        const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
        o.database.hostKey = process.argv[2];
        const known = (h) => (h.port === 22 ? h.address : `[${h.address}]:${h.port}`) + " " + h.hostKey;
        console.log(known(o.target)); console.log(known(o.database));
        require("fs").writeFileSync(process.argv[1], [o.target.address, o.target.port, o.target.path, o.database.address, o.database.port].join("\n") + "\n");' \
        "$WORK/hosts" "$dbkey" <<<"$out" >"$WORK/known_hosts"
    mapfile -t H <"$WORK/hosts"
    TARGET_DIR=${H[2]}
    local common=(-i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes
        -o UserKnownHostsFile="$WORK/known_hosts" -o GlobalKnownHostsFile=/dev/null)
    TARGET_SSH=(ssh "${common[@]}" -p "${H[1]}" "$user@${H[0]}")
    DB_SSH=(ssh "${common[@]}" -p "${H[4]}" "$user@${H[3]}")
}

FROM="" HERE=0 TARGET_DIR=""

list_backups() {
    if [[ -n "$FROM" ]]; then
        find "$FROM" -maxdepth 1 -type f -name '*.age' -printf '%f\n'
    else
        "${TARGET_SSH[@]}" "sudo find '$TARGET_DIR' -maxdepth 1 -type f -name '*.age' -printf '%f\\n'"
    fi
}

# fetch NAME : the encrypted file and its recorded hash into WORK; fails on a mismatch.
fetch() {
    local name=$1
    if [[ -n "$FROM" ]]; then
        cp -- "$FROM/$name" "$FROM/$name.sha256" "$WORK/" 2>/dev/null || fatal "$name or its .sha256 is missing in $FROM"
    else
        "${TARGET_SSH[@]}" "sudo cat '$TARGET_DIR/$name'" >"$WORK/$name" || fatal "cannot read $name on the target"
        "${TARGET_SSH[@]}" "sudo cat '$TARGET_DIR/$name.sha256'" >"$WORK/$name.sha256" || fatal "$name has no recorded sha256 on the target"
    fi
    (cd "$WORK" && sha256sum --quiet --strict -c "$name.sha256" >/dev/null 2>&1) ||
        fatal "$name does not match the sha256 recorded when it was shipped: it is damaged; not restoring (restore with --to before it, or fix the target)"
}

# on_db ARGS... : runs pi-cluster-restore on the DB Pi (or here), stdin passed through.
on_db() {
    if ((HERE)); then
        bash "$REPO/assets/backup/pi-cluster-restore.sh" "$@"
    else
        "${DB_SSH[@]}" "sudo /usr/local/sbin/pi-cluster-restore $(printf '%q ' "$@")"
    fi
}

prepare_db_host() {
    ((HERE)) && return 0
    info "installing MariaDB, mariadb-backup and zstd on the DB Pi (nothing happens when they are there)"
    "${DB_SSH[@]}" 'sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install --no-install-recommends mariadb-server mariadb-backup zstd >/dev/null || { sudo apt-get -q update >/dev/null && sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends mariadb-server mariadb-backup zstd >/dev/null; }'
    "${DB_SSH[@]}" 'sudo install -m 0755 /dev/stdin /usr/local/sbin/pi-cluster-restore' <"$REPO/assets/backup/pi-cluster-restore.sh"
}

main() {
    local identity="" to="" stack=lab to_epoch name started=$SECONDS
    while (($#)); do
        case "$1" in
        --identity) identity="${2:?--identity needs a file or -}"; shift 2 ;;
        --to) to="${2:?--to needs 'YYYY-MM-DD HH:MM:SS'}"; shift 2 ;;
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --from) FROM="${2:?--from needs a directory}"; shift 2 ;;
        --here) HERE=1; shift ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) fatal "unknown argument '$1' (see --help)" ;;
        esac
    done
    if [[ -n "$to" ]]; then
        [[ "$to" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] || fatal "--to: expected 'YYYY-MM-DD HH:MM:SS' (UTC), got '$to'"
        to_epoch=$(date -u -d "$to" +%s) || fatal "--to: not a time: $to"
    else
        to_epoch=$(($(date -u +%s) + 86400))
    fi
    read_identity "$identity"
    if [[ -z "$FROM" || $HERE -eq 0 ]]; then
        cd "$REPO"
        # shellcheck source=/dev/null
        source toolchain/env.sh || fatal "the Pulumi toolchain is not available (bash scripts/setup.sh builds it)"
        if [[ "$stack" == lab ]]; then
            export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$REPO/.state/backend}"
            [[ -n "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]] || export PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
        fi
        setup_ssh "$stack"
    fi
    local -a plan
    mapfile -t plan < <(list_backups | plan_restore "$to_epoch")
    ((${#plan[@]})) || fatal "no full backup ${to:+at or before $to }on the target"
    info "restoring from ${plan[*]}"
    for name in "${plan[@]}"; do fetch "$name"; done
    info "all ${#plan[@]} file(s) match their recorded sha256"
    prepare_db_host
    on_db begin
    # From here a failure leaves no decrypted staging behind on the DB Pi.
    trap 'on_db abort || true; rm -rf "$WORK"' EXIT
    for name in "${plan[@]}"; do
        case "$name" in
        binlog-*) age -d -i "$WORK/identity" "$WORK/$name" | on_db stage-binlog "$name" ;;
        *) age -d -i "$WORK/identity" "$WORK/$name" | on_db stage-backup "$name" ;;
        esac || fatal "$name did not decrypt or unpack: not restoring"
    done
    if [[ -n "$to" ]]; then on_db apply "$to"; else on_db apply; fi
    trap 'rm -rf "$WORK"' EXIT
    info "restored in $((SECONDS - started)) s${to:+ to $to UTC}; now bring the cluster back with: scripts/recover.sh <db host> --stack $stack"
}

main "$@"
