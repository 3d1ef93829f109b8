#!/usr/bin/env bash
# Installs what the benchmarks (not the tests) compare against:
# matchbox_server, a signalling server people pick for plain peer pairing.
# Safe to run again: it does nothing when the right version is present.
set -euo pipefail

MATCHBOX_VERSION=0.15.0
if command -v matchbox_server >/dev/null 2>&1 \
  && cargo install --list | grep -q "^matchbox_server v${MATCHBOX_VERSION}:"; then
  exit 0
fi
echo "bench-setup: installing matchbox_server ${MATCHBOX_VERSION} (a few minutes)"
cargo install --locked matchbox_server --version "${MATCHBOX_VERSION}"
