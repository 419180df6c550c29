#!/usr/bin/env bash
# Step "app-secrets": installs the app's secrets file (0600, owned by the app's user), apart
# from its settings so that this is the one step on a web server whose script is secret.
# A changed file makes the app's restart owed: the app step, which runs next (its script
# carries a digest of these secrets), restarts the app while the server is drained.
# Run as root via `sudo bash -s -- apply|delete|verify`.
# Reads:
#   STEP          log prefix
#   APP_USER      the user the app runs as
#   SECRETS_FILE  path of the secrets file;  SECRETS_TEXT its content (secret)
set -euo pipefail

# @vars

# @lib

apply() {
    id -u "$APP_USER" >/dev/null 2>&1 || fatal "user $APP_USER is missing: the node step creates it"
    if put_file "$SECRETS_TEXT" "$SECRETS_FILE" 0600 "$APP_USER:$APP_USER"; then
        pending_begin app-restart || true
        info "the app restarts on its new secrets in the app step"
    fi
}

delete() {
    remove_paths "$SECRETS_FILE"
}

# verify: the secrets file as rendered (compared, never shown).
verify() {
    expect_file "$SECRETS_TEXT" "$SECRETS_FILE" 0600 "$APP_USER:$APP_USER"
}

main "$@" </dev/null
