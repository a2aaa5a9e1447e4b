"""The device table: the registry of which profile decodes a device, and whose it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from datahub.domain import Device


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What the ingest needs to know about a device."""

    device_id: int
    dev_eui: str
    profile: str
    city: str


def upsert_devices(
    conn: psycopg.Connection, *, devices: Sequence[Device], supplier_ids: Mapping[str, int]
) -> tuple[int, int]:
    """Insert or update devices by dev_eui; return (inserted, updated)."""
    if not devices:
        return (0, 0)
    rows = conn.execute(
        """
        INSERT INTO device (dev_eui, name, city, supplier_id, profile, latitude, longitude)
        SELECT * FROM unnest(%(dev_eui)s::text[], %(name)s::text[], %(city)s::text[],
                             %(supplier_id)s::int[], %(profile)s::text[],
                             %(latitude)s::float8[], %(longitude)s::float8[])
        ON CONFLICT (dev_eui) DO UPDATE SET
            name = excluded.name, city = excluded.city, supplier_id = excluded.supplier_id,
            profile = excluded.profile, latitude = excluded.latitude,
            longitude = excluded.longitude, updated_at = now()
        RETURNING (xmax = 0) AS inserted
        """,
        {
            "dev_eui": [d.dev_eui for d in devices],
            "name": [d.name for d in devices],
            "city": [str(d.city) for d in devices],
            "supplier_id": [supplier_ids[d.supplier] for d in devices],
            "profile": [d.profile for d in devices],
            "latitude": [d.location.latitude if d.location else None for d in devices],
            "longitude": [d.location.longitude if d.location else None for d in devices],
        },
    ).fetchall()
    inserted = sum(1 for (was_inserted,) in rows if was_inserted)
    return (inserted, len(rows) - inserted)


def select_registry(conn: psycopg.Connection) -> dict[str, RegistryEntry]:
    """Load dev_eui -> registry entry for every device."""
    rows = conn.execute("SELECT id, dev_eui, profile, city FROM device").fetchall()
    return {row[1]: RegistryEntry(*row) for row in rows}


def mark_seen(conn: psycopg.Connection, *, last_seen: Mapping[int, datetime]) -> None:
    """Move each device's last_seen_at forward to the given time (never back)."""
    if not last_seen:
        return
    conn.execute(
        """
        UPDATE device SET last_seen_at = seen.at
        FROM unnest(%(id)s::int[], %(at)s::timestamptz[]) AS seen (id, at)
        WHERE device.id = seen.id
          AND (device.last_seen_at IS NULL OR device.last_seen_at < seen.at)
        """,
        {"id": list(last_seen), "at": list(last_seen.values())},
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
    profile: str
    latitude: float | None
    longitude: float | None
    last_seen_at: datetime | None


_DEVICE_COLUMNS = """
    d.id, d.dev_eui, d.name, d.city, s.slug, s.name, d.profile, d.latitude, d.longitude,
    d.last_seen_at
"""


def get_device(conn: psycopg.Connection, *, dev_eui: str) -> DeviceRow | None:
    """Return one device by its DevEUI (upper-case hex), or None."""
    row = conn.execute(
        f"""
        SELECT {_DEVICE_COLUMNS}
        FROM device d JOIN supplier s ON s.id = d.supplier_id
        WHERE d.dev_eui = %s
        """,
        (dev_eui,),
    ).fetchone()
    return DeviceRow(*row) if row is not None else None


def list_devices(
    conn: psycopg.Connection,
    *,
    city: str | None = None,
    supplier: str | None = None,
    profiles: Sequence[str] | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[DeviceRow]:
    """List devices ordered by DevEUI, filtered; `after` and `limit` page through them.

    `profiles` keeps only devices decoded by one of the given profiles (an empty
    sequence matches none); None means any profile.
    """
    rows = conn.execute(
        f"""
        SELECT {_DEVICE_COLUMNS}
        FROM device d JOIN supplier s ON s.id = d.supplier_id
        WHERE (%(city)s::text IS NULL OR d.city = %(city)s)
          AND (%(supplier)s::text IS NULL OR s.slug = %(supplier)s)
          AND (%(profiles)s::text[] IS NULL OR d.profile = ANY(%(profiles)s::text[]))
          AND (%(after)s::text IS NULL OR d.dev_eui > %(after)s)
        ORDER BY d.dev_eui
        LIMIT %(limit)s
        """,
        {
            "city": city,
            "supplier": supplier,
            "profiles": list(profiles) if profiles is not None else None,
            "after": after,
            "limit": limit,
        },
    ).fetchall()
    return [DeviceRow(*row) for row in rows]
