"""Every `datahub` command that changes the administration leaves exactly one audit entry
in its name (the OS user, and `--as`); `datahub audit` lists, shows and verifies them. The
commands come from the parser, so one added later is covered, or the test names it."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cli_setup import point_cli_at, root_logging_kept
from ingest_builders import SOURCES, generate, ingest
from realservices import Database, temporary_database

import simulators
from datahub import cli
from datahub.storage import audit as log

DEMO_SEED = Path(__file__).resolve().parents[1] / "deploy" / "fairshare-demo.yaml"
# Commands that change no administrative record: data flows, files, reports and tools.
NOT_ADMINISTRATIVE = {
    "migrate": "the schema, recorded by Alembic",
    "ingest": "uplinks and readings",
    "backfill": "uplinks and readings",
    "api": "a server",
    "simulate": "publishes simulated uplinks",
    "decode": "a payload, printed",
    "decoders list": "reads",
    "decoders test": "reads",
    "opendata bulk": "bulk files of open data, each with its hash",
    "alerts deliver": "sends notifications, each attempt in the delivery log",
    "bench ingest": "a benchmark on a database of its own",
    "bench query": "a benchmark on a database of its own",
    "bench api": "a benchmark on a database of its own",
    "bench ops": "a benchmark on a database of its own",
    "bench scale": "a benchmark on databases and brokers of its own",
    "bench plot": "a plot",
    "retention run": "deletes raw data as the datasets' audited retention says",
    "fairshare seed": "one entry per change it makes (test_a_seed_records_each_change_once)",
}
READING = {
    "fairshare supplier list",
    "fairshare dataset list",
    "fairshare consumer list",
    "fairshare key list",
    "fairshare grant list",
    "fairshare tariff list",
    "fairshare statement",
    "fairshare invoice",
    "fairshare report",
    "ops devices",
    "ops gateways",
    "ops unknown-devices",
    "ops decode-failures",
    "ops dead-letters",
    "alerts rule list",
    "alerts alarms",
    "alerts log",
    "audit list",
    "audit show",
    "audit verify",
}


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("postgres", "datahub_test_cli_audit") as database:
        yield database


@pytest.fixture(autouse=True)
def root_handlers() -> Iterator[None]:
    with root_logging_kept():
        yield


@pytest.fixture(autouse=True)
def env(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    point_cli_at(monkeypatch, database.url)


def commands() -> set[str]:
    """Every leaf command of `datahub`, e.g. `fairshare key create`."""
    found: set[str] = set()

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.add(" ".join(path))
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, (*path, name))

    for name in cli.COMMANDS:
        top = cli.build_parser(name)
        (action,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
        walk(action.choices[name], (name,))
    return found


def changes(registry: Path) -> list[tuple[str, list[str], str]]:
    """(command, its arguments, the action of its entry), in an order that works."""
    add_dataset = [
        "fairshare", "dataset", "add", "tbs-bins", "--supplier", "tbs", "--name", "Bins",
        "--licence-class", "commercial", "--licence-id", "proprietary",
        "--licence-name", "All rights reserved",
        "--licence-url", "http://dcat-ap.de/def/licenses/other-commercial",
        "--attribution", "TBS",
    ]  # fmt: skip
    tariff = [
        "fairshare", "tariff", "add", "--dataset", "tbs-bins", "--purpose", "research",
        "--cents-per-million", "1000", "--shadow-cents-per-million", "1000",
        "--platform-fee-bp", "100",
    ]  # fmt: skip
    rule = ["alerts", "rule", "add", "cold", "--kind", "threshold", "--metric", "temperature",
            "--operator", "below", "--open", "-5"]  # fmt: skip
    return [
        ("fairshare supplier add", ["fairshare", "supplier", "add", "tbs", "--name", "TBS"],
         "supplier.add"),
        ("fairshare dataset add", add_dataset, "dataset.add"),
        ("fairshare dataset update", ["fairshare", "dataset", "update", "tbs-bins",
                                      "--name", "TBS bins"], "dataset.update"),
        ("fairshare consumer add", ["fairshare", "consumer", "add", "uni", "--name", "Uni",
                                    "--purpose", "research"], "consumer.add"),
        ("fairshare consumer update", ["fairshare", "consumer", "update", "uni",
                                       "--name", "Uni Dortmund"], "consumer.update"),
        ("fairshare key create", ["fairshare", "key", "create", "--consumer", "uni", "--json"],
         "key.create"),
        ("fairshare key revoke", ["fairshare", "key", "revoke", "{prefix}"], "key.revoke"),
        ("fairshare grant add", ["fairshare", "grant", "add", "--consumer", "uni",
                                 "--dataset", "tbs-bins"], "grant.add"),
        ("fairshare grant revoke", ["fairshare", "grant", "revoke", "--consumer", "uni",
                                    "--dataset", "tbs-bins"], "grant.revoke"),
        ("fairshare tariff add", tariff, "tariff.add"),
        ("fairshare close", ["fairshare", "close", "--period", "2025-12"], "period.close"),
        ("alerts rule add", rule, "alert_rule.add"),
        ("alerts rule update", ["alerts", "rule", "update", "cold", "--hold", "60"],
         "alert_rule.update"),
        ("alerts ack", ["alerts", "ack", "{alarm}", "--by", "alice"], "alarm.acknowledge"),
        ("alerts rule delete", ["alerts", "rule", "delete", "cold"], "alert_rule.delete"),
        ("devices import", ["devices", "import", str(registry), "--no-redecode"],
         "registry.import"),
        ("redecode", ["redecode", "--pending"], "redecode.batch"),
    ]  # fmt: skip


def test_every_changing_command_leaves_exactly_one_entry(
    database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = simulators.load_scenario()
    sims = generate(scenario, 40)
    device = sims[0].device.dev_eui
    registry = tmp_path / "registry.csv"
    simulators.write_registry_csv(scenario, registry)
    settings = database.settings(sources=list(SOURCES))
    with psycopg.connect(database.url) as conn:
        ingest(conn, settings, [s for s in sims if s.device.dev_eui == device])
        conn.commit()
    steps = changes(registry)
    exempt = set(NOT_ADMINISTRATIVE) | READING
    assert commands() - exempt == {name for name, _, _ in steps}
    prefix, alarm = "", 0
    for name, argv, action in steps:
        if name == "alerts ack":
            alarm = _open_alarm(database)
        argv = [a.replace("{prefix}", prefix).replace("{alarm}", str(alarm)) for a in argv]
        with psycopg.connect(database.url, autocommit=True) as conn:
            before = log.count_entries(conn)
        assert cli.main(["--as", "tester", *argv]) == 0, name
        out = capsys.readouterr().out
        if name == "fairshare key create":
            prefix = json.loads(out)["prefix"]
        with psycopg.connect(database.url, autocommit=True) as conn:
            assert log.count_entries(conn) == before + 1, name
            (entry,) = log.list_entries(conn, limit=1, newest_first=True)
        assert (entry.action, entry.actor) == (action, f"cli:{getpass.getuser()} as tester")

    assert cli.main(["audit", "verify"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["intact"] and verdict["entries"] >= len(steps)
    assert cli.main(["audit", "list", "--action", "fairshare."]) == 0
    assert cli.main(["audit", "show", str(verdict["head_seq"])]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["action"] == "redecode.batch"


def _open_alarm(database: Database) -> int:
    with psycopg.connect(database.url) as conn:
        row = conn.execute(
            """
            INSERT INTO alarm (rule_id, subject, state, opened_at, notified, detail)
            SELECT id, 'x', 'open', now(), false, 'test' FROM alert_rule WHERE name = 'cold'
            RETURNING id
            """
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_a_seed_records_each_change_once(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        start = log.count_entries(conn)
    assert cli.main(["fairshare", "seed", str(DEMO_SEED)]) == 0
    with psycopg.connect(database.url, autocommit=True) as conn:
        first = log.list_entries(conn, after=start, limit=10_000)
    assert {e.action for e in first} >= {"dataset.add", "tariff.add", "key.create"}
    assert {e.actor for e in first} == {f"cli:{getpass.getuser()}"}
    assert cli.main(["fairshare", "seed", str(DEMO_SEED)]) == 0
    with psycopg.connect(database.url, autocommit=True) as conn:
        assert log.count_entries(conn) == start + len(first)  # nothing changed, nothing written
