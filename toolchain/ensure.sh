#!/usr/bin/env bash
# Make the pinned Pulumi toolchain available and print its bin dir on stdout.
# Logs go to stderr; build logs go to <cache>/<key>/logs/.
# Exit status: 0 complete; anything else, failure (it says which part and why).
#
# Order of preference:
#   1. a pulumi already on PATH whose plugins cover the pins (real users have one);
#   2. the cache: ${PI_CLUSTER_CACHE}/toolchain/<key>/bin, key = hash of versions.env;
#   3. a build into the cache, each binary built in a temp dir and renamed into bin/:
#      the CLI from Go modules; the nodejs language host and the command and random
#      providers from the upstream source tarballs in PI_CLUSTER_PULUMI_SOURCES, each
#      checked against its sha256 first (the Go module proxy refuses those modules).
#
# Variables read:
#   PI_CLUSTER_CACHE              cache root (default /var/cache/pi-cluster)
#   PI_CLUSTER_PULUMI_SOURCES     dir of the upstream source tarballs (default
#                                 <checkout>/../shared/pulumi-sources when it exists)
#   PI_CLUSTER_TOOLCHAIN          auto (default): prefer a pulumi on PATH;
#                                 build: ignore it and use the cache or build
#   PI_CLUSTER_TOOLCHAIN_REBUILD  1: ignore a pulumi on PATH, delete this key's bin/, build
#   PATH, PULUMI_HOME             where an existing pulumi and its plugins are found
#   Go settings (GOPROXY, GOFLAGS, GOMODCACHE, GOCACHE, ...) are used as configured.
# SC2016: the single-quoted strings are JavaScript for node. SC2317: functions are called
# indirectly (build_<part>, traps), which shellcheck cannot follow.
# shellcheck disable=SC2016,SC2317
set -euo pipefail

TOOLCHAIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$TOOLCHAIN_DIR")"
readonly TOOLCHAIN_DIR REPO_DIR
readonly VERSIONS_FILE="$TOOLCHAIN_DIR/versions.env"
# The binaries a complete toolchain has; the stamp is written only when all exist.
readonly PARTS=(pulumi pulumi-language-nodejs pulumi-resource-command pulumi-resource-random)
readonly STAMP=.complete

WORK_DIR=""
LOG_DIR=""

info() { printf 'toolchain: %s\n' "$*" >&2; }
fatal() { printf 'toolchain: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
  if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
    chmod -R u+w "$WORK_DIR" 2>/dev/null || true
    rm -rf "$WORK_DIR"
  fi
}

