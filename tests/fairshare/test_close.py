"""Period close: conservation to the cent (properties), and closing on the real database."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from fractions import Fraction
from typing import Any

import psycopg
import pytest
from fairshare_seed import FairShareSeed, utc
from hypothesis import given, settings
from hypothesis import strategies as st
from realservices import temporary_database

from datahub.errors import BadRequest, Conflict
from datahub.fairshare.close import close_period, period_bounds, rate_period, result_hash
from datahub.storage import periods
from datahub.storage.periods import RatedUsageRow, TariffRow

PURPOSES = ("public_interest", "research", "commercial")
# dataset -> (supplier, licence class)
DATASETS = {
    "fill-levels": ("edg", "commercial"),
    "parking": ("dsw21", "restricted"),
    "climate": ("city", "open"),
    "water": ("edg", "commercial"),
}


# Pure rating ------------------------------------------------------------------------------


@st.composite
def rated_usage(draw: st.DrawFn) -> list[RatedUsageRow]:
    """Random usage over random tariff versions, fees and shadow prices."""
    tariffs: dict[tuple[str, str], list[TariffRow | None]] = {}
    for dataset in DATASETS:
        for purpose in PURPOSES:
            versions = draw(st.integers(0, 2))
            tariffs[dataset, purpose] = [
                TariffRow(
                    dataset=dataset,
                    purpose=purpose,
                    version=v,
                    valid_from=utc(2026, 1, v),
                    cents_per_million=draw(st.integers(0, 5_000_000)),
                    shadow_cents_per_million=draw(st.integers(0, 5_000_000)),
                    platform_fee_basis_points=draw(st.integers(0, 10_000)),
                )
                for v in range(1, versions + 1)
            ] or [None]
    consumers = {
        "acme": "commercial",
        "uni": "research",
        "city-dept": "public_interest",
        "edg-ops": "commercial",  # acts for edg: its use of edg's datasets is own use
    }
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        consumer = draw(st.sampled_from([None, *consumers]))
        purpose = consumers[consumer] if consumer else "public_interest"
        if consumer is not None and draw(st.booleans()):
            purpose = draw(st.sampled_from(PURPOSES))  # changed purpose mid-period
        dataset = draw(st.sampled_from(sorted(DATASETS)))
        supplier, licence = DATASETS[dataset]
        rows.append(
            RatedUsageRow(
                consumer=consumer,
                consumer_purpose=consumers[consumer] if consumer else None,
                purpose=purpose,
                dataset=dataset,
                licence_class=licence,
                supplier=supplier,
                tariff=draw(st.sampled_from(tariffs[dataset, purpose])),
                observations=draw(st.integers(1, 10**10)),
                own_use=consumer == "edg-ops" and supplier == "edg",
            )
        )
    return rows


def _exact_cents(row: RatedUsageRow) -> Fraction:
    if row.tariff is None or row.licence_class == "open":
        return Fraction(0)
    return Fraction(row.observations * row.tariff.cents_per_million, 1_000_000)


@given(usage=rated_usage())
@settings(max_examples=300)
def test_every_split_sums_exactly_to_its_whole(usage: list[RatedUsageRow]) -> None:
    result = rate_period(period="2026-11", currency="EUR", usage=usage)
    assert all(result["conservation"].values())
    payouts = result["supplier_payouts_cents"]
    assert result["revenue_cents"] == result["platform_fee_cents"] + sum(payouts.values())
    assert set(payouts) == {row.supplier for row in usage}
    for invoice in result["invoices"]:
        assert invoice["total_cents"] == sum(line["cents"] for line in invoice["lines"])
        for line in invoice["lines"]:
            assert line["cents"] == line["platform_fee_cents"] + line["supplier_cents"]
            fee_share = Fraction(line["cents"] * line["platform_fee_basis_points"], 10_000)
            assert abs(line["platform_fee_cents"] - fee_share) < 1


@given(usage=rated_usage())
def test_each_invoice_is_rounded_once_from_its_exact_value(usage: list[RatedUsageRow]) -> None:
    result = rate_period(period="2026-11", currency="EUR", usage=usage)
    for invoice in result["invoices"]:
        rows = [r for r in usage if r.consumer == invoice["consumer"] and not r.own_use]
        exact = sum((_exact_cents(r) for r in rows), Fraction(0))
        assert -Fraction(1, 2) < invoice["total_cents"] - exact <= Fraction(1, 2)
        # Each line is within a cent of its exact share of the rounded total.
        weights = [
            Fraction(line["observations"] * line["cents_per_million"]) for line in invoice["lines"]
        ]
        whole = sum(weights, Fraction(0))
        for line, weight in zip(invoice["lines"], weights, strict=True):
            share = invoice["total_cents"] * weight / whole if whole else 0
            assert abs(line["cents"] - share) < 1
    assert {i["consumer"] for i in result["invoices"]} == {
        r.consumer for r in usage if r.consumer is not None and not r.own_use
    }
    own_use = sum(r.observations for r in usage if r.own_use)
    assert result.get("own_use_observations", 0) == own_use
    assert result["suppliers"].get("edg", {}).get("own_use_observations", 0) == own_use


@given(usage=rated_usage())
def test_free_use_is_valued_at_the_shadow_price_per_supplier(usage: list[RatedUsageRow]) -> None:
    result = rate_period(period="2026-11", currency="EUR", usage=usage)
    for slug, supplier in result["suppliers"].items():
        exact = sum(
            (
                Fraction(r.observations * r.tariff.shadow_cents_per_million, 1_000_000)
                for r in usage
                if r.supplier == slug
                and r.tariff is not None
                and _exact_cents(r) == 0
                and not r.own_use  # free, but no one else's use to value
            ),
            Fraction(0),
        )
        assert -Fraction(1, 2) < supplier["shadow_value_cents"] - exact <= Fraction(1, 2)
        assert supplier["observations"] == sum(r.observations for r in usage if r.supplier == slug)
    assert result["unpriced_observations"] == sum(
        r.observations for r in usage if r.tariff is None and not r.own_use
    )


@given(usage=rated_usage(), seed=st.integers(0, 2**32))
def test_the_result_does_not_depend_on_the_order_of_usage(
    usage: list[RatedUsageRow], seed: int
) -> None:
    shuffled = list(usage)
    random.Random(seed).shuffle(shuffled)
    first = rate_period(period="2026-11", currency="EUR", usage=usage)
    again = rate_period(period="2026-11", currency="EUR", usage=shuffled)
    assert result_hash(first) == result_hash(again)


def _row(
    consumer: str | None, dataset: str, observations: int, tariff: TariffRow | None
) -> RatedUsageRow:
    supplier, licence = DATASETS[dataset]
    purpose = tariff.purpose if tariff else "commercial"
    return RatedUsageRow(
        consumer, purpose, purpose, dataset, licence, supplier, tariff, observations
    )


def _tariff(
    dataset: str, cents: int, fee_bp: int = 0, shadow: int = 0, purpose: str = "commercial"
) -> TariffRow:
    return TariffRow(dataset, purpose, 1, utc(2026, 1), cents, shadow, fee_bp)


def test_worked_example_from_the_docs() -> None:
    """docs/fair-share.md, "Rounding": three lines of one invoice, a 15 % fee."""
    usage = [
        _row("acme", "fill-levels", 1_234_567, _tariff("fill-levels", 50_000, fee_bp=1500)),
        _row("acme", "parking", 333_333, _tariff("parking", 100_000, fee_bp=1500)),
        _row("acme", "water", 2_500_001, _tariff("water", 20_000, fee_bp=1500)),
    ]
    result = rate_period(period="2026-11", currency="EUR", usage=usage)
    # Exact: 61728.35 + 33333.3 + 50000.02 = 145061.67 cents; rounded once: 145062.
    (invoice,) = result["invoices"]
    assert invoice["total_cents"] == 145_062
    assert [line["cents"] for line in invoice["lines"]] == [61_729, 33_333, 50_000]
    assert [line["platform_fee_cents"] for line in invoice["lines"]] == [9_259, 5_000, 7_500]
    assert result["platform_fee_cents"] == 21_759
    assert result["supplier_payouts_cents"] == {"dsw21": 28_333, "edg": 94_970}


def test_open_data_is_free_and_valued_at_its_shadow_price() -> None:
    tariff = _tariff("climate", cents=90_000, shadow=10_000, purpose="commercial")
    result = rate_period(
        period="2026-11", currency="EUR", usage=[_row("acme", "climate", 3_000_000, tariff)]
    )
    assert result["revenue_cents"] == 0
    assert result["invoices"][0]["lines"][0]["cents_per_million"] == 0
    assert result["suppliers"]["city"]["shadow_value_cents"] == 30_000
    assert result["tariffs"][0]["charged_cents_per_million"] == 0


def test_anonymous_use_is_never_invoiced_but_counted() -> None:
    tariff = _tariff("climate", cents=0, shadow=1_000, purpose="public_interest")
    result = rate_period(
        period="2026-11", currency="EUR", usage=[_row(None, "climate", 1_500, tariff)]
    )
    assert result["invoices"] == []
    assert result["anonymous_observations"] == 1_500
    assert result["suppliers"]["city"]["observations_by_purpose"]["public_interest"] == 1_500
    assert result["suppliers"]["city"]["shadow_value_cents"] == 2  # 1.5 rounds half up


def test_usage_without_a_tariff_is_a_visible_gap() -> None:
    result = rate_period(
        period="2026-11", currency="EUR", usage=[_row("acme", "parking", 42, None)]
    )
    assert result["unpriced_observations"] == 42
    assert result["suppliers"]["dsw21"]["unpriced_observations"] == 42
    assert result["supplier_payouts_cents"] == {"dsw21": 0}


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        pytest.param("2026-11", utc(2026, 11), utc(2026, 12), id="november"),
        pytest.param("2026-12", utc(2026, 12), utc(2027, 1), id="december-wraps"),
    ],
)
def test_period_bounds(period: str, start: datetime, end: datetime) -> None:
    assert period_bounds(period) == (start, end)


@pytest.mark.parametrize(
    "period",
    [
        "2026-13",
        "2026-00",
        "26-11",
        "2026-1",
        "2026-11-01",
        "9999-12",
        "\uff12\uff10\uff12\uff16-11",  # full-width digits
        "2026-11\n",
    ],
)
def test_period_bounds_refuse_what_is_not_a_month(period: str) -> None:
    with pytest.raises(BadRequest, match="YYYY-MM"):
        period_bounds(period)


# Closing on the database ------------------------------------------------------------------

AFTER_NOVEMBER = utc(2026, 12, 1, 0, 5)
AFTER_DECEMBER = utc(2027, 1, 1, 0, 5)


@pytest.fixture
def fs(conn: psycopg.Connection) -> FairShareSeed:
    """Waste company's fill levels (commercial), the city's climate (open), one buyer each."""
    seed = FairShareSeed(conn)
    seed.dataset("edg-fill-levels", supplier="edg", licence_class="commercial")
    seed.dataset("city-climate", supplier="city", licence_class="open")
    seed.consumer("acme", purpose="commercial")
    seed.consumer("city-planning", purpose="public_interest")
    seed.tariff("edg-fill-levels", "commercial", cents=50_000, shadow=50_000, fee_bp=1000)
    seed.tariff("edg-fill-levels", "public_interest", cents=0, shadow=20_000)
    seed.tariff("city-climate", "public_interest", cents=0, shadow=10_000)
    seed.tariff("city-climate", "commercial", cents=0, shadow=10_000)
    return seed


def _close(conn: psycopg.Connection, period: str, now: datetime) -> dict[str, Any]:
    return close_period(conn, period=period, now=now, currency="EUR", actor="cli:test")


def test_close_rates_invoices_and_splits(conn: psycopg.Connection, fs: FairShareSeed) -> None:
    fs.use("acme", "edg-fill-levels", 1_000_000, utc(2026, 11, 3))
    fs.use("acme", "edg-fill-levels", 500_000, utc(2026, 11, 20))
    fs.use("acme", "city-climate", 700_000, utc(2026, 11, 4))
    fs.use("city-planning", "edg-fill-levels", 2_000_000, utc(2026, 11, 5))
    fs.use(None, "city-climate", 300_000, utc(2026, 11, 6))
    fs.use("acme", "edg-fill-levels", 9, utc(2026, 12, 1))  # December: stays open

    result = _close(conn, "2026-11", AFTER_NOVEMBER)

    assert result["revenue_cents"] == 75_000
    assert result["platform_fee_cents"] == 7_500
    assert result["supplier_payouts_cents"] == {"city": 0, "edg": 67_500}
    assert [i["consumer"] for i in result["invoices"]] == ["acme", "city-planning"]
    assert [i["total_cents"] for i in result["invoices"]] == [75_000, 0]
    edg, city = result["suppliers"]["edg"], result["suppliers"]["city"]
    assert edg["observations_by_purpose"] == {
        "public_interest": 2_000_000,
        "research": 0,
        "commercial": 1_500_000,
    }
    assert edg["shadow_value_cents"] == 40_000  # public interest, 2 M at 20 000
    assert city["shadow_value_cents"] == 10_000  # open data, 1 M at 10 000
    assert result["anonymous_observations"] == 300_000
    assert result["usage_rows"] == 5
    assert len(result["hash"]) == 64
    stored = periods.get_period(conn, period="2026-11")
    assert stored is not None
    assert stored.hash == result["hash"] == result_hash(stored.result)
    counts = conn.execute(
        "SELECT period, count(*) FROM usage GROUP BY period ORDER BY period NULLS LAST"
    ).fetchall()
    assert counts == [("2026-11", 5), (None, 1)]


def test_closing_twice_gives_the_same_result_and_hash(
    conn: psycopg.Connection, fs: FairShareSeed
) -> None:
    fs.use("acme", "edg-fill-levels", 123_457, utc(2026, 11, 3))
    first = _close(conn, "2026-11", AFTER_NOVEMBER)
    fs.use("acme", "edg-fill-levels", 99, utc(2026, 11, 30))  # late: not in the closed period
    again = _close(conn, "2026-11", utc(2027, 3, 1))
    assert again == first


def test_a_closed_period_and_its_usage_never_change(
    conn: psycopg.Connection, fs: FairShareSeed
) -> None:
    fs.use("acme", "edg-fill-levels", 1_000, utc(2026, 11, 3))
    _close(conn, "2026-11", AFTER_NOVEMBER)
    statements = [
        "UPDATE usage SET observations = 1 WHERE period = '2026-11'",
        "UPDATE usage SET period = NULL WHERE period = '2026-11'",
        "DELETE FROM usage WHERE period = '2026-11'",
        "UPDATE fairshare_period SET hash = 'x' WHERE period = '2026-11'",
        "UPDATE fairshare_period SET result = '{}' WHERE period = '2026-11'",
        "DELETE FROM fairshare_period WHERE period = '2026-11'",
    ]
    for statement in statements:
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation), conn.transaction():
            conn.execute(statement)


def test_late_usage_goes_to_the_next_open_period(
    conn: psycopg.Connection, fs: FairShareSeed
) -> None:
    fs.use("acme", "edg-fill-levels", 1_000_000, utc(2026, 11, 3))
    november = _close(conn, "2026-11", AFTER_NOVEMBER)
    fs.use("acme", "edg-fill-levels", 2_000_000, utc(2026, 11, 30, 23, 59))  # late
    fs.use("acme", "edg-fill-levels", 4_000_000, utc(2026, 12, 10))
    december = _close(conn, "2026-12", AFTER_DECEMBER)
    assert november["revenue_cents"] == 50_000
    assert december["revenue_cents"] == 300_000
    assert december["invoices"][0]["observations"] == 6_000_000


def test_a_month_that_has_not_ended_cannot_close(
    conn: psycopg.Connection, fs: FairShareSeed
) -> None:
    with pytest.raises(BadRequest, match="has not ended"):
        _close(conn, "2026-11", utc(2026, 11, 30, 23, 59))
    assert periods.get_period(conn, period="2026-11") is None


def test_periods_close_in_order(conn: psycopg.Connection, fs: FairShareSeed) -> None:
    fs.use("acme", "edg-fill-levels", 1_000, utc(2026, 10, 3))
    december = _close(conn, "2026-12", AFTER_DECEMBER)
    assert december["observations"] == 1_000  # October's open usage swept into it
    with pytest.raises(Conflict, match="close in order"):
        _close(conn, "2026-11", AFTER_DECEMBER)


def test_usage_is_rated_by_the_tariff_version_in_force(
    conn: psycopg.Connection, fs: FairShareSeed
) -> None:
    fs.tariff(
        "edg-fill-levels",
        "commercial",
        cents=80_000,
        fee_bp=2000,
        version=2,
        valid_from=utc(2026, 11, 15),
    )
    fs.use("acme", "edg-fill-levels", 1_000_000, utc(2026, 11, 14, 23, 59))
    fs.use("acme", "edg-fill-levels", 1_000_000, utc(2026, 11, 15))
    fs.dataset("edg-unpriced", supplier="edg")
    fs.use("acme", "edg-unpriced", 77, utc(2026, 11, 16))
    result = _close(conn, "2026-11", AFTER_NOVEMBER)
    lines = result["invoices"][0]["lines"]
    assert [(line["dataset"], line["tariff_version"], line["cents"]) for line in lines] == [
        ("edg-fill-levels", 1, 50_000),
        ("edg-fill-levels", 2, 80_000),
        ("edg-unpriced", None, 0),
    ]
    assert result["platform_fee_cents"] == 5_000 + 16_000
    assert [(t["version"], t["observations"]) for t in result["tariffs"]] == [
        (1, 1_000_000),
        (2, 1_000_000),
    ]
    assert result["unpriced_observations"] == 77


def test_an_empty_month_closes_with_zeros(conn: psycopg.Connection, fs: FairShareSeed) -> None:
    result = _close(conn, "2026-11", AFTER_NOVEMBER)
    assert result["revenue_cents"] == 0
    assert result["supplier_payouts_cents"] == {}
    assert [p.period for p in periods.list_periods(conn)] == ["2026-11"]


@pytest.mark.services
def test_concurrent_closes_give_one_result() -> None:
    """Two operators close the same month at once: one closes it, the other gets its result."""
    with temporary_database("postgres", "datahub_test_close_race") as database:
        with psycopg.connect(database.url) as conn:
            seed = FairShareSeed(conn)
            seed.dataset("edg-fill-levels", supplier="edg")
            seed.consumer("acme", purpose="commercial")
            seed.tariff("edg-fill-levels", "commercial", cents=50_000, fee_bp=1000)
            for day in range(1, 31):
                seed.use("acme", "edg-fill-levels", 1_000 * day, utc(2026, 11, day))
        barrier = threading.Barrier(4)

        def close_once(_: int) -> dict[str, Any]:
            with psycopg.connect(database.url) as conn:
                barrier.wait()
                return _close(conn, "2026-11", AFTER_NOVEMBER)

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(close_once, range(4)))
        assert all(r == results[0] for r in results)
        assert results[0]["observations"] == 1_000 * sum(range(1, 31))
        with psycopg.connect(database.url) as conn:
            assert [p.period for p in periods.list_periods(conn)] == ["2026-11"]
