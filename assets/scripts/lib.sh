#!/usr/bin/env bash
# Helpers shared by every step script. The renderer inlines this file at the lib marker
# line, so each script sent to a Pi is self-contained.
# Reads: STEP (the step's name, used as the log prefix).

info() { printf '[%s] %s\n' "${STEP:-pi-cluster}" "$*"; }
fatal() {
    printf '[%s] ERROR: %s\n' "${STEP:-pi-cluster}" "$*" >&2
    exit 1
}

# put_file B64 DEST MODE [OWNER:GROUP]
# Installs DEST from base64 text when its content, mode or owner differs.
# Returns 0 when it changed DEST and 1 when DEST was already right.
put_file() {
    local data="$1" dest="$2" mode="$3" owner="${4:-root:root}" tmp
    tmp=$(mktemp)
    printf '%s' "$data" | base64 -d >"$tmp"
    if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest" && [[ "$(stat -c '%a %U:%G' "$dest")" == "${mode#0} $owner" ]]; then
        rm -f "$tmp"
        return 1
    fi
    install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
    rm -f "$tmp"
    info "updated $dest"
}

# remove_paths PATH... : deletes what exists, says what it removed.
remove_paths() {
    local p
    for p in "$@"; do
        if [[ -e "$p" || -L "$p" ]]; then
            rm -rf -- "$p"
            info "removed $p"
        fi
    done
}

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# apt_install PKG... : installs the packages that are missing, and nothing else.
apt_install() {
    local missing=() p
    for p in "$@"; do
        is_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # Package lists older than an hour are refreshed; a fresh Pi has none at all.
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 -print -quit)" ]]; then
        info "refreshing package lists"
        apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null || fatal "apt-get update failed: check the Pi's network and /etc/apt/sources.list*"
    fi
    info "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install --no-install-recommends "${missing[@]}" >/dev/null ||
        fatal "apt-get install ${missing[*]} failed: run it by hand on $(hostname) to see why"
}

# apt_purge PKG... : removes the packages that are installed.
apt_purge() {
    local present=() p
    for p in "$@"; do
        if is_installed "$p"; then present+=("$p"); fi
    done
    ((${#present[@]})) || return 0
    info "removing ${present[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 remove "${present[@]}" >/dev/null
}

# unpack_release TARBALL DIR : unpacks TARBALL into DIR/releases/<sha> once, points
# DIR/current at it atomically and keeps the two newest releases.
# Returns 0 when current moved and 1 when it already pointed there.
unpack_release() {
    local tarball="$1" dir="$2" sha target
    [[ -f "$tarball" ]] || fatal "artifact $tarball is missing: the copy step did not run"
    sha=$(sha256sum "$tarball" | cut -c1-16)
    target="$dir/releases/$sha"
    if [[ ! -d "$target" ]]; then
        rm -rf "$target.partial"
        mkdir -p "$target.partial"
        tar -xzf "$tarball" -C "$target.partial" --no-same-owner
        mv "$target.partial" "$target"
    fi
    if [[ "$(readlink "$dir/current" 2>/dev/null)" == "$target" ]]; then
        return 1
    fi
    ln -sfn "$target" "$dir/current.new"
    mv -T "$dir/current.new" "$dir/current"
    info "switched $dir/current to release $sha"
    # shellcheck disable=SC2012 # release names are hex, so ls is safe here
    ls -1dt "$dir"/releases/* | tail -n +3 | { grep -v -x -F "$target" || true; } | xargs -r rm -rf --
}

# prune_uploads ARTIFACT : deletes older uploads of the same kind (same name up to the
# last "-"), keeping ARTIFACT so the step can run again.
prune_uploads() {
    local artifact="$1" dir kind
    dir=$(dirname "$artifact")
    kind=$(basename "$artifact")
    kind=${kind%-*}
    find "$dir" -maxdepth 1 -type f -name "$kind-*" ! -path "$artifact" -delete
}

# main ACTION : every step script defines apply and delete; Pulumi runs "apply" on
# create and update, and "delete" on delete.
main() {
    case "${1:-apply}" in
    apply) apply ;;
    delete) delete ;;
    *) fatal "unknown action '${1}': expected apply or delete" ;;
    esac
}
