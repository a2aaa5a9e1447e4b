"""Counters that add up: every message the ingest takes from the broker is counted as
received, and as exactly one of stored, duplicate, dead-lettered or undecoded, per source,
whatever becomes of it: redeliveries, unknown devices, payloads the decoder refuses,
malformed messages, copies with other content, a message the database refuses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from faultkit import (
    SOURCES,
    Broker,
    Ingest,
    generate,
    log_tail,
    publish_raw,
    targets,
)
from realservices import temporary_database
from waiting import wait_until

import simulators

pytestmark = pytest.mark.services

OUTCOMES = ("stored", "duplicates", "dead_letters", "undecoded")


def by_label(samples: dict[str, float], name: str, label: str = "source") -> dict[str, float]:
    """A counter summed per value of one label over the others."""
    out: dict[str, float] = dict.fromkeys(SOURCES, 0.0) if label == "source" else {}
    for key, value in samples.items():
        if key.startswith(f"datahub_ingest_{name}_total{{"):
            at = key.split(f'{label}="', 1)[1].split('"', 1)[0]
            out[at] = out.get(at, 0.0) + value
    return out


def message(sim: simulators.SimUplink, **changes: object) -> tuple[str, bytes]:
    return dataclasses.replace(sim, **changes).message(SOURCES[sim.source])  # type: ignore[arg-type]


def test_received_is_stored_plus_duplicates_plus_dead_letters_plus_undecoded(
    broker: Broker, tmp_path: Path
) -> None:
    with temporary_database("timescaledb", "datahub_test_counters") as database:
        ingest = Ingest(broker.url, database.url, tmp_path)
        sims = generate(ingest.run, 420)
        good, spare = sims[:300], sims[300:]
        lht65 = next(s for s in spare if s.device.profile == "dragino/lht65")
        ttn = next(s for s in spare if s.source == "ttn-dortmund" and s is not lht65)
        other = next(
            s
            for s in good[1:]
            if s.device.profile == good[0].device.profile and s.payload != good[0].payload
        )
        topic, body = message(ttn)
        refused = json.loads(body)
        refused["uplink_message"]["decoded_payload"] = {"note": "\x00"}  # jsonb refuses it
        strangers = [
            message(s, device=dataclasses.replace(s.device, dev_eui=f"FFFFFFFF0000{i:04X}"))
            for i, s in enumerate(spare[-10:])
        ]
        raw = [
            *(message(s) for s in good[:40]),  # redeliveries
            *strangers,  # unknown devices
            message(lht65, payload=lht65.payload[:5]),  # the decoder refuses it
            (topic, b"{not json"),
            message(good[0], payload=other.payload),  # a copy with other content
            (topic, json.dumps(refused).encode()),  # the database refuses it
        ]
        published = len(good) + len(raw)
        ingest.import_registry()
        ingest.start()
        try:
            simulators.publish(good, targets(broker.port), qos=1)
            publish_raw(broker.port, raw)
            wait_until(
                "every message to be acknowledged",
                lambda: sum(by_label(ingest.metrics(), "acknowledged").values()) == published,
                60,
            )
            samples = ingest.metrics()
            counts = {name: by_label(samples, name) for name in ("received", *OUTCOMES)}
            print(f"\ncounters: {json.dumps(counts, sort_keys=True)}")

            for source in SOURCES:
                assert counts["received"][source] == sum(counts[n][source] for n in OUTCOMES)
            assert sum(counts["received"].values()) == published
            totals = {name: sum(counts[name].values()) for name in OUTCOMES}
            assert totals == {
                "stored": len(good),
                "duplicates": 40,
                "dead_letters": 3,
                "undecoded": len(strangers) + 1,
            }
            assert by_label(samples, "dead_letters", "reason") == {
                "bad_envelope": 1,
                "dedup_conflict": 1,
                "storage_refused": 1,
            }
            assert by_label(samples, "undecoded", "reason") == {
                "unknown_device": len(strangers),
                "decode_failed": 1,
            }
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()
