#!/usr/bin/env bash
# Source this file: `source toolchain/env.sh`. It runs ensure.sh, puts the pinned Pulumi
# toolchain first on PATH and keeps pulumi from reaching out for updates or plugins.
# It sets no backend and no passphrase: the caller owns those.
#
# Variables read: those of ensure.sh (PI_CLUSTER_CACHE, PI_CLUSTER_TOOLCHAIN,
#   PI_CLUSTER_TOOLCHAIN_REBUILD, PATH, PULUMI_HOME).
# Variables set: PI_CLUSTER_TOOLCHAIN_BIN, PATH, PULUMI_SKIP_UPDATE_CHECK,
#   PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION.
#
# No `set -euo pipefail` here: a sourced file would change the caller's shell options.
# Failure returns non-zero instead, so `source toolchain/env.sh || exit 1` works.

pi_cluster_toolchain_env() {
  local ensure bin_dir status=0
  ensure="$(dirname "${BASH_SOURCE[0]}")/ensure.sh"
  bin_dir="$(bash "$ensure")" || status=$?
  if ((status != 0)); then
    printf 'toolchain: error: %s failed; see the messages above\n' "$ensure" >&2
    return "$status"
  fi
  export PI_CLUSTER_TOOLCHAIN_BIN="$bin_dir"
  # First on PATH, so this toolchain wins over any other pulumi; no duplicate on re-source.
  [[ "$PATH:" == "$bin_dir:"* ]] || export PATH="$bin_dir:$PATH"
  # Offline: no update nag, and a missing plugin is an error rather than a download.
  export PULUMI_SKIP_UPDATE_CHECK=true
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
}

pi_cluster_toolchain_env
