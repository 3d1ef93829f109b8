#!/usr/bin/env bash
# Runs every test: formatting, lints, unit, property and integration tests.
# Installs missing system packages first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (SQLite, and the store suite on both backends)"
cargo test --workspace
echo "== cargo test --test api on PostgreSQL (a real one, started by the tests)"
MIULINK_TEST_BACKEND=postgres cargo test --test api
