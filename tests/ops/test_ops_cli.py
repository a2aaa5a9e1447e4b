"""`datahub devices import` offering to decode what came before, and the `datahub ops` and
`datahub alerts` commands, on a database of their own (they commit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from cli_setup import point_cli_at, root_logging_kept
from democatalog import demo_catalog
from realservices import Database, temporary_database

import simulators
from datahub import cli
from datahub.config import SourceSettings
from datahub.domain import City, SourceFormat
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import Pipeline
from datahub.storage import dead_letters
from datahub.storage.dead_letters import DeadLetterRow

SOURCES = (
    SourceSettings(name="ttn-dortmund", city=City.DORTMUND, format=SourceFormat.TTN_V3),
    SourceSettings(
        name="chirpstack-schwerte", city=City.SCHWERTE, format=SourceFormat.CHIRPSTACK_V4_JSON
    ),
)


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("postgres", "datahub_test_cli_ops") as database:
        yield database


@pytest.fixture(autouse=True)
def root_handlers() -> Iterator[None]:
    with root_logging_kept():
        yield


@pytest.fixture(autouse=True)
def env(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    point_cli_at(monkeypatch, database.url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_registering_devices_decodes_what_they_sent_before(
    database: Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario = simulators.load_scenario()
    now = datetime.now(UTC)
    sims = list(simulators.generate(scenario, seed=3, start=now - timedelta(hours=2), count=30))
    formats = {s.name: s.format for s in SOURCES}
    messages = [
        Message(s.source, *s.message(formats[s.source]), qos=1, mid=i, arrived_at=now)
        for i, s in enumerate(sims, start=1)
    ]
    with psycopg.connect(database.url) as conn:  # nobody registered yet
        Pipeline(database.settings(sources=SOURCES), catalog=demo_catalog()).process(conn, messages)
    heard = sorted({s.device.dev_eui for s in sims})

    code, out, _ = run(capsys, "ops", "unknown-devices", "--json")
    assert code == 0
    assert [u["dev_eui"] for u in json.loads(out)] == heard

    registry = tmp_path / "devices.csv"
    simulators.write_registry_csv(scenario, registry)
    code, out, _ = run(capsys, "devices", "import", str(registry), "--no-redecode")
    assert code == 0
    assert f"{len(heard)} of these devices sent 30 uplinks before they were registered" in out
    assert out.count("datahub redecode --device ") == len(heard)

    code, out, _ = run(capsys, "devices", "import", str(registry), "--redecode")
    assert code == 0
    decoded = [json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if ": {" in line]
    assert sum(r["changed"] for r in decoded) == 30
    code, out, _ = run(capsys, "ops", "unknown-devices", "--json")
    assert json.loads(out) == []


def test_alert_rules_from_the_command_line(
    database: Database, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "alerts", "rule", "add", "hot", "--kind", "threshold", "--metric",
        "temperature", "--operator", "above", "--open", "30", "--clear", "28",
        "--webhook", "https://example.org/hook",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["webhook_secret"]
    code, _, err = run(
        capsys, "alerts", "rule", "add", "cold", "--kind", "threshold", "--metric",
        "temperature", "--operator", "below", "--open", "0", "--clear", "-5",
    )  # fmt: skip
    assert code == 2 and "clear_value -5.0 must be at or above open_value 0.0" in err
    code, _, err = run(capsys, "alerts", "rule", "update", "hot", "--webhook", "http://no spaces/")
    assert code == 2 and "without spaces" in err
    code, out, _ = run(capsys, "alerts", "rule", "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["hot"]
    code, out, _ = run(capsys, "ops", "devices", "--refresh")
    assert code == 0 and out.splitlines()[0].split()[:4] == ["DEV_EUI", "CITY", "PROFILE", "STATUS"]
    code, out, _ = run(capsys, "alerts", "rule", "delete", "hot")
    assert (code, out.strip()) == (0, "alert rule hot deleted")


def test_dead_letters_from_the_command_line(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(database.url) as conn:
        letter = DeadLetterRow(
            datetime.now(UTC), "ttn", "t", "envelope", "bad_envelope", "not JSON", b"hello"
        )
        dead_letters.insert_dead_letters(conn, letters=[letter], head_bytes=16_384)
    code, out, _ = run(capsys, "ops", "dead-letters", "--reason", "bad_envelope", "--json")
    (letter,) = json.loads(out)
    code, out, _ = run(capsys, "ops", "dead-letters", str(letter["id"]))
    assert (code, json.loads(out)["body_text"]) == (0, "hello")
    assert run(capsys, "ops", "dead-letters", "999999")[0] == 2
