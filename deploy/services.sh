#!/usr/bin/env bash
# Start, stop and inspect datahub's local services (after deploy/provision.sh).
#
# Usage: deploy/services.sh start|stop|restart|status [SERVICE ...]
#        (no service named: mosquitto, timescaledb and postgres)
#
#   mosquitto    Mosquitto 2 on 127.0.0.1:$DATAHUB_MQTT_PORT (18830), config generated
#                from deploy/mosquitto.conf
#   timescaledb  PostgreSQL 17 + TimescaleDB in the trixie root, run through chroot,
#                on $DATAHUB_TSDB_HOST:$DATAHUB_TSDB_PORT (127.0.0.1:55432)
#   postgres     the host's PostgreSQL 15 without TimescaleDB, on 127.0.0.1:$DATAHUB_PG_PORT
#                (55433), to prove the schema works without the extension
#   replica      a streaming replica of timescaledb (hot standby, physical replication slot
#                "datahub_replica"), cloned by pg_basebackup into a second data directory of
#                the same root, on $DATAHUB_REPLICA_HOST:$DATAHUB_REPLICA_PORT (127.0.0.3:55434)
#   pgbouncer    Debian's PgBouncer in transaction mode in front of both, on
#                $DATAHUB_PGBOUNCER_HOST:$DATAHUB_PGBOUNCER_PORT (127.0.0.4:6432): for each name
#                in $DATAHUB_PGBOUNCER_DATABASES (default "datahub") a database NAME on the
#                primary and NAME_replica on the replica; any other name goes to the primary
#
# replica and pgbouncer are not started unless named (make services-replica starts them).
# The databases trust local connections and have a superuser role "datahub" owning a
# database "datahub": tests create and drop databases. Local development only.
#
# A private set of TimescaleDB servers (tests that stop a replica or archive WAL) uses its
# own DATAHUB_STATE_DIR, ports, and DATAHUB_TSDB_DIR: a directory inside the root that
# holds its primary/ and replica/ data directories and their logs, while
# DATAHUB_TIMESCALE_ROOT names the shared root. DATAHUB_TSDB_WAL_ARCHIVE (a directory inside
# the root) makes the primary archive its WAL there with deploy/backup.sh archive-wal; it
# takes effect when the primary starts (archive_mode needs a restart).
#
# start is idempotent: a service already running and accepting connections is left
# alone. Every start waits until the service accepts connections (DATAHUB_START_TIMEOUT
# seconds, default 60) and otherwise fails with the tail of its log.
# status prints one line per service and exits 3 if any is not running.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE_DIR=${DATAHUB_STATE_DIR:-/var/lib/datahub-local}
TSDB_HOST=${DATAHUB_TSDB_HOST:-127.0.0.1}
TSDB_PORT=${DATAHUB_TSDB_PORT:-55432}
REPLICA_HOST=${DATAHUB_REPLICA_HOST:-127.0.0.3}
REPLICA_PORT=${DATAHUB_REPLICA_PORT:-55434}
PGBOUNCER_HOST=${DATAHUB_PGBOUNCER_HOST:-127.0.0.4}
PGBOUNCER_PORT=${DATAHUB_PGBOUNCER_PORT:-6432}
PGBOUNCER_DATABASES=${DATAHUB_PGBOUNCER_DATABASES:-datahub}
PG_PORT=${DATAHUB_PG_PORT:-55433}
MQTT_PORT=${DATAHUB_MQTT_PORT:-18830}
START_TIMEOUT=${DATAHUB_START_TIMEOUT:-60}
STOP_TIMEOUT=60
DEFAULT_SERVICES=(mosquitto timescaledb postgres)
ALL_SERVICES=(mosquitto timescaledb postgres replica pgbouncer)

# TimescaleDB: paths inside the trixie root are absolute in the chroot.
ROOT=${DATAHUB_TIMESCALE_ROOT:-$STATE_DIR/timescale-root}
ROOT_MARKER=$ROOT/.datahub-root-complete
PG17_BIN=/usr/lib/postgresql/17/bin
TSDB_SHARED_BUFFERS=${DATAHUB_TSDB_SHARED_BUFFERS:-1GB}
WAL_ARCHIVE=${DATAHUB_TSDB_WAL_ARCHIVE:-}
if [[ -n ${DATAHUB_TSDB_DIR:-} ]]; then
    TSDB_DATA=$DATAHUB_TSDB_DIR/primary
    TSDB_LOG=$DATAHUB_TSDB_DIR/primary.log
    REPLICA_DATA=$DATAHUB_TSDB_DIR/replica
    REPLICA_LOG=$DATAHUB_TSDB_DIR/replica.log
