#!/usr/bin/env bash
# Step "dashboard": unpacks a dashboard build into the static root and switches to it.
# nginx serves files, so no reload is needed. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP       log prefix
#   ARTIFACT   the uploaded tarball of the Angular build
#   WWW_DIR    static root parent (current -> releases/<sha>)
set -euo pipefail

# @vars

# @lib

apply() {
    if unpack_release "$ARTIFACT" "$WWW_DIR"; then
        info "dashboard switched"
    else
        info "dashboard unchanged"
    fi
    prune_uploads "$ARTIFACT"
}

delete() {
    # Back to the placeholder; the nginx step removes the directory itself.
    if [[ -d "$WWW_DIR/placeholder" ]]; then
        ln -sfn "$WWW_DIR/placeholder" "$WWW_DIR/current.new" && mv -T "$WWW_DIR/current.new" "$WWW_DIR/current"
    fi
    remove_paths "$WWW_DIR/releases"
}

# verify: the dashboard served is the release shipped.
verify() {
    expect_release "$ARTIFACT" "$WWW_DIR"
}

main "$@" </dev/null
