#!/usr/bin/env bash
# Kept for muscle memory: node and full recovery is `npx pi-cluster recover` (cli/recover.ts;
# `npx pi-cluster help recover`). This passes its arguments on.
exec node "$(dirname "${BASH_SOURCE[0]}")/../cli/pi-cluster.js" recover "$@"
