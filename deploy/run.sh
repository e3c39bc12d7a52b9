#!/usr/bin/env bash
# Set everything up, then run the three processes with honcho (Ctrl-C stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export PATH="$PWD/.venv/bin:$PATH" PYTHONUNBUFFERED=1
# honcho hands each process a pipe, so "auto" would mean JSON: read in a terminal,
# logs are text; piped on (e.g. `| tee gozon.log` for `gozon trace`), they stay JSON.
if [ -t 1 ]; then export GOZON_LOG_FORMAT="${GOZON_LOG_FORMAT:-console}"; fi
echo "Gozon: gateway on http://localhost:8080 (Ctrl-C to stop)"
exec honcho start
