"""The administration rules on the real database, and applying a seed (rolled back per test)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from datahub.domain import City, Device, LevelCalibration, Placement
from datahub.errors import BadRequest, Conflict, NotFound
from datahub.fairshare import admin, keys
from datahub.fairshare.seed import SeedFile, SeedFileError, apply_seed
from datahub.opendata import vocabularies
from datahub.storage import devices, suppliers
from datahub.storage.datasets import DatasetFields
from datahub.storage.suppliers import SupplierRow
from datahub.storage.tariffs import Price

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
FREE = Price(0, 20_000, 0)
PAID = Price(400_000, 400_000, 1500)


COMMERCIAL_TERMS = f"{vocabularies.LICENCES}other-commercial"


def fields(
    licence_class: str = "commercial", *, licence_url: str | None = COMMERCIAL_TERMS
) -> DatasetFields:
    return DatasetFields(
        name="Füllstände",
        licence_class=licence_class,
        licence_id="datahub-kommerziell-1.0",
        licence_name="Datahub commercial terms",
        licence_url=licence_url,
        attribution="EDG Entsorgung Dortmund GmbH",
    )


@pytest.fixture
def edg(conn: psycopg.Connection) -> int:
    """The supplier `edg` with two fill-level sensors and a climate sensor, all in `edg`."""
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("edg", "EDG", "waste_company")])
    registry = [
        Device("A8404100F1000001", "bin 1", City.DORTMUND, "edg", "dragino/ldds75"),
        Device("A8404100F2000002", "bin 2", City.SCHWERTE, "edg", "dragino/ldds75"),
        Device("A84041000A000003", "depot", City.DORTMUND, "edg", "dragino/lht65"),
    ]
    devices.upsert_devices(conn, devices=registry, supplier_ids=ids)
    return ids["edg"]


def dataset_of(conn: psycopg.Connection, dev_eui: str) -> str:
    row = conn.execute(
        "SELECT ds.slug FROM device d JOIN dataset ds ON ds.id = d.dataset_id WHERE dev_eui = %s",
        (dev_eui,),
    ).fetchone()
    assert row is not None
    return str(row[0])


# Suppliers, datasets, consumers -----------------------------------------------------------


def test_a_registry_import_gives_each_new_supplier_a_dataset_without_a_licence(
    conn: psycopg.Connection, edg: int
) -> None:
    own = admin.get_dataset(conn, "edg")
    assert (own.licence_id, own.licence_name, own.licence_url) == ("none", "no licence given", None)


# What opens a supplier's own dataset, created without a licence.
OPEN = {
    "licence_class": "open",
    "licence_id": "CC-BY-4.0",
    "licence_name": "CC BY 4.0",
    "licence_url": "https://creativecommons.org/licenses/by/4.0/",
}
NONE = {"licence_id": "none", "licence_name": "no licence given", "licence_url": None}


@pytest.mark.parametrize(
    ("licence_class", "licence", "error"),
    [
        pytest.param(
            "commercial",
            {"licence_url": None},
            "needs a licence URL .* or the licence id 'none'",
            id="no-url",
        ),
        pytest.param(
            "restricted", NONE | {"licence_url": COMMERCIAL_TERMS}, "has no URL", id="none-url"
        ),
        pytest.param(
            "restricted",
            NONE | {"licence_name": "Own terms"},
            "is named 'no licence given'",
            id="none-named",
        ),
        pytest.param("open", NONE, "an open dataset needs a licence", id="open-none"),
    ],
)
@pytest.mark.usefixtures("edg")
def test_a_dataset_has_a_licence_url_or_says_none_is_given(
    conn: psycopg.Connection, licence_class: str, licence: dict[str, Any], error: str
) -> None:
    refused = dataclasses.replace(fields(licence_class), **licence)
    with pytest.raises(BadRequest, match=error):
        admin.add_dataset(conn, actor="cli:test", slug="edg-fill", supplier="edg", fields=refused)
    admin.add_dataset(conn, actor="cli:test", slug="edg-fill", supplier="edg", fields=fields())
    with pytest.raises(BadRequest, match=error):
        admin.update_dataset(
            conn,
            actor="cli:test",
            slug="edg-fill",
            changes={"licence_class": licence_class, **licence},
            now=NOW,
        )
    assert admin.get_dataset(conn, "edg-fill").licence_url == COMMERCIAL_TERMS


@pytest.mark.usefixtures("edg")
def test_a_dataset_without_a_licence_says_so(conn: psycopg.Connection) -> None:
    """`none` is the only licence without a URL, whatever its case; a URL replaces it."""
    none = NONE | {"licence_id": " None "}
    record, changed = admin.update_dataset(
        conn, actor="cli:test", slug="edg", changes={"licence_class": "commercial"}, now=NOW
    )
    assert (record.licence_id, record.licence_url, changed) == ("none", None, True)
    added = admin.add_dataset(
        conn,
        actor="cli:test",
        slug="edg-fill",
        supplier="edg",
        fields=dataclasses.replace(fields(), **none),
    )
    assert (added.licence_id, added.licence_name, added.licence_url) == (
        "none",
        "no licence given",
        None,
    )
    record, _ = admin.update_dataset(
        conn,
        actor="cli:test",
        slug="edg-fill",
        changes={
            "licence_id": "datahub-kommerziell-1.0",
            "licence_name": "Terms",
            "licence_url": COMMERCIAL_TERMS,
        },
        now=NOW,
    )
    assert (record.licence_id, record.licence_url) == ("datahub-kommerziell-1.0", COMMERCIAL_TERMS)


def test_a_new_supplier_gets_its_own_restricted_dataset(conn: psycopg.Connection) -> None:
    record = admin.add_supplier(
        conn, actor="cli:test", slug="bochum-umwelt", name="Bochum", kind="city_department"
    )
    assert record.datasets == ("bochum-umwelt",)
    own = admin.get_dataset(conn, "bochum-umwelt")
    assert (own.licence_class, own.licence_id, own.licence_name, own.licence_url) == (
        "restricted",
        "none",
        "no licence given",
        None,
    )
    with pytest.raises(Conflict, match="exists"):
        admin.add_supplier(conn, actor="cli:test", slug="bochum-umwelt", name="again", kind="other")


def test_a_registry_reimport_keeps_the_datasets_administrators_set(
    conn: psycopg.Connection, edg: int
) -> None:
    admin.add_dataset(conn, actor="cli:test", slug="edg-bins", supplier="edg", fields=fields())
    conn.execute(
        "UPDATE device SET dataset_id = (SELECT id FROM dataset WHERE slug = 'edg-bins') "
        "WHERE dev_eui = 'A8404100F1000001'"
    )
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("edg", "EDG", "waste_company")])
    registry = [
        Device("A8404100F1000001", "bin 1, moved", City.DORTMUND, "edg", "dragino/ldds75"),
        Device(
            "A8404100F2000002", "bin 2", City.SCHWERTE, "edg", "dragino/ldds75", dataset="edg-bins"
        ),
    ]

    assert devices.upsert_devices(conn, devices=registry, supplier_ids=ids) == (0, 2)
    assert dataset_of(conn, "A8404100F1000001") == "edg-bins"  # kept: the registry names none
    assert dataset_of(conn, "A8404100F2000002") == "edg-bins"  # named by the registry
    assert dataset_of(conn, "A84041000A000003") == "edg"


@pytest.mark.usefixtures("edg")
def test_dataset_add_update_and_their_errors(conn: psycopg.Connection) -> None:
    added = admin.add_dataset(
        conn, actor="cli:test", slug="edg-fill", supplier="edg", fields=fields()
    )
    assert (added.supplier_slug, added.licence_class, added.device_count) == (
        "edg",
        "commercial",
        0,
    )
    with pytest.raises(Conflict):
        admin.add_dataset(conn, actor="cli:test", slug="edg-fill", supplier="edg", fields=fields())
    with pytest.raises(NotFound, match="no supplier 'nobody'"):
        admin.add_dataset(conn, actor="cli:test", slug="other", supplier="nobody", fields=fields())
    with pytest.raises(BadRequest, match="licence class"):
        admin.add_dataset(
            conn, actor="cli:test", slug="other", supplier="edg", fields=fields("free")
        )
    with pytest.raises(BadRequest, match="http"):
        admin.add_dataset(
            conn,
            actor="cli:test",
            slug="other",
            supplier="edg",
            fields=fields(licence_url="ftp://x"),
        )

    record, changed = admin.update_dataset(
        conn, actor="cli:test", slug="edg-fill", changes={"name": "Fill levels"}, now=NOW
    )
    assert (record.name, changed) == ("Fill levels", True)
    _, changed = admin.update_dataset(
        conn, actor="cli:test", slug="edg-fill", changes={"name": "Fill levels"}, now=NOW
    )
    assert not changed
    with pytest.raises(BadRequest, match="no field"):
        admin.update_dataset(
            conn, actor="cli:test", slug="edg-fill", changes={"supplier_id": 1}, now=NOW
        )


@pytest.mark.usefixtures("edg")
def test_catalogue_metadata_is_set_checked_and_cleared(conn: psycopg.Connection) -> None:
    admin.add_dataset(conn, actor="cli:test", slug="edg-fill", supplier="edg", fields=fields())
    record, changed = admin.update_dataset(
        conn,
        actor="cli:test",
        slug="edg-fill",
        changes={
            "title_en": " Fill levels ",
            "keywords": ["Abfall", "Füllstand", "Abfall"],
            "themes": ["envi", "REGI"],
            "contact_email": "abfall@edg.example",
            "licence_uri": "http://dcat-ap.de/def/licenses/other-commercial",
            "catalogue_listed": True,
            "public_summaries": True,
        },
        now=NOW,
    )
    assert changed
    meta = record.metadata
    assert (meta.title_en, meta.keywords, meta.themes) == (
        "Fill levels",
        ("Abfall", "Füllstand"),
        ("ENVI", "REGI"),
    )
    assert (meta.catalogue_listed, meta.public_summaries, meta.contributor_id) == (True, True, None)
    _, changed = admin.update_dataset(
        conn, actor="cli:test", slug="edg-fill", changes={"themes": ["ENVI", "REGI"]}, now=NOW
    )
    assert not changed
    record, _ = admin.update_dataset(
        conn, actor="cli:test", slug="edg-fill", changes={"title_en": None}, now=NOW
    )
    assert record.metadata.title_en is None and record.metadata.keywords == ("Abfall", "Füllstand")

    refused = {
        "themes": ["CLIMATE"],
        "licence_uri": "https://www.govdata.de/dl-de/by-2-0",
        "contributor_id": "http://dcat-ap.de/def/contributors/",
        "contact_email": "nobody",
        "keywords": ["x" * 101],
    }
    for name, value in refused.items():
        with pytest.raises(BadRequest):
            admin.update_dataset(
                conn, actor="cli:test", slug="edg-fill", changes={name: value}, now=NOW
            )
    with pytest.raises(BadRequest, match="open dataset cannot carry"):
        admin.update_dataset(
            conn,
            actor="cli:test",
            slug="edg-fill",
            changes={
                "licence_class": "open",
                "licence_uri": vocabularies.LICENCES + "other-closed",
            },
            now=NOW,
        )


def test_an_upsert_writes_placement_area_and_level_as_given(
    conn: psycopg.Connection, edg: int
) -> None:
    """What a registry file leaves unsaid is merged in before (tests/test_registry.py)."""
    bin_one = Device(
        "A8404100F1000001",
        "bin 1",
        City.DORTMUND,
        "edg",
        "dragino/ldds75",
        placement=Placement.OUTDOOR,
        area="Hörde",
        level=LevelCalibration(empty=1100, full=150),
    )
    devices.upsert_devices(conn, devices=[bin_one], supplier_ids={"edg": edg})
    row = conn.execute(
        "SELECT name, placement, area, level_empty, level_full FROM device WHERE dev_eui = %s",
        (bin_one.dev_eui,),
    ).fetchone()
    assert row == ("bin 1", "outdoor", "Hörde", 1100.0, 150.0)
    renamed = dataclasses.replace(bin_one, name="bin one", placement=None, area=None, level=None)
    devices.upsert_devices(conn, devices=[renamed], supplier_ids={"edg": edg})
    row = conn.execute(
        "SELECT placement, area, level_empty FROM device WHERE dev_eui = %s", (bin_one.dev_eui,)
    ).fetchone()
    assert row == (None, None, None)


@pytest.mark.usefixtures("edg")
def test_consumer_add_update_and_clearing_optional_fields(conn: psycopg.Connection) -> None:
    record = admin.add_consumer(
        conn,
        actor="cli:test",
        slug="ruhrroute",
        name="RuhrRoute",
        purpose="commercial",
        supplier="edg",
        monthly_quota=1000,
        requests_per_s=5,
    )
    assert (record.supplier_slug, record.monthly_quota, record.requests_per_s) == ("edg", 1000, 5)
    with pytest.raises(Conflict):
        admin.add_consumer(conn, actor="cli:test", slug="ruhrroute", name="x", purpose="research")
    with pytest.raises(BadRequest, match="purpose"):
        admin.add_consumer(conn, actor="cli:test", slug="other", name="x", purpose="fun")
    with pytest.raises(NotFound, match="supplier"):
        admin.add_consumer(
            conn, actor="cli:test", slug="other", name="x", purpose="research", supplier="nobody"
        )

    record, changed = admin.update_consumer(
        conn,
        actor="cli:test",
        slug="ruhrroute",
        changes={"supplier": None, "monthly_quota": None},
        now=NOW,
    )
    assert changed
    assert (record.supplier_slug, record.monthly_quota, record.requests_per_s) == (None, None, 5)
    _, changed = admin.update_consumer(
        conn, actor="cli:test", slug="ruhrroute", changes={"requests_per_s": 5}, now=NOW
    )
    assert not changed
    with pytest.raises(BadRequest, match="at least 1"):
        admin.update_consumer(
            conn, actor="cli:test", slug="ruhrroute", changes={"requests_per_s": 0}, now=NOW
        )


# Keys and grants --------------------------------------------------------------------------


def test_a_key_is_stored_only_as_its_hash_and_revocation_sticks(conn: psycopg.Connection) -> None:
    admin.add_consumer(conn, actor="cli:test", slug="lab", name="Lab", purpose="research")
    record, secret = admin.create_key(
        conn, actor="cli:test", consumer="lab", scopes=["admin", "read"], label="ci"
    )
    assert secret.startswith(f"dh_{record.prefix}_")
    assert record.scopes == ("read", "admin")
    stored = conn.execute("SELECT * FROM api_key WHERE prefix = %s", (record.prefix,)).fetchone()
    assert stored is not None
    assert secret not in [str(v) for v in stored]
    assert secret.encode() not in [v for v in stored if isinstance(v, bytes)]
    assert keys.hash_key(secret) in stored
    assert [k.prefix for k in admin.list_keys(conn, consumer="lab")] == [record.prefix]

    revoked = admin.revoke_key(conn, actor="cli:test", prefix=record.prefix)
    assert revoked.revoked_at is not None
    # Revoking again keeps the first time; the whole key also finds it, never echoed back.
    assert admin.revoke_key(conn, actor="cli:test", prefix=secret).revoked_at == revoked.revoked_at
    with pytest.raises(NotFound) as error:
        admin.revoke_key(conn, actor="cli:test", prefix="dh_nonexistent00_" + "x" * 43)
    assert "x" * 43 not in str(error.value)


def test_grants_add_once_and_revoke(conn: psycopg.Connection, edg: int) -> None:
    admin.add_consumer(conn, actor="cli:test", slug="city", name="City", purpose="public_interest")
    grant, created = admin.add_grant(conn, actor="cli:test", consumer="city", dataset="edg")
    assert (grant.consumer_slug, grant.dataset_slug, created) == ("city", "edg", True)
    assert not admin.add_grant(conn, actor="cli:test", consumer="city", dataset="edg")[1]
    assert [g.dataset_slug for g in admin.list_grants(conn, consumer="city")] == ["edg"]
    assert admin.get_consumer(conn, "city").grants == ("edg",)
    admin.revoke_grant(conn, actor="cli:test", consumer="city", dataset="edg")
    with pytest.raises(NotFound, match="no grant"):
        admin.revoke_grant(conn, actor="cli:test", consumer="city", dataset="edg")
    with pytest.raises(NotFound, match="no dataset"):
        admin.add_grant(conn, actor="cli:test", consumer="city", dataset="nothing")


# Tariffs ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("edg")
def test_tariff_versions_follow_each_other_and_one_is_current(conn: psycopg.Connection) -> None:
    first = admin.add_tariff(
        conn, actor="cli:test", dataset="edg", purpose="commercial", price=PAID, now=NOW
    )
    assert (first.version, first.valid_from, first.current) == (1, NOW, True)
    later = NOW + timedelta(days=31)
    second = admin.add_tariff(
        conn,
        actor="cli:test",
        dataset="edg",
        purpose="commercial",
        price=Price(1, 1, 0),
        now=NOW,
        valid_from=later,
    )
    assert second.version == 2
    # A different purpose has versions of its own.
    assert (
        admin.add_tariff(
            conn, actor="cli:test", dataset="edg", purpose="research", price=FREE, now=NOW
        ).version
        == 1
    )

    listed = admin.list_tariffs(conn, at=NOW, dataset="edg")
    assert [(t.purpose, t.version, t.current) for t in listed] == [
        ("commercial", 1, True),
        ("commercial", 2, False),
        ("research", 1, True),
    ]
    assert [t.current for t in admin.list_tariffs(conn, at=later, dataset="edg")] == [
        False,
        True,
        True,
    ]
    with pytest.raises(BadRequest, match="rewrite history"):
        admin.add_tariff(
            conn,
            actor="cli:test",
            dataset="edg",
            purpose="commercial",
            price=PAID,
            now=NOW,
            valid_from=later,
        )
    with pytest.raises(BadRequest, match="purpose"):
        admin.add_tariff(conn, actor="cli:test", dataset="edg", purpose="fun", price=PAID, now=NOW)


@pytest.mark.usefixtures("edg")
def test_open_data_is_free(conn: psycopg.Connection) -> None:
    admin.update_dataset(conn, actor="cli:test", slug="edg", changes=OPEN, now=NOW)
    with pytest.raises(BadRequest, match="open data is free"):
        admin.add_tariff(
            conn, actor="cli:test", dataset="edg", purpose="commercial", price=PAID, now=NOW
        )
    assert admin.add_tariff(
        conn, actor="cli:test", dataset="edg", purpose="commercial", price=FREE, now=NOW
    )


@pytest.mark.usefixtures("edg")
def test_a_priced_dataset_opens_only_once_its_prices_are_zero(conn: psycopg.Connection) -> None:
    admin.add_tariff(
        conn, actor="cli:test", dataset="edg", purpose="commercial", price=PAID, now=NOW
    )
    with pytest.raises(BadRequest, match="charges for use"):
        admin.update_dataset(conn, actor="cli:test", slug="edg", changes=OPEN, now=NOW)
    # A free version from a later date is not enough: the price holds until then.
    admin.add_tariff(
        conn,
        actor="cli:test",
        dataset="edg",
        purpose="commercial",
        price=FREE,
        now=NOW,
        valid_from=NOW + timedelta(days=1),
    )
    with pytest.raises(BadRequest, match="charges for use"):
        admin.update_dataset(conn, actor="cli:test", slug="edg", changes=OPEN, now=NOW)
    later = NOW + timedelta(days=1)
    record, _ = admin.update_dataset(conn, actor="cli:test", slug="edg", changes=OPEN, now=later)
    assert record.licence_class == "open"


@pytest.mark.usefixtures("edg")
def test_no_tariff_version_starts_in_a_closed_period(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO fairshare_period (period, hash, result) VALUES ('2026-11', 'h', '{}')"
    )
    with pytest.raises(BadRequest, match="closed period"):
        admin.add_tariff(
            conn,
            actor="cli:test",
            dataset="edg",
            purpose="commercial",
            price=PAID,
            now=NOW,
            valid_from=datetime(2026, 11, 30, tzinfo=UTC),
        )
    start = datetime(2026, 12, 1, tzinfo=UTC)
    added = admin.add_tariff(
        conn,
        actor="cli:test",
        dataset="edg",
        purpose="commercial",
        price=PAID,
        now=NOW,
        valid_from=start,
    )
    assert added.valid_from == start


# Seeding ----------------------------------------------------------------------------------


def seed_data(*, cents: int = 400_000, supplier: str = "edg") -> dict[str, Any]:
    """A seed of two datasets of `edg` (a commercial one priced `cents`) and two consumers."""
    return {
        "suppliers": [{"slug": "edg", "name": "EDG", "kind": "waste_company"}],
        "datasets": [
            {
                "slug": "edg-fill",
                "supplier": supplier,
                "name": "Fill levels",
                "licence": {
                    "class": "commercial",
                    "id": "c-1",
                    "name": "Commercial terms",
                    "url": COMMERCIAL_TERMS,
                },
                "attribution": "EDG",
                "devices": {"profiles": ["dragino/ldds75"], "cities": ["dortmund"]},
                "tariffs": [
                    {
                        "purpose": "commercial",
                        "cents_per_million": cents,
                        "shadow_cents_per_million": cents,
                        "platform_fee_basis_points": 1500,
                        "valid_from": "2026-01-01T00:00:00Z",
                    }
                ],
            },
            {
                "slug": "edg-depot",
                "supplier": "edg",
                "name": "Depot climate",
                "licence": {
                    "class": "open",
                    "id": "CC-BY-4.0",
                    "name": "CC BY 4.0",
                    "url": OPEN["licence_url"],
                },
                "attribution": "EDG (CC BY 4.0)",
                "devices": {"profiles": ["dragino/lht65"]},
            },
        ],
        "consumers": [
            {
                "slug": "ruhrroute",
                "name": "RuhrRoute",
                "purpose": "commercial",
                "monthly_quota": 1_000_000,
                "grants": ["edg-fill"],
                "keys": [{"label": "demo"}],
            },
            {
                "slug": "ops",
                "name": "Ops",
                "purpose": "public_interest",
                "keys": [{"label": "demo", "scopes": ["read", "admin"]}],
            },
        ],
    }


def counts(conn: psycopg.Connection) -> tuple[int, ...]:
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM dataset), (SELECT count(*) FROM consumer),
               (SELECT count(*) FROM api_key), (SELECT count(*) FROM access_grant),
               (SELECT count(*) FROM tariff), (SELECT max(updated_at) FROM dataset),
               (SELECT max(updated_at) FROM consumer), (SELECT max(updated_at) FROM device)
        """
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.usefixtures("edg")
def test_seeding_twice_changes_nothing_and_makes_no_second_key(conn: psycopg.Connection) -> None:
    seed = SeedFile.model_validate(seed_data())
    first = apply_seed(conn, seed, now=NOW, actor="cli:test")
    made = {k.consumer: k.secret for k in first.keys}
    assert all(secret and secret.startswith("dh_") for secret in made.values())
    assert first.counts["devices moved"] == 2
    assert dataset_of(conn, "A8404100F1000001") == "edg-fill"
    assert dataset_of(conn, "A8404100F2000002") == "edg"  # in Schwerte: not matched
    assert dataset_of(conn, "A84041000A000003") == "edg-depot"
    (tariff,) = admin.list_tariffs(conn, at=NOW, dataset="edg-fill")
    assert (tariff.version, tariff.valid_from) == (1, datetime(2026, 1, 1, tzinfo=UTC))
    before = counts(conn)

    second = apply_seed(conn, seed, now=NOW + timedelta(hours=1), actor="cli:test")

    assert (second.changes, second.summary()) == ([], "nothing changed")
    assert counts(conn) == before
    assert [(k.consumer, k.secret) for k in second.keys] == [("ruhrroute", None), ("ops", None)]
    assert [k.prefix for k in second.keys] == [k.prefix for k in first.keys]


