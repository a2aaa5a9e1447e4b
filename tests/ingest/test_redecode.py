"""Re-decoding stored uplinks: mapping changes, idempotence, resuming, pending uplinks."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import psycopg
import pytest
from democatalog import demo_catalog
from ingest_builders import SINCE, SOURCES, expected, generate, ingest, register, stored

import decoders
import simulators
from datahub.config import Settings
from datahub.ingest import decode
from datahub.ingest.redecode import Redecoder, Report, Selection
from datahub.storage import uplinks
from datahub.storage.uplinks import DecodeResult

LHT65 = "dragino/lht65"


@pytest.fixture
def settings(database: object) -> Settings:
    return database.settings(sources=SOURCES)  # type: ignore[attr-defined]


@pytest.fixture
def sims(scenario: simulators.Scenario) -> list[simulators.SimUplink]:
    return generate(scenario, 150)


def rescaled(profile_id: str, metric: str, factor: float) -> dict[str, decoders.Profile]:
    """The catalog with one metric of one profile scaled by `factor`: a mapping change."""
    profile = demo_catalog()[profile_id]
    mappings = tuple(
        dataclasses.replace(m, scale=m.scale * factor) if m.metric == metric else m
        for m in profile.mappings
    )
    return {**demo_catalog(), profile_id: dataclasses.replace(profile, mappings=mappings)}


def redecode(
    conn: psycopg.Connection,
    catalog: Mapping[str, decoders.Profile],
    selection: Selection,
    *,
    batch_size: int = 7,
    stop_after: int | None = None,
) -> Report:
    def interrupt(report: Report) -> None:
        if stop_after is not None and report.seen >= stop_after:
            raise KeyboardInterrupt

    return Redecoder(conn, catalog=catalog, batch_size=batch_size, actor="cli:test").run(
        selection, on_batch=interrupt
    )


def uplink_decoders(conn: psycopg.Connection, profile_id: str) -> list[str]:
    """The decoder of each uplink of a profile's devices, in (received_at, dedup_key) order."""
    rows = conn.execute(
        """
        SELECT u.decoder FROM uplink u JOIN device d ON d.dev_eui = u.dev_eui
        WHERE d.profile = %s ORDER BY u.received_at, u.dedup_key
        """,
        (profile_id,),
    ).fetchall()
    return [name for (name,) in rows]


def test_a_mapping_change_rewrites_history_with_the_new_provenance(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
    sims: list[simulators.SimUplink],
) -> None:
    register(conn, scenario)
    ingest(conn, settings, sims)
    fixed = rescaled(LHT65, "temperature", 10)
    selected = [s for s in sims if s.device.profile == LHT65]

    report = redecode(conn, fixed, Selection(profile=LHT65, since=SINCE))

    assert stored(conn) == expected(sims, fixed)
    assert stored(conn) != expected(sims, demo_catalog())
    assert set(uplink_decoders(conn, LHT65)) == {decode.decoder_name(fixed[LHT65])}
    # Every uplink changed: new temperatures, and a new decoder name for all of them.
    assert report.as_json() == {
        "selected": len(selected),
        "redecoded": len(selected),
        "changed": len(selected),
        "unchanged": 0,
        "failed": 0,
        "unresolved": 0,
        "readings_deleted": report.readings_inserted,
        "readings_inserted": sum(1 for r in expected(selected, fixed)),
    }

    again = redecode(conn, fixed, Selection(profile=LHT65, since=SINCE))

    assert (again.changed, again.unchanged, again.readings_deleted) == (0, len(selected), 0)
    assert stored(conn) == expected(sims, fixed)


def test_an_interrupted_run_resumes_where_it_stopped(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
    sims: list[simulators.SimUplink],
) -> None:
    register(conn, scenario)
    ingest(conn, settings, sims)
    fixed = rescaled(LHT65, "temperature", 10)
    new_name = decode.decoder_name(fixed[LHT65])
    selection = Selection(profile=LHT65, since=SINCE)
    total = sum(1 for s in sims if s.device.profile == LHT65)
    assert total > 10

    with pytest.raises(KeyboardInterrupt):
        redecode(conn, fixed, selection, batch_size=5, stop_after=1)

    names = uplink_decoders(conn, LHT65)
    assert names[:5] == [new_name] * 5 and new_name not in names[5:]

    resumed = redecode(conn, fixed, selection, batch_size=5)

    assert (resumed.changed, resumed.unchanged) == (total - 5, 5)
    assert stored(conn) == expected(sims, fixed)


