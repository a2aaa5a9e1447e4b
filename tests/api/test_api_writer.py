"""The API's writers on a real pool: writes of one kind made together in one statement,
and what runs alone when that statement leaves a write undone or fails."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from realservices import temporary_database

from datahub.api.auth import RATE_SLOTS
from datahub.api.writer import Together, Writer
from datahub.storage import access, db

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def pool() -> Iterator[Any]:
    with (
        temporary_database("timescaledb", "datahub_test_writer") as database,
        db.open_pool(database.settings(), name="writer-test", prepare=False) as opened,
    ):
        opened.wait()
        yield opened


def test_rate_slots_of_racing_requests_are_taken_together_and_never_pass_the_limit(
    pool: Any,
) -> None:
    writer = Writer(pool, name="rates", durable=False)
    asked = ("consumer:racing", 7)

    def take(_: int) -> bool:
        return writer.run(
            lambda conn: access.take_rate_slots(conn, [asked])[0],
            key=asked[0],
            together=RATE_SLOTS,
            item=asked,
        )

    try:
        with ThreadPoolExecutor(max_workers=16) as threads:
            taken = list(threads.map(take, range(48)))
    finally:
        writer.close()
    # All in one second, or spread over two: never more than the limit in any.
    assert 7 <= taken.count(True) <= 14


def test_a_write_left_undone_or_failed_together_runs_alone(pool: Any) -> None:
    writer = Writer(pool, name="ledger", durable=True)
    halves: Together[int, str] = Together(
        lambda conn, items: [f"together {i}" if i % 2 == 0 else None for i in items]
    )
    broken: Together[int, str] = Together(lambda conn, items: [1 // 0 for _ in items])

    def alone(i: int) -> Any:
        return lambda conn: f"alone {conn.execute('SELECT %s::int', (i,)).fetchone()[0]}"

    try:
        results = [writer.run(alone(i), key="k", together=halves, item=i) for i in range(4)]
        fallen_back = writer.run(alone(9), key="k", together=broken, item=9)
    finally:
        writer.close()

    assert results == ["together 0", "alone 1", "together 2", "alone 3"]
    assert fallen_back == "alone 9"


def test_a_write_made_together_is_committed_when_run_returns(pool: Any) -> None:
    writer = Writer(pool, name="ledger", durable=True)
    insert: Together[str, str] = Together(
        lambda conn, items: [
            conn.execute(
                "INSERT INTO rate_window (subject, second, requests) "
                "VALUES (%s, '2026-12-01T00:00:00Z', 1) RETURNING subject",
                (item,),
            ).fetchone()[0]
            for item in items
        ]
    )
    try:
        writer.run(lambda conn: None, key="k", together=insert, item="consumer:seen")
    finally:
        writer.close()
    with pool.connection() as other, other.transaction():
        seen = other.execute(
            "SELECT requests FROM rate_window WHERE subject = 'consumer:seen'"
        ).fetchone()
    assert seen == (1,)
