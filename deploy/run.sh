#!/usr/bin/env bash
# Set everything up, then run the three processes with honcho (Ctrl-C stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export PATH="$PWD/.venv/bin:$PATH" PYTHONUNBUFFERED=1
echo "Gozon: gateway on http://localhost:8080 (Ctrl-C to stop)"
exec honcho start
