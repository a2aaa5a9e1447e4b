"""The device table: the registry of which profile decodes a device, and whose it is."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from datahub.domain import City, Device, LevelCalibration, Location, Placement
from datahub.privacy import PrivacyClass, is_public_id
from datahub.storage import privacy
from datahub.storage.db import Statement

# The filter of a device `d` by the datasets a caller may see; NULL: every dataset.
VISIBLE_DEVICE = "(%(dataset_ids)s::int[] IS NULL OR d.dataset_id = ANY(%(dataset_ids)s::int[]))"


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What the ingest needs to know about a device."""

    device_id: int
    dev_eui: str
    profile: str
    city: str


def upsert_devices(
    conn: psycopg.Connection,
    *,
    devices: Sequence[Device],
    supplier_ids: Mapping[str, int],
) -> tuple[int, int]:
    """Insert or update devices by dev_eui; return (inserted, updated).

    A device goes into the dataset it names, which must be its supplier's. One that names
    none stays in the dataset it is in (so a re-import keeps what administrators set),
    and a new one, or one that changed supplier, goes into its supplier's own dataset
    (the one with the supplier's slug). Every attribute is written as given: what a
    registry file leaves unsaid is merged in before (datahub.registry_import).
    """
    if not devices:
        return (0, 0)
    params = {
        "dev_eui": [d.dev_eui for d in devices],
        "name": [d.name for d in devices],
        "city": [str(d.city) for d in devices],
        "supplier_id": [supplier_ids[d.supplier] for d in devices],
        "dataset": [d.dataset or d.supplier for d in devices],
        "named": [d.dataset is not None for d in devices],
        "profile": [d.profile for d in devices],
        "latitude": [d.location.latitude if d.location else None for d in devices],
        "longitude": [d.location.longitude if d.location else None for d in devices],
        "placement": [d.placement.value if d.placement else None for d in devices],
        "area": [d.area for d in devices],
        "level_empty": [d.level.empty if d.level else None for d in devices],
        "level_full": [d.level.full if d.level else None for d in devices],
        "privacy": [d.privacy.value if d.privacy else None for d in devices],
    }
    missing = conn.execute(
        """
        SELECT DISTINCT v.dataset, v.supplier_id
        FROM unnest(%(dataset)s::text[], %(supplier_id)s::int[]) AS v (dataset, supplier_id)
        LEFT JOIN dataset ds ON ds.slug = v.dataset AND ds.supplier_id = v.supplier_id
        WHERE ds.id IS NULL
        """,
        params,
    ).fetchall()
    if missing:
        names = ", ".join(sorted(slug for slug, _ in missing))
        raise ValueError(f"no dataset {names} of the devices' supplier; add it first")
    # Devices already registered are updated first, and only the others inserted: an
    # INSERT … ON CONFLICT draws an identity value for every row it tries, so repeated
    # imports would use up device ids, which the SensorThings ids are made of.
    row = conn.execute(
        """
        WITH v AS (
            SELECT * FROM unnest(%(dev_eui)s::text[], %(name)s::text[], %(city)s::text[],
                                 %(supplier_id)s::int[], %(dataset)s::text[], %(named)s::bool[],
                                 %(profile)s::text[], %(latitude)s::float8[],
                                 %(longitude)s::float8[], %(placement)s::text[],
                                 %(area)s::text[], %(level_empty)s::float8[],
                                 %(level_full)s::float8[], %(privacy)s::text[])
                 AS v (dev_eui, name, city, supplier_id, dataset, named, profile, latitude,
                       longitude, placement, area, level_empty, level_full, privacy)
        ), updated AS (
            UPDATE device d SET
                name = v.name, city = v.city, supplier_id = v.supplier_id,
                dataset_id = CASE WHEN NOT v.named AND d.supplier_id = v.supplier_id
                                  THEN d.dataset_id ELSE ds.id END,
                profile = v.profile, latitude = v.latitude, longitude = v.longitude,
                placement = v.placement, area = v.area, level_empty = v.level_empty,
                level_full = v.level_full, privacy = v.privacy,
                updated_at = now()
            FROM v JOIN dataset ds ON ds.slug = v.dataset
            WHERE d.dev_eui = v.dev_eui
            RETURNING d.id
        ), inserted AS (
            INSERT INTO device (dev_eui, name, city, supplier_id, dataset_id, profile, latitude,
                                longitude, placement, area, level_empty, level_full, privacy)
            SELECT v.dev_eui, v.name, v.city, v.supplier_id, ds.id, v.profile, v.latitude,
                   v.longitude, v.placement, v.area, v.level_empty, v.level_full, v.privacy
            FROM v JOIN dataset ds ON ds.slug = v.dataset
            WHERE NOT EXISTS (SELECT 1 FROM device d WHERE d.dev_eui = v.dev_eui)
            -- a device registered meanwhile by a concurrent import
            ON CONFLICT (dev_eui) DO UPDATE SET
                name = excluded.name, city = excluded.city, supplier_id = excluded.supplier_id,
                dataset_id = excluded.dataset_id, profile = excluded.profile,
                latitude = excluded.latitude, longitude = excluded.longitude,
                placement = excluded.placement, area = excluded.area,
                level_empty = excluded.level_empty, level_full = excluded.level_full,
                privacy = excluded.privacy,
                updated_at = now()
            RETURNING (xmax = 0) AS fresh
        )
        SELECT (SELECT count(*) FROM inserted WHERE fresh),
               (SELECT count(*) FROM inserted WHERE NOT fresh) + (SELECT count(*) FROM updated)
        """,
        params,
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]))


