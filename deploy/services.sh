#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on loopback: starts them if they are
# installed but down, and (as root on Debian) installs them if they are missing.
set -euo pipefail

wait_for() {  # wait_for NAME SECONDS COMMAND...
    local name=$1 seconds=$2; shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "services: $name did not come up within ${seconds}s" >&2
    return 1
}

as_root() { [ "$(id -u)" = 0 ]; }

install_missing() {
    local packages=()
    command -v pg_isready >/dev/null || packages+=(postgresql)
    command -v rabbitmqctl >/dev/null || packages+=(rabbitmq-server)
    [ ${#packages[@]} -eq 0 ] && return 0
    if ! as_root || ! command -v apt-get >/dev/null; then
        echo "services: please install ${packages[*]} (or run them with: docker compose up -d postgres rabbitmq)" >&2
        return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
    if [[ " ${packages[*]} " == *" postgresql "* ]]; then
        # Local development: trust connections from this machine, as the defaults assume.
        for hba in /etc/postgresql/*/main/pg_hba.conf; do
            sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
        done
    fi
}

install_missing

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if as_root && command -v pg_ctlcluster >/dev/null; then
        echo "services: starting PostgreSQL"
        for version in $(ls /etc/postgresql); do
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        done
    fi
    wait_for PostgreSQL 60 pg_isready -q -h 127.0.0.1 -p 5432
fi

if ! rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
    if as_root; then
        echo "services: starting RabbitMQ"
        rabbitmq-server -detached >/dev/null 2>&1 || true
    fi
    wait_for RabbitMQ 120 rabbitmq-diagnostics -q check_port_connectivity
fi