else
    TSDB_DATA=/pgdata
    TSDB_LOG=/var/log/postgresql/datahub-timescaledb.log
    REPLICA_DATA=/pgdata-replica
    REPLICA_LOG=/var/log/postgresql/datahub-replica.log
fi
# The primary keeps the WAL its replica has not received for it, up to a bound: a replica
# stopped for long loses its slot (and is cloned again) rather than fill the primary's disk.
REPLICA_SLOT=datahub_replica
MAX_SLOT_WAL_KEEP=8GB
# deploy/backup.sh, installed into the root so the primary's archive_command can run it.
ROOT_BACKUP_SCRIPT=/usr/local/bin/datahub-backup

PGBOUNCER_DIR=$STATE_DIR/pgbouncer # config, log, pid file and unix socket
PGBOUNCER_INI=$PGBOUNCER_DIR/pgbouncer.ini
PGBOUNCER_LOG=$PGBOUNCER_DIR/pgbouncer.log
PGBOUNCER_PID=$PGBOUNCER_DIR/pgbouncer.pid

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

# port_in_use HOST PORT
port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

url() {
    local first
    case $1 in
    mosquitto) echo "mqtt://127.0.0.1:$MQTT_PORT" ;;
    timescaledb) echo "postgresql://datahub@$TSDB_HOST:$TSDB_PORT/datahub" ;;
    postgres) echo "postgresql://datahub@127.0.0.1:$PG_PORT/datahub" ;;
    replica) echo "postgresql://datahub@$REPLICA_HOST:$REPLICA_PORT/datahub (read-only)" ;;
    pgbouncer)
        first=${PGBOUNCER_DATABASES%% *}
        echo "postgresql://datahub@$PGBOUNCER_HOST:$PGBOUNCER_PORT/$first (primary)," \
            "postgresql://datahub@$PGBOUNCER_HOST:$PGBOUNCER_PORT/${first}_replica (replica)"
        ;;
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

# pg_ready HOST PORT
pg_ready() { "$PG_ISREADY" -q -h "$1" -p "$2" -U postgres -d postgres -t 2; }

# psql_admin HOST PORT PSQL-ARGUMENT...
psql_admin() {
    local host=$1 port=$2
    shift 2
    env -u PGOPTIONS -u PGSERVICE "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres -d postgres "$@"
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

# ensure_datahub_database HOST PORT
ensure_datahub_database() {
    local host=$1 port=$2
    psql_admin "$host" "$port" -c "
        DO \$\$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'datahub') THEN
                CREATE ROLE datahub LOGIN SUPERUSER;
            END IF;
        END \$\$;"
    if [[ $(psql_admin "$host" "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = 'datahub'") != 1 ]]; then
        psql_admin "$host" "$port" -c "CREATE DATABASE datahub OWNER datahub"
    fi
}

# --- timescaledb and its replica: clusters in the trixie root ---------------------

