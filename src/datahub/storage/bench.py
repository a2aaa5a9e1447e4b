"""The SQL of the benchmarks (datahub.bench): scratch databases, emptying the readings after
the COPY ceiling (which copies with `readings.copy_readings`, as the ingest does), the naive
one-row-per-commit integration, and what the harness polls. Nothing of the service uses it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql


def recreate_database(admin: psycopg.Connection, *, dbname: str) -> None:
    """Drop and create a database (the connection must be in autocommit mode)."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def database_exists(admin: psycopg.Connection, *, dbname: str) -> bool:
    row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    return row is not None


def get_marker(admin: psycopg.Connection, *, dbname: str) -> dict[str, Any] | None:
    """Return the JSON a finished data set load left as the database's comment, or None."""
    row = admin.execute(
        """
        SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s
        """,
        (dbname,),
    ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        marker = json.loads(row[0])
    except ValueError:
        return None
    return marker if isinstance(marker, dict) else None


def set_marker(conn: psycopg.Connection, *, dbname: str, marker: dict[str, Any]) -> None:
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(dbname), sql.Literal(json.dumps(marker, sort_keys=True))
        )
    )


def truncate_readings(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE reading, reading_hourly, reading_daily, rollup_dirty")


def create_naive_table(conn: psycopg.Connection) -> None:
    """A table like ChirpStack's PostgreSQL integration's `event_up`: one row per uplink."""
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS bench_event_up (
            deduplication_id  bytea PRIMARY KEY,
            time              timestamptz NOT NULL,
            dev_eui           text NOT NULL,
            f_cnt             bigint NOT NULL,
            f_port            smallint,
            data              bytea NOT NULL,
            object            jsonb,
            rx_info           jsonb NOT NULL
        )
        """
    )


def insert_naive_uplink(
    conn: psycopg.Connection,
    *,
    dedup_key: bytes,
    time: datetime,
    dev_eui: str,
    f_cnt: int,
    f_port: int | None,
    data: bytes,
    object: str | None,
    rx_info: str,
) -> None:
    conn.execute(
        """
        INSERT INTO bench_event_up
            (deduplication_id, time, dev_eui, f_cnt, f_port, data, object, rx_info)
        VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)
        """,
        (dedup_key, time, dev_eui, f_cnt, f_port, data, object, rx_info),
    )


def count_uplinks(conn: psycopg.Connection, *, since: datetime) -> int:
    """Count the uplinks received at or after `since` (committed ones only)."""
    row = conn.execute("SELECT count(*) FROM uplink WHERE received_at >= %s", (since,)).fetchone()
    return int(row[0]) if row else 0


def count_stored(conn: psycopg.Connection) -> tuple[int, int]:
    """Return (uplinks, readings) stored."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM uplink), (SELECT count(*) FROM reading)"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def database_bytes(conn: psycopg.Connection) -> int:
    """Return the size on disk of the current database (tables, indexes, TOAST)."""
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def analyze(conn: psycopg.Connection) -> None:
    conn.execute("VACUUM ANALYZE")
