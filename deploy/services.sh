#!/usr/bin/env bash
# Start, stop and inspect datahub's local services (after deploy/provision.sh).
#
# Usage: deploy/services.sh start|stop|restart|status [mosquitto|timescaledb|postgres ...]
#        (no service named: all three)
#
#   mosquitto    Mosquitto 2 on 127.0.0.1:$DATAHUB_MQTT_PORT (18830), config generated
#                from deploy/mosquitto.conf
#   timescaledb  PostgreSQL 17 + TimescaleDB in the trixie root, run through chroot,
#                on 127.0.0.1:$DATAHUB_TSDB_PORT (55432)
#   postgres     the host's PostgreSQL 15 without TimescaleDB, on 127.0.0.1:$DATAHUB_PG_PORT
#                (55433), to prove the schema works without the extension
#
# Both databases trust local connections and have a superuser role "datahub" owning a
# database "datahub": tests create and drop databases. Local development only.
#
# start is idempotent: a service already running and accepting connections is left
# alone. Every start waits until the service accepts connections (DATAHUB_START_TIMEOUT
# seconds, default 60) and otherwise fails with the tail of its log.
# status prints one line per service and exits 3 if any is not running.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${DATAHUB_STATE_DIR:-/var/lib/datahub-local}
TSDB_PORT=${DATAHUB_TSDB_PORT:-55432}
PG_PORT=${DATAHUB_PG_PORT:-55433}
MQTT_PORT=${DATAHUB_MQTT_PORT:-18830}
START_TIMEOUT=${DATAHUB_START_TIMEOUT:-60}
STOP_TIMEOUT=60
ALL_SERVICES=(mosquitto timescaledb postgres)

# TimescaleDB: paths inside the trixie root are absolute in the chroot.
ROOT=$STATE_DIR/timescale-root
ROOT_MARKER=$ROOT/.datahub-root-complete
PG17_BIN=/usr/lib/postgresql/17/bin
TSDB_DATA=/pgdata
TSDB_LOG=/var/log/postgresql/datahub-timescaledb.log

# Plain PostgreSQL 15 from the host.
PG15_BIN=/usr/lib/postgresql/15/bin
PG15_DATA=$STATE_DIR/pg15
PG15_RUN=$STATE_DIR/pg15-run # unix socket and server log
PG15_LOG=$PG15_RUN/postgresql.log

MQ_DIR=$STATE_DIR/mosquitto
MQ_CONF=$MQ_DIR/mosquitto.conf
MQ_LOG=$MQ_DIR/mosquitto.log
MQ_PID=$MQ_DIR/mosquitto.pid

# Host-side client tools (postgresql-client-15), used for both servers.
PSQL=$PG15_BIN/psql
PG_ISREADY=$PG15_BIN/pg_isready

say() { printf '[services] %s\n' "$*"; }
die() {
    printf '[services] error: %s\n' "$*" >&2
    exit 1
}

# Fail with the last lines of a service's log.
die_with_log() {
    local log=$1 message=$2
    printf '[services] error: %s; last lines of %s:\n' "$message" "$log" >&2
    tail -n 30 "$log" 2>/dev/null | sed 's/^/    /' >&2
    exit 1
}

# Run "$@" until it succeeds or $1 seconds pass.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

url() {
    case $1 in
    mosquitto) echo "mqtt://127.0.0.1:$MQTT_PORT" ;;
    timescaledb) echo "postgresql://datahub@127.0.0.1:$TSDB_PORT/datahub" ;;
    postgres) echo "postgresql://datahub@127.0.0.1:$PG_PORT/datahub" ;;
    esac
}

# A clean environment: the caller's locale or PG* variables must not leak into
# the servers. fd 9 (the services lock) is closed so daemons don't inherit it.
as_postgres() { (cd / && env -i PATH=/usr/bin:/bin LANG=C.UTF-8 /usr/sbin/runuser -u postgres -- "$@" 9>&-); }
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot "$ROOT" "$@" 9>&-; }
in_root_as_postgres() { in_root /usr/sbin/runuser -u postgres -- "$@"; }

# --- PostgreSQL, shared by both clusters ------------------------------------

