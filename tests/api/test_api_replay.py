"""Idempotency-Keys through the API: a replay gets the answer that was charged, never new
data; keys expire; an answer too large to keep is refused, not served unkept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from access_world import COMMERCIAL, OPEN, World, build_world, consumer
from api_helpers import API_LIMITS, Seed, at, build_app, iso
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datahub.storage import usage
from datahub.storage.usage import Answer

WINDOW = {"from": iso(at()), "to": iso(at(hours=3))}
READINGS = f"/v1/devices/{COMMERCIAL}/readings"


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> World:
    return build_world(conn, seed)


def keyed(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


def charged(conn: psycopg.Connection) -> list[int]:
    """The observations of each usage row, in order."""
    return [n for (n,) in conn.execute("SELECT observations FROM usage ORDER BY id")]


def test_a_replay_gets_the_first_answer_not_the_readings_stored_since(
    client: TestClient, world: World, conn: psycopg.Connection, seed: Seed
) -> None:
    headers = keyed(world.headers("company"))
    first = client.get(READINGS, params=WINDOW, headers=headers)
    seed.readings(COMMERCIAL, "temperature", {at(hours=2, minutes=30): 7.5})

    replay = client.get(READINGS, params=WINDOW, headers=headers)
    fresh = client.get(READINGS, params=WINDOW, headers=world.headers("company"))

    assert first.status_code == replay.status_code == 200
    assert replay.content == first.content
    assert len(first.json()["items"]) == 3
    assert (first.headers.get("idempotent-replayed"), replay.headers["idempotent-replayed"]) == (
        None,
        "true",
    )
    assert len(fresh.json()["items"]) == 4
    assert charged(conn) == [3, 4]


def test_a_replay_keeps_every_header_that_mattered(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    headers = keyed(world.headers("company"))
    params = {**WINDOW, "format": "csv"}

    first = client.get(READINGS, params=params, headers=headers)
    replay = client.get(READINGS, params=params, headers=headers)

    assert first.status_code == replay.status_code == 200
    assert replay.content == first.content
    assert first.headers.get_list("link")
    for name in ("content-type", "link", "content-disposition"):
        assert replay.headers.get_list(name) == first.headers.get_list(name), name
    assert charged(conn) == [3]


def test_a_replay_after_the_quota_is_used_up_gets_what_was_paid_for(
    client: TestClient, world: World, conn: psycopg.Connection, seed: Seed
) -> None:
    _, key = consumer(conn, "small", purpose="commercial", monthly_quota=3)
    headers = keyed({"Authorization": f"Bearer {key}"})
    path = f"/v1/devices/{OPEN}/readings"
    first = client.get(path, params=WINDOW, headers=headers)
    seed.readings(OPEN, "temperature", {at(hours=2, minutes=30): 7.5})

    refused = client.get(path, params=WINDOW, headers={"Authorization": f"Bearer {key}"})
    replay = client.get(path, params=WINDOW, headers=headers)

    assert (first.status_code, refused.status_code, replay.status_code) == (200, 429, 200)
    assert replay.content == first.content
    assert charged(conn) == [3]


def test_a_key_used_for_another_request_is_409_and_charges_nothing(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    headers = keyed(world.headers("company"))
    client.get(READINGS, params=WINDOW, headers=headers)

    other = client.get(READINGS, params={**WINDOW, "limit": 2}, headers=headers)

    assert (other.status_code, other.json()["error"]) == (409, "Conflict")
    assert charged(conn) == [3]


def test_an_error_is_not_kept_a_retry_runs_again(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    headers = keyed(world.headers("company"))
    missing = client.get(READINGS, params={"from": "yesterday"}, headers=headers)
    retry = client.get(READINGS, params=WINDOW, headers=headers)

    assert missing.status_code in (400, 422)
    assert retry.status_code == 200
    assert "idempotent-replayed" not in retry.headers
    assert charged(conn) == [3]


def test_a_key_expires_after_the_time_it_is_kept(
    client: TestClient, app: Any, world: World, conn: psycopg.Connection, seed: Seed
) -> None:
    headers = keyed(world.headers("company"))
    first = client.get(READINGS, params=WINDOW, headers=headers)
    seed.readings(COMMERCIAL, "temperature", {at(hours=2, minutes=30): 7.5})
    kept = app.state.settings.fairshare.idempotency_keys_kept_s
    later = datetime.now(UTC) + timedelta(seconds=kept + 1)
    app.state.clock = lambda: later

    again = client.get(READINGS, params=WINDOW, headers=headers)
    replay = client.get(READINGS, params=WINDOW, headers=headers)

    assert len(first.json()["items"]) == 3
    assert len(again.json()["items"]) == 4
    assert "idempotent-replayed" not in again.headers
    assert replay.content == again.content
    assert charged(conn) == [3, 4]


def test_expired_keys_are_pruned(conn: psycopg.Connection) -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    answer = Answer(200, [("content-type", "application/json")], b"{}")
    for key, age in (("old", timedelta(days=2)), ("new", timedelta(hours=1))):
        usage.claim_idempotency_key(
            conn,
            subject="consumer:1",
            key=key,
            fingerprint="GET /v1/latest?",
            request_id=uuid.uuid4(),
            answer=answer,
            now=now - age,
            kept_since=now - age - timedelta(days=1),
        )

    pruned = usage.prune_idempotency_keys(conn, kept_since=now - timedelta(days=1))

    assert pruned == 1
    assert [k for (k,) in conn.execute("SELECT key FROM idempotency_key")] == ["new"]


def test_an_answer_too_large_to_keep_is_refused_whole(
    database: Any, conn: psycopg.Connection, world: World, seed: Seed
) -> None:
    seed.readings(COMMERCIAL, "temperature", {at(minutes=200 + m): float(m) for m in range(30)})
    settings = database.settings(api=API_LIMITS, fairshare={"idempotency_answer_max_bytes": 1024})
    client = TestClient(build_app(settings, conn))
    params = {**WINDOW, "to": iso(at(days=1)), "limit": 50}
    company = world.headers("company")

    refused = client.get(READINGS, params=params, headers=keyed(company))
    unkeyed = client.get(READINGS, params=params, headers=company)
    kept = client.get(READINGS, params={**params, "limit": 1}, headers=keyed(company))

    assert len(unkeyed.content) > 1024
    assert (refused.status_code, refused.json()["error"]) == (400, "BadRequest")
    assert "Idempotency-Key" in refused.json()["detail"]
    assert kept.status_code == 200
    assert charged(conn) == [33, 1]


# Any sequence of new requests, retries, new readings and quota changes: the ledger is
# what the client was served (first answers only), each replay is its first answer byte
# for byte, and the month's counter is the month's ledger.
STEP = st.one_of(
    st.tuples(st.just("request"), st.booleans(), st.integers(1, 4)),
    st.tuples(st.just("retry"), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("reading"), st.integers(0, 170), st.just(0)),
    st.tuples(st.just("quota"), st.integers(0, 40), st.just(0)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, max_size=14))
def test_any_sequence_keeps_ledger_equal_to_what_was_served(
    client: TestClient, world: World, conn: psycopg.Connection, seed: Seed, steps: list[Any]
) -> None:
    try:
        with conn.transaction():
            _run(client, world, conn, seed, steps)
            raise psycopg.Rollback()
    except psycopg.Rollback:
        pass


def _run(
    client: TestClient, world: World, conn: psycopg.Connection, seed: Seed, steps: list[Any]
) -> None:
    company = world.headers("company")
    sent: list[tuple[dict[str, str], dict[str, Any], bytes]] = []  # first answers, keyed
    served = 0
    minute = 200
    for kind, a, b in steps:
        if kind == "request":
            headers = keyed(company) if a else company
            params = {**WINDOW, "to": iso(at(days=1)), "limit": b}
            response = client.get(READINGS, params=params, headers=headers)
            assert response.status_code in (200, 429)
            if response.status_code == 200:
                served += len(response.json()["items"])
                if a:
                    sent.append((headers, params, response.content))
        elif kind == "retry" and sent:
            headers, params, content = sent[a % len(sent)]
            response = client.get(READINGS, params=params, headers=headers)
            assert (response.status_code, response.content) == (200, content)
            assert response.headers["idempotent-replayed"] == "true"
        elif kind == "reading":
            minute += a + 1
            seed.readings(COMMERCIAL, "temperature", {at(minutes=minute): float(a)})
        elif kind == "quota":
            patched = client.patch(
                "/v1/admin/consumers/company",
                json={"monthly_quota": a or None},
                headers=world.headers("admin"),
            )
            assert patched.status_code == 200
        assert sum(charged(conn)) == served
        month = datetime.now(UTC).date().replace(day=1)
        (consumer_id,) = conn.execute("SELECT id FROM consumer WHERE slug = 'company'").fetchone()
        assert usage.get_quota_used(conn, consumer_id=consumer_id, month=month) == served


def test_an_answer_that_serves_nothing_metered_passes_and_keeps_nothing(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    headers = keyed(world.headers("company"))

    first = client.get("/v1/devices", headers=headers)
    again = client.get("/v1/devices", headers=headers)

    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in again.headers
    assert conn.execute("SELECT count(*) FROM idempotency_key").fetchone() == (0,)
    assert charged(conn) == []
