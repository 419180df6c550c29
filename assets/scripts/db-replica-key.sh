#!/usr/bin/env bash
# Step "seed-key" (on a read replica): the replica's own SSH key for its seeding stream from
# the database, made here once; only its public half leaves the Pi, on the step's stdout
# after SEED_KEY_MARK, for the database's source step to authorize (from this address only,
# forced to the stream). Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP           log prefix
#   KEY            the private key's path (0600 root)
#   SEED_KEY_MARK  the word before the public key on stdout
set -euo pipefail

# @vars

# @lib

apply() {
    apt_install openssh-client
    install -d -m 0700 "$(dirname "$KEY")"
    if [[ ! -f "$KEY" ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "pi-cluster-seed@$(hostname)" -f "$KEY"
        info "made this replica's SSH key for its seeding stream"
    fi
    printf '%s %s\n' "$SEED_KEY_MARK" "$(cut -d' ' -f1-2 "$KEY.pub")"
}

delete() {
    remove_paths "$KEY" "$KEY.pub"
}

# verify: the key is there, private and root's.
verify() {
    [[ "$(stat -c '%a %U' "$KEY" 2>/dev/null)" == "600 root" ]] || drift "$KEY: missing or not 0600 root"
    [[ -f "$KEY.pub" ]] || drift "$KEY.pub: missing"
}

main "$@" </dev/null