def select_devices(conn: psycopg.Connection, *, dev_euis: Sequence[str]) -> dict[str, Device]:
    """Return dev_eui -> the registered device, as a registry file describes it."""
    rows = conn.execute(
        """
        SELECT d.dev_eui, d.name, d.city, s.slug, d.profile, d.latitude, d.longitude, ds.slug,
               d.placement, d.area, d.level_empty, d.level_full, d.privacy
        FROM device d JOIN supplier s ON s.id = d.supplier_id
        JOIN dataset ds ON ds.id = d.dataset_id
        WHERE d.dev_eui = ANY(%s)
        """,
        (list(dev_euis),),
    ).fetchall()
    return {
        row[0]: Device(
            dev_eui=row[0],
            name=row[1],
            city=City(row[2]),
            supplier=row[3],
            profile=row[4],
            location=Location(row[5], row[6]) if row[5] is not None else None,
            dataset=row[7],
            placement=Placement(row[8]) if row[8] is not None else None,
            area=row[9],
            level=LevelCalibration(row[10], row[11]) if row[10] is not None else None,
            privacy=PrivacyClass(row[12]) if row[12] is not None else None,
        )
        for row in rows
    }


def select_registry(conn: psycopg.Connection) -> dict[str, RegistryEntry]:
    """Load dev_eui -> registry entry for every device."""
    rows = conn.execute("SELECT id, dev_eui, profile, city FROM device").fetchall()
    return {row[1]: RegistryEntry(*row) for row in rows}


