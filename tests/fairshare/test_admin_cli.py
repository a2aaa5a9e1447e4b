"""`datahub fairshare` administration through the command line, on a database of its own.

The commands commit, so this module has its own database, emptied before each test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cli_setup import point_cli_at
from realservices import Database, temporary_database

import simulators
from datahub import cli
from datahub.fairshare import keys

DEMO_SEED = Path(__file__).resolve().parents[2] / "deploy" / "fairshare-demo.yaml"


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("timescaledb", "datahub_test_cli_fairshare_admin") as database:
        yield database


@pytest.fixture(autouse=True)
def env(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    point_cli_at(monkeypatch, database.url)
    with psycopg.connect(database.url) as conn:
        conn.execute(
            "TRUNCATE access_grant, api_key, tariff, usage, quota_usage, consumer, device, "
            "dataset, supplier CASCADE"
        )


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        try:
            code = cli.main(["fairshare", *argv])
        except SystemExit as exit:  # argparse refused the arguments
            code = int(exit.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, err
        return out

    def json(self, *argv: str) -> Any:
        return json.loads(self.ok(*argv, "--json"))


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def add_world(run: Cli) -> None:
    run.ok("supplier", "add", "edg", "--name", "EDG", "--kind", "waste_company")
    run.ok(
        "dataset",
        "add",
        "edg-fill",
        "--supplier",
        "edg",
        "--name",
        "Fill levels",
        "--licence-class",
        "commercial",
        "--licence-id",
        "c-1",
        "--licence-name",
        "Terms",
        "--licence-url",
        "http://dcat-ap.de/def/licenses/other-commercial",
        "--attribution",
        "EDG",
    )
    run.ok(
        "consumer",
        "add",
        "ruhrroute",
        "--name",
        "RuhrRoute",
        "--purpose",
        "commercial",
        "--monthly-quota",
        "2000000",
        "--requests-per-s",
        "10",
    )


def test_supplier_dataset_consumer_and_grant_round_trip(run: Cli) -> None:
    add_world(run)
    run.ok(
        "dataset",
        "update",
        "edg-fill",
        "--name",
        "Füllstände",
        "--licence-url",
        "https://example.org/terms",
    )
    run.ok("consumer", "update", "ruhrroute", "--monthly-quota", "none", "--supplier", "edg")
    assert "granted" in run.ok("grant", "add", "--consumer", "ruhrroute", "--dataset", "edg-fill")
    assert "already had" in run.ok(
        "grant", "add", "--consumer", "ruhrroute", "--dataset", "edg-fill"
    )

    suppliers = run.json("supplier", "list")
    datasets = run.json("dataset", "list", "--supplier", "edg")
    (consumer,) = run.json("consumer", "list")
    grants = run.json("grant", "list")

    assert [(s["slug"], s["datasets"]) for s in suppliers] == [("edg", ["edg", "edg-fill"])]
    assert [(d["slug"], d["licence_class"]) for d in datasets] == [
        ("edg", "restricted"),
        ("edg-fill", "commercial"),
    ]
    assert datasets[1]["name"] == "Füllstände"
    assert datasets[1]["licence"]["url"] == "https://example.org/terms"
    assert (consumer["supplier"], consumer["monthly_quota"], consumer["requests_per_s"]) == (
        "edg",
        None,
        10,
    )
    assert consumer["grants"] == ["edg-fill"]
    assert [(g["consumer"], g["dataset"]) for g in grants] == [("ruhrroute", "edg-fill")]
    run.ok("grant", "revoke", "--consumer", "ruhrroute", "--dataset", "edg-fill")
    assert run.json("grant", "list") == []
    assert "ruhrroute" in run.ok("consumer", "list")  # the table too


def test_dataset_catalogue_metadata_from_the_command_line(run: Cli) -> None:
    add_world(run)
    run.ok(
        "dataset",
        "update",
        "edg-fill",
        "--title-en",
        "Fill levels",
        "--keyword",
        "Abfall",
        "--keyword",
        "Füllstand",
        "--theme",
        "ENVI",
        "--public-summaries",
        "yes",
    )
    run.ok("dataset", "update", "edg-fill", "--title-en", "")
    (dataset,) = [d for d in run.json("dataset", "list") if d["slug"] == "edg-fill"]
    assert dataset["open_data"] | {"keywords": None} == {
        "title_en": None,
        "description_de": None,
        "description_en": None,
        "keywords": None,
        "themes": ["ENVI"],
        "contact_name": None,
        "contact_email": None,
        "licence_uri": None,
        "contributor_id": None,
        "catalogue_listed": False,
        "public_summaries": True,
    }
    assert dataset["open_data"]["keywords"] == ["Abfall", "Füllstand"]
    code, _, err = run("dataset", "update", "edg-fill", "--licence-uri", "http://x.example/l")
    assert code == 2 and "dcat-ap.de licence list" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(("supplier", "add", "edg", "--name", "x"), "supplier 'edg' exists", id="dup"),
        pytest.param(
            ("consumer", "add", "x", "--name", "x", "--purpose", "research", "--supplier", "no"),
            "no supplier 'no'",
            id="unknown-supplier",
        ),
        pytest.param(
            ("grant", "add", "--consumer", "ruhrroute", "--dataset", "no"),
            "no dataset 'no'",
            id="unknown-dataset",
        ),
        pytest.param(
            ("grant", "revoke", "--consumer", "ruhrroute", "--dataset", "edg-fill"),
            "has no grant",
            id="no-grant",
        ),
        pytest.param(("key", "revoke", "abcdefabcdef"), "no API key", id="unknown-key"),
        pytest.param(("dataset", "update", "edg-fill"), "nothing to change", id="no-change"),
        pytest.param(
            ("dataset", "update", "edg-fill", "--licence-url", ""),
            "licence 'c-1' needs a licence URL",
            id="no-licence-url",
        ),
        pytest.param(
            ("dataset", "update", "edg", "--licence-class", "open"),
            "an open dataset needs a licence",
            id="open-without-licence",
        ),
        pytest.param(
            ("dataset", "update", "edg", "--licence-url", "https://example.org/terms"),
            "licence 'none' (no licence given) has no URL",
            id="none-with-url",
        ),
        pytest.param(
            (
                "tariff",
                "add",
                "--dataset",
                "edg",
                "--purpose",
                "research",
                "--cents-per-million",
                "1",
                "--shadow-cents-per-million",
                "0",
                "--platform-fee-bp",
                "10001",
            ),
            "0..10000",
            id="fee",
        ),
    ],
)
def test_errors_exit_2_with_a_message(run: Cli, argv: tuple[str, ...], message: str) -> None:
    add_world(run)
    code, out, err = run(*argv)
    assert (code, out) == (2, "")
    assert message in err


def test_a_key_is_printed_once_stored_hashed_and_revocable(run: Cli, database: Database) -> None:
    add_world(run)
    secret, note = run.ok("key", "create", "--consumer", "ruhrroute", "--label", "ci").splitlines()
    prefix = keys.parse_prefix(secret)
    assert prefix is not None and prefix in note
    (listed,) = run.json("key", "list", "--consumer", "ruhrroute")
    assert (listed["prefix"], listed["scopes"], listed["label"]) == (prefix, ["read"], "ci")
    assert secret not in run.ok("key", "list")
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT key_hash FROM api_key WHERE prefix = %s", (prefix,)).fetchone()
    assert row == (keys.hash_key(secret),)

    assert "revoked" in run.ok("key", "revoke", prefix)
    (listed,) = run.json("key", "list")
    assert listed["revoked_at"] is not None
    made = run.json(
        "key", "create", "--consumer", "ruhrroute", "--scope", "admin", "--scope", "read"
    )
    assert made["scopes"] == ["read", "admin"] and made["key"].startswith("dh_")


def tariff(dataset: str, cents: int, *more: str) -> tuple[str, ...]:
    return (
        "tariff", "add", "--dataset", dataset, "--purpose", "commercial",
        "--cents-per-million", str(cents), "--shadow-cents-per-million", "400000",
        "--platform-fee-bp", "1500", *more,
    )  # fmt: skip


def test_tariff_versions_through_the_cli(run: Cli) -> None:
    add_world(run)
    first = run.ok(*tariff("edg-fill", 400_000, "--valid-from", "2026-01-01T00:00:00Z"))
    second = run.ok(*tariff("edg-fill", 450_000))
    code, _, err = run(*tariff("edg-fill", 1, "--valid-from", "2025-12-01T00:00:00Z"))
    assert "version 1 from 2026-01-01T00:00:00Z" in first
    assert "version 2" in second
    assert code == 2 and "rewrite history" in err
    code, _, err = run(*tariff("edg-fill", 1, "--valid-from", "2027-01-01"))
    assert code == 2 and "UTC offset" in err

    listed = run.json("tariff", "list", "--dataset", "edg-fill")
    assert [(t["version"], t["cents_per_million"], t["current"]) for t in listed] == [
        (1, 400000, False),
        (2, 450000, True),
    ]
    assert [t["version"] for t in run.json("tariff", "list", "--current")] == [2]

    run.ok(
        "dataset", "update", "edg", "--licence-class", "open", "--licence-id", "CC-BY-4.0",
        "--licence-name", "CC BY 4.0",
        "--licence-url", "https://creativecommons.org/licenses/by/4.0/",
    )  # fmt: skip
    code, _, err = run(*tariff("edg", 5))
    assert code == 2 and "open data is free" in err


def test_the_demo_seed_matches_the_demo_fleet_and_a_second_run_changes_nothing(
    run: Cli, tmp_path: Path, database: Database
) -> None:
    registry = tmp_path / "registry.csv"
    simulators.write_registry_csv(simulators.load_scenario(), registry)
    assert cli.main(["devices", "import", str(registry)]) == 0
    run.capsys.readouterr()

    first = run.json("seed", str(DEMO_SEED))
    with psycopg.connect(database.url) as conn:
        before = conn.execute(
            """
            SELECT ds.slug, ds.licence_class, count(d.id)
            FROM dataset ds LEFT JOIN device d ON d.dataset_id = ds.id
            GROUP BY ds.id HAVING count(d.id) > 0 ORDER BY ds.slug
            """
        ).fetchall()
        left_behind = conn.execute(
            "SELECT count(*) FROM device d JOIN dataset ds ON ds.id = d.dataset_id "
            "JOIN supplier s ON s.id = d.supplier_id WHERE ds.slug = s.slug"
        ).fetchone()
        licences = conn.execute(
            "SELECT ds.slug = s.slug, ds.licence_id = 'none', ds.licence_url IS NULL, count(*) "
            "FROM dataset ds JOIN supplier s ON s.id = ds.supplier_id GROUP BY 1, 2, 3"
        ).fetchall()
    second_text = run.ok("seed", str(DEMO_SEED))
    second = run.json("seed", str(DEMO_SEED))

    assert first["warnings"] == []
    kinds = {(k["purpose"], "admin" in k["scopes"]) for k in first["keys"]}
    assert kinds == {
        ("public_interest", False),
        ("research", False),
        ("commercial", False),
        ("public_interest", True),
    }
    assert all(k["key"].startswith(f"dh_{k['prefix']}_") for k in first["keys"])
    # Every demo device is in one of the seed's datasets; each class is represented.
    assert left_behind == (0,)
    classes = {slug: licence_class for slug, licence_class, _ in before}
    assert classes["edg-fuellstand"] == "commercial"
    assert classes["do-stadtklima"] == "open"
    assert classes["do-parken"] == "restricted"
    # The suppliers' own datasets say that no licence is given; the seed's have a URL.
    assert {(own, none, no_url) for own, none, no_url, _ in licences} == {
        (True, True, True),
        (False, False, False),
    }
    # The second run: nothing changed, no new key, and the keys are not shown again.
    assert "nothing changed" in second_text
    assert "datahub fairshare key create --consumer" in second_text
    assert second["changes"] == []
    assert [k["key"] for k in second["keys"]] == [None] * len(first["keys"])
    assert [k["prefix"] for k in second["keys"]] == [k["prefix"] for k in first["keys"]]
    keys_listed = run.json("key", "list")
    assert len(keys_listed) == len(first["keys"])
