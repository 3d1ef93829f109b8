#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only when missing.
# Safe to run again: it does nothing when everything is present.
set -euo pipefail

# command-to-check:debian-package
NEEDED=(
  chromium:chromium                # headless browser for tests/e2e
  chromedriver:chromium-driver     # WebDriver for it
  turnserver:coturn                # a real TURN relay for tests/e2e/turn.rs
)

missing=()
for pair in "${NEEDED[@]}"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