def mark_seen(conn: psycopg.Connection, *, last_seen: Mapping[int, datetime]) -> None:
    """Move each device's last_seen_at forward to the given time (never back)."""
    if not last_seen:
        return
    # Concurrent ingest workers update overlapping devices: lock the rows in id order first,
    # or two batches that meet in a different order deadlock (and one is retried).
    ids = sorted(last_seen)
    conn.execute(
        """
        WITH seen (id, at) AS (
            SELECT * FROM unnest(%(id)s::int[], %(at)s::timestamptz[])
        ), locked AS (
            SELECT device.id FROM device JOIN seen USING (id)
            WHERE device.last_seen_at IS NULL OR device.last_seen_at < seen.at
            ORDER BY device.id
            FOR NO KEY UPDATE OF device
        )
        UPDATE device SET last_seen_at = seen.at
        FROM seen JOIN locked USING (id)
        WHERE device.id = seen.id
          AND (device.last_seen_at IS NULL OR device.last_seen_at < seen.at)
        """,
        {"id": ids, "at": [last_seen[i] for i in ids]},
    )


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device as the API shows it, with its supplier's slug and name."""

    id: int
    dev_eui: str
    name: str
    city: str
    supplier_slug: str
    supplier_name: str
    dataset_id: int
    dataset_slug: str
    profile: str
    latitude: float | None
    longitude: float | None
    last_seen_at: datetime | None
    placement: str | None
    area: str | None
    privacy: str  # datahub.privacy.PrivacyClass
    protected: bool  # shown protected to the caller (storage/privacy.py)
    shown_id: str  # the DevEUI, or the public id of a protected device


# A `DeviceRow` of the device `d` (of `DEVICE_TABLES`).
DEVICE_COLUMNS = f"""
    d.id, d.dev_eui, d.name, d.city, s.slug, s.name, ds.id, ds.slug, d.profile, d.latitude,
    d.longitude, d.last_seen_at, d.placement, d.area, coalesce(d.privacy, ds.privacy),
    {privacy.protected("d")}, {privacy.shown_id("d")}
"""
DEVICE_TABLES = """
    device d JOIN supplier s ON s.id = d.supplier_id JOIN dataset ds ON ds.id = d.dataset_id
"""


def device_statement(
    *,
    dev_eui: str | None = None,
    public_id: str | None = None,
    dataset_ids: Sequence[int] | None = None,
    granted: frozenset[int] | None = None,
) -> Statement[DeviceRow | None]:
    """The statement that returns one device by its DevEUI (upper-case hex) or its public
    id, or None.

    `dataset_ids` hides the devices of any other dataset (None: hide none); `granted`
    (None: all) are the datasets whose protected devices the caller sees as they are:
    a protected device is found by its public id only, so that a DevEUI tried never
    tells whether a protected device has it.
    """
    where, params = one_device(dev_eui, public_id, dataset_ids, granted)
    return Statement(
        f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_TABLES} WHERE {where}",
        params,
        lambda rows: DeviceRow(*rows[0]) if rows else None,
    )


def one_device(
    dev_eui: str | None,
    public_id: str | None,
    dataset_ids: Sequence[int] | None,
    granted: frozenset[int] | None,
) -> tuple[str, dict[str, Any]]:
    """The condition and parameters that find one device (see `device_statement`)."""
    if (dev_eui is None) == (public_id is None):
        raise ValueError("pass dev_eui or public_id")
    found = (
        f"d.dev_eui = %(dev_eui)s AND NOT {privacy.protected('d')}"
        if dev_eui is not None
        else privacy.is_public_id_of("d", "public_id")
    )
    return f"{found} AND {VISIBLE_DEVICE}", {
        "dev_eui": dev_eui,
        "public_id": public_id,
        "dataset_ids": _ids(dataset_ids),
        "granted": privacy.granted_param(granted),
    }