timescaledb_pid() { postmaster_pid "$ROOT$TSDB_DATA"; }
timescaledb_ready() { pg_ready "$TSDB_HOST" "$TSDB_PORT"; }
replica_pid() { postmaster_pid "$ROOT$REPLICA_DATA"; }
# Ready: accepts connections and receives the primary's WAL.
replica_ready() {
    pg_ready "$REPLICA_HOST" "$REPLICA_PORT" &&
        [[ $(psql_admin "$REPLICA_HOST" "$REPLICA_PORT" -tAc "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null) == streaming ]]
}

# A log file inside the root that user postgres can write.
ensure_root_log() {
    [[ -e $ROOT$1 ]] && return
    mkdir -p "$(dirname "$ROOT$1")"
    touch "$ROOT$1"
    in_root chown postgres:postgres "$1"
}

# A directory inside the root owned by user postgres, mode 0700 (what initdb and
# pg_basebackup want), made afresh.
fresh_root_dir() {
    rm -rf "${ROOT:?}$1"
    mkdir -p "$(dirname "$ROOT$1")"
    mkdir -m 0700 "$ROOT$1"
    in_root chown postgres:postgres "$1"
}

init_timescaledb() {
    local log=$ROOT$TSDB_LOG
    ensure_root_log "$TSDB_LOG"
    [[ -f $ROOT$TSDB_DATA/PG_VERSION ]] && return
    # initdb into a scratch directory and rename it when complete, so an
    # interrupted initdb is redone rather than mistaken for a cluster.
    local scratch=$TSDB_DATA.init locale
    locale=$(pick_locale in_root)
    say "timescaledb: initdb $TSDB_DATA in the trixie root (locale $locale)"
    fresh_root_dir "$scratch"
    in_root_as_postgres "$PG17_BIN/initdb" -D "$scratch" -U postgres -A trust -E UTF8 --locale="$locale" \
        >>"$log" 2>&1 || die_with_log "$log" "initdb failed"
    init_cluster_conf "$ROOT$scratch"
    mv "$ROOT$scratch" "$ROOT$TSDB_DATA"
}

# Settings of both TimescaleDB servers; the primary's replication settings are the
# defaults of PostgreSQL 17, written out because a replica depends on them.
TSDB_CONF="\
dynamic_shared_memory_type = sysv
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
timescaledb.max_background_workers = 8
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = $MAX_SLOT_WAL_KEEP"

# The archive settings of the primary: deploy/backup.sh archive-wal copies each finished
# WAL segment, and a segment is finished at least once a minute while anything is written.
archive_conf() {
    if [[ -z $WAL_ARCHIVE ]]; then
        echo "archive_mode = off"
        return
    fi
    printf '%s\n' "archive_mode = on" \
        "archive_command = '$ROOT_BACKUP_SCRIPT archive-wal \"%p\" \"$WAL_ARCHIVE\"'" \
        "archive_timeout = 60"
}

install_backup_script() {
    mkdir -p "$ROOT$(dirname "$ROOT_BACKUP_SCRIPT")"
    install -m 0755 "$HERE/backup.sh" "$ROOT$ROOT_BACKUP_SCRIPT.tmp"
    mv "$ROOT$ROOT_BACKUP_SCRIPT.tmp" "$ROOT$ROOT_BACKUP_SCRIPT"
    [[ -d $ROOT$WAL_ARCHIVE ]] || {
        mkdir -p "$ROOT$WAL_ARCHIVE"
        in_root chown postgres:postgres "$WAL_ARCHIVE"
        chmod 0700 "$ROOT$WAL_ARCHIVE"
    }
}

# pg_ctl_start DATA LOG HOST PORT (paths inside the root)
pg_ctl_start() {
    local data=$1 log=$2 host=$3 port=$4
    in_root_as_postgres "$PG17_BIN/pg_ctl" -D "$data" -l "$log" \
        -o "-p $port -k /tmp -c listen_addresses=$host" -w -t "$START_TIMEOUT" start \
        >>"$ROOT$log" 2>&1 </dev/null
}

# stop_root_cluster NAME DATA LOG (paths inside the root)
stop_root_cluster() {
    local name=$1 data=$2 log=$3 pid
    if ! pid=$(postmaster_pid "$ROOT$data"); then
        say "$name: not running"
        return
    fi
    say "$name: stopping (pid $pid)"
    in_root_as_postgres "$PG17_BIN/pg_ctl" -D "$data" -m fast -w -t "$STOP_TIMEOUT" stop \
        >>"$ROOT$log" 2>&1 </dev/null || die_with_log "$ROOT$log" "$name did not stop"
}

start_timescaledb() {
    [[ -f $ROOT_MARKER ]] || die "no TimescaleDB root at $ROOT: run deploy/provision.sh first"
    local log=$ROOT$TSDB_LOG pid
    init_timescaledb
    if pid=$(timescaledb_pid); then
        wait_until "$START_TIMEOUT" timescaledb_ready ||
            die_with_log "$log" "timescaledb runs (pid $pid) but does not accept connections on $TSDB_HOST:$TSDB_PORT; try: $0 restart timescaledb"
        say "timescaledb: already running (pid $pid)"
    else
        port_in_use "$TSDB_HOST" "$TSDB_PORT" && die "port $TSDB_PORT of $TSDB_HOST is taken by another process; set DATAHUB_TSDB_PORT"
        [[ -z $WAL_ARCHIVE ]] || install_backup_script
        # The chroot has no /dev/shm mount, so dynamic shared memory uses System V
        # segments; with that, postgres needs no /proc or /dev mounts in the root.
        write_datahub_conf "$ROOT$TSDB_DATA/datahub.conf" "$TSDB_SHARED_BUFFERS" "$TSDB_CONF
$(archive_conf)"
        say "timescaledb: starting on $TSDB_HOST:$TSDB_PORT"
        pg_ctl_start "$TSDB_DATA" "$TSDB_LOG" "$TSDB_HOST" "$TSDB_PORT" ||
            die_with_log "$log" "timescaledb did not start"
        wait_until "$START_TIMEOUT" timescaledb_ready ||
            die_with_log "$log" "timescaledb does not accept connections on $TSDB_HOST:$TSDB_PORT"
    fi
    ensure_datahub_database "$TSDB_HOST" "$TSDB_PORT"
}

stop_timescaledb() { stop_root_cluster timescaledb "$TSDB_DATA" "$TSDB_LOG"; }

psql_primary() { psql_admin "$TSDB_HOST" "$TSDB_PORT" "$@"; }

# The replica's data directory can follow this primary: a standby of the same cluster
# (system identifier) whose slot still holds the WAL it needs.
replica_follows_primary() {
    local data=$ROOT$REPLICA_DATA ours theirs slot
    [[ -f $data/standby.signal ]] || return 1
    ours=$(in_root_as_postgres "$PG17_BIN/pg_controldata" -D "$REPLICA_DATA" 2>/dev/null |
        sed -n 's/^Database system identifier: *//p')
    theirs=$(psql_primary -tAc "SELECT system_identifier FROM pg_control_system()")
    slot=$(psql_primary -tAc "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$REPLICA_SLOT'")
    [[ -n $ours && $ours == "$theirs" && -n $slot && $slot != lost ]]
}

clone_replica() {
    local log=$ROOT$REPLICA_LOG scratch=$REPLICA_DATA.init
    # A slot lost to max_slot_wal_keep_size is of no use to a new clone either.
    psql_primary -c "
        SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
        WHERE slot_name = '$REPLICA_SLOT' AND wal_status = 'lost' AND NOT active;
        SELECT pg_create_physical_replication_slot('$REPLICA_SLOT') WHERE NOT EXISTS
            (SELECT FROM pg_replication_slots WHERE slot_name = '$REPLICA_SLOT');" >/dev/null
    say "replica: pg_basebackup from $TSDB_HOST:$TSDB_PORT into $REPLICA_DATA"
    fresh_root_dir "$scratch"
    # -R writes primary_conninfo and standby.signal; -S streams through the slot, which
    # holds the WAL from the backup's start until the replica connects.
    in_root_as_postgres "$PG17_BIN/pg_basebackup" -D "$scratch" \
        -d "host=$TSDB_HOST port=$TSDB_PORT user=postgres application_name=$REPLICA_SLOT" \
        -R -S "$REPLICA_SLOT" -X stream -c fast >>"$log" 2>&1 </dev/null ||
        die_with_log "$log" "pg_basebackup failed"
    mv "$ROOT$scratch" "$ROOT$REPLICA_DATA"
}

start_replica() {
    [[ -f $ROOT_MARKER ]] || die "no TimescaleDB root at $ROOT: run deploy/provision.sh first"
    local log=$ROOT$REPLICA_LOG pid
    ensure_root_log "$REPLICA_LOG"
    if pid=$(replica_pid); then
        wait_until "$START_TIMEOUT" replica_ready ||
            die_with_log "$log" "the replica runs (pid $pid) but does not stream from $TSDB_HOST:$TSDB_PORT on $REPLICA_HOST:$REPLICA_PORT; try: $0 restart replica"
        say "replica: already running (pid $pid)"
        return
    fi
    timescaledb_ready || die "the primary (timescaledb) does not answer on $TSDB_HOST:$TSDB_PORT: start it first"
    port_in_use "$REPLICA_HOST" "$REPLICA_PORT" && die "port $REPLICA_PORT of $REPLICA_HOST is taken by another process; set DATAHUB_REPLICA_PORT"
    if [[ -f $ROOT$REPLICA_DATA/PG_VERSION ]] && ! replica_follows_primary; then
        # Local development only: a replica is a copy, cloned again in seconds.
        say "replica: $REPLICA_DATA cannot follow this primary (another cluster, promoted, or its slot lost); cloning it again"
        rm -rf "${ROOT:?}$REPLICA_DATA"
    fi
    [[ -f $ROOT$REPLICA_DATA/PG_VERSION ]] || clone_replica
    # hot_standby_feedback: the primary's vacuum keeps rows the replica's queries still
    # read, so reads are not cancelled by replay conflicts.
    write_datahub_conf "$ROOT$REPLICA_DATA/datahub.conf" "$TSDB_SHARED_BUFFERS" "$TSDB_CONF
hot_standby = on
hot_standby_feedback = on
archive_mode = off"
    say "replica: starting on $REPLICA_HOST:$REPLICA_PORT"
    pg_ctl_start "$REPLICA_DATA" "$REPLICA_LOG" "$REPLICA_HOST" "$REPLICA_PORT" ||
        die_with_log "$log" "the replica did not start"
    wait_until "$START_TIMEOUT" replica_ready ||
        die_with_log "$log" "the replica does not stream from $TSDB_HOST:$TSDB_PORT"
}

# Stopping keeps the slot, so the replica catches up when started again; the primary
# keeps at most max_slot_wal_keep_size of WAL for it meanwhile.
stop_replica() { stop_root_cluster replica "$REPLICA_DATA" "$REPLICA_LOG"; }

# --- pgbouncer -------------------------------------------------------------------

pgbouncer_pid() {
    local pid
    [[ -r $PGBOUNCER_PID ]] || return 1
    pid=$(head -n 1 "$PGBOUNCER_PID")
    [[ $pid =~ ^[0-9]+$ && /proc/$pid/exe -ef /usr/sbin/pgbouncer ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$PGBOUNCER_INI" || return 1
    echo "$pid"
}

pgbouncer_ready() { pg_ready "$PGBOUNCER_HOST" "$PGBOUNCER_PORT"; }

# Transaction pooling: a server connection serves one transaction of a client and then
# another client's, so clients must keep no session state between transactions and use
# no server-side prepared statements (psycopg: prepare_threshold=None); PgBouncer 1.18
# refuses the `options` startup parameter.
render_pgbouncer_ini() {
    local name
    {
        echo "; Written by deploy/services.sh whenever it starts PgBouncer; edit that script."
        echo "[databases]"
        for name in $PGBOUNCER_DATABASES; do
            echo "$name = host=$TSDB_HOST port=$TSDB_PORT dbname=$name"
            echo "${name}_replica = host=$REPLICA_HOST port=$REPLICA_PORT dbname=$name"
        done
        echo "* = host=$TSDB_HOST port=$TSDB_PORT"
        cat <<EOI
[pgbouncer]
listen_addr = $PGBOUNCER_HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir = $PGBOUNCER_DIR
pidfile = $PGBOUNCER_PID
logfile = $PGBOUNCER_LOG
; Local development: the servers trust loopback connections; a deployment uses
; auth_type = scram-sha-256 (docs/deployment.md).
auth_type = trust
auth_file = $PGBOUNCER_DIR/userlist.txt
admin_users = postgres
stats_users = datahub
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
min_pool_size = 0
reserve_pool_size = 5
server_lifetime = 3600
server_idle_timeout = 600
server_connect_timeout = 5
server_login_retry = 1
query_wait_timeout = 10
EOI
    } >"$PGBOUNCER_INI.tmp"
    printf '"datahub" ""\n"postgres" ""\n' >"$PGBOUNCER_DIR/userlist.txt"
    chown postgres:postgres "$PGBOUNCER_INI.tmp" "$PGBOUNCER_DIR/userlist.txt"
    chmod 0640 "$PGBOUNCER_INI.tmp" "$PGBOUNCER_DIR/userlist.txt"
}

start_pgbouncer() {
    command -v pgbouncer >/dev/null || die "pgbouncer is not installed: run deploy/provision.sh pgbouncer first"
    local pid
    install -d -o postgres -g postgres -m 0750 "$PGBOUNCER_DIR"
    [[ -e $PGBOUNCER_LOG ]] || install -o postgres -g postgres -m 0640 /dev/null "$PGBOUNCER_LOG"
    render_pgbouncer_ini
    if pid=$(pgbouncer_pid); then
        # A changed database list takes effect without dropping clients.
        if ! cmp -s "$PGBOUNCER_INI.tmp" "$PGBOUNCER_INI"; then
            mv "$PGBOUNCER_INI.tmp" "$PGBOUNCER_INI"
            say "pgbouncer: configuration changed, reloading (pid $pid)"
            kill -HUP "$pid"
        else
            rm -f "$PGBOUNCER_INI.tmp"
        fi
        wait_until "$START_TIMEOUT" pgbouncer_ready ||
            die_with_log "$PGBOUNCER_LOG" "pgbouncer runs (pid $pid) but does not accept connections on $PGBOUNCER_HOST:$PGBOUNCER_PORT; try: $0 restart pgbouncer"
        say "pgbouncer: already running (pid $pid)"
        return
    fi
    mv "$PGBOUNCER_INI.tmp" "$PGBOUNCER_INI"
    port_in_use "$PGBOUNCER_HOST" "$PGBOUNCER_PORT" && die "port $PGBOUNCER_PORT of $PGBOUNCER_HOST is taken by another process; set DATAHUB_PGBOUNCER_PORT"
    say "pgbouncer: starting on $PGBOUNCER_HOST:$PGBOUNCER_PORT"
    as_postgres /usr/sbin/pgbouncer -d "$PGBOUNCER_INI" >>"$PGBOUNCER_LOG" 2>&1 </dev/null ||
        die_with_log "$PGBOUNCER_LOG" "pgbouncer did not start"
    wait_until "$START_TIMEOUT" pgbouncer_ready ||
        die_with_log "$PGBOUNCER_LOG" "pgbouncer does not accept connections on $PGBOUNCER_HOST:$PGBOUNCER_PORT"
}

stop_pgbouncer() {
    local pid
    if ! pid=$(pgbouncer_pid); then
        say "pgbouncer: not running"
        return
    fi
    say "pgbouncer: stopping (pid $pid)"
    # PgBouncer 1.18: SIGINT lets the transactions in flight finish, SIGTERM ends at once.
    kill -INT "$pid"
    if ! wait_until 10 test ! -e "/proc/$pid"; then
        say "pgbouncer: transactions still open after 10s, shutting down at once"
        kill -TERM "$pid"
        wait_until "$STOP_TIMEOUT" test ! -e "/proc/$pid" || die "pgbouncer (pid $pid) does not exit"
    fi
}

# --- postgres (host PostgreSQL 15) ------------------------------------------

postgres_pid() { postmaster_pid "$PG15_DATA"; }
postgres_ready() { pg_ready 127.0.0.1 "$PG_PORT"; }

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
        port_in_use 127.0.0.1 "$PG_PORT" && die "port $PG_PORT is taken by another process; set DATAHUB_PG_PORT"
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
    ensure_datahub_database 127.0.0.1 "$PG_PORT"
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
    port_in_use 127.0.0.1 "$MQTT_PORT" && die "port $MQTT_PORT is taken by another process; set DATAHUB_MQTT_PORT"
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
        if "${service}_ready"; then state=running; else state="unhealthy (pid $pid up, not ready)"; fi
    fi
    printf '%s %s %s\n' "$service" "$state" "$(url "$service")"
    [[ $state == running ]]
}

usage() {
    echo "usage: $0 start|stop|restart|status [$(IFS='|' && echo "${ALL_SERVICES[*]}") ...]" >&2
    exit 2
}

main() {
    (($# >= 1)) || usage
    local command=$1 service
    shift
    local services=("$@")
    case $command in
    start | restart | status) ((${#services[@]})) || services=("${DEFAULT_SERVICES[@]}") ;;
    # Stop everything, the services that depend on others first.
    stop) ((${#services[@]})) || services=(pgbouncer replica "${DEFAULT_SERVICES[@]}") ;;
    *) usage ;;
    esac
    for service in "${services[@]}"; do
        [[ " ${ALL_SERVICES[*]} " == *" $service "* ]] || usage
    done
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