def test_a_failing_batch_is_rolled_back_whole(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
    sims: list[simulators.SimUplink],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(conn, scenario)
    ingest(conn, settings, sims)
    fixed = rescaled(LHT65, "temperature", 10)
    mark_decoded = uplinks.mark_decoded
    calls = 0

    def fail_second(conn: psycopg.Connection, *, results: list[DecodeResult]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # after the second batch's readings were replaced
            raise RuntimeError("database gone")
        mark_decoded(conn, results=results)

    monkeypatch.setattr(uplinks, "mark_decoded", fail_second)
    with pytest.raises(RuntimeError):
        redecode(conn, fixed, Selection(profile=LHT65, since=SINCE), batch_size=5)

    # Five uplinks are re-decoded, with their readings; the second batch left no trace.
    names = uplink_decoders(conn, LHT65)
    assert names.count(decode.decoder_name(fixed[LHT65])) == 5
    inconsistent = conn.execute(
        """
        SELECT count(*) FROM uplink u
        JOIN reading r ON r.device_id = u.device_id AND r.time = u.received_at
        JOIN decoder dec ON dec.id = r.decoder_id
        WHERE u.decoder IS DISTINCT FROM dec.name
        """
    ).fetchone()
    assert inconsistent == (0,)


def test_pending_uplinks_become_readings_once_their_device_is_registered(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
    sims: list[simulators.SimUplink],
) -> None:
    ingest(conn, settings, sims[:40])  # nothing registered yet
    assert uplinks.count_uplinks(conn) == {"unknown_device": 40}
    untouched = redecode(conn, demo_catalog(), Selection(pending=True))
    assert (untouched.unresolved, untouched.changed, untouched.unchanged) == (40, 0, 40)

    register(conn, scenario)
    report = redecode(conn, demo_catalog(), Selection(pending=True))

    assert (report.selected, report.redecoded, report.changed, report.failed) == (40, 40, 40, 0)
    assert stored(conn) == expected(sims[:40], demo_catalog())
    assert uplinks.count_uplinks(conn) == {"decoded": 40}
    unlinked = conn.execute("SELECT count(*) FROM uplink WHERE device_id IS NULL").fetchone()
    assert unlinked == (0,)
    seen = conn.execute("SELECT count(*) FROM device WHERE last_seen_at IS NOT NULL").fetchone()
    assert seen == (len({s.device.dev_eui for s in sims[:40]}),)
    # Nothing is pending any more.
    assert redecode(conn, demo_catalog(), Selection(pending=True)).selected == 0


def test_one_device_and_a_time_window(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
) -> None:
    register(conn, scenario)
    sims = generate(scenario, 600)  # every device reports several times
    ingest(conn, settings, sims)
    device = next(s.device for s in sims if s.device.profile == LHT65)
    mine = sorted((s for s in sims if s.device.dev_eui == device.dev_eui), key=lambda s: s.time)
    since, until = mine[1].time, mine[-1].time
    fixed = rescaled(LHT65, "temperature", 10)

    report = redecode(conn, fixed, Selection(dev_eui=device.dev_eui, since=since, until=until))

    window = [s for s in mine if since <= s.time < until]
    assert report.changed == len(window) == len(mine) - 2
    others = [s for s in sims if s not in window]
    assert stored(conn) == expected(window, fixed) | expected(others, demo_catalog())


def test_a_broken_decoder_fails_and_its_fix_restores_the_readings(
    conn: psycopg.Connection,
    settings: Settings,
    scenario: simulators.Scenario,
    sims: list[simulators.SimUplink],
) -> None:
    register(conn, scenario)
    ingest(conn, settings, sims)
    selected = [s for s in sims if s.device.profile == LHT65]

    def broken(f_port: int, payload: bytes) -> dict[str, object]:
        raise decoders.DecodeError("regression")

    regressed = {
        **demo_catalog(),
        LHT65: dataclasses.replace(demo_catalog()[LHT65], decode=broken, version="2"),
    }

    report = redecode(conn, regressed, Selection(profile=LHT65, since=SINCE))

    assert (report.failed, report.redecoded, report.changed) == (len(selected), 0, len(selected))
    others = [s for s in sims if s.device.profile != LHT65]
    assert stored(conn) == expected(others, demo_catalog())
    assert uplinks.count_uplinks(conn)["failed"] == len(selected)

    fixed = redecode(conn, demo_catalog(), Selection(pending=True))

    assert (fixed.selected, fixed.redecoded, fixed.changed) == (len(selected),) * 3
    assert stored(conn) == expected(sims, demo_catalog())
