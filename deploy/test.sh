#!/usr/bin/env bash
# Set everything up, then run the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
GOZON_LOG_FORMAT=json bash deploy/setup.sh
# tests/deploy parses docker-compose.yml with Debian's docker-compose (v1 needs no engine).
if ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose
fi
# tests/browser drive Debian's chromium through Playwright, which never downloads a browser here.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
exec .venv/bin/python -m pytest "$@"
