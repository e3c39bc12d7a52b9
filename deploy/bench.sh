#!/usr/bin/env bash
# Set everything up, then run the benchmark (arguments go to python -m tests.bench, e.g.
# --orders 300 --quick); it starts its own services on test slot 9 and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
GOZON_LOG_FORMAT=json bash deploy/setup.sh
exec .venv/bin/python -m tests.bench "$@"
