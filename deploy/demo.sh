#!/usr/bin/env bash
# `make demo`: the whole platform on local defaults. Starts (and installs if missing) the
# broker and TimescaleDB, migrates, registers the demo fleets of both cities, then runs
# ingest, API and simulator until Ctrl-C, which stops everything this script started.
#
# DATAHUB_DATABASE_URL / DATAHUB_BROKER_URL point the demo at existing services instead;
# DATAHUB_DEMO_HISTORY_H (default 24) hours of past uplinks are sent first;
# DATAHUB_DEMO_SPEED (default 1) speeds the simulated devices' reporting up.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(dirname "$HERE")
BIN=${DATAHUB_VENV:-$PROJECT/.venv}/bin
STATE_DIR=${DATAHUB_STATE_DIR:-/var/lib/datahub-local}
export DATAHUB_CONFIG=${DATAHUB_CONFIG:-$HERE/datahub.yaml}
# The demo's JavaScript codecs (datahub/example-thermometer); an absolute path, so every
# process finds it whatever its working directory.
export DATAHUB_CATALOG__CODECS_DIR=${DATAHUB_CATALOG__CODECS_DIR:-$HERE/codecs}
HISTORY_H=${DATAHUB_DEMO_HISTORY_H:-24}
SPEED=${DATAHUB_DEMO_SPEED:-1}

say() { printf '[demo] %s\n' "$*"; }

services=()
[[ -n ${DATAHUB_DATABASE_URL:-} ]] || services+=(timescaledb)
[[ -n ${DATAHUB_BROKER_URL:-} ]] || services+=(mosquitto)

# Remember which services were already running, so Ctrl-C stops only what we started.
started=()
for service in "${services[@]}"; do
    bash "$HERE/services.sh" status "$service" >/dev/null 2>&1 || started+=("$service")
done
if ((${#services[@]})); then
    bash "$HERE/provision.sh" "${services[@]}"
    bash "$HERE/services.sh" start "${services[@]}"
fi
export DATAHUB_DATABASE_URL=${DATAHUB_DATABASE_URL:-postgresql://datahub@127.0.0.1:${DATAHUB_TSDB_PORT:-55432}/datahub}
export DATAHUB_BROKER_URL=${DATAHUB_BROKER_URL:-mqtt://127.0.0.1:${DATAHUB_MQTT_PORT:-18830}}

pids=()
cleanup() {
    trap - INT TERM EXIT
    say "stopping"
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
    ((${#pids[@]})) && wait "${pids[@]}" 2>/dev/null || true
    if ((${#started[@]})); then
        bash "$HERE/services.sh" stop "${started[@]}" || true
    fi
}
trap cleanup INT TERM EXIT

"$BIN/datahub" migrate
mkdir -p "$STATE_DIR"
registry=$STATE_DIR/demo-registry.csv
"$BIN/datahub" simulate --registry "$registry"
"$BIN/datahub" devices import "$registry"
# Datasets, licences, tariffs, consumers and grants for both cities, and a demo key per
# kind of consumer. The database keeps only the keys' hashes, so the keys made by the first
# run are kept (readable by root alone) in the state directory for the runs after it.
keys_file=$STATE_DIR/demo-keys.txt
seeded=$("$BIN/datahub" fairshare seed "$HERE/fairshare-demo.yaml")
if grep -q ' dh_' <<<"$seeded"; then
    (umask 077 && grep ' dh_' <<<"$seeded" >"$keys_file")
elif [[ -s $keys_file ]]; then
    seeded="$(head -n 1 <<<"$seeded")
demo keys (kept in $keys_file); send one as \`Authorization: Bearer <key>\`:
$(cat "$keys_file")"
fi

"$BIN/datahub" ingest &
pids+=($!)
"$BIN/datahub" api &
pids+=($!)
# Each run draws a new seed (new LoRaWAN sessions, as after a rejoin): a second demo run
# on the same database adds uplinks instead of repeating the first run's.
"$BIN/datahub" simulate --history "$HISTORY_H" --speed "$SPEED" >/dev/null &
pids+=($!)

port=$("$BIN/python" -c 'from datahub.config import load_settings; print(load_settings().api.port)')
for _ in $(seq 1 100); do
    if "$BIN/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health/live', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.2
done
say "dashboard: http://127.0.0.1:$port/"
say "API:      http://127.0.0.1:$port/v1/devices"
say "API docs: http://127.0.0.1:$port/docs"
say "operator: http://127.0.0.1:$port/operator (with an admin or supplier key)"
say "tariffs:  http://127.0.0.1:$port/v1/fairshare/tariffs"
while IFS= read -r line; do say "$line"; done <<<"$seeded"
say "sending ${HISTORY_H} h of history, then live uplinks; Ctrl-C stops everything"

# Exit (and clean up) as soon as any of the processes ends.
wait -n "${pids[@]}"
say "a process ended; shutting down"
