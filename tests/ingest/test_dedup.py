"""What identifies an uplink: redeliveries are duplicates, other uplinks never are, and a copy
with other content never rewrites what is stored (TimescaleDB and PostgreSQL, a rollback per
test)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta

import psycopg
import pytest
from counter_reset import counter_resets
from democatalog import demo_catalog
from ingest_builders import NOW, SOURCES, expected, generate, message, stored

import simulators
from datahub.config import Settings
from datahub.ingest.pipeline import Pipeline


def pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings, catalog=demo_catalog(), clock=lambda: NOW)


def letters(conn: psycopg.Connection) -> list[tuple[str, str, bytes]]:
    rows = conn.execute("SELECT stage, reason, body FROM dead_letter ORDER BY id").fetchall()
    return [(stage, reason, bytes(body)) for stage, reason, body in rows]


def same_profile_pairs(
    sims: Sequence[simulators.SimUplink],
) -> list[tuple[simulators.SimUplink, simulators.SimUplink]]:
    """Pairs of uplinks of one profile whose payloads differ: one's payload in the other's
    envelope decodes, into other values."""
    pairs = []
    for a, b in itertools.combinations(sims, 2):
        same_kind = a.device.profile == b.device.profile and a.source == b.source
        if same_kind and a.payload != b.payload and a.f_port == b.f_port:
            pairs.append((a, b))
    return pairs


@pytest.mark.usefixtures("registered")
def test_a_copy_with_other_content_in_the_same_batch_never_rewrites_the_uplink(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = generate(scenario, 300)
    pairs = same_profile_pairs(sims)
    by_source = {
        source: [p for p in pairs if p[0].source == source] for source in (s.name for s in SOURCES)
    }
    (a, b), (c, d) = by_source["ttn-dortmund"][0], by_source["chirpstack-schwerte"][0]
    lht65 = next(s for s in sims if s.device.profile == "dragino/lht65" and s not in (a, c))
    others = [s for s in sims if s not in (a, b, c, d, lht65)][:200]
    hostile = [
        message(a, payload=b.payload),  # back to back with the original
        message(c, payload=d.payload),  # far apart in the batch
        message(lht65, payload=lht65.payload[:5]),  # a copy that fails to decode
    ]
    batch = [
        message(a),
        hostile[0],
        message(c),
        message(lht65),
        *[message(s) for s in others],
        hostile[1],
        hostile[2],
    ]

    result = pipeline(settings).process(conn, batch)

    good = [a, c, lht65, *others]
    assert result.uplinks == len(good)
    assert stored(conn) == expected(good, demo_catalog())
    assert conn.execute("SELECT DISTINCT decode_status FROM uplink").fetchall() == [("decoded",)]
    assert [(stage, reason) for stage, reason, _ in letters(conn)] == [
        ("store", "dedup_conflict")
    ] * 3
    assert [body for *_, body in letters(conn)] == [m.body for m in hostile]


@pytest.mark.usefixtures("registered")
def test_a_copy_with_other_content_in_a_later_batch_is_a_dead_letter(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = generate(scenario, 300)
    (a, b), (c, d) = same_profile_pairs(sims)[:2]
    pipe = pipeline(settings)
    pipe.process(conn, [message(a), message(c)])
    copies = [message(a, payload=b.payload), message(c), message(c, payload=d.payload)]

    result = pipe.process(conn, copies)

    assert (result.uplinks, result.duplicates, len(result.conflicts)) == (0, 1, 2)
    assert stored(conn) == expected([a, c], demo_catalog())
    assert letters(conn) == [
        ("store", "dedup_conflict", copies[0].body),
        ("store", "dedup_conflict", copies[2].body),
    ]
    detail = conn.execute("SELECT detail FROM dead_letter ORDER BY id LIMIT 1").fetchone()
    assert detail is not None
    assert f"is stored for the uplink received at {a.time.isoformat()}" in detail[0]
    assert f"payload {b.payload.hex()}" in detail[0]


@pytest.mark.usefixtures("registered")
def test_a_device_that_resets_its_frame_counter_loses_nothing(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = counter_resets(generate(scenario, 3000), start=NOW - timedelta(hours=3))
    assert [s.f_cnt for s in sims] == [*range(1, 51), *range(1, 51)]
    pipe = pipeline(settings)

    before = pipe.process(conn, [message(s) for s in sims[:50]])
    after = pipe.process(conn, [message(s) for s in sims[50:]])
    again = pipe.process(conn, [message(s) for s in sims])

    assert (before.uplinks, after.uplinks) == (50, 50)
    assert (again.uplinks, again.duplicates, again.conflicts) == (0, 100, [])
    assert stored(conn) == expected(sims, demo_catalog())
    assert letters(conn) == []
