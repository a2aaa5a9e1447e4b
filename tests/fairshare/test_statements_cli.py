"""`datahub fairshare close | statement | invoice | report` on a database of their own."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator

import psycopg
import pytest
from fairshare_seed import FairShareSeed, utc
from realservices import Database, temporary_database

from datahub.cli import main

pytestmark = pytest.mark.services

# Runs `datahub fairshare ARGS…`; returns the exit code, stdout and stderr.
Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def closed_db() -> Iterator[Database]:
    """A database with November 2025's usage committed, not yet closed."""
    with temporary_database("timescaledb", "datahub_test_fairshare_cli") as database:
        with psycopg.connect(database.url) as conn:
            fs = FairShareSeed(conn)
            fs.dataset("edg-fill-levels", supplier="edg", licence_class="commercial")
            fs.consumer("acme", purpose="commercial")
            fs.tariff("edg-fill-levels", "commercial", cents=50_000, fee_bp=1000)
            fs.use("acme", "edg-fill-levels", 1_234_567, utc(2025, 11, 3))
        yield database


@pytest.fixture
def cli(
    closed_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Runner:
    monkeypatch.setenv("DATAHUB_DATABASE_URL", closed_db.url)
    monkeypatch.delenv("DATAHUB_CONFIG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["fairshare", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_close_then_read_every_view(cli: Runner) -> None:
    code, out, _ = cli("close", "--period", "2025-11", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["revenue_cents"] == 61_728
    assert result["supplier_payouts_cents"] == {"edg": 55_555}

    code, out, _ = cli("close", "--period", "2025-11")
    assert code == 0
    assert result["hash"] in out  # closed again: the same result
    assert "revenue 617.28 EUR = platform fee 61.73 + supplier payouts 555.55" in out

    code, out, _ = cli("statement", "--supplier", "edg", "--period", "2025-11", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[-1]["payout_cents"] == "55555"

    code, out, _ = cli("invoice", "--consumer", "acme", "--period", "2025-11")
    assert json.loads(out)["total_cents"] == 61_728

    code, out, _ = cli("report", "--period", "2025-11")
    report = json.loads(out)
    assert report["hash"] == result["hash"]
    assert "acme" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("report", "--period", "2025-10"), "not closed", id="not-closed"),
        pytest.param(
            ("statement", "--supplier", "nobody", "--period", "2025-11"),
            "no supplier",
            id="unknown-supplier",
        ),
        pytest.param(("close", "--period", "2999-01"), "has not ended", id="not-ended"),
    ],
)
def test_refusals_exit_2(cli: Runner, args: tuple[str, ...], message: str) -> None:
    cli("close", "--period", "2025-11")
    code, _, err = cli(*args)
    assert code == 2
    assert message in err
