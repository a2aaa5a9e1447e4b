"""The streaming replica and PgBouncer of deploy/services.sh, on a private set: the replica
follows the primary and refuses writes, PgBouncer in transaction mode serves both roles to
clients without server-side prepared statements, a read the replica cancels for a recovery
conflict is a busy database and not an unreachable one, and a stopped replica catches up."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql
from replicaset import ReplicaSet, make_uplinks, store_uplinks, stored_keys
from waiting import wait_until

from datahub.config import Settings
from datahub.errors import StorageBusy
from datahub.storage import db


@pytest.fixture(scope="module")
def dbname(rs: ReplicaSet) -> str:
    rs.create_database("replica_test")
    return "replica_test"


def readable(url: str) -> bool:
    try:
        with psycopg.connect(url, prepare_threshold=None, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except (psycopg.OperationalError, psycopg.errors.ProtocolViolation):
        return False
    return True


def connect(url: str) -> psycopg.Connection:
    # Transaction pooling hands each transaction to any server connection: no server-side
    # prepared statements.
    return psycopg.connect(url, prepare_threshold=None, connect_timeout=5)


def test_the_replica_serves_what_was_written_through_pgbouncer(rs: ReplicaSet, dbname: str) -> None:
    batch = make_uplinks("streams", 0, 500)
    with connect(rs.bouncer_url(dbname)) as conn:
        assert store_uplinks(conn, batch) == 500
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

    rs.wait_replayed()

    with connect(rs.bouncer_url(dbname, replica=True)) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        lag = conn.execute("SELECT now() - pg_last_xact_replay_timestamp()").fetchone()
    assert lag is not None and lag[0] is not None
    assert {u.dedup_key for u in batch} <= stored_keys(rs.bouncer_url(dbname, replica=True))
    with connect(rs.primary_url()) as conn:
        row = conn.execute(
            "SELECT state, s.slot_name FROM pg_stat_replication r"
            " JOIN pg_replication_slots s ON s.active_pid = r.pid"
            " WHERE r.application_name = 'datahub_replica'"
        ).fetchone()
    assert row == ("streaming", "datahub_replica")


def test_the_replica_refuses_writes(rs: ReplicaSet, dbname: str) -> None:
    with (
        connect(rs.bouncer_url(dbname, replica=True)) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        store_uplinks(conn, make_uplinks("refused", 0, 1))


def test_clients_without_prepared_statements_share_server_connections(
    rs: ReplicaSet, dbname: str
) -> None:
    first, second = connect(rs.bouncer_url(dbname)), connect(rs.bouncer_url(dbname))
    with first, second:
        for i in range(20):
            for conn in (first, second):
                with conn.transaction():
                    row = conn.execute("SELECT %s::int + 1, count(*) FROM uplink", (i,))
                    assert row.fetchone() is not None


def test_server_side_prepared_statements_break_in_transaction_mode(
    rs: ReplicaSet, dbname: str
) -> None:
    """Both clients name their first prepared statement _pg3_0; PgBouncer gives the second
    the server connection the first prepared it on."""
    first = psycopg.connect(rs.bouncer_url(dbname), autocommit=True, prepare_threshold=0)
    second = psycopg.connect(rs.bouncer_url(dbname), autocommit=True, prepare_threshold=0)
    with first, second:
        first.execute("SELECT %s::int", (1,))
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            second.execute("SELECT %s::int", (1,))


def test_pgbouncer_refuses_the_options_startup_parameter(rs: ReplicaSet, dbname: str) -> None:
    """Session settings such as statement_timeout cannot travel as `options` through it."""
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(rs.bouncer_url(dbname), options="-c statement_timeout=1000")


def test_a_read_cancelled_by_a_recovery_conflict_is_busy_not_unavailable(
    rs: ReplicaSet, dbname: str
) -> None:
    """The replica cancels a read that holds up replaying the primary's change longer than
    max_standby_streaming_delay: the database is there, so the API answers that read as
    busy (429, retry) and not as unreachable (503)."""
    with psycopg.connect(rs.primary_url(dbname), autocommit=True) as primary:
        primary.execute("CREATE TABLE conflicted AS SELECT 1 AS n")
    rs.wait_replayed()
    set_streaming_delay(rs, "100ms")
    pool = db.open_pool(
        Settings(database_url=rs.replica_url(dbname)),
        name="test-conflict",
        max_size=1,
        autocommit=True,
    )

    def drop_while_read() -> None:
        with psycopg.connect(rs.replica_url(dbname), autocommit=True) as replica:
            wait_until(
                "the read on the replica",
                lambda: (
                    replica.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE query LIKE '%%FROM conflicted' AND state = 'active'"
                    ).fetchone()
                    == (1,)
                ),
                20,
            )
        with psycopg.connect(rs.primary_url(dbname), autocommit=True) as primary:
            primary.execute("DROP TABLE conflicted")  # its lock waits for the replica's read

    dropper = threading.Thread(target=drop_while_read)
    try:
        dropper.start()
        with (
            pytest.raises(StorageBusy, match="conflicting change") as caught,
            db.lend(pool) as conn,
        ):
            conn.execute("SELECT n, pg_sleep(20) FROM conflicted")
        assert isinstance(caught.value.__cause__, psycopg.errors.SerializationFailure)
        assert "conflict with recovery" in str(caught.value.__cause__)
        with db.lend(pool) as conn:  # and the next read is served
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        dropper.join()
        pool.close()
        set_streaming_delay(rs, None)


def set_streaming_delay(rs: ReplicaSet, delay: str | None) -> None:
    """Set the replica's max_standby_streaming_delay (None: its default, 30 s)."""
    with psycopg.connect(rs.replica_url(), autocommit=True) as replica:
        if delay is None:
            replica.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
        else:
            replica.execute(
                sql.SQL("ALTER SYSTEM SET max_standby_streaming_delay = {}").format(
                    sql.Literal(delay)
                )
            )
        replica.execute("SELECT pg_reload_conf()")


def test_a_stopped_replica_catches_up_from_its_slot(rs: ReplicaSet, dbname: str) -> None:
    rs.services("stop", "replica")
    assert "replica stopped" in rs.services("status", "replica", check=False)
    # PgBouncer holds a client while no server connection can be had: the client's own
    # connect timeout decides how soon it gives up.
    assert not readable(rs.bouncer_url(dbname, replica=True))

    batch = make_uplinks("while-stopped", 0, 300)
    with connect(rs.bouncer_url(dbname)) as conn:
        assert store_uplinks(conn, batch) == 300

    started = rs.services("start", "replica")
    assert "cloning" not in started and "pg_basebackup" not in started
    rs.wait_replayed()
    # After failed logins PgBouncer refuses clients for up to server_login_retry seconds.
    reads = rs.bouncer_url(dbname, replica=True)
    wait_until("reads through PgBouncer", lambda: readable(reads), 10)
    assert {u.dedup_key for u in batch} <= stored_keys(reads)


def test_start_is_idempotent_and_reloads_pgbouncer_for_new_databases(rs: ReplicaSet) -> None:
    again = rs.services("start", "timescaledb", "replica", "pgbouncer")
    for service in ("timescaledb", "replica", "pgbouncer"):
        assert f"{service}: already running" in again
    status = rs.services("status", "timescaledb", "replica", "pgbouncer")
    assert status.count(" running ") == 3

    with connect(rs.primary_url()) as conn:
        conn.autocommit = True
        conn.execute('CREATE DATABASE "later"')
    rs.expose("later")
    rs.wait_replayed()
    with connect(rs.bouncer_url("later", replica=True)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("later",)
