"""The audit log: its canonical form, a chain that shows every edit, deletion and
reordering, a database that refuses to change it, and appends that never fork it."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime

import psycopg
import pytest
from realservices import Database

from datahub import audit
from datahub.storage import audit as log
from datahub.storage.audit import GENESIS


def test_the_hash_is_over_the_previous_hash_and_the_canonical_entry() -> None:
    body = audit.entry_body(
        seq=1,
        at=datetime(2026, 12, 4, 20, 5, 1, 123456, tzinfo=UTC),
        actor="cli:alice",
        action="supplier.add",
        target="supplier:edg",
        before=None,
        after={"slug": "edg", "name": "EDG Entsorgung Dortmund GmbH", "lat": 51.5, "n": 3},
    )
    text = (
        '{"action":"supplier.add","actor":"cli:alice","after":{"lat":51.5,'
        '"n":3,"name":"EDG Entsorgung Dortmund GmbH","slug":"edg"},'
        '"at":"2026-12-04T20:05:01.123456Z","before":null,"seq":1,"target":"supplier:edg"}'
    )
    assert audit.canonical(body) == text.encode()
    assert audit.chain_hash(GENESIS, body) == hashlib.sha256(bytes(32) + text.encode()).digest()


def test_records_are_kept_as_json_without_secrets() -> None:
    assert audit.jsonable({"at": datetime(2026, 1, 1, tzinfo=UTC), "tags": ("a", "b")}) == {
        "at": "2026-01-01T00:00:00.000000Z",
        "tags": ["a", "b"],
    }
    with pytest.raises(TypeError, match="key hashes"):
        audit.jsonable({"key_hash": b"\x00" * 32})


def test_what_is_recorded_reads_back_as_it_was_hashed(conn: psycopg.Connection) -> None:
    values = {"big": 1e16, "small": 1.5e-7, "one": 1.0, "lat": 51.513587, "text": "Hörde\n"}
    with conn.transaction():
        entry = audit.record(conn, actor="cli:test", action="x.y", target="z", after=values)
    stored = log.get_entry(conn, seq=entry.seq)
    assert stored is not None and stored.after == entry.after
    body = audit.entry_body(
        seq=stored.seq, at=stored.at, actor=stored.actor, action=stored.action,
        target=stored.target, before=stored.before, after=stored.after,
    )  # fmt: skip
    assert audit.chain_hash(stored.prev_hash, body) == stored.hash


def append(conn: psycopg.Connection, n: int, *, actor: str = "cli:test") -> None:
    for i in range(n):
        with conn.transaction():
            audit.record(
                conn,
                actor=actor,
                action="dataset.update",
                target=f"dataset:d{i}",
                before={"name": f"old {i}"},
                after={"name": f"new {i}", "days": i},
            )


def verdict(conn: psycopg.Connection) -> audit.Verdict:
    return audit.verify(log.iterate_entries(conn))


def test_an_intact_chain_verifies(conn: psycopg.Connection) -> None:
    first = verdict(conn).entries
    append(conn, 3)
    found = verdict(conn)
    assert (found.intact, found.entries) == (True, first + 3)
    assert found.head_hash == log.list_entries(conn, limit=1, newest_first=True)[0].hash


def test_an_entry_is_appended_only_inside_the_changes_transaction(database: Database) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn, pytest.raises(RuntimeError):
        audit.record(conn, actor="cli:test", action="x", target="y")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'cli:mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
def test_the_database_refuses_to_change_the_log(conn: psycopg.Connection, statement: str) -> None:
    append(conn, 1)
    with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
        conn.execute(statement)


def tamper(conn: psycopg.Connection, *statements: str) -> None:
    """Change the log as its owner can: with its triggers disabled (rolled back after)."""
    conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
    for statement in statements:
        conn.execute(statement)
    conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def last_seq(conn: psycopg.Connection) -> int:
    return log.list_entries(conn, limit=1, newest_first=True)[0].seq


def test_an_edited_entry_breaks_the_chain_where_it_was_edited(conn: psycopg.Connection) -> None:
    append(conn, 4)
    edited = last_seq(conn) - 2
    tamper(
        conn,
        f"""UPDATE audit_log SET after = jsonb_set(after, '{{name}}', '"forged"')
            WHERE seq = {edited}""",
    )
    found = verdict(conn)
    assert (found.intact, found.broken_at, found.head_seq) == (False, edited, edited - 1)
    assert found.reason == f"entry {edited}'s content does not match its hash"


def test_an_entry_edited_and_rehashed_breaks_the_next_link(conn: psycopg.Connection) -> None:
    append(conn, 4)
    edited = last_seq(conn) - 2
    entry = log.get_entry(conn, seq=edited)
    assert entry is not None
    forged = audit.entry_body(
        seq=entry.seq,
        at=entry.at,
        actor="cli:mallory",
        action=entry.action,
        target=entry.target,
        before=entry.before,
        after=entry.after,
    )
    forged_hash = audit.chain_hash(entry.prev_hash, forged).hex()
    tamper(
        conn,
        f"""UPDATE audit_log SET actor = 'cli:mallory', hash = '\\x{forged_hash}'::bytea
            WHERE seq = {edited}""",
    )
    found = verdict(conn)
    assert (found.broken_at, found.head_seq) == (edited + 1, edited)
    assert "as its predecessor's hash" in (found.reason or "")


def test_a_deleted_entry_breaks_the_chain(conn: psycopg.Connection) -> None:
    append(conn, 4)
    deleted = last_seq(conn) - 1
    tamper(conn, f"DELETE FROM audit_log WHERE seq = {deleted}")
    found = verdict(conn)
    assert (found.broken_at, found.reason) == (
        deleted,
        f"entry {deleted} is missing (the next one stored is {deleted + 1})",
    )


def test_a_reordered_chain_breaks_where_it_was_reordered(conn: psycopg.Connection) -> None:
    append(conn, 4)
    a = last_seq(conn) - 2
    tamper(
        conn,
        f"UPDATE audit_log SET seq = seq + 1000000 WHERE seq IN ({a}, {a + 1})",
        f"UPDATE audit_log SET seq = {a + 1} WHERE seq = {a + 1000000}",
        f"UPDATE audit_log SET seq = {a} WHERE seq = {a + 1000001}",
    )
    found = verdict(conn)
    assert (found.intact, found.broken_at) == (False, a)


def test_concurrent_writers_do_not_fork_the_chain(database: Database) -> None:
    """Two writers appending at once: one chain, every seq once, every link intact."""
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with psycopg.connect(database.url) as conn:
                append(conn, 20, actor=f"cli:{name}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    with psycopg.connect(database.url) as conn:
        found = verdict(conn)
        actors = conn.execute(
            "SELECT actor, count(*) FROM audit_log WHERE actor IN ('cli:one', 'cli:two') "
            "GROUP BY actor ORDER BY actor"
        ).fetchall()
    assert found.intact and found.entries == found.head_seq
    assert actors == [("cli:one", 20), ("cli:two", 20)]