def list_devices(
    conn: psycopg.Connection,
    *,
    city: str | None = None,
    supplier: str | None = None,
    profiles: Sequence[str] | None = None,
    dataset: str | None = None,
    dataset_ids: Sequence[int] | None = None,
    granted: frozenset[int] | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[DeviceRow]:
    """List devices ordered by the id they are shown by, filtered; `after` (a shown id)
    and `limit` page through them.

    `profiles` keeps only devices decoded by one of the given profiles (an empty
    sequence matches none); None means any profile. `dataset` is a dataset's slug;
    `dataset_ids` hides the devices of any other dataset (None: hide none); `granted` as
    for `get_device`.

    Devices shown by their DevEUI come first, walked along the DevEUI's index; devices
    shown by their public id (which sorts after every DevEUI) follow, each computed, and
    only once a page reaches them.
    """
    params: dict[str, object] = {
        "city": city,
        "supplier": supplier,
        "dataset": dataset,
        "dataset_ids": _ids(dataset_ids),
        "granted": privacy.granted_param(granted),
        "profiles": list(profiles) if profiles is not None else None,
        "limit": limit,
    }
    protected = privacy.protected("d")
    rows: list[tuple[Any, ...]] = []
    if after is None or not is_public_id(after):
        rows = conn.execute(
            f"""
            SELECT {DEVICE_COLUMNS} FROM {DEVICE_TABLES}
            WHERE {_LISTED} AND NOT {protected}
              AND (%(after)s::text IS NULL OR d.dev_eui > %(after)s)
            ORDER BY d.dev_eui
            LIMIT %(limit)s
            """,
            params | {"after": after},
        ).fetchall()
    if limit is None or len(rows) < limit:
        public = privacy.public_id_of("d")
        rows += conn.execute(
            f"""
            SELECT {DEVICE_COLUMNS} FROM {DEVICE_TABLES}
            WHERE {_LISTED} AND {protected}
              AND (%(after)s::text IS NULL OR {public} COLLATE "C" > %(after)s)
            ORDER BY {public} COLLATE "C"
            LIMIT %(limit)s
            """,
            params
            | {
                "after": after if after is not None and is_public_id(after) else None,
                "limit": None if limit is None else limit - len(rows),
            },
        ).fetchall()
    return [DeviceRow(*row) for row in rows]


# The filters of `list_devices` on a device `d`, its supplier `s` and dataset `ds`.
_LISTED = f"""
    (%(city)s::text IS NULL OR d.city = %(city)s)
    AND (%(supplier)s::text IS NULL OR s.slug = %(supplier)s)
    AND (%(dataset)s::text IS NULL OR ds.slug = %(dataset)s)
    AND {VISIBLE_DEVICE}
    AND (%(profiles)s::text[] IS NULL OR d.profile = ANY(%(profiles)s::text[]))
"""


def _ids(ids: Sequence[int] | None) -> list[int] | None:
    return list(ids) if ids is not None else None


@dataclass(frozen=True, slots=True)
class ShownDevice:
    """How a device is shown to one caller (storage/privacy.py)."""

    shown_id: str
    privacy: str  # datahub.privacy.PrivacyClass
    protected: bool


def select_shown(
    conn: psycopg.Connection, *, dev_euis: Collection[str], granted: frozenset[int] | None
) -> dict[str, ShownDevice]:
    """Return DevEUI -> how the device is shown to a caller with these grants."""
    if not dev_euis:
        return {}
    rows = conn.execute(
        f"""
        SELECT d.dev_eui, {privacy.shown_id("d")}, {privacy.privacy_of("d")},
               {privacy.protected("d")}
        FROM device d WHERE d.dev_eui = ANY(%(dev_euis)s::text[])
        """,
        {"dev_euis": list(dev_euis), "granted": privacy.granted_param(granted)},
    ).fetchall()
    return {row[0]: ShownDevice(*row[1:]) for row in rows}


def count_protected_personal(
    conn: psycopg.Connection,
    *,
    city: str,
    profiles: Sequence[str],
    dataset_ids: Sequence[int] | None,
    granted: frozenset[int] | None,
) -> int:
    """Count a city's personal devices of these profiles, in these datasets (None: all),
    that a caller with these grants sees protected."""
    row = conn.execute(
        f"""
        SELECT count(*) FROM device d
        WHERE d.city = %(city)s AND d.profile = ANY(%(profiles)s::text[]) AND {VISIBLE_DEVICE}
          AND {privacy.privacy_of("d")} = 'personal' AND {privacy.protected("d")}
        """,
        {
            "city": city,
            "profiles": list(profiles),
            "dataset_ids": _ids(dataset_ids),
            "granted": privacy.granted_param(granted),
        },
    ).fetchone()
    assert row is not None
    return int(row[0])
