#!/usr/bin/env bash
# Set everything up, then run the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
GOZON_LOG_FORMAT=json bash deploy/setup.sh

# Debian tools the tests use, installed when missing (as root): chromium for the browser
# tests (Playwright drives the system browser and never downloads one), docker-compose
# (v1 parses docker-compose.yml without an engine) for tests/deploy.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# promtool, from Debian's prometheus, checks deploy/prometheus/ for tests/deploy. Only
# the tool is wanted: no recommended node exporter, and no Prometheus daemon left running.
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
    if pgrep -x prometheus >/dev/null; then
        service prometheus stop || echo "deploy/test.sh: could not stop the prometheus daemon" >&2
    fi
fi

exec .venv/bin/python -m pytest "$@"
