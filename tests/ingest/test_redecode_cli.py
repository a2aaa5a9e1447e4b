"""`datahub redecode` through the command line, on a database of its own (it commits)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from cli_setup import point_cli_at
from democatalog import demo_catalog
from ingest_builders import SINCE, SOURCES, expected, generate, ingest, register, stored
from realservices import Database, temporary_database

import simulators
from datahub import cli


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("timescaledb", "datahub_test_cli_redecode") as database:
        yield database


@pytest.fixture
def env(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    point_cli_at(monkeypatch, database.url)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["redecode", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("env")
def test_pending_uplinks_are_decoded_and_a_rerun_changes_nothing(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = simulators.load_scenario()
    sims = generate(scenario, 40)
    with psycopg.connect(database.url) as conn:
        ingest(conn, database.settings(sources=SOURCES), sims)  # no device registered yet
        register(conn, scenario)

    code, out, err = run(capsys, "--pending", "--batch", "15")

    assert code == 0
    assert json.loads(out) == {
        "selected": 40,
        "redecoded": 40,
        "changed": 40,
        "unchanged": 0,
        "failed": 0,
        "unresolved": 0,
        "readings_deleted": 0,
        "readings_inserted": len(expected(sims, demo_catalog())),
    }
    assert "redecode [" in err and "40/40" in err  # plain progress lines: not a terminal
    with psycopg.connect(database.url) as conn:
        assert stored(conn) == expected(sims, demo_catalog())

    code, out, _ = run(capsys, "--profile", "dragino/lht65", "--since", SINCE.isoformat())

    lht65 = sum(1 for s in sims if s.device.profile == "dragino/lht65")
    assert code == 0
    assert json.loads(out) | {"readings_inserted": 0} == {
        "selected": lht65,
        "redecoded": lht65,
        "changed": 0,
        "unchanged": lht65,
        "failed": 0,
        "unresolved": 0,
        "readings_deleted": 0,
        "readings_inserted": 0,
    }


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "dragino/lht65"], "--since is required"),
        (["--profile", "acme/nothing", "--since", "2026-01-01T00:00Z"], "unknown profile"),
    ],
)
def test_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_a_time_without_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["redecode", "--device", "A84041000A000014", "--since", "2026-01-01T00:00"])
    assert exit_info.value.code == 2
    assert "has no UTC offset" in capsys.readouterr().err
