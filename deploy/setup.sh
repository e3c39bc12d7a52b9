#!/usr/bin/env bash
# Everything a fresh clone needs: a virtual env with Gozon and its test tools,
# PostgreSQL and RabbitMQ up, both databases created and migrated. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

bash deploy/services.sh
.venv/bin/gozon setup
