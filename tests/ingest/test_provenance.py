"""Provenance: every reading the pipeline stores names the decoder and mapping behind it."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from democatalog import demo_catalog
from ingest_builders import SOURCES, expected, generate, ingest, message, pipeline, register, stored

import decoders
import simulators
from datahub.config import Settings
from datahub.ingest import decode
from datahub.storage import provenance


@pytest.fixture
def settings(database: object) -> Settings:
    return database.settings(sources=SOURCES)  # type: ignore[attr-defined]


def test_every_reading_records_its_decoder(
    conn: psycopg.Connection, settings: Settings, scenario: simulators.Scenario
) -> None:
    register(conn, scenario)
    sims = generate(scenario, 200)
    ingest(conn, settings, sims)

    assert stored(conn) == expected(sims, demo_catalog())
    names = {name for (name,) in conn.execute("SELECT name FROM decoder")}
    assert names == {decode.decoder_name(demo_catalog()[s.device.profile]) for s in sims}
    # The uplinks name the same decoder as their readings.
    mismatched = conn.execute(
        """
        SELECT count(*) FROM uplink u
        JOIN reading r ON r.device_id = u.device_id AND r.time = u.received_at
        JOIN decoder dec ON dec.id = r.decoder_id
        WHERE u.decoder IS DISTINCT FROM dec.name
        """
    ).fetchone()
    assert mismatched == (0,)


def test_decoder_ids_are_recorded_once_and_then_cached(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(conn, scenario)
    sims = generate(scenario, 300)
    first, rest = sims[:100], sims[100:]
    profiles = {s.device.profile for s in first}
    second = [s for s in rest[:100] if s.device.profile in profiles]
    third = [s for s in rest[100:] if s.device.profile in profiles]
    pipe = pipeline(settings)
    pipe.process(conn, [message(s) for s in first])  # records the names, caches none
    sequence = "SELECT last_value FROM decoder_id_seq"
    spent = conn.execute(sequence).fetchone()
    pipe.process(conn, [message(s) for s in second])  # finds them, and caches them

    # Known names are not inserted again: ON CONFLICT would spend smallint identities.
    assert conn.execute(sequence).fetchone() == spent

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the decoder table was queried for cached names")

    monkeypatch.setattr(provenance, "select_decoder_ids", refuse)
    monkeypatch.setattr(provenance, "insert_decoders", refuse)
    pipe.process(conn, [message(s) for s in third])
    assert stored(conn) == expected(first + second + third, demo_catalog())


def test_a_mapping_change_is_a_different_decoder() -> None:
    profile = decoders.get_profile("dragino/lht65")
    rescaled = dataclasses.replace(
        profile,
        mappings=tuple(dataclasses.replace(m, scale=m.scale * 10) for m in profile.mappings),
    )
    kind_only = dataclasses.replace(
        profile, mappings=tuple(dataclasses.replace(m, kind=m.kind) for m in profile.mappings)
    )

    assert decode.decoder_name(profile).startswith("dragino/lht65@1#")
    assert decode.decoder_name(rescaled) != decode.decoder_name(profile)
    assert decode.decoder_name(kind_only) == decode.decoder_name(profile)
