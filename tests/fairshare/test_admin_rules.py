"""The administration rules without a database: prices, tariff versions, scopes, seed files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from datahub.domain import LicenceClass
from datahub.errors import BadRequest
from datahub.fairshare import admin
from datahub.fairshare.seed import SeedFileError, load_seed
from datahub.storage.tariffs import Price, TariffRecord

T = datetime(2026, 6, 1, tzinfo=UTC)
DEMO_SEED = Path(__file__).resolve().parents[2] / "deploy" / "fairshare-demo.yaml"


def version(n: int, valid_from: datetime) -> TariffRecord:
    return TariffRecord(
        "ds", "sup", "commercial", "commercial", n, valid_from, Price(1, 1, 0), T, True
    )


@pytest.mark.parametrize(
    ("licence_class", "price"),
    [
        pytest.param(LicenceClass.OPEN, Price(0, 500, 0), id="open-free-with-shadow"),
        pytest.param(LicenceClass.RESTRICTED, Price(100, 0, 10_000), id="restricted-full-fee"),
        pytest.param(LicenceClass.COMMERCIAL, Price(400_000, 400_000, 1500), id="commercial"),
    ],
)
def test_allowed_prices(licence_class: LicenceClass, price: Price) -> None:
    admin.check_price(licence_class, price)


@pytest.mark.parametrize(
    ("licence_class", "price", "message"),
    [
        pytest.param(LicenceClass.OPEN, Price(1, 0, 0), "open data is free", id="priced-open"),
        pytest.param(LicenceClass.COMMERCIAL, Price(-1, 0, 0), "0 or more", id="negative"),
        pytest.param(LicenceClass.COMMERCIAL, Price(0, -5, 0), "0 or more", id="negative-shadow"),
        pytest.param(LicenceClass.COMMERCIAL, Price(1, 1, 10_001), "0..10000", id="fee-over-100%"),
        pytest.param(LicenceClass.COMMERCIAL, Price(1, 1, -1), "0..10000", id="negative-fee"),
    ],
)
def test_refused_prices(licence_class: LicenceClass, price: Price, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        admin.check_price(licence_class, price)


def test_the_first_version_is_1_and_each_next_one_follows_the_latest() -> None:
    assert admin.next_tariff_version(latest=None, valid_from=T, rated_until=None) == 1
    later = datetime(2026, 7, 1, tzinfo=UTC)
    assert admin.next_tariff_version(latest=version(3, T), valid_from=later, rated_until=None) == 4


@pytest.mark.parametrize(
    ("valid_from", "rated_until", "message"),
    [
        pytest.param(T, None, "not after version 2", id="same-start"),
        pytest.param(datetime(2026, 5, 1, tzinfo=UTC), None, "rewrite history", id="before"),
        pytest.param(
            datetime(2026, 6, 15, tzinfo=UTC),
            datetime(2026, 7, 1, tzinfo=UTC),
            "closed period",
            id="in-closed-period",
        ),
        pytest.param(datetime(2026, 7, 1), None, "UTC offset", id="naive"),
    ],
)
def test_refused_versions(valid_from: datetime, rated_until: datetime | None, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        admin.next_tariff_version(
            latest=version(2, T), valid_from=valid_from, rated_until=rated_until
        )


def test_a_first_version_may_not_start_in_a_closed_period_either() -> None:
    with pytest.raises(BadRequest, match="closed period"):
        admin.next_tariff_version(
            latest=None, valid_from=T, rated_until=datetime(2026, 7, 1, tzinfo=UTC)
        )


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [(["read"], ("read",)), (["admin", "read"], ("read", "admin")), (["admin"], ("admin",))],
)
def test_scopes_in_canonical_order(scopes: list[str], expected: tuple[str, ...]) -> None:
    assert admin.check_scopes(scopes) == expected


@pytest.mark.parametrize("scopes", [[], ["write"], ["read", "root"]], ids=["none", "write", "root"])
def test_refused_scopes(scopes: list[str]) -> None:
    with pytest.raises(BadRequest):
        admin.check_scopes(scopes)


@pytest.mark.parametrize("slug", ["Edg", "-edg", "edg_1", "", "a" * 64, "edg\x00", "edg\n"])
def test_refused_slugs(slug: str) -> None:
    with pytest.raises(BadRequest, match="slug"):
        admin.check_slug("dataset", slug)


def test_refused_limits() -> None:
    with pytest.raises(BadRequest, match="quota"):
        admin.check_consumer_limits(monthly_quota=-1, requests_per_s=None)
    with pytest.raises(BadRequest, match="per second"):
        admin.check_consumer_limits(monthly_quota=None, requests_per_s=0)


# Seed files -------------------------------------------------------------------------------


def test_the_demo_seed_file_is_valid() -> None:
    seed = load_seed(DEMO_SEED)
    classes = {d.slug: d.licence.licence_class for d in seed.datasets}
    assert classes["edg-fuellstand"] is LicenceClass.COMMERCIAL
    assert classes["do-stadtklima"] is LicenceClass.OPEN
    assert classes["do-parken"] is LicenceClass.RESTRICTED
    purposes = {c.purpose for c in seed.consumers if c.keys}
    assert purposes == {"public_interest", "research", "commercial"}
    assert any("admin" in k.scopes for c in seed.consumers for k in c.keys)
    # Open data is free: every open dataset's tariffs charge nothing.
    for d in seed.datasets:
        if d.licence.licence_class is LicenceClass.OPEN:
            assert all(t.cents_per_million == 0 for t in d.tariffs), d.slug


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


DATASET = """
  - slug: {slug}
    supplier: edg
    name: n
    licence: {{class: open, id: CC-BY-4.0, name: CC BY}}
    attribution: a
    devices: {devices}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "datasets:" + DATASET.format(slug="a", devices="{profiles: [x/y]}") * 2,
            "dataset a listed twice",
            id="duplicate-dataset",
        ),
        pytest.param(
            "datasets:"
            + DATASET.format(slug="a", devices="{profiles: [x/y, x/z]}")
            + DATASET.format(slug="b", devices="{profiles: [x/z]}"),
            "both match devices of edg",
            id="overlapping-rules",
        ),
        pytest.param(
            "datasets:"
            + DATASET.format(slug="a", devices="{cities: [dortmund]}")
            + DATASET.format(slug="b", devices="{profiles: [x/z]}"),
            "both match devices of edg",
            id="city-rule-overlaps-profile-rule",
        ),
        pytest.param("consumers: [{slug: c, name: n, purpose: fun}]", "purpose", id="purpose"),
        pytest.param("consumer: []", "Extra inputs", id="unknown-section"),
        pytest.param("- 1", "expected a mapping", id="not-a-mapping"),
        pytest.param("datasets: [", "expected", id="bad-yaml"),
    ],
)
def test_refused_seed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SeedFileError, match=message):
        load_seed(write(tmp_path, text))


def test_rules_of_different_cities_do_not_overlap(tmp_path: Path) -> None:
    text = (
        "x-anchors: {any: thing}\ndatasets:"
        + DATASET.format(slug="a", devices="{cities: [dortmund]}")
        + DATASET.format(slug="b", devices="{cities: [schwerte], profiles: [x/y]}")
    )
    seed = load_seed(write(tmp_path, text))
    assert [d.slug for d in seed.datasets] == ["a", "b"]
    assert seed.profiles() == {"x/y"}
