"""Metering: the usage ledger equals what was served; retries, quotas and rate limits.

The concurrency tests run the API with its real connection pool on a database of their
own, so concurrent requests really race for the quota counter.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from access_world import COMMERCIAL, OPEN, RESTRICTED, World, build_world, consumer
from api_helpers import API_LIMITS, TEST_CATALOG, Seed, at, build_app, iso
from fastapi.testclient import TestClient
from realservices import temporary_database

from datahub.api import metering
from datahub.api.app import create_app
from datahub.api.auth import Callers
from datahub.fairshare import admin
from datahub.storage import access, usage

WINDOW = {"from": iso(at()), "to": iso(at(hours=3))}


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> World:
    return build_world(conn, seed)


def ledger(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """The usage rows as (consumer, purpose, dataset, endpoint, observations), in order."""
    return conn.execute(
        """
        SELECT c.slug, u.purpose, ds.slug, u.endpoint, u.observations
        FROM usage u JOIN dataset ds ON ds.id = u.dataset_id
        LEFT JOIN consumer c ON c.id = u.consumer_id
        ORDER BY u.id
        """
    ).fetchall()


def test_raw_readings_count_one_observation_each(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    response = client.get(
        f"/v1/devices/{COMMERCIAL}/readings", params=WINDOW, headers=world.headers("company")
    )

    assert len(response.json()["items"]) == 3
    assert ledger(conn) == [
        ("company", "commercial", "sws-waste", "/v1/devices/{dev_eui}/readings", 3)
    ]


def test_anonymous_use_is_recorded_as_public_interest(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    client.get("/v1/latest", params={"metric": "temperature"})

    assert ledger(conn) == [(None, "public_interest", "dew21", "/v1/latest", 1)]


def test_a_city_aggregate_charges_each_dataset_its_points(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    client.get(
        "/v1/readings/aggregate",
        params={**WINDOW, "metric": "temperature", "city": "dortmund"},
        headers=world.headers("admin"),
    )

    # Three hourly points, each holding readings of all three datasets.
    assert sorted(ledger(conn)) == [
        ("admin", "public_interest", ds, "/v1/readings/aggregate", 3)
        for ds in ("dew21", "sws-parking", "sws-waste")
    ]


def test_empty_answers_and_metadata_are_not_metered(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    client.get(
        f"/v1/devices/{OPEN}/readings", params={"from": iso(at(days=5)), "to": iso(at(days=6))}
    )
    client.get("/v1/devices")
    client.get("/v1/datasets")
    client.get(f"/v1/devices/{RESTRICTED}/readings", params=WINDOW)  # 404

    assert ledger(conn) == []


def test_a_retry_with_the_same_idempotency_key_counts_once(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    headers = {**world.headers("company"), "Idempotency-Key": str(uuid.uuid4())}
    path = f"/v1/devices/{COMMERCIAL}/readings"

    first = client.get(path, params=WINDOW, headers=headers)
    retry = client.get(path, params=WINDOW, headers=headers)
    other = client.get(path, params={**WINDOW, "metric": "temperature"}, headers=headers)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()  # served again in full ...
    assert [row[-1] for row in ledger(conn)] == [3]  # ... but counted once
    assert other.status_code == 409
    assert other.json()["error"] == "Conflict"


def test_a_malformed_idempotency_key_is_400(client: TestClient, world: World) -> None:
    response = client.get("/v1/latest", headers={"Idempotency-Key": "spaces are not tokens"})

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


def test_a_request_over_the_quota_is_refused_whole(
    client: TestClient, world: World, conn: psycopg.Connection, seed: Seed
) -> None:
    consumer(conn, "small", purpose="commercial", monthly_quota=4)
    small = consumer_headers(conn, "small-2", quota=4)
    path = f"/v1/devices/{OPEN}/readings"

    first = client.get(path, params=WINDOW, headers=small)  # 3 of 4
    longest_wait = metering.seconds_to_next_month(datetime.now(UTC))
    second = client.get(path, params=WINDOW, headers=small)  # 3 more: over
    shortest_wait = metering.seconds_to_next_month(datetime.now(UTC))
    third = client.get(path, params={**WINDOW, "limit": 1}, headers=small)  # 1: fits

    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"] == "TooManyRequests"
    assert "1 left of the monthly quota of 4" in second.json()["detail"]
    assert shortest_wait <= int(second.headers["retry-after"]) <= longest_wait
    assert "items" not in second.json()
    assert third.status_code == 200
    assert [row[-1] for row in ledger(conn)] == [3, 1]


def counter_and_ledger(conn: psycopg.Connection, slug: str) -> tuple[int, int]:
    """A consumer's counter of this month and its ledger of this month."""
    row = conn.execute(
        """
        SELECT (SELECT coalesce(sum(observations), 0) FROM quota_usage q
                WHERE q.consumer_id = c.id
                  AND q.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date),
               (SELECT coalesce(sum(observations), 0) FROM usage u
                WHERE u.consumer_id = c.id
                  AND u.occurred_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                                       AT TIME ZONE 'UTC')
        FROM consumer c WHERE c.slug = %s
        """,
        (slug,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_quota_set_mid_month_counts_the_months_earlier_use(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    path = f"/v1/devices/{COMMERCIAL}/readings"
    company = world.headers("company")
    for _ in range(8):  # 24 observations, no quota
        assert client.get(path, params=WINDOW, headers=company).status_code == 200
    assert counter_and_ledger(conn, "company") == (24, 24)

    quota = client.patch(
        "/v1/admin/consumers/company", json={"monthly_quota": 26}, headers=world.headers("admin")
    )
    over = client.get(path, params=WINDOW, headers=company)  # 3 more: 27 > 26
    fits = client.get(path, params={**WINDOW, "limit": 2}, headers=company)

    assert quota.status_code == 200
    assert over.status_code == 429
    assert "2 left of the monthly quota of 26" in over.json()["detail"]
    assert fits.status_code == 200
    assert counter_and_ledger(conn, "company") == (26, 26)


def test_a_quota_holds_at_once_while_the_process_remembers_the_caller(
    database: Any, conn: psycopg.Connection, world: World
) -> None:
    """The quota is read where the counter is, not from the caller the process remembers."""
    app = build_app(database.settings(api=API_LIMITS), conn)
    app.state.callers = Callers(3600)
    client = TestClient(app)
    path = f"/v1/devices/{COMMERCIAL}/readings"
    company = world.headers("company")
    assert client.get(path, params=WINDOW, headers=company).status_code == 200  # remembered

    admin.update_consumer(
        conn, actor="cli:test", slug="company", changes={"monthly_quota": 4}, now=datetime.now(UTC)
    )
    refused = client.get(path, params=WINDOW, headers=company)

    assert refused.status_code == 429
    assert counter_and_ledger(conn, "company") == (3, 3)


def test_setting_a_quota_counts_the_month_again(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    """Usage written without its count (by a version that kept none) is counted then."""
    client.get(
        f"/v1/devices/{COMMERCIAL}/readings", params=WINDOW, headers=world.headers("company")
    )
    conn.execute("DELETE FROM quota_usage")
    assert counter_and_ledger(conn, "company") == (0, 3)

    admin.update_consumer(
        conn,
        slug="company",
        changes={"monthly_quota": 1000},
        now=datetime.now(UTC),
        actor="cli:test",
    )

    assert counter_and_ledger(conn, "company") == (3, 3)


def consumer_headers(conn: psycopg.Connection, slug: str, *, quota: int) -> dict[str, str]:
    _, key = consumer(conn, slug, purpose="commercial", monthly_quota=quota)
    return {"Authorization": f"Bearer {key}"}


def test_seconds_to_next_month() -> None:
    assert metering.seconds_to_next_month(datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)) == 30
    assert metering.seconds_to_next_month(datetime(2026, 2, 28, 0, 0, 0, 1, tzinfo=UTC)) == 86400


def test_the_rate_window_never_passes_its_limit(conn: psycopg.Connection) -> None:
    second = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    taken = [
        access.take_rate_slot(conn, subject="consumer:1", limit=3, at=second) for _ in range(5)
    ]
    next_second = access.take_rate_slot(
        conn, subject="consumer:1", limit=3, at=second.replace(second=1)
    )

    assert taken == [True, True, True, False, False]
    assert next_second


def test_rate_slots_taken_together_are_numbered_in_order(conn: psycopg.Connection) -> None:
    second = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)
    asked = [("consumer:a", 2), ("consumer:b", 1), ("consumer:a", 2), ("consumer:a", 2)]

    together = access.take_rate_slots(conn, [*asked, ("consumer:b", 1)], at=second)
    after = access.take_rate_slot(conn, subject="consumer:a", limit=2, at=second)

    assert together == [True, True, True, False, False]
    assert not after  # refused requests count too: the window stays full
    assert access.take_rate_slot(conn, subject="consumer:a", limit=2, at=second.replace(second=6))


def test_charges_made_together_count_each_consumer_whole_or_not_at_all(
    world: World, conn: psycopg.Connection
) -> None:
    (waste,) = conn.execute("SELECT id FROM dataset WHERE slug = 'sws-waste'").fetchone()
    capped, _ = consumer(conn, "capped", purpose="commercial", monthly_quota=10)
    free, _ = consumer(conn, "free", purpose="research")
    when = datetime(2026, 12, 3, 9, tzinfo=UTC)

    def asked(consumer_id: int | None, n: int) -> usage.Usage:
        return usage.Usage(uuid.uuid4(), consumer_id, "commercial", "/x", {waste: n}, when)

    # The capped consumer's three requests (11) pass its quota of 10 together.
    batch = [asked(capped, 4), asked(free, 5), asked(None, 3), asked(capped, 4), asked(capped, 3)]
    charges = usage.charge_all(conn, batch)

    assert [c.recorded for c in charges] == [False, True, True, False, False]
    assert charges[0].quota == 10 and charges[1].quota is None
    assert usage.sum_usage(conn, consumer_id=capped) == 0
    assert usage.sum_usage(conn, consumer_id=free) == 5
    # Charged alone, in order, the first two fit and the third does not.
    alone = [
        usage.charge_all(conn, [one])[0].recorded for one in batch if one.consumer_id == capped
    ]
    assert alone == [True, True, False]
    assert usage.sum_usage(conn, consumer_id=capped) == 8
    assert usage.get_quota_used(conn, consumer_id=capped, month=when.date().replace(day=1)) == 8


def test_over_the_rate_limit_is_429_with_retry_after(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    _, key = consumer(conn, "eager", purpose="research", requests_per_s=1)
    # Fill this second's window, whichever second it is, then ask once more in it.
    statuses = []
    for _ in range(2):
        statuses.append(
            client.get("/v1/devices", headers={"Authorization": f"Bearer {key}"}).status_code
        )
    if statuses != [200, 429]:  # the two requests fell into two seconds: try once more
        statuses = [
            client.get("/v1/devices", headers={"Authorization": f"Bearer {key}"}).status_code
            for _ in range(2)
        ]
        assert 429 in statuses
    else:
        assert statuses == [200, 429]


# Concurrency, on the real pool --------------------------------------------------------


@pytest.fixture(scope="module")
def pooled() -> Iterator[tuple[Any, dict[str, str]]]:
    """A committed database with the world in it, and the keys of its consumers."""
    with temporary_database("timescaledb", "datahub_test_metering") as database:
        with psycopg.connect(database.url) as conn:
            world = build_world(conn, Seed(conn))
            _, key = consumer(conn, "racer", purpose="commercial", monthly_quota=100)
            conn.commit()
        yield database, {**world.keys, "racer": key}


@pytest.mark.services
def test_concurrent_requests_never_pass_the_quota(pooled: tuple[Any, dict[str, str]]) -> None:
    database, api_keys = pooled
    settings = database.settings(database={"pool_size": 8})
    headers = {"Authorization": f"Bearer {api_keys['racer']}"}
    # 60 requests of 3 observations each race for a quota of 100: 33 fit, 1 is left over.
    with TestClient(create_app(settings, catalog=TEST_CATALOG)) as client:

        def fetch(_: int) -> int:
            response = client.get(f"/v1/devices/{OPEN}/readings", params=WINDOW, headers=headers)
            if response.status_code == 200:
                assert len(response.json()["items"]) == 3
            return response.status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(fetch, range(60)))

    with psycopg.connect(database.url) as conn:
        served = usage.sum_usage(conn, consumer_id=consumer_id(conn, "racer"))
        counted = conn.execute(
            "SELECT observations FROM quota_usage WHERE consumer_id = %s",
            (consumer_id(conn, "racer"),),
        ).fetchone()
    assert statuses.count(200) == 33
    assert statuses.count(429) == 27
    assert served == 99 == 3 * statuses.count(200)
    assert counted == (99,)


def consumer_id(conn: psycopg.Connection, slug: str) -> int:
    row = conn.execute("SELECT id FROM consumer WHERE slug = %s", (slug,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.services
def test_concurrent_requests_never_pass_the_rate_limit(pooled: tuple[Any, dict[str, str]]) -> None:
    database, _ = pooled
    second = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

    def take(_: int) -> bool:
        # Each on a connection of its own, as requests on different API processes.
        with psycopg.connect(database.url, autocommit=True) as conn:
            return access.take_rate_slot(conn, subject="consumer:race", limit=7, at=second)

    with ThreadPoolExecutor(max_workers=12) as pool:
        taken = list(pool.map(take, range(40)))

    assert taken.count(True) == 7


def test_a_suppliers_use_of_its_own_dataset_is_recorded_as_own_use(
    client: TestClient, world: World, conn: psycopg.Connection, seed: Seed
) -> None:
    (waste,) = conn.execute("SELECT id FROM dataset WHERE slug = 'sws-waste'").fetchone()
    _, key = consumer(
        conn,
        "sws-ops",
        purpose="commercial",
        grants=(waste,),
        supplier_id=seed.supplier_ids["stadtwerke-schwerte"],
    )
    path = f"/v1/devices/{COMMERCIAL}/readings"

    own = client.get(path, params=WINDOW, headers={"Authorization": f"Bearer {key}"})
    other = client.get(path, params=WINDOW, headers=world.headers("company"))

    assert own.status_code == other.status_code == 200
    recorded = conn.execute(
        "SELECT c.slug, u.observations, u.own_use FROM usage u "
        "JOIN consumer c ON c.id = u.consumer_id ORDER BY u.id"
    ).fetchall()
    assert recorded == [("sws-ops", 3, True), ("company", 3, False)]


# RFC 8288: link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param ), link-param =
# token BWS [ "=" BWS ( token / quoted-string ) ]; an RFC 8187 ext-value is a token.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = rf'\s*;\s*({_TOKEN})\s*=\s*({_TOKEN}|"(?:[^"\\]|\\.)*")'
_LINK = re.compile(rf"<([^>]*)>((?:{_PARAM})*)")


def parse_links(header: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a Link header strictly: each link's target and its parameters, unquoted."""
    links: list[tuple[str, dict[str, str]]] = []
    rest = header
    while rest:
        match = _LINK.match(rest)
        assert match is not None, f"not an RFC 8288 link: {rest!r}"
        params: dict[str, str] = {}
        for name, value in re.findall(_PARAM, match.group(2)):
            assert name not in params, f"{name} twice in {match.group(0)!r}"
            params[name] = value[1:-1] if value.startswith('"') else value
        links.append((match.group(1), params))
        rest = rest[match.end() :]
        assert rest == "" or rest.startswith(", "), rest
        rest = rest[2:]
    return links


def test_every_licence_link_names_its_dataset(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    # Two datasets with one attribution and licence: only the dataset tells them apart;
    # one without a licence says so.
    conn.execute(
        """
        UPDATE dataset SET attribution = 'Stadtwerke Schwerte',
            licence_url = 'https://example.org/licences/sws'
        WHERE slug IN ('sws-waste', 'sws-parking');
        UPDATE dataset SET attribution = 'Stadtwerke Schwerte (Straßen)', licence_id = 'none',
            licence_name = 'no licence given', licence_url = NULL
        WHERE slug = 'sws-parking';
        """
    )
    response = client.get(
        "/v1/latest",
        params={"metric": "temperature", "format": "csv"},
        headers=world.headers("admin"),
    )

    links = {
        params["dataset"]: (target, params)
        for target, params in parse_links(response.headers["link"])
    }
    assert sorted(links) == ["dew21", "sws-parking", "sws-waste"]
    for slug, (_, params) in links.items():
        assert params["anchor"] == f"/v1/datasets#{slug}"
        assert params["rel"] == "license"
    assert links["sws-waste"] == (
        "https://example.org/licences/sws",
        {
            "rel": "license",
            "anchor": "/v1/datasets#sws-waste",
            "dataset": "sws-waste",
            "attribution*": "UTF-8''Stadtwerke%20Schwerte",
            "title*": "UTF-8''Stadtwerke%20Schwerte",
        },
    )
    assert links["sws-parking"] == (
        "/v1/datasets#sws-parking",
        {
            "rel": "license",
            "anchor": "/v1/datasets#sws-parking",
            "dataset": "sws-parking",
            "attribution*": "UTF-8''Stadtwerke%20Schwerte%20%28Stra%C3%9Fen%29",
            "licence": "none",
            "title": "no licence given",
        },
    )
    body = client.get(
        "/v1/latest", params={"metric": "temperature"}, headers=world.headers("admin")
    ).json()
    parking = next(lic for lic in body["licences"] if lic["dataset"] == "sws-parking")
    assert parking == {
        "dataset": "sws-parking",
        "licence": "none",
        "name": "no licence given",
        "url": None,
        "attribution": "Stadtwerke Schwerte (Straßen)",
    }
