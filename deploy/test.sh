#!/usr/bin/env bash
# Set everything up, then run the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
GOZON_LOG_FORMAT=json bash deploy/setup.sh
exec .venv/bin/python -m pytest "$@"
