"""Period close: rate a month's usage, invoice consumers, pay suppliers and value free use.

`rate_period` is pure: rated usage in, the period's result out, in integer cents. It
rounds once per invoice (and once per supplier's shadow value) and splits every whole
by the largest-remainder method, so that each split sums exactly to its whole:

    revenue_cents = Σ invoice totals = platform_fee_cents + Σ supplier_payouts_cents

`close_period` runs it on the usage of a month that has ended, stores the result with a
SHA-256 of its canonical JSON, and assigns the usage to the period, in the caller's
transaction. Closing again returns the stored result.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import psycopg

from datahub import audit
from datahub.domain import LicenceClass, Purpose
from datahub.errors import BadRequest, Conflict, NotFound
from datahub.fairshare.money import MILLION, largest_remainder, round_half_up, split_fee
from datahub.fairshare.result import (
    AppliedTariff,
    ClosedPeriod,
    Conservation,
    Invoice,
    InvoiceLine,
    PublishedPeriod,
    PurposeTotals,
    RatedPeriod,
    StatementLine,
    SupplierResult,
)
from datahub.storage import periods
from datahub.storage.periods import PeriodRow, RatedUsageRow, TariffRow

_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")
PURPOSES = tuple(p.value for p in Purpose)

# The parts of a published result that are not hashed: the hash itself and the clock.
UNHASHED = ("hash", "closed_at")


class ConservationError(RuntimeError):
    """A split did not sum to its whole: a bug, and the period is not closed."""


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """Return the UTC start and end (exclusive) of a `YYYY-MM` period."""
    match = _PERIOD.fullmatch(period)
    # Years from 1970 (before any usage) to 9998 (whose last month still has an end).
    if (
        match is None
        or not 1 <= int(match.group(2)) <= 12
        or not 1970 <= int(match.group(1)) < 9999
    ):
        raise BadRequest(f"period {period!r} is not a month written YYYY-MM, e.g. 2026-11")
    return month_bounds(datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC))


def month_bounds(time: datetime) -> tuple[datetime, datetime]:
    """Return the start and end (exclusive) of the calendar month (UTC) that holds `time`."""
    time = time.astimezone(UTC)
    start = datetime(time.year, time.month, 1, tzinfo=UTC)
    end = datetime(time.year + time.month // 12, time.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def close_period(
    conn: psycopg.Connection, *, period: str, now: datetime, currency: str, actor: str
) -> PublishedPeriod:
    """Close a month that has ended, or return its stored result if it is closed already.

    Every open usage row that occurred before the month's end is rated and assigned to
    it, late usage of earlier closed months included. Periods close in order: a month
    before the latest closed one is refused. Run it in a transaction of its own.
    """
    _, end = period_bounds(period)
    periods.lock_closing(conn)
    stored = periods.get_period(conn, period=period)
    if stored is not None:
        return published(stored)
    if now < end:
        raise BadRequest(f"period {period} has not ended; it can be closed from {_iso(end)} on")
    last = periods.get_last_period(conn)
    if last is not None and last > period:
        raise Conflict(
            f"period {last} is closed already, so {period} cannot be: periods close in order "
            f"and the usage of {period} went into a later one"
        )
    staged = periods.stage_usage_to_close(conn, before=end)
    rated = rate_period(period=period, currency=currency, usage=periods.select_rated_usage(conn))
    result: ClosedPeriod = {**rated, "usage_rows": staged, "usage_before": _iso(end)}
    digest = result_hash(result)
    periods.insert_period(conn, period=period, closed_at=now, hash=digest, result=result)
    assigned = periods.assign_period(conn, period=period)
    if assigned != staged:
        raise ConservationError(f"{staged} usage rows staged for {period}, {assigned} assigned")
    audit.record(
        conn,
        actor=actor,
        action="period.close",
        target=f"period:{period}",
        after={"hash": digest, "closed_at": now, "usage_rows": staged},
    )
    return published(PeriodRow(period=period, closed_at=now, hash=digest, result=dict(result)))


def get_closed(conn: psycopg.Connection, *, period: str) -> PublishedPeriod:
    """Return a closed period's published result; 404 if the period is not closed."""
    period_bounds(period)
    row = periods.get_period(conn, period=period)
    if row is None:
        raise NotFound(f"period {period} is not closed")
    return published(row)