# versions.env is data, not code: accept KEY=value lines only, then define them.
load_versions() {
  [[ -f "$VERSIONS_FILE" ]] || fatal "missing $VERSIONS_FILE"
  local line key value n=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    [[ -z "$line" || "$line" == \#* ]] && continue
    [[ "$line" =~ ^([A-Z][A-Z0-9_]*)=([^\"\'\$\`\ ]*)$ ]] \
      || fatal "$VERSIONS_FILE:$n: expected KEY=value without quotes or spaces, got: $line"
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    printf -v "$key" '%s' "$value"
  done <"$VERSIONS_FILE"
  local required=(PULUMI_VERSION PULUMI_PKG_MODULE PULUMI_SDK_MODULE
    LANGUAGE_NODEJS_VERSION LANGUAGE_NODEJS_TARBALL LANGUAGE_NODEJS_SHA256
    COMMAND_VERSION COMMAND_TARBALL COMMAND_SHA256
    RANDOM_VERSION RANDOM_TARBALL RANDOM_SHA256)
  for key in "${required[@]}"; do
    [[ -n "${!key:-}" ]] || fatal "$VERSIONS_FILE does not set $key"
  done
}

# The npm packages ask the engine for plugins of exactly their own version.
check_package_pins() {
  command -v node >/dev/null || fatal "node is not on PATH; it is needed to read package.json"
  local mismatch
  mismatch="$(node -e '
    const [file, command, random] = process.argv.slice(1);
    const pkg = require(file);
    const deps = { ...(pkg.devDependencies || {}), ...(pkg.dependencies || {}) };
    const want = { "@pulumi/command": command, "@pulumi/random": random };
    for (const [name, version] of Object.entries(want)) {
      if (deps[name] !== version) {
        console.log(`${name} is "${deps[name]}" in package.json but ${version} in toolchain/versions.env`);
      }
    }' "$REPO_DIR/package.json" "$COMMAND_VERSION" "$RANDOM_VERSION")"
  [[ -z "$mismatch" ]] || fatal "$mismatch; pin both to the same exact version (the plugin version asked for equals the npm version)"
}

# Prints "name version" for each resource plugin that `pulumi plugin ls` knows.
installed_plugins() {
  local pulumi_bin="$1"
  PULUMI_SKIP_UPDATE_CHECK=true "$pulumi_bin" plugin ls --json 2>/dev/null | node -e '
    let text = "";
    process.stdin.on("data", (d) => (text += d)).on("end", () => {
      for (const p of JSON.parse(text || "[]") || []) {
        if (p.kind === "resource") console.log(`${p.name} ${String(p.version).replace(/^v/, "")}`);
      }
    });' || true
}

# Succeeds when the toolchain around this pulumi binary covers the pins: the language host
# next to pulumi or on PATH, each provider in the plugin cache or on PATH (ambient).
# Prints what is missing on stderr.
toolchain_covers_pins() {
  local pulumi_bin="$1" bin_dir plugins missing=() name version
  bin_dir="$(dirname "$(readlink -f "$pulumi_bin")")"
  if [[ ! -x "$bin_dir/pulumi-language-nodejs" ]] && ! command -v pulumi-language-nodejs >/dev/null; then
    missing+=("pulumi-language-nodejs (next to pulumi or on PATH)")
  fi
  plugins="$(installed_plugins "$pulumi_bin")"
  for name in command random; do
    version="$([[ "$name" == command ]] && echo "$COMMAND_VERSION" || echo "$RANDOM_VERSION")"
    if grep -qx "$name $version" <<<"$plugins"; then
      continue
    fi
    if [[ -x "$bin_dir/pulumi-resource-$name" ]] || command -v "pulumi-resource-$name" >/dev/null; then
      # The engine takes an ambient plugin for any version; it cannot be asked for its own.
      info "using ambient pulumi-resource-$name; make sure it is $version"
      continue
    fi
    missing+=("resource plugin $name $version")
  done
  if ((${#missing[@]})); then
    info "missing for $pulumi_bin: ${missing[*]}"
    return 1
  fi
}

use_existing_pulumi() {
  [[ "${PI_CLUSTER_TOOLCHAIN:-auto}" == auto && "${PI_CLUSTER_TOOLCHAIN_REBUILD:-0}" != 1 ]] || return 1
  local pulumi_bin bin_dir
  pulumi_bin="$(command -v pulumi)" || return 1
  bin_dir="$(dirname "$(readlink -f "$pulumi_bin")")"
  # Our own complete cache for these exact pins, e.g. after env.sh was sourced before.
  if cmp -s "$bin_dir/$STAMP" "$VERSIONS_FILE"; then
    printf '%s\n' "$bin_dir"
    return 0
  fi
  info "found $pulumi_bin ($(PULUMI_SKIP_UPDATE_CHECK=true "$pulumi_bin" version 2>/dev/null || echo 'unknown version'))"
  toolchain_covers_pins "$pulumi_bin" || { info "not using it; falling back to the cache"; return 1; }
  printf '%s\n' "$bin_dir"
}

cache_key_dir() {
  local hash
  hash="$(sha256sum "$VERSIONS_FILE" | cut -c1-16)"
  printf '%s/toolchain/%s-%s-%s\n' "${PI_CLUSTER_CACHE:-/var/cache/pi-cluster}" \
    "$PULUMI_VERSION" "$(go env GOOS)-$(go env GOARCH)" "$hash"
}

# Renames a finished binary into bin/ (same file system, so readers see all or nothing).
install_part() {
  local built="$1" bin_dir="$2"
  chmod 755 "$built"
  mv -f "$built" "$bin_dir/$(basename "$built")"
}

# go build with upstream's release settings; "$1" is the version -X assignment.
release_build() {
  local version_flag="$1"
  shift
  CGO_ENABLED=0 go build -trimpath -tags osusergo,grpcnotrace \
    -ldflags "-s -w -X $version_flag" "$@"
}

# A throwaway main module that requires exactly the pinned modules; pkg/go.mod's local
# replaces stop `go install pkg@version`, and replaces in dependencies are ignored anyway.
wrapper_module() {
  local dir="$1" name="$2" import_path="$3"
  shift 3
  mkdir -p "$dir"
  (
    cd "$dir"
    go mod init "pi-cluster.local/toolchain/$name" >/dev/null 2>&1
    local spec
    for spec in "$@"; do
      case "$spec" in
        *=*) go mod edit -replace "$spec" ;;
        *) go mod edit -require "$spec" ;;
      esac
    done
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$import_path" >tools.go
    go mod tidy
  )
}

build_cli() {
  local out="$1" dir="$WORK_DIR/cli"
  wrapper_module "$dir" pulumi "$PULUMI_PKG_MODULE/cmd/pulumi" \
    "$PULUMI_PKG_MODULE@$PULUMI_VERSION" "$PULUMI_SDK_MODULE@$PULUMI_VERSION" \
    ${PULUMI_CLIPBOARD_REPLACE:+"$PULUMI_CLIPBOARD_REPLACE"}
  (cd "$dir" && release_build "$PULUMI_SDK_MODULE/go/common/version.Version=$PULUMI_VERSION" \
    -o "$out" "$PULUMI_PKG_MODULE/cmd/pulumi")
}

# Where the upstream source tarballs are: PI_CLUSTER_PULUMI_SOURCES, else the shared
# directory beside the checkout (as on the project's build machines and in CI).
sources_dir() {
  local dir="${PI_CLUSTER_PULUMI_SOURCES:-}"
  if [[ -z "$dir" && -d "$REPO_DIR/../shared/pulumi-sources" ]]; then
    dir="$(cd "$REPO_DIR/../shared/pulumi-sources" && pwd)"
  fi
  [[ -n "$dir" ]] || { info "no source tarballs: set PI_CLUSTER_PULUMI_SOURCES to the directory holding them (docs/toolchain.md)"; return 1; }
  [[ -d "$dir" ]] || { info "PI_CLUSTER_PULUMI_SOURCES=$dir is not a directory"; return 1; }
  printf '%s\n' "$dir"
}

# unpack_source TARBALL SHA256 DEST: checks the tarball's sha256, then unpacks it into DEST.
# A tarball whose hash differs is never unpacked: it is not the reviewed upstream source.
unpack_source() {
  local name="$1" want="$2" dest="$3" dir file got
  dir="$(sources_dir)" || return 1
  file="$dir/$name"
  [[ -f "$file" ]] || { info "missing $file (docs/toolchain.md says where it comes from)"; return 1; }
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  [[ "$got" == "$want" ]] || { info "sha256 of $file is $got, expected $want (toolchain/versions.env); refusing to build from it"; return 1; }
  mkdir -p "$dest"
  tar -xzf "$file" -C "$dest" --strip-components=1 --no-same-owner
}

# The language host's go.mod points pkg and sdk at ../../.. with local replaces; build it
# against the same release from the module proxy instead.
build_language_nodejs() {
  local out="$1" src="$WORK_DIR/language-nodejs" sdk_version="v$LANGUAGE_NODEJS_VERSION"
  unpack_source "$LANGUAGE_NODEJS_TARBALL" "$LANGUAGE_NODEJS_SHA256" "$src" || return 1
  (
    cd "$src/sdk/nodejs/cmd/pulumi-language-nodejs"
    go mod edit -dropreplace "$PULUMI_PKG_MODULE" -dropreplace "$PULUMI_SDK_MODULE" \
      -require "$PULUMI_PKG_MODULE@$sdk_version" -require "$PULUMI_SDK_MODULE@$sdk_version"
    go mod tidy
    release_build "$PULUMI_SDK_MODULE/go/common/version.Version=$sdk_version" -o "$out" .
  )
}

# Upstream's Makefile stamps the version without "v" (VERSION_GENERIC).
build_command() {
  local out="$1" src="$WORK_DIR/command"
  unpack_source "$COMMAND_TARBALL" "$COMMAND_SHA256" "$src" || return 1
  (cd "$src/provider" && release_build "github.com/pulumi/pulumi-command/provider/pkg/version.Version=$COMMAND_VERSION" \
    -o "$out" ./cmd/pulumi-resource-command)
}

build_random() {
  local out="$1" src="$WORK_DIR/random" cmd=cmd/pulumi-resource-random
  unpack_source "$RANDOM_TARBALL" "$RANDOM_SHA256" "$src" || return 1
  (
    cd "$src/provider"
    # schema-embed.json is generated at release time from schema.json with the version set.
    node -e '
      const fs = require("fs");
      const [dir, version] = process.argv.slice(1);
      const schema = JSON.parse(fs.readFileSync(`${dir}/schema.json`, "utf8"));
      schema.version = version;
      fs.writeFileSync(`${dir}/schema-embed.json`, JSON.stringify(schema));
    ' "$cmd" "$RANDOM_VERSION"
    # The bridge refuses to start without a semver version; upstream stamps it without "v".
    release_build "github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=$RANDOM_VERSION" -o "$out" "./$cmd"
  )
}

# Builds every missing part; a failed part is logged and the others still get built.
build_missing_parts() {
  local key_dir="$1" bin_dir="$1/bin" part started failed=()
  mkdir -p "$bin_dir" "$LOG_DIR"
  WORK_DIR="$(mktemp -d "$key_dir/build.XXXXXX")"
  for part in "${PARTS[@]}"; do
    [[ -x "$bin_dir/$part" ]] && continue
    info "building $part (log: $LOG_DIR/$part.log)"
    started=$SECONDS
    # In the background, not in the if: bash ignores set -e inside a condition.
    ("build_${part}" "$WORK_DIR/$part") >"$LOG_DIR/$part.log" 2>&1 &
    if wait $!; then
      install_part "$WORK_DIR/$part" "$bin_dir"
      info "built $part in $((SECONDS - started))s"
    else
      failed+=("$part")
      info "could not build $part; last log lines:"
      tail -n 5 "$LOG_DIR/$part.log" | sed 's/^/    /' >&2
    fi
  done
  cleanup
  WORK_DIR=""
  ((${#failed[@]} == 0))
}

# The part names double as the build function names.
build_pulumi() { build_cli "$@"; }
build_pulumi-language-nodejs() { build_language_nodejs "$@"; }
build_pulumi-resource-command() { build_command "$@"; }
build_pulumi-resource-random() { build_random "$@"; }

check_stamped_version() {
  local bin_dir="$1" got
  got="$(PULUMI_SKIP_UPDATE_CHECK=true "$bin_dir/pulumi" version)"
  [[ "$got" == "$PULUMI_VERSION" ]] \
    || fatal "$bin_dir/pulumi reports version '$got', expected $PULUMI_VERSION; rebuild with PI_CLUSTER_TOOLCHAIN_REBUILD=1"
}

use_cache_or_build() {
  local key_dir bin_dir
  command -v go >/dev/null || fatal "go is not on PATH; it is needed to build the toolchain"
  key_dir="$(cache_key_dir)"
  bin_dir="$key_dir/bin"
  LOG_DIR="$key_dir/logs"
  mkdir -p "$key_dir" || fatal "cannot create $key_dir; set PI_CLUSTER_CACHE to a writable directory"

  # One builder per key at a time; a second caller waits and then finds the cache.
  exec 9>"$key_dir/.lock"
  flock 9
  if [[ "${PI_CLUSTER_TOOLCHAIN_REBUILD:-0}" == 1 ]]; then
    info "PI_CLUSTER_TOOLCHAIN_REBUILD=1: removing $bin_dir"
    rm -rf "$bin_dir"
  fi
  if [[ ! -f "$bin_dir/$STAMP" ]]; then
    info "no complete toolchain in $bin_dir; building (first build takes many minutes)"
    if build_missing_parts "$key_dir"; then
      check_stamped_version "$bin_dir"
      # The stamp is a copy of the pins it was built from.
      cp "$VERSIONS_FILE" "$bin_dir/$STAMP.tmp"
      mv -f "$bin_dir/$STAMP.tmp" "$bin_dir/$STAMP"
    elif [[ -x "$bin_dir/pulumi" ]] && PATH="$bin_dir:$PATH" toolchain_covers_pins "$bin_dir/pulumi"; then
      check_stamped_version "$bin_dir"
      info "using the built CLI with the missing parts found on PATH or in the plugin cache"
    else
      flock -u 9
      fatal "the toolchain in $bin_dir is incomplete (see above and $LOG_DIR). Supply what is missing:
  - the source tarballs (PI_CLUSTER_PULUMI_SOURCES, docs/toolchain.md), or
  - a real Pulumi install (CLI, pulumi-language-nodejs, plugins command $COMMAND_VERSION and random $RANDOM_VERSION) on PATH,
  then run this again."
    fi
  fi
  flock -u 9
  printf '%s\n' "$bin_dir"
}

main() {
  trap cleanup EXIT
  # Turn signals into a normal exit so the EXIT trap removes the temp build dir.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  load_versions
  check_package_pins
  use_existing_pulumi || use_cache_or_build
}

# One line: bash has read it whole before main runs, so editing this file during a long
# build cannot make the running shell execute the edited tail.
main "$@"; exit
