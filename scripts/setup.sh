#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, only when missing.
# Safe to run again: it does nothing when everything is present.
set -euo pipefail

# command-to-check:debian-package
NEEDED=(
  chromium:chromium                # headless browser for tests/e2e
  chromedriver:chromium-driver     # WebDriver for it
  turnserver:coturn                # a real TURN relay for tests/e2e/turn.rs
  haproxy:haproxy                  # in front of two instances, tests/api/failover.rs
  promtool:prometheus              # checks deploy/prometheus/ and a scrape, tests/api/deploy.rs
)

missing=()
for pair in "${NEEDED[@]}"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# PostgreSQL for the store and API tests on that backend
# (tests/common/postgres.rs runs initdb and pg_ctl from Debian's versioned
# directory, which is not on the PATH).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# axe-core for the browser tests' accessibility checks (tests/e2e/package.json,
# pinned by its lock file). Node.js and npm come with the machine; install
# Debian's if missing.
if [ ! -f tests/e2e/node_modules/axe-core/axe.min.js ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing nodejs npm"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  echo "setup: npm ci in tests/e2e (axe-core)"
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
fi

# oidc-provider, the real OpenID Connect provider the sign-in tests start
# (tests/oidc/provider.mjs, tests/common/oidc.rs; pinned by its lock file).
if [ ! -f tests/oidc/node_modules/oidc-provider/package.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing nodejs npm"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  echo "setup: npm ci in tests/oidc (oidc-provider)"
  (cd tests/oidc && npm ci --no-audit --no-fund --silent)
fi

# cargo-deb builds the Debian package (`cargo deb`; tests/api/package.rs).
# dpkg-deb, which it and the test use, comes with dpkg on every Debian
# machine; fakeroot is not needed. (dpkg-dev's dpkg-shlibdeps, when
# present, adds the libc6 version the binary needs to Depends.)
if ! cargo deb --version >/dev/null 2>&1; then
  echo "setup: cargo install cargo-deb"
  cargo install cargo-deb --locked --version 3.8.0
fi
