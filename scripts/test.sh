#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, integration, CLI; SQLite always,
# PostgreSQL when reachable or required), then the Python suite with real clients
# (schemathesis against the served OpenAPI document, and later the openai SDK).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

# The Python environment comes first: the Rust notifier tests run a real SMTP server
# (aiosmtpd, control-plane/tests/fixtures/smtp_sink.py) with this interpreter.
venv="${MEDGATE_VENV:-$HOME/.cache/medgate-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
export MEDGATE_PYTHON="$venv/bin/python"

echo "==> cargo test --workspace --all-targets"
cargo test --workspace --all-targets "$@"

echo "==> Python test suite (tests/python)"
# Helm's Go library for the chart lint (declared for Python >= 3.12; runs on 3.11 too).
"$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python \
    helm-sdkpy==0.1.32 'PyYAML>=6,<7'

echo "==> Helm chart lint (charts/medgate, every values profile)"
"$venv/bin/python" scripts/lint_chart.py

echo "==> pytest (tests/python)"
MEDGATE_BIN="$target_dir/debug/medgate" "$venv/bin/python" -m pytest -q tests/python
