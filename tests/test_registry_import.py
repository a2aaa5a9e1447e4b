"""The registry CSV: what a line states, what it leaves alone, and what an import changes."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from democatalog import DEPLOY_CODECS
from realservices import temporary_database

from datahub import cli
from datahub import registry_import as registry
from datahub.domain import City, Device, LevelCalibration, Location, Placement
from datahub.privacy import PrivacyClass
from datahub.registry_import import RegistryFileError, read_registry_csv
from datahub.storage import audit as audit_log
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

PROFILES = ("dragino/ldds75", "dragino/lht65")
HEADER = "dev_eui,name,city,supplier,profile"
EDG = SupplierRow("edg", "EDG Entsorgung Dortmund GmbH", "waste_company")
BIN = Device(
    dev_eui="A8404100F1000001",
    name="bin 1",
    city=City.DORTMUND,
    supplier="edg",
    profile="dragino/ldds75",
    location=Location(51.49, 7.47),
    dataset="edg",
    placement=Placement.OUTDOOR,
    area="Hörde",
    level=LevelCalibration(empty=1100.0, full=150.0),
)


def registry_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_line_states_only_its_non_empty_cells(tmp_path: Path) -> None:
    path = registry_file(
        tmp_path,
        f"{HEADER},placement,area,level_empty,level_full,supplier_name\n"
        "A8404100F1000001,bin 1,dortmund,edg,dragino/ldds75,outdoor,Hörde,1100,150,EDG\n"
        "a84041000a000002,,,,dragino/lht65,,,,,\n",
    )

    bin_one, tree = read_registry_csv(path, profiles=PROFILES).lines

    assert bin_one.stated == {
        "name": "bin 1",
        "city": City.DORTMUND,
        "supplier": "edg",
        "profile": "dragino/ldds75",
        "placement": Placement.OUTDOOR,
        "area": "Hörde",
        "level": LevelCalibration(empty=1100.0, full=150.0),
    }
    assert bin_one.supplier == {"name": "EDG"}
    assert (tree.dev_eui, tree.stated, tree.supplier) == (
        "A84041000A000002",
        {"profile": "dragino/lht65"},
        {},
    )


@pytest.mark.parametrize(
    ("columns", "values", "message"),
    [
        pytest.param("placement", "inside", "placement 'inside' is not one of", id="placement"),
        pytest.param("level_empty,level_full", "1100,", "both be numbers", id="half-level"),
        pytest.param("level_empty,level_full", "150,150", "must differ", id="equal-level"),
        pytest.param("level_empty,level_full", "nan,150", "finite", id="nan-level"),
        pytest.param("level_empty", "1100", "come together", id="one-column"),
        pytest.param("area", "x" * 101, "at most 100", id="long-area"),
        pytest.param("privacy", "secret", "privacy 'secret' is not one of", id="privacy"),
        pytest.param("latitude,longitude", "51.5,", "both be numbers", id="half-location"),
        pytest.param("placment", "outdoor", "unknown columns placment", id="typo"),
    ],
)
def test_bad_values_name_their_line(
    tmp_path: Path, columns: str, values: str, message: str
) -> None:
    path = registry_file(
        tmp_path, f"{HEADER},{columns}\nA8404100F1000001,bin,dortmund,edg,dragino/ldds75,{values}\n"
    )
    with pytest.raises(RegistryFileError, match=message):
        read_registry_csv(path, profiles=PROFILES)


def plan(tmp_path: Path, text: str, *, stored: tuple[Device, ...] = (BIN,)) -> registry.ImportPlan:
    file = read_registry_csv(registry_file(tmp_path, text), profiles=PROFILES)
    return registry.plan_import(
        file,
        stored_devices={d.dev_eui: d for d in stored},
        stored_suppliers={EDG.slug: EDG},
    )


def test_what_a_line_leaves_out_or_empty_stays_as_it_is(tmp_path: Path) -> None:
    same = plan(tmp_path, f"{HEADER},area,placement\nA8404100F1000001,bin 1,dortmund,edg,,,\n")
    assert (same.devices, same.suppliers, same.unchanged) == ((), (), 1)

    moved = plan(tmp_path, "dev_eui,area\nA8404100F1000001,Aplerbeck\n")
    (change,) = moved.devices
    assert change.diff() == {"area": ("Hörde", "Aplerbeck")}
    assert registry.describe_device(change) == "~ A8404100F1000001: area: 'Hörde' -> 'Aplerbeck'"


def test_a_device_may_set_its_own_privacy_class_and_keeps_it(tmp_path: Path) -> None:
    garden = dataclasses.replace(BIN, privacy=PrivacyClass.PRIVATE_OWNER)
    owned = plan(tmp_path, "dev_eui,privacy\nA8404100F1000001,private_owner\n")
    (change,) = owned.devices
    assert change.diff() == {"privacy": (None, PrivacyClass.PRIVATE_OWNER)}

    kept = plan(tmp_path, "dev_eui,area,privacy\nA8404100F1000001,Hörde,\n", stored=(garden,))
    assert (kept.devices, kept.unchanged) == ((), 1)


def test_a_new_device_needs_city_supplier_and_profile(tmp_path: Path) -> None:
    with pytest.raises(RegistryFileError, match=r"registry.csv:2: .* needs its city, supplier"):
        plan(tmp_path, "dev_eui,profile\nA84041000A000002,dragino/lht65\n")

    added = plan(tmp_path, f"{HEADER}\nA84041000A000002,,schwerte,tbs,dragino/lht65\n")
    (change,) = added.devices
    assert change.before is None
    assert change.after == Device(
        dev_eui="A84041000A000002",
        name="A84041000A000002",
        city=City.SCHWERTE,
        supplier="tbs",
        profile="dragino/lht65",
        dataset="tbs",
    )
    (supplier,) = added.suppliers
    assert (supplier.before, supplier.after) == (None, SupplierRow("tbs", "tbs", "other"))


def test_a_device_that_changes_hands_goes_into_its_new_suppliers_dataset(tmp_path: Path) -> None:
    (change,) = plan(tmp_path, "dev_eui,supplier\nA8404100F1000001,dew21\n").devices
    assert change.diff() == {"supplier": ("edg", "dew21"), "dataset": ("edg", "dew21")}


def test_a_supplier_named_otherwise_is_a_supplier_change(tmp_path: Path) -> None:
    found = plan(tmp_path, "dev_eui,supplier_name\nA8404100F1000001,edg\n")
    (change,) = found.supplier_changes
    assert registry.describe_supplier(change) == (
        "supplier edg: name 'EDG Entsorgung Dortmund GmbH' -> 'edg'"
    )
    with pytest.raises(RegistryFileError, match=r"named differently on .*registry\.csv:2"):
        plan(
            tmp_path,
            f"{HEADER},supplier_name\n"
            "A8404100F1000001,,,edg,,EDG\nA8404100F1000002,,dortmund,edg,dragino/lht65,edg\n",
        )


def register_edg(conn: psycopg.Connection, fleet: int = 3) -> list[Device]:
    ids = suppliers.upsert_suppliers(conn, suppliers=[EDG])
    bins = [
        Device(**{**_fields(BIN), "dev_eui": f"A8404100F10000{n:02X}", "name": f"bin {n}"})
        for n in range(1, fleet + 1)
    ]
    devices.upsert_devices(conn, devices=bins, supplier_ids=ids)
    return bins


def _fields(device: Device) -> dict[str, object]:
    return {f: getattr(device, f) for f in device.__dataclass_fields__}


def test_one_line_without_the_supplier_columns_renames_nothing(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    """A line of the required columns only must not rename "EDG Entsorgung Dortmund GmbH"
    to "edg", reset its kind, or clear what its devices have."""
    bins = register_edg(conn)
    path = registry_file(
        tmp_path, f"{HEADER}\nA8404100F1000001,bin 1,dortmund,edg,dragino/ldds75\n"
    )

    found = registry.apply(conn, read_registry_csv(path, profiles=PROFILES), actor="cli:test")

    assert (found.devices, found.suppliers, found.unchanged) == ((), (), 1)
    assert suppliers.select_suppliers(conn, slugs=["edg"]) == {"edg": EDG}
    assert devices.select_devices(conn, dev_euis=[b.dev_eui for b in bins]) == {
        b.dev_eui: b for b in bins
    }


def test_renaming_a_supplier_through_an_import_needs_the_flag(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    register_edg(conn)
    path = registry_file(tmp_path, "dev_eui,supplier_name,supplier_kind\nA8404100F1000001,EDG,\n")
    file = read_registry_csv(path, profiles=PROFILES)

    with pytest.raises(RegistryFileError, match="--change-suppliers"):
        registry.apply(conn, file, actor="cli:test")
    assert suppliers.select_suppliers(conn, slugs=["edg"]) == {"edg": EDG}

    found = registry.apply(conn, file, actor="cli:test", change_suppliers=True)
    assert [c.after for c in found.suppliers] == [SupplierRow("edg", "EDG", "waste_company")]
    assert suppliers.select_suppliers(conn, slugs=["edg"])["edg"].name == "EDG"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own for `datahub devices import`, which commits."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with temporary_database("postgres", "datahub_test_registry_cli") as database:
        monkeypatch.delenv("DATAHUB_CONFIG", raising=False)
        monkeypatch.setenv("DATAHUB_DATABASE_URL", database.url)
        monkeypatch.setenv("DATAHUB_CATALOG__CODECS_DIR", str(DEPLOY_CODECS))
        yield database.url
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_dry_run_shows_each_change_and_writes_nothing(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(cli_env) as conn:
        register_edg(conn, fleet=2)
    path = registry_file(
        tmp_path,
        "dev_eui,name,city,supplier,profile,area,supplier_name\n"
        "A8404100F1000001,,,,,Aplerbeck,edg\n"
        "A84041000A000009,tree,schwerte,tbs,dragino/lht65,,\n",
    )

    assert cli.main(["devices", "import", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "supplier edg: name 'EDG Entsorgung Dortmund GmbH' -> 'edg' (needs --change-suppliers)",
        "supplier tbs added: 'tbs', other",
        "~ A8404100F1000001: area: 'Hörde' -> 'Aplerbeck'",
        "+ A84041000A000009: dev_eui='A84041000A000009', name='tree', city='schwerte', "
        "supplier='tbs', profile='dragino/lht65', dataset='tbs'",
        "1 devices would be added, 1 updated, 0 unchanged; nothing was written (--dry-run)",
    ]
    with psycopg.connect(cli_env) as conn:
        assert conn.execute("SELECT count(*) FROM device").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)

    assert cli.main(["devices", "import", str(path)]) == 2
    assert "--change-suppliers" in capsys.readouterr().err
    assert cli.main(["--as", "ops", "devices", "import", str(path), "--change-suppliers"]) == 0
    with psycopg.connect(cli_env) as conn:
        assert suppliers.select_suppliers(conn, slugs=["edg"])["edg"].name == "edg"
        (entry,) = audit_log.list_entries(conn, limit=10)
    assert entry.action == "registry.import"
    assert entry.before["devices"]["A84041000A000009"] is None
    assert entry.after["devices"]["A8404100F1000001"]["area"] == "Aplerbeck"
