"""The privacy rule in SQL computes what the pure rule does: the same public ids from the
stored key, the same cells of the grid, on TimescaleDB and plain PostgreSQL."""

from __future__ import annotations

import dataclasses
import random

import psycopg
from test_rollups import register

from datahub.domain import City, Device
from datahub.privacy import Grid, PrivacyClass, hmac_pads, public_id
from datahub.storage import devices, privacy, suppliers
from datahub.storage.suppliers import SupplierRow

KEY = b"a key of the public ids, 32 bytes or more"


def test_sql_public_ids_are_the_hmac_of_the_key_set(conn: psycopg.Connection) -> None:
    dev_euis = [f"70B3D57E{i:08X}" for i in (1, 2, 0xABCDEF)]
    register(conn, *dev_euis)
    conn.execute("UPDATE dataset SET privacy = 'personal'")

    assert privacy.set_key(conn, key=KEY)
    assert not privacy.set_key(conn, key=KEY)  # the same key changes nothing
    assert privacy.get_key_pads(conn) == hmac_pads(KEY)
    rows = conn.execute(
        f"SELECT d.dev_eui, {privacy.public_id_of('d')} FROM device d ORDER BY 1"
    ).fetchall()
    assert rows == [(e, public_id(e, key=KEY)) for e in sorted(dev_euis)]


def test_the_migration_draws_a_key_of_its_own(conn: psycopg.Connection) -> None:
    pads = privacy.get_key_pads(conn)
    assert pads is not None
    inner, outer = pads
    # Both pads come from one key: XORed they give 0x36 ^ 0x5c in every byte.
    assert bytes(a ^ b for a, b in zip(inner, outer, strict=True)) == bytes([0x6A]) * 64
    assert inner != bytes([0x36]) * 64  # not an empty key


def test_sql_snaps_to_the_same_cells(conn: psycopg.Connection) -> None:
    grid = Grid.of(250.0, latitude=51.5)
    draw = random.Random(21)
    points = [(draw.uniform(51.3, 51.6), draw.uniform(7.2, 7.7)) for _ in range(2000)]
    # Cell borders exactly, and their neighbours in floating point.
    points += [(grid.lat_step * n, grid.lon_step * m) for n in range(460, 465) for m in (52, 53)]
    rows = conn.execute(
        f"""
        SELECT {privacy.snapped("p.lat", "%(lat_step)s::float8")},
               {privacy.snapped("p.lon", "%(lon_step)s::float8")}
        FROM unnest(%(lat)s::float8[], %(lon)s::float8[]) WITH ORDINALITY AS p (lat, lon, n)
        ORDER BY p.n
        """,
        {
            "lat": [p[0] for p in points],
            "lon": [p[1] for p in points],
            "lat_step": grid.lat_step,
            "lon_step": grid.lon_step,
        },
        binary=True,
    ).fetchall()
    assert rows == [grid.snap(*p) for p in points]


def test_the_registry_stores_a_devices_own_class_or_none(conn: psycopg.Connection) -> None:
    """What an import leaves unsaid is merged in before (registry_import.merge, tested
    there): the storage writes the device as it is given, its own class or none."""
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("buergerlabor", "Bürgerlabor")])
    station = Device(
        "A84041000B000001",
        "garden",
        City.SCHWERTE,
        "buergerlabor",
        "climate",
        privacy=PrivacyClass.PRIVATE_OWNER,
    )
    devices.upsert_devices(conn, devices=[station], supplier_ids=ids)
    stored = devices.select_devices(conn, dev_euis=[station.dev_eui])[station.dev_eui]
    devices.upsert_devices(
        conn, devices=[dataclasses.replace(station, privacy=None)], supplier_ids=ids
    )
    cleared = conn.execute("SELECT privacy FROM device").fetchone()

    assert stored.privacy is PrivacyClass.PRIVATE_OWNER
    assert cleared == (None,)
