#!/usr/bin/env bash
# Smoke test of the toolchain itself, against a throwaway file backend; leaves nothing behind.
#   smoke/engine     the CLI, the nodejs language host, state and secrets, with a dynamic
#                    provider (no Go plugin): up, outputs, preview --expect-no-changes, destroy.
#   smoke/providers  the same with the command and random plugins at the pinned versions.
# Exit status: 0 both passed; anything else, failure.
#
# Variables read:
#   SMOKE_KEEP    1: keep the temp dir (program copy and state) for debugging
#   the variables of ensure.sh (PI_CLUSTER_CACHE, PI_CLUSTER_TOOLCHAIN, ...) via env.sh
# SC2016: the single-quoted strings are JavaScript for node. SC2317: functions are called
# indirectly (build_<part>, traps), which shellcheck cannot follow.
# shellcheck disable=SC2016,SC2317
set -euo pipefail

TOOLCHAIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$TOOLCHAIN_DIR")"
readonly TOOLCHAIN_DIR REPO_DIR
readonly STACK=smoke
TMP_DIR=""
STACK_UP=0

info() { printf 'smoke: %s\n' "$*" >&2; }
fatal() { printf 'smoke: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local status=$?
  if ((STACK_UP)); then
    info "destroying the stack after a failure"
    (cd "$TMP_DIR/program" && pulumi destroy --yes --skip-preview --stack "$STACK" >&2) || true
    STACK_UP=0
  fi
  if [[ -n "$TMP_DIR" ]]; then
    if [[ "${SMOKE_KEEP:-0}" == 1 ]]; then
      info "kept $TMP_DIR"
    else
      rm -rf "$TMP_DIR"
    fi
  fi
  exit "$status"
}

load_toolchain() {
  # shellcheck source=toolchain/env.sh
  source "$TOOLCHAIN_DIR/env.sh" || fatal "the toolchain is not available"
  info "pulumi $(pulumi version) from $(command -v pulumi)"
}

# A temp copy of the program that resolves packages from the repo's node_modules,
# so the smoke needs no npm install of its own.
prepare_program() {
  local program="$1"
  [[ -d "$REPO_DIR/node_modules/@pulumi/pulumi" ]] \
    || fatal "$REPO_DIR/node_modules is missing @pulumi/pulumi; run npm ci in $REPO_DIR"
  [[ -z "$TMP_DIR" ]] || rm -rf "$TMP_DIR"
  TMP_DIR="$(mktemp -d -t pi-cluster-smoke.XXXXXX)"
  mkdir -p "$TMP_DIR/program" "$TMP_DIR/state"
  cp "$TOOLCHAIN_DIR/smoke/$program/"* "$TMP_DIR/program/"
  ln -s "$REPO_DIR/node_modules" "$TMP_DIR/program/node_modules"
  # No install happens: the dependencies mirror the repo's pins and are already present.
  node -e '
    const [repoPkg, out] = process.argv.slice(1);
    const deps = require(repoPkg).dependencies;
    const pick = (n) => ({ [n]: deps[n] });
    const pkg = {
      name: "pi-cluster-toolchain-smoke", private: true, main: "index.ts",
      dependencies: { ...pick("@pulumi/pulumi"), ...pick("@pulumi/command"), ...pick("@pulumi/random") },
    };
    require("fs").writeFileSync(out, JSON.stringify(pkg, null, 2) + "\n");
  ' "$REPO_DIR/package.json" "$TMP_DIR/program/package.json"

  # This run's state only: a throwaway backend with an empty passphrase. PULUMI_HOME
  # stays as it is, so plugins installed there still count.
  export PULUMI_BACKEND_URL="file://$TMP_DIR/state"
  export PULUMI_CONFIG_PASSPHRASE=""
  unset PULUMI_CONFIG_PASSPHRASE_FILE
}

run_stack() {
  cd "$TMP_DIR/program"
  pulumi stack init "$STACK" >&2
  STACK_UP=1
  pulumi up --yes --skip-preview --stack "$STACK" >&2
}

# check_secret_output NAME PATTERN DESCRIPTION : the stack output NAME is shown as
# [secret], its value matches PATTERN, and the value is nowhere in plaintext in the state.
check_secret_output() {
  local name="$1" pattern="$2" what="$3" hidden value
  hidden="$(pulumi stack output "$name" --stack "$STACK")"
  value="$(pulumi stack output "$name" --show-secrets --stack "$STACK")"
  [[ "$hidden" == "[secret]" ]] || fatal "$name is not a secret: $hidden"
  [[ "$value" =~ $pattern ]] || fatal "$name is not $what: $value"
  if grep -rqF "$value" "$TMP_DIR/state"; then
    fatal "$name is in plaintext in the state files"
  fi
  info "$name is a secret, $what, encrypted in the state"
}

# check_output NAME EXPECTED : the stack output NAME equals EXPECTED.
check_output() {
  local got
  got="$(pulumi stack output "$1" --stack "$STACK")"
  [[ "$got" == "$2" ]] || fatal "$1 is '$got', expected '$2'"
}

check_idempotent() {
  pulumi preview --expect-no-changes --stack "$STACK" >&2
  info "second preview has no changes"
}

report_versions() {
  pulumi plugin ls >&2
  pulumi about --stack "$STACK" 2>/dev/null | sed -n '/^CLI/,/^Host/p' >&2 || true
}

destroy_stack() {
  pulumi destroy --yes --skip-preview --stack "$STACK" >&2
  STACK_UP=0
  pulumi stack rm --yes "$STACK" >&2
}

main() {
  trap cleanup EXIT
  load_toolchain
  # The SDK's own dynamic-provider plugin, as a Pulumi install has it next to the CLI.
  export PATH="$REPO_DIR/node_modules/@pulumi/pulumi:$PATH"
  prepare_program engine
  run_stack
  check_secret_output secretToken '^[0-9a-f]{24}$' "24 hex digits"
  check_output engine ok
  check_idempotent
  destroy_stack
  info "engine passed"
  prepare_program providers
  run_stack
  check_secret_output secretPassword '^[A-Za-z0-9]{24}$' "24 alphanumerics"
  check_output echoStdout ok
  check_idempotent
  report_versions
  destroy_stack
  info "passed"
}

main "$@"; exit