def published(row: PeriodRow) -> PublishedPeriod:
    """Return a stored period's result with its hash and closing time, keys sorted.

    (jsonb keeps its own key order; sorting makes a stored result read as it was closed.)
    """
    result = json.loads(canonical_json(row.result))
    # A stored result is what close_period wrote: a ClosedPeriod.
    return cast(PublishedPeriod, {**result, "hash": row.hash, "closed_at": _iso(row.closed_at)})


def canonical_json(result: Mapping[str, Any]) -> bytes:
    """Serialize a result without its unhashed parts: sorted keys, no spaces, UTF-8."""
    body = {k: v for k, v in result.items() if k not in UNHASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def result_hash(result: Mapping[str, Any]) -> str:
    """Return the SHA-256 (hex) of a result's canonical JSON."""
    return hashlib.sha256(canonical_json(result)).hexdigest()


# Rating ----------------------------------------------------------------------------------

# A line of an invoice or a statement: dataset, supplier, purpose, own use (sorted after
# the use by others), tariff version (0: none; and for own use, which no tariff rates).
LineKey = tuple[str, str, str, bool, int]


@dataclass(slots=True)
class _Tally:
    """What one supplier line adds up to over every consumer."""

    observations: int = 0
    revenue_cents: int = 0
    platform_fee_cents: int = 0
    payout_cents: int = 0
    shadow_exact: int = 0  # millionths of a cent
    unpriced_observations: int = 0


def charged_price(row: RatedUsageRow) -> int:
    """Return the cents per million charged for a row: none for open data or no tariff."""
    if row.tariff is None or row.licence_class == LicenceClass.OPEN:
        return 0
    return row.tariff.cents_per_million


def rate_period(*, period: str, currency: str, usage: Sequence[RatedUsageRow]) -> RatedPeriod:
    """Rate a period's usage: invoices, supplier payouts, platform fee and shadow values."""
    tallies: dict[str, dict[LineKey, _Tally]] = defaultdict(lambda: defaultdict(_Tally))
    for row in usage:
        tally = tallies[row.supplier][_line_key(row)]
        tally.observations += row.observations
        if row.own_use:  # neither priced nor valued: a supplier does not trade with itself
            continue
        if row.tariff is None:
            tally.unpriced_observations += row.observations
        elif charged_price(row) == 0:
            tally.shadow_exact += row.observations * row.tariff.shadow_cents_per_million

    invoices: list[Invoice] = []
    by_consumer: dict[str, list[RatedUsageRow]] = defaultdict(list)
    for row in usage:
        # Anonymous use is free and never invoiced; nor is a supplier's own use.
        if row.consumer is not None and not row.own_use:
            by_consumer[row.consumer].append(row)
    for consumer in sorted(by_consumer):
        invoice = _invoice(consumer, by_consumer[consumer])
        for line in invoice["lines"]:
            tally = tallies[line["supplier"]][_key_of_line(line)]
            tally.revenue_cents += line["cents"]
            tally.platform_fee_cents += line["platform_fee_cents"]
            tally.payout_cents += line["supplier_cents"]
        invoices.append(invoice)

    suppliers = {slug: _supplier(tallies[slug]) for slug in sorted(tallies)}
    revenue = sum(i["total_cents"] for i in invoices)
    fee = sum(s["platform_fee_cents"] for s in suppliers.values())
    payouts = {slug: s["payout_cents"] for slug, s in suppliers.items()}
    conservation = check_conservation(
        revenue_cents=revenue,
        platform_fee_cents=fee,
        supplier_payouts_cents=payouts,
        invoices=invoices,
        suppliers=suppliers,
    )
    if not all(conservation.values()):
        raise ConservationError(f"period {period}: {conservation}")
    rated: RatedPeriod = {
        "period": period,
        "currency": currency,
        "revenue_cents": revenue,
        "platform_fee_cents": fee,
        "supplier_payouts_cents": payouts,
        "shadow_value_cents": sum(s["shadow_value_cents"] for s in suppliers.values()),
        "observations": sum(r.observations for r in usage),
        "anonymous_observations": sum(r.observations for r in usage if r.consumer is None),
        "unpriced_observations": sum(
            r.observations for r in usage if r.tariff is None and not r.own_use
        ),
        "purposes": _purposes(usage, invoices),
        "invoices": invoices,
        "suppliers": suppliers,
        "tariffs": _tariffs(usage),
        "conservation": conservation,
    }
    # Only where there is own use, so that a period without any keeps the bytes (and the
    # hash) it had before own use was told apart.
    own_use = sum(r.observations for r in usage if r.own_use)
    if own_use:
        rated["own_use_observations"] = own_use
    return rated


def check_conservation(
    *,
    revenue_cents: int,
    platform_fee_cents: int,
    supplier_payouts_cents: Mapping[str, int],
    invoices: Sequence[Invoice],
    suppliers: Mapping[str, SupplierResult],
) -> Conservation:
    """Check that every split of a result sums exactly to its whole."""
    lines = [line for invoice in invoices for line in invoice["lines"]]
    return {
        "revenue_equals_platform_fee_plus_payouts": revenue_cents
        == platform_fee_cents + sum(supplier_payouts_cents.values()),
        "revenue_equals_invoice_totals": revenue_cents == sum(i["total_cents"] for i in invoices),
        "invoices_equal_their_lines": all(
            i["total_cents"] == sum(line["cents"] for line in i["lines"]) for i in invoices
        ),
        "lines_equal_platform_fee_plus_supplier_share": all(
            line["cents"] == line["platform_fee_cents"] + line["supplier_cents"] for line in lines
        ),
        "suppliers_equal_their_lines": all(
            s["payout_cents"] == sum(line["payout_cents"] for line in s["lines"])
            and s["shadow_value_cents"] == sum(line["shadow_value_cents"] for line in s["lines"])
            for s in suppliers.values()
        ),
    }


def _line_key(row: RatedUsageRow) -> LineKey:
    version = row.tariff.version if row.tariff is not None and not row.own_use else 0
    return (row.dataset, row.supplier, row.purpose, row.own_use, version)


def _key_of_line(line: InvoiceLine) -> LineKey:
    return (
        line["dataset"],
        line["supplier"],
        line["purpose"],
        False,
        line["tariff_version"] or 0,
    )


def _invoice(consumer: str, rows: Sequence[RatedUsageRow]) -> Invoice:
    """Invoice one consumer: round the exact total once, then split it over the lines."""
    merged: dict[LineKey, list[RatedUsageRow]] = defaultdict(list)
    for row in rows:
        merged[_line_key(row)].append(row)
    keys = sorted(merged)
    observations = [sum(r.observations for r in merged[k]) for k in keys]
    firsts = [merged[k][0] for k in keys]
    prices = [charged_price(r) for r in firsts]
    exact = [n * price for n, price in zip(observations, prices, strict=True)]
    total = round_half_up(sum(exact), MILLION)
    cents = largest_remainder(total, exact)
    lines: list[InvoiceLine] = []
    for key, row, n, price, line_cents in zip(
        keys, firsts, observations, prices, cents, strict=True
    ):
        fee_bp = row.tariff.platform_fee_basis_points if row.tariff is not None else 0
        fee, share = split_fee(line_cents, fee_bp)
        lines.append(
            {
                "dataset": key[0],
                "supplier": key[1],
                "purpose": key[2],
                "tariff_version": key[4] or None,
                "observations": n,
                "cents_per_million": price,
                "cents": line_cents,
                "platform_fee_basis_points": fee_bp,
                "platform_fee_cents": fee,
                "supplier_cents": share,
            }
        )
    purpose = rows[0].consumer_purpose
    return {
        "consumer": consumer,
        "purpose": purpose,
        "observations": sum(observations),
        "total_cents": total,
        "lines": lines,
    }


def _supplier(tallies: Mapping[LineKey, _Tally]) -> SupplierResult:
    """A supplier's impact: payout, observations per purpose, the shadow value of free use."""
    keys = sorted(tallies)
    shadow_total = round_half_up(sum(tallies[k].shadow_exact for k in keys), MILLION)
    shadow = largest_remainder(shadow_total, [tallies[k].shadow_exact for k in keys])
    by_purpose = dict.fromkeys(PURPOSES, 0)
    for key in keys:
        by_purpose[key[2]] += tallies[key].observations
    lines: list[StatementLine] = []
    for key, line_shadow in zip(keys, shadow, strict=True):
        line: StatementLine = {
            "dataset": key[0],
            "purpose": key[2],
            "tariff_version": key[4] or None,
            "observations": tallies[key].observations,
            "revenue_cents": tallies[key].revenue_cents,
            "platform_fee_cents": tallies[key].platform_fee_cents,
            "payout_cents": tallies[key].payout_cents,
            "shadow_value_cents": line_shadow,
            "unpriced_observations": tallies[key].unpriced_observations,
        }
        if key[3]:  # only on own use's lines: the others keep the bytes they always had
            line["own_use"] = True
        lines.append(line)
    result: SupplierResult = {
        "payout_cents": sum(line["payout_cents"] for line in lines),
        "revenue_cents": sum(line["revenue_cents"] for line in lines),
        "platform_fee_cents": sum(line["platform_fee_cents"] for line in lines),
        "observations": sum(by_purpose.values()),
        "observations_by_purpose": by_purpose,
        "shadow_value_cents": shadow_total,
        "unpriced_observations": sum(line["unpriced_observations"] for line in lines),
        "lines": lines,
    }
    own_use = sum(tallies[k].observations for k in keys if k[3])
    if own_use:
        result["own_use_observations"] = own_use
    return result


def _purposes(
    usage: Iterable[RatedUsageRow], invoices: Sequence[Invoice]
) -> dict[str, PurposeTotals]:
    """Totals per purpose, without naming any consumer."""
    out: dict[str, PurposeTotals] = {
        p: {"observations": 0, "revenue_cents": 0, "consumers": 0} for p in PURPOSES
    }
    consumers: dict[str, set[str]] = defaultdict(set)
    for row in usage:
        out[row.purpose]["observations"] += row.observations
        if row.consumer is not None:
            consumers[row.purpose].add(row.consumer)
    for invoice in invoices:
        for line in invoice["lines"]:
            out[line["purpose"]]["revenue_cents"] += line["cents"]
    for purpose, names in consumers.items():
        out[purpose]["consumers"] = len(names)
    return out


def _tariffs(usage: Iterable[RatedUsageRow]) -> list[AppliedTariff]:
    """The tariff versions applied, with the observations each rated."""
    applied: dict[TariffRow, tuple[int, int]] = {}
    for row in usage:
        if row.tariff is not None and not row.own_use:
            observations, _ = applied.get(row.tariff, (0, 0))
            applied[row.tariff] = (observations + row.observations, charged_price(row))
    return [
        {
            "dataset": t.dataset,
            "purpose": t.purpose,
            "version": t.version,
            "valid_from": _iso(t.valid_from),
            "cents_per_million": t.cents_per_million,
            "charged_cents_per_million": charged,
            "shadow_cents_per_million": t.shadow_cents_per_million,
            "platform_fee_basis_points": t.platform_fee_basis_points,
            "observations": observations,
        }
        for t, (observations, charged) in sorted(
            applied.items(), key=lambda item: (item[0].dataset, item[0].purpose, item[0].version)
        )
    ]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
