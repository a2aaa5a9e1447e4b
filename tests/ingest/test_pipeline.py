"""The pipeline over a real database (TimescaleDB and PostgreSQL), a rollback per test."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import psycopg
import pytest
from democatalog import demo_catalog
from ingest_builders import NOW, SOURCES, generate
from realservices import Database

import simulators
from datahub.config import Settings
from datahub.ingest import decode, normalize
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import Pipeline

_mid = itertools.count(1)


def uplinks(scenario: simulators.Scenario, count: int) -> list[simulators.SimUplink]:
    return generate(scenario, count)


def message(uplink: simulators.SimUplink) -> Message:
    fmt = next(s.format for s in SOURCES if s.name == uplink.source)
    topic, body = uplink.message(fmt)
    return raw(uplink.source, body, topic)


def raw(source: str, body: bytes, topic: str = "t") -> Message:
    return Message(source, topic, body, qos=1, mid=next(_mid), arrived_at=NOW)


def pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings, clock=lambda: NOW)


def expected_readings(sims: Sequence[simulators.SimUplink]) -> set[tuple[str, str, float]]:
    """What the hub must store: each payload through its catalog decoder and mapping."""
    out = set()
    for sim in sims:
        profile = demo_catalog()[sim.device.profile]
        data = decode.decode_uplink(profile, f_port=sim.f_port, payload=sim.payload).data
        norm = normalize.to_readings(
            data, profile.mappings, time=sim.time, dev_eui=sim.device.dev_eui
        )
        out |= {(r.dev_eui, r.metric, r.value) for r in norm.readings}
    return out


def stored_readings(conn: psycopg.Connection) -> set[tuple[str, str, float]]:
    rows = conn.execute(
        "SELECT d.dev_eui, r.metric, r.value FROM reading r JOIN device d ON d.id = r.device_id"
    ).fetchall()
    return set(rows)


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


@pytest.mark.usefixtures("registered")
def test_batch_of_both_cities_is_stored_with_its_readings(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = uplinks(scenario, 400)
    assert {s.source for s in sims} == {"ttn-dortmund", "chirpstack-schwerte"}
    stored = pipeline(settings).process(conn, [message(s) for s in sims])
    assert (stored.uplinks, stored.duplicates, stored.dead_letters) == (400, 0, 0)
    assert count(conn, "uplink") == 400
    assert stored_readings(conn) == expected_readings(sims)
    assert count(conn, "reading") == stored.readings
    cities = dict(conn.execute("SELECT city, count(*) FROM uplink GROUP BY city").fetchall())
    assert set(cities) == {"dortmund", "schwerte"}


@pytest.mark.usefixtures("registered")
def test_redelivered_uplinks_are_stored_once(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = uplinks(scenario, 50)
    pipe = pipeline(settings)
    first = pipe.process(conn, [message(s) for s in sims[:30]])
    # A redelivery of everything, with the rest mixed in, and a copy inside the same batch.
    again = pipe.process(conn, [message(s) for s in [*sims, sims[40]]])
    assert (first.uplinks, first.duplicates) == (30, 0)
    assert (again.uplinks, again.duplicates) == (20, 31)
    assert count(conn, "uplink") == 50
    assert stored_readings(conn) == expected_readings(sims)


@pytest.mark.usefixtures("registered")
def test_last_seen_moves_forward(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = uplinks(scenario, 100)
    pipeline(settings).process(conn, [message(s) for s in reversed(sims)])
    latest: dict[str, datetime] = {}
    for s in sims:
        latest[s.device.dev_eui] = max(latest.get(s.device.dev_eui, s.time), s.time)
    rows = dict(
        conn.execute("SELECT dev_eui, last_seen_at FROM device WHERE last_seen_at IS NOT NULL")
    )
    assert rows == {k: v.replace(microsecond=v.microsecond) for k, v in latest.items()}


BAD_MESSAGES = {
    "not json": b"{not json",
    "json array": b"[1, 2]",
    "missing ids": json.dumps({"uplink_message": {"f_port": 1}}).encode(),
    "oversize": b"{" + b" " * 70_000 + b"}",
}


@pytest.mark.usefixtures("registered")
def test_bad_messages_become_dead_letters_without_blocking_good_ones(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = uplinks(scenario, 20)
    bad = [raw("ttn-dortmund", body) for body in BAD_MESSAGES.values()]
    batch = [message(s) for s in sims[:10]] + bad + [message(s) for s in sims[10:]]
    stored = pipeline(settings).process(conn, batch)
    assert (stored.uplinks, stored.dead_letters) == (20, len(BAD_MESSAGES))
    letters = conn.execute("SELECT stage, reason, detail, body FROM dead_letter").fetchall()
    head = settings.ingest.dead_letter_head_bytes
    assert {bytes(body) for *_, body in letters} == {b[:head] for b in BAD_MESSAGES.values()}
    assert {(stage, reason) for stage, reason, *_ in letters} == {("envelope", "bad_envelope")}
    assert any("exceeds the limit of 65536 bytes" in detail for _, _, detail, _ in letters)


@pytest.mark.usefixtures("registered")
def test_uplinks_dated_far_in_the_future_or_past_are_rejected(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    future = [
        s for s in simulators.generate(scenario, seed=1, start=NOW + timedelta(days=2), count=1)
    ]
    past = [
        s for s in simulators.generate(scenario, seed=1, start=NOW - timedelta(days=900), count=1)
    ]
    stored = pipeline(settings).process(conn, [message(future[0]), message(past[0])])
    assert (stored.uplinks, stored.dead_letters) == (0, 2)
    details = sorted(d for (d,) in conn.execute("SELECT detail FROM dead_letter"))
    assert "in the future" in details[0] + details[1]
    assert "older than 400 days" in details[0] + details[1]


def test_unknown_devices_are_kept_for_later_decoding(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sims = uplinks(scenario, 5)
    stored = pipeline(settings).process(conn, [message(s) for s in sims])
    assert stored.uplinks == 5 and stored.readings == 0
    statuses = conn.execute("SELECT DISTINCT decode_status FROM uplink").fetchall()
    assert statuses == [("unknown_device",)]


@pytest.mark.usefixtures("registered")
def test_decoder_failures_keep_the_uplink_and_a_dead_letter(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    sim = next(s for s in uplinks(scenario, 50) if s.device.profile == "dragino/lht65")
    truncated = simulators.build_message(
        SOURCES[0].format,
        device=sim.device,
        f_cnt=sim.f_cnt,
        f_port=sim.f_port,
        payload=sim.payload[:5],
        time=sim.time,
        radio=sim.radio,
        session=sim.session,
    )
    stored = pipeline(settings).process(conn, [raw(sim.source, truncated[1], truncated[0])])
    assert (stored.uplinks, stored.readings, stored.dead_letters) == (1, 0, 1)
    status, error, decoder = conn.execute(
        "SELECT decode_status, decode_error, decoder FROM uplink"
    ).fetchone()  # type: ignore[misc]
    assert status == "failed" and decoder.startswith("dragino/lht65@1#")
    assert "dragino/lht65" in error
    assert conn.execute("SELECT stage, reason FROM dead_letter").fetchall() == [
        ("decode", "decode_failed")
    ]


def test_a_dead_letter_keeps_a_bounded_head_with_the_length_and_digest_of_the_whole(
    conn: psycopg.Connection, database: Database
) -> None:
    settings = database.settings(sources=SOURCES, ingest={"dead_letter_head_bytes": 1024})
    huge = b'{"end_device_ids": "' + b"x" * 1_000_000 + b'"}'
    small = b"{not json"

    stored = pipeline(settings).process(
        conn, [raw("ttn-dortmund", huge), raw("ttn-dortmund", small)]
    )

    assert stored.dead_letters == 2
    rows = conn.execute(
        "SELECT body, body_length, body_sha256 FROM dead_letter ORDER BY id"
    ).fetchall()
    assert [(bytes(body), n, bytes(digest)) for body, n, digest in rows] == [
        (huge[:1024], len(huge), hashlib.sha256(huge).digest()),
        (small, len(small), hashlib.sha256(small).digest()),
    ]
