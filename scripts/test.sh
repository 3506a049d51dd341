#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, both store backends).
#
# PostgreSQL tests use MEDGATE_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/test). When it is unreachable they print
# "SKIP postgres::<test>" and pass, unless MEDGATE_REQUIRE_POSTGRES=1, which
# makes them fail. This script installs nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> cargo test --workspace --all-targets (target dir: ${CARGO_TARGET_DIR:-target})"
exec cargo test --workspace --all-targets "$@"
