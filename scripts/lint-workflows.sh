#!/usr/bin/env bash
# Lints the GitHub workflows with actionlint, which also runs shellcheck (when it is on
# PATH) on every `run:` script. Fails on any finding.
# actionlint is built once from the Go module proxy, at the version pinned below, into a
# cache by version; later runs reuse it.
# Usage: scripts/lint-workflows.sh [WORKFLOW_DIR]   (default: .github/workflows)
# Exit status: 0 no finding; 1 findings or a failure; 3 actionlint is not cached and there
# is no go to build it.
# Reads:
#   PI_CLUSTER_CACHE   cache root (default /var/cache/pi-cluster); actionlint goes to
#                      <cache>/tools/actionlint-<version>/
#   Go settings (GOPROXY, GOFLAGS, GOMODCACHE, GOCACHE, ...) as configured.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
# The newest release the module proxy served when this was pinned (go list -m -versions).
readonly ACTIONLINT_VERSION=v1.7.12
readonly ACTIONLINT_MODULE=github.com/rhysd/actionlint
readonly EXIT_NO_GO=3
BUILD_DIR=""
ACTIONLINT_BIN=""

info() { printf 'lint-workflows: %s\n' "$*" >&2; }
fatal() {
    printf 'lint-workflows: error: %s\n' "$*" >&2
    exit 1
}

cleanup() { [[ -z "$BUILD_DIR" ]] || rm -rf "$BUILD_DIR"; }

# Sets ACTIONLINT_BIN to the cached actionlint, building it first if it is missing.
ensure_actionlint() {
    local dir="${PI_CLUSTER_CACHE:-/var/cache/pi-cluster}/tools/actionlint-$ACTIONLINT_VERSION"
    local bin="$dir/actionlint"
    if [[ ! -x "$bin" ]]; then
        if ! command -v go >/dev/null; then
            info "go is not on PATH, and $bin is not built yet; install Go to build it"
            exit "$EXIT_NO_GO"
        fi
        mkdir -p "$dir" || fatal "cannot create $dir; set PI_CLUSTER_CACHE to a writable directory"
        # One builder at a time; a second caller waits, then finds the binary.
        exec 9>"$dir/.lock"
        flock 9
        if [[ ! -x "$bin" ]]; then
            info "building actionlint $ACTIONLINT_VERSION into $dir (once)"
            BUILD_DIR="$(mktemp -d "$dir/build.XXXXXX")"
            GOBIN="$BUILD_DIR" CGO_ENABLED=0 go install -trimpath \
                "$ACTIONLINT_MODULE/cmd/actionlint@$ACTIONLINT_VERSION" >&2 \
                || fatal "go install $ACTIONLINT_MODULE/cmd/actionlint@$ACTIONLINT_VERSION failed (see above)"
            # A rename on the same file system: readers see no binary or the whole one.
            mv -f "$BUILD_DIR/actionlint" "$bin"
            cleanup
            BUILD_DIR=""
        fi
        flock -u 9
    fi
    local got
    got="$("$bin" -version)"
    got="${got%%$'\n'*}"
    [[ "$got" == "$ACTIONLINT_VERSION" ]] || fatal "$bin reports version '$got', expected $ACTIONLINT_VERSION; delete it to rebuild"
    ACTIONLINT_BIN="$bin"
}

main() {
    local dir="${1:-$REPO/.github/workflows}"
    trap cleanup EXIT
    [[ -d "$dir" ]] || fatal "no workflow directory $dir"
    shopt -s nullglob
    local files=("$dir"/*.yml "$dir"/*.yaml)
    shopt -u nullglob
    # A wrong directory must not pass as "no findings".
    ((${#files[@]})) || fatal "no workflow (*.yml, *.yaml) in $dir"
    ensure_actionlint
    command -v shellcheck >/dev/null || info "shellcheck is not on PATH: run: scripts are not checked"
    info "actionlint $ACTIONLINT_VERSION on ${#files[@]} workflow(s) in $dir"
    "$ACTIONLINT_BIN" -config-file "$REPO/.github/actionlint.yaml" "${files[@]}"
    info "no findings"
}

main "$@"
