"""Where a streaming replica stands against its primary, by WAL position (LSN).

Positions are bytes of WAL as integers (`pg_wal_lsn_diff(lsn, '0/0')`), comparable across
the two servers. Time stamps of the servers are not used: `pg_last_xact_replay_timestamp()`
is the time of the last transaction replayed, which grows old while the primary is idle
although the replica lacks nothing.
"""

from __future__ import annotations

import psycopg


def get_flushed_lsn(conn: psycopg.Connection) -> int:
    """On the primary: the WAL position up to which every commit is on disk, and so sent."""
    row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')").fetchone()
    assert row is not None
    return int(row[0])


def get_replayed_lsn(conn: psycopg.Connection) -> int | None:
    """On the replica: the WAL position replayed so far, which its queries see; None if
    the server is not in recovery (not a replica, or promoted)."""
    row = conn.execute(
        "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')"
    ).fetchone()
    if row is None or not row[0] or row[1] is None:
        return None
    return int(row[1])


def get_statement_timeout_ms(conn: psycopg.Connection) -> int:
    """The session's statement_timeout in milliseconds; 0: none."""
    row = conn.execute(
        "SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'"
    ).fetchone()
    return int(row[0]) if row else 0
