#!/usr/bin/env bash
# Prints the preview of a stack as Markdown: a table of creates, updates, replaces and
# deletes per Pi, then each changed input as a line diff (each carried file on its own,
# secrets hidden).
# A preview connects to no Pi, so this needs the state backend but no SSH access.
# Usage: scripts/preview.sh [--stack NAME] [--json FILE] [--max-chars N]
#   --stack NAME     the stack to preview (default: production)
#   --json FILE      render a saved `pulumi preview --json` instead of running one
#   --max-chars N    cut the diffs to stay under N characters (a PR comment holds 65536)
# Exit status: pulumi preview's (the Markdown is printed either way); 2 on bad arguments.
# Reads:
#   PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE(_FILE), PULUMI_ACCESS_TOKEN, cloud
#   credentials: whatever the stack's backend and secrets provider need
#   PATH: a pulumi with the provider plugins, else toolchain/env.sh provides one
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
TMP=""

info() { printf 'preview: %s\n' "$*" >&2; }
fatal() {
    printf 'preview: error: %s\n' "$*" >&2
    exit 2
}

cleanup() { [[ -z "$TMP" ]] || rm -rf "$TMP"; }

ensure_pulumi() {
    command -v pulumi >/dev/null && return 0
    local status=0
    # shellcheck source=/dev/null
    source "$REPO/toolchain/env.sh" || status=$?
    ((status == 0)) || fatal "no pulumi with the command/random plugins (toolchain/env.sh exited $status); a preview of existing resources needs them"
}

# render FILE : the Markdown of a saved preview.
render() {
    node -r sucrase/register/ts "$REPO/scripts/preview/cli.ts" "$1" ${MAX_CHARS:+"$MAX_CHARS"}
}

main() {
    local stack=production json="" status=0
    MAX_CHARS=""
    while (($#)); do
        case "$1" in
        --stack) stack="${2:?--stack needs a name}"; shift 2 ;;
        --json) json="${2:?--json needs a file}"; shift 2 ;;
        --max-chars) MAX_CHARS="${2:?--max-chars needs a number}"; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) fatal "unknown argument '$1' (see --help)" ;;
        esac
    done
    [[ -z "$MAX_CHARS" || "$MAX_CHARS" =~ ^[0-9]+$ ]] || fatal "--max-chars expects a number, got '$MAX_CHARS'"
    [[ -d "$REPO/node_modules/sucrase" ]] || fatal "$REPO/node_modules is missing; run npm ci in $REPO"
    if [[ -n "$json" ]]; then
        [[ -r "$json" ]] || fatal "cannot read $json"
        render "$json"
        return 0
    fi

    ensure_pulumi
    TMP="$(mktemp -d -t pi-cluster-preview.XXXXXX)"
    trap cleanup EXIT
    info "pulumi preview --stack $stack"
    # stdout is the JSON document only; progress and the program's own output go to stderr.
    pulumi preview --json --diff --stack "$stack" --non-interactive --cwd "$REPO" \
        >"$TMP/preview.json" 2>"$TMP/stderr" || status=$?
    if [[ -s "$TMP/preview.json" ]] && render "$TMP/preview.json"; then
        ((status == 0)) || info "pulumi preview exited $status; its errors are in the Markdown above"
    else
        # No JSON at all: the preview failed before the engine ran (login, stack, passphrase).
        # shellcheck disable=SC2016 # the backticks are Markdown, not command substitution
        printf '## Pulumi preview of `%s`\n\n**The preview failed before it produced a plan.**\n\n```\n%s\n```\n' \
            "$stack" "$(tail -n 30 "$TMP/stderr")"
        ((status != 0)) || status=1
    fi
    return "$status"
}

main "$@"