# Print the postmaster's pid if one runs on this data directory (host path).
postmaster_pid() {
    local datadir=$1 pid
    [[ -r $datadir/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$datadir/postmaster.pid")
    # The postmaster's working directory is its data directory, so a stale pid
    # file whose pid was reused by another process is not mistaken for it.
    [[ $pid =~ ^[0-9]+$ && /proc/$pid/cwd -ef $datadir ]] || return 1
    echo "$pid"
}

pg_ready() { "$PG_ISREADY" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2; }

psql_admin() {
    local port=$1
    shift
    env -u PGOPTIONS -u PGSERVICE "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

# Print C.UTF-8 if `locale -a` (run by "$@") lists it, else C.
pick_locale() {
    if "$@" locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then echo C.UTF-8; else echo C; fi
}

# Settings rewritten whenever a server is started, so changes reach existing clusters;
# postgresql.conf includes this file (see init_cluster_conf).
write_datahub_conf() {
    local file=$1 shared_buffers=$2 extra=$3
    cat >"$file.tmp" <<EOF
# Written by deploy/services.sh whenever it starts this server; edit that script.
# Sized for a 2-core, 24 GiB development machine; durability stays on so fault
# tests (killing the server) behave as in production.
max_connections = 200
shared_buffers = $shared_buffers
effective_cache_size = 8GB
work_mem = 16MB
maintenance_work_mem = 256MB
fsync = on
synchronous_commit = on
# Bulk COPY ingest: fewer forced checkpoints.
max_wal_size = 4GB
checkpoint_timeout = 15min
max_worker_processes = 16
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
random_page_cost = 1.1
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
$extra
EOF
    chmod 0644 "$file.tmp"
    mv "$file.tmp" "$file"
}

init_cluster_conf() { echo "include_if_exists = 'datahub.conf'" >>"$1/postgresql.conf"; }

ensure_datahub_database() {
    local port=$1
    psql_admin "$port" -c "
        DO \$\$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'datahub') THEN
                CREATE ROLE datahub LOGIN SUPERUSER;
            END IF;
        END \$\$;"
    if [[ $(psql_admin "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = 'datahub'") != 1 ]]; then
        psql_admin "$port" -c "CREATE DATABASE datahub OWNER datahub"
    fi
}

# --- timescaledb ---------------------------------------------------------------

timescaledb_pid() { postmaster_pid "$ROOT$TSDB_DATA"; }
timescaledb_ready() { pg_ready "$TSDB_PORT"; }

init_timescaledb() {
    local log=$ROOT$TSDB_LOG
    if [[ ! -e $log ]]; then
        touch "$log"
        in_root chown postgres:postgres "$TSDB_LOG"
    fi
    [[ -f $ROOT$TSDB_DATA/PG_VERSION ]] && return
    # initdb into a scratch directory and rename it when complete, so an
    # interrupted initdb is redone rather than mistaken for a cluster.
    local scratch=$TSDB_DATA.init locale
    locale=$(pick_locale in_root)
    say "timescaledb: initdb $TSDB_DATA in the trixie root (locale $locale)"
    rm -rf "$ROOT$scratch"
    mkdir -m 0700 "$ROOT$scratch"
    in_root chown postgres:postgres "$scratch"
    in_root_as_postgres "$PG17_BIN/initdb" -D "$scratch" -U postgres -A trust -E UTF8 --locale="$locale" \
        >>"$log" 2>&1 || die_with_log "$log" "initdb failed"
    init_cluster_conf "$ROOT$scratch"
    mv "$ROOT$scratch" "$ROOT$TSDB_DATA"
}

start_timescaledb() {
    [[ -f $ROOT_MARKER ]] || die "no TimescaleDB root at $ROOT: run deploy/provision.sh first"
    local log=$ROOT$TSDB_LOG pid
    init_timescaledb
    if pid=$(timescaledb_pid); then
        wait_until "$START_TIMEOUT" timescaledb_ready ||
            die_with_log "$log" "timescaledb runs (pid $pid) but does not accept connections on port $TSDB_PORT; try: $0 restart timescaledb"
        say "timescaledb: already running (pid $pid)"
    else
        port_in_use "$TSDB_PORT" && die "port $TSDB_PORT is taken by another process; set DATAHUB_TSDB_PORT"
        # The chroot has no /dev/shm mount, so dynamic shared memory uses System V
        # segments; with that, postgres needs no /proc or /dev mounts in the root.
        write_datahub_conf "$ROOT$TSDB_DATA/datahub.conf" 1GB "\
dynamic_shared_memory_type = sysv
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
timescaledb.max_background_workers = 8"
        say "timescaledb: starting on 127.0.0.1:$TSDB_PORT"
        in_root_as_postgres "$PG17_BIN/pg_ctl" -D "$TSDB_DATA" -l "$TSDB_LOG" \
            -o "-p $TSDB_PORT -k /tmp -c listen_addresses=127.0.0.1" -w -t "$START_TIMEOUT" start \
            >>"$log" 2>&1 </dev/null || die_with_log "$log" "timescaledb did not start"
        wait_until "$START_TIMEOUT" timescaledb_ready ||
            die_with_log "$log" "timescaledb does not accept connections on port $TSDB_PORT"
    fi
    ensure_datahub_database "$TSDB_PORT"
}

stop_timescaledb() {
    local pid
    if ! pid=$(timescaledb_pid); then
        say "timescaledb: not running"
        return
    fi
    say "timescaledb: stopping (pid $pid)"
    in_root_as_postgres "$PG17_BIN/pg_ctl" -D "$TSDB_DATA" -m fast -w -t "$STOP_TIMEOUT" stop \
        >>"$ROOT$TSDB_LOG" 2>&1 </dev/null || die_with_log "$ROOT$TSDB_LOG" "timescaledb did not stop"
}

# --- postgres (host PostgreSQL 15) ------------------------------------------

postgres_pid() { postmaster_pid "$PG15_DATA"; }
postgres_ready() { pg_ready "$PG_PORT"; }

init_postgres() {
    install -d -o postgres -g postgres -m 0755 "$PG15_RUN"
    [[ -e $PG15_LOG ]] || install -o postgres -g postgres -m 0640 /dev/null "$PG15_LOG"
    [[ -f $PG15_DATA/PG_VERSION ]] && return
    local scratch=$PG15_DATA.init locale
    locale=$(pick_locale env)
    say "postgres: initdb $PG15_DATA (locale $locale)"
    rm -rf "$scratch"
    install -d -o postgres -g postgres -m 0700 "$scratch"
    as_postgres "$PG15_BIN/initdb" -D "$scratch" -U postgres -A trust -E UTF8 --locale="$locale" \
        >>"$PG15_LOG" 2>&1 || die_with_log "$PG15_LOG" "initdb failed (can user postgres reach $STATE_DIR?)"
    init_cluster_conf "$scratch"
    mv "$scratch" "$PG15_DATA"
}

start_postgres() {
    [[ -x $PG15_BIN/postgres ]] || die "PostgreSQL 15 is not installed: run deploy/provision.sh first"
    local pid
    init_postgres
    if pid=$(postgres_pid); then
        wait_until "$START_TIMEOUT" postgres_ready ||
            die_with_log "$PG15_LOG" "postgres runs (pid $pid) but does not accept connections on port $PG_PORT; try: $0 restart postgres"
        say "postgres: already running (pid $pid)"
    else
        port_in_use "$PG_PORT" && die "port $PG_PORT is taken by another process; set DATAHUB_PG_PORT"
        # Only a schema check without TimescaleDB: smaller buffers than timescaledb.
        write_datahub_conf "$PG15_DATA/datahub.conf" 256MB ""
        say "postgres: starting on 127.0.0.1:$PG_PORT"
        # pg_ctl's own messages join the server log it names with -l.
        # shellcheck disable=SC2094
        as_postgres "$PG15_BIN/pg_ctl" -D "$PG15_DATA" -l "$PG15_LOG" \
            -o "-p $PG_PORT -k $PG15_RUN -c listen_addresses=127.0.0.1" -w -t "$START_TIMEOUT" start \
            >>"$PG15_LOG" 2>&1 </dev/null || die_with_log "$PG15_LOG" "postgres did not start"
        wait_until "$START_TIMEOUT" postgres_ready ||
            die_with_log "$PG15_LOG" "postgres does not accept connections on port $PG_PORT"
    fi
    ensure_datahub_database "$PG_PORT"
}

stop_postgres() {
    local pid
    if ! pid=$(postgres_pid); then
        say "postgres: not running"
        return
    fi
    say "postgres: stopping (pid $pid)"
    as_postgres "$PG15_BIN/pg_ctl" -D "$PG15_DATA" -m fast -w -t "$STOP_TIMEOUT" stop \
        >>"$PG15_LOG" 2>&1 </dev/null || die_with_log "$PG15_LOG" "postgres did not stop"
}

# --- mosquitto -----------------------------------------------------------------

mosquitto_pid() {
    local pid
    [[ -r $MQ_PID ]] || return 1
    pid=$(<"$MQ_PID") # written without a trailing newline
    [[ $pid =~ ^[0-9]+$ && /proc/$pid/exe -ef /usr/sbin/mosquitto ]] || return 1
    # Ours only if started with our config file.
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$MQ_CONF" || return 1
    echo "$pid"
}

# $SYS/broker/version is retained, so a live broker answers at once.
mosquitto_ready() {
    # shellcheck disable=SC2016 # a literal topic name
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '$SYS/broker/version' -C 1 -W 5 >/dev/null 2>&1
}

render_mosquitto_conf() {
    local template
    template=$(<"$HERE/mosquitto.conf")
    # Quoted replacements: bash 5.2 would otherwise expand & in them.
    template=${template//@MQTT_PORT@/"$MQTT_PORT"}
    template=${template//@MOSQUITTO_DIR@/"$MQ_DIR"}
    printf '%s\n' "$template" >"$MQ_CONF.tmp"
    chmod 0644 "$MQ_CONF.tmp"
    mv "$MQ_CONF.tmp" "$MQ_CONF"
}

start_mosquitto() {
    command -v mosquitto >/dev/null || die "mosquitto is not installed: run deploy/provision.sh first"
    local pid
    # The broker drops root for user mosquitto, which writes its store, log and pid file here.
    install -d -o mosquitto -g mosquitto -m 0755 "$MQ_DIR" "$MQ_DIR/data"
    [[ -e $MQ_LOG ]] || install -o mosquitto -g mosquitto -m 0644 /dev/null "$MQ_LOG"
    if pid=$(mosquitto_pid); then
        wait_until "$START_TIMEOUT" mosquitto_ready ||
            die_with_log "$MQ_LOG" "mosquitto runs (pid $pid) but does not answer on port $MQTT_PORT; try: $0 restart mosquitto"
        say "mosquitto: already running (pid $pid)"
        return
    fi
    port_in_use "$MQTT_PORT" && die "port $MQTT_PORT is taken by another process; set DATAHUB_MQTT_PORT"
    render_mosquitto_conf
    say "mosquitto: starting on 127.0.0.1:$MQTT_PORT"
    mosquitto -c "$MQ_CONF" -d </dev/null >>"$MQ_LOG" 2>&1 9>&- ||
        die_with_log "$MQ_LOG" "mosquitto did not start"
    wait_until "$START_TIMEOUT" mosquitto_ready ||
        die_with_log "$MQ_LOG" "mosquitto does not answer on port $MQTT_PORT"
}

stop_mosquitto() {
    local pid
    if ! pid=$(mosquitto_pid); then
        say "mosquitto: not running"
        return
    fi
    say "mosquitto: stopping (pid $pid)"
    kill -TERM "$pid"
    # On SIGTERM the broker writes its persistence file, which takes a while
    # when large queues are held.
    if ! wait_until "$STOP_TIMEOUT" test ! -e "/proc/$pid"; then
        say "mosquitto: still running after ${STOP_TIMEOUT}s, killing it"
        kill -KILL "$pid"
        wait_until 10 test ! -e "/proc/$pid" || die "mosquitto (pid $pid) does not exit"
    fi
}

# --- commands ------------------------------------------------------------------

status_line() {
    local service=$1 pid state=stopped
    if pid=$("${service}_pid"); then
        if "${service}_ready"; then state=running; else state="unhealthy (pid $pid up, not accepting connections)"; fi
    fi
    printf '%s %s %s\n' "$service" "$state" "$(url "$service")"
    [[ $state == running ]]
}

usage() {
    echo "usage: $0 start|stop|restart|status [mosquitto|timescaledb|postgres ...]" >&2
    exit 2
}

main() {
    (($# >= 1)) || usage
    local command=$1 service
    shift
    local services=("$@")
    ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
    for service in "${services[@]}"; do
        case $service in
        mosquitto | timescaledb | postgres) ;;
        *) usage ;;
        esac
    done
    case $command in
    start | stop | restart | status) ;;
    *) usage ;;
    esac
    ((EUID == 0)) || die "run as root (chroot, runuser and the services' own users need it)"

    if [[ $command == status ]]; then
        local rc=0
        for service in "${services[@]}"; do
            status_line "$service" || rc=3
        done
        return "$rc"
    fi

    mkdir -p "$STATE_DIR"
    # One start/stop at a time, so concurrent callers don't both run initdb.
    exec 9>"$STATE_DIR/.services.lock"
    flock -w 300 9 || die "another services.sh holds $STATE_DIR/.services.lock"
    for service in "${services[@]}"; do
        case $command in
        start) "start_$service" ;;
        stop) "stop_$service" ;;
        restart)
            "stop_$service"
            "start_$service"
            ;;
        esac
    done
    if [[ $command != stop ]]; then
        for service in "${services[@]}"; do
            say "$service: $(url "$service")"
        done
    fi
}

main "$@"