@pytest.mark.usefixtures("edg")
def test_a_changed_price_in_the_seed_becomes_a_new_version_from_now(
    conn: psycopg.Connection,
) -> None:
    apply_seed(conn, SeedFile.model_validate(seed_data()), now=NOW, actor="cli:test")
    changed = seed_data(cents=500_000)
    report = apply_seed(
        conn, SeedFile.model_validate(changed), now=NOW + timedelta(days=1), actor="cli:test"
    )
    assert report.changes == ["tariff edg-fill/commercial version 2 added"]
    versions = admin.list_tariffs(conn, at=NOW + timedelta(days=1), dataset="edg-fill")
    assert [(t.version, t.valid_from, t.current) for t in versions] == [
        (1, datetime(2026, 1, 1, tzinfo=UTC), False),
        (2, NOW + timedelta(days=1), True),
    ]


@pytest.mark.usefixtures("edg")
def test_a_seed_cannot_move_a_dataset_to_another_supplier(conn: psycopg.Connection) -> None:
    suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("tbs", "TBS")])
    apply_seed(conn, SeedFile.model_validate(seed_data()), now=NOW, actor="cli:test")
    moved = seed_data(supplier="tbs")
    with pytest.raises(SeedFileError, match="cannot change its supplier"):
        apply_seed(conn, SeedFile.model_validate(moved), now=NOW, actor="cli:test")


def test_a_seed_naming_an_unknown_supplier_fails(conn: psycopg.Connection) -> None:
    seed = SeedFile.model_validate({"datasets": seed_data()["datasets"][1:]})
    with pytest.raises(NotFound, match="no supplier 'edg'"):
        apply_seed(conn, seed, now=NOW, actor="cli:test")
