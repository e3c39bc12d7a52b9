#!/usr/bin/env bash
# Set everything up, then run the three processes with honcho (Ctrl-C stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export PATH="$PWD/.venv/bin:$PATH" PYTHONUNBUFFERED=1
# honcho hands each process a pipe, so "auto" would mean JSON: read in a terminal,
# logs are text; piped on, they stay JSON.
if [ -t 1 ]; then export GOZON_LOG_FORMAT="${GOZON_LOG_FORMAT:-console}"; fi
# Whatever the terminal shows, this run's lines are kept as JSON for `gozon trace`
# (GOZON_LOG_FILE= keeps none).
if [ -z "${GOZON_LOG_FILE+set}" ]; then
    export GOZON_LOG_FILE="$PWD/gozon.log"
    : >"$GOZON_LOG_FILE"
fi
echo "Gozon: gateway on http://localhost:${GOZON_GATEWAY_PORT:-8080}, logs in ${GOZON_LOG_FILE:-no file} (Ctrl-C to stop)"
if [ -t 1 ]; then exec honcho start; fi

# Ctrl-C reaches every process of the pipeline: `| tee` dies at once, and honcho's
# "SIGINT received" would then meet a broken pipe and kill honcho before it stops the
# services (they run in sessions of their own, so they never see the Ctrl-C). This
# stage stands between honcho and the pipe: deaf to the stop signals, it passes lines
# on while someone reads them and swallows the rest, so honcho always finishes its stop.
relay() {
    trap '' INT TERM PIPE
    cat 2>/dev/null || true
    cat >/dev/null
}
exec honcho start > >(relay)
