"""The device_health and device_gateway tables, and what the health refresher reads to fill them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from datahub.ops.health import BATTERY_METRICS, DeviceHealth, GatewayLink, HeardUplink


def select_due_devices(
    conn: psycopg.Connection, *, now: datetime, min_age: timedelta, max_age: timedelta, limit: int
) -> list[tuple[int, str, datetime | None]]:
    """Return (device id, DevEUI, last seen) of devices whose health is missing or due, most
    due first.

    Due: heard since it was computed and computed at least `min_age` ago, or computed more
    than `max_age` ago (its windows moved on).
    """
    rows = conn.execute(
        """
        SELECT d.id, d.dev_eui, d.last_seen_at
        FROM device d LEFT JOIN device_health h ON h.device_id = d.id
        WHERE h.device_id IS NULL
           OR (d.last_seen_at IS DISTINCT FROM h.last_seen_at
               AND h.computed_at <= %(fresh)s)
           OR h.computed_at <= %(stale)s
        ORDER BY h.computed_at NULLS FIRST
        LIMIT %(limit)s
        """,
        {"fresh": now - min_age, "stale": now - max_age, "limit": limit},
    ).fetchall()
    return [(int(i), str(e), t) for i, e, t in rows]


# The receptions of an uplink `u` (radio JSON written by the ingest: numbers or null).
_RECEPTIONS = "jsonb_array_elements(u.radio->'gateways')"


def select_heard_uplinks(
    conn: psycopg.Connection, *, dev_euis: Sequence[str], since: datetime
) -> dict[str, list[HeardUplink]]:
    """Return each device's uplinks received after `since`, with the best RSSI and SNR any
    gateway heard each with (taken from the radio JSON by the database, not in Python)."""
    rows = conn.execute(
        f"""
        SELECT u.dev_eui, u.received_at, u.f_cnt, octet_length(u.payload),
               (u.radio->>'spreading_factor')::int, (u.radio->>'bandwidth')::int,
               (SELECT max((g->>'rssi')::float8) FROM {_RECEPTIONS} AS g),
               (SELECT max((g->>'snr')::float8) FROM {_RECEPTIONS} AS g)
        FROM uplink u
        WHERE u.dev_eui = ANY(%(dev_euis)s::text[]) AND u.received_at > %(since)s
        """,
        {"dev_euis": list(dev_euis), "since": since},
    ).fetchall()
    out: dict[str, list[HeardUplink]] = {e: [] for e in dev_euis}
    for dev_eui, at, f_cnt, size, sf, bw, rssi, snr in rows:
        out[dev_eui].append(HeardUplink(at, int(f_cnt), int(size), sf, bw, rssi, snr))
    return out


def select_gateway_links(
    conn: psycopg.Connection, *, dev_euis: Sequence[str], since: datetime, day_since: datetime
) -> dict[str, list[GatewayLink]]:
    """Return how each gateway heard each device after `since` (and after `day_since`):
    uplinks, when last, best and median RSSI and SNR, by gateway id.

    Aggregated by the database from the radio JSON: a tenth of the time of doing it in
    Python. The network (source) is the greatest name a gateway was heard through; one
    gateway feeds one network server.
    """
    rows = conn.execute(
        f"""
        SELECT u.dev_eui, r.g->>'gateway_id',
               max(u.source), max(u.city),
               count(*) FILTER (WHERE u.received_at > %(day_since)s), count(*),
               max(u.received_at),
               max((r.g->>'rssi')::float8),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.g->>'rssi')::float8),
               max((r.g->>'snr')::float8),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY (r.g->>'snr')::float8)
        FROM uplink u
        CROSS JOIN {_RECEPTIONS} AS r (g)
        WHERE u.dev_eui = ANY(%(dev_euis)s::text[]) AND u.received_at > %(since)s
          AND r.g->>'gateway_id' IS NOT NULL
        GROUP BY 1, 2
        ORDER BY 1, 2
        """,
        {"dev_euis": list(dev_euis), "since": since, "day_since": day_since},
    ).fetchall()
    out: dict[str, list[GatewayLink]] = {e: [] for e in dev_euis}
    for dev_eui, *fields in rows:
        out[dev_eui].append(GatewayLink(*fields))
    return out


def select_battery_readings(
    conn: psycopg.Connection, *, device_ids: Sequence[int], since: datetime
) -> dict[int, list[tuple[datetime, str, float]]]:
    """Return each device's battery readings (both battery metrics) since `since`."""
    rows = conn.execute(
        """
        SELECT r.device_id, r.time, r.metric, r.value
        FROM reading r
        WHERE r.device_id = ANY(%(ids)s::int[]) AND r.metric = ANY(%(metrics)s::text[])
          AND r.time > %(since)s
        """,
        {"ids": list(device_ids), "metrics": list(BATTERY_METRICS), "since": since},
    ).fetchall()
    out: dict[int, list[tuple[datetime, str, float]]] = {i: [] for i in device_ids}
    for device_id, time, metric, value in rows:
        out[device_id].append((time, metric, value))
    return out


def upsert_health(
    conn: psycopg.Connection, *, rows: Sequence[tuple[int, datetime | None, DeviceHealth]]
) -> None:
    """Replace the health rows and gateway links of (device id, last seen, health)."""
    if not rows:
        return
    ids = sorted(i for i, _, _ in rows)
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO device_health (
                device_id, computed_at, last_seen_at, frames_24h, lost_24h, frames_7d,
                lost_7d, resets_7d, learned_interval_s, rssi_median, rssi_worst, snr_median,
                snr_worst, data_rates, airtime_24h_s, battery_metric, battery_value,
                battery_time, battery_trend_per_day, battery_empty_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    %s, %s)
            ON CONFLICT (device_id) DO UPDATE SET
                computed_at = excluded.computed_at, last_seen_at = excluded.last_seen_at,
                frames_24h = excluded.frames_24h, lost_24h = excluded.lost_24h,
                frames_7d = excluded.frames_7d, lost_7d = excluded.lost_7d,
                resets_7d = excluded.resets_7d, learned_interval_s = excluded.learned_interval_s,
                rssi_median = excluded.rssi_median, rssi_worst = excluded.rssi_worst,
                snr_median = excluded.snr_median, snr_worst = excluded.snr_worst,
                data_rates = excluded.data_rates, airtime_24h_s = excluded.airtime_24h_s,
                battery_metric = excluded.battery_metric,
                battery_value = excluded.battery_value, battery_time = excluded.battery_time,
                battery_trend_per_day = excluded.battery_trend_per_day,
                battery_empty_at = excluded.battery_empty_at
            """,
            [
                (
                    device_id,
                    h.computed_at,
                    seen,
                    h.loss_24h.received,
                    h.loss_24h.lost,
                    h.loss_7d.received,
                    h.loss_7d.lost,
                    h.loss_7d.resets,
                    h.learned_interval_s,
                    h.rssi.median,
                    h.rssi.worst,
                    h.snr.median,
                    h.snr.worst,
                    Jsonb(h.data_rates),
                    h.airtime_24h_s,
                    h.battery.metric if h.battery else None,
                    h.battery.value if h.battery else None,
                    h.battery.time if h.battery else None,
                    h.battery.trend_per_day if h.battery else None,
                    h.battery.empty_at if h.battery else None,
                )
                for device_id, seen, h in sorted(rows, key=lambda r: r[0])
            ],
        )
        cur.execute("DELETE FROM device_gateway WHERE device_id = ANY(%s::int[])", (ids,))
        cur.executemany(
            """
            INSERT INTO device_gateway (
                device_id, gateway_id, source, city, uplinks_24h, uplinks_7d, last_heard_at,
                rssi_best, rssi_median, snr_best, snr_median)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    device_id,
                    g.gateway_id,
                    g.source,
                    g.city,
                    g.uplinks_24h,
                    g.uplinks_7d,
                    g.last_heard_at,
                    g.rssi_best,
                    g.rssi_median,
                    g.snr_best,
                    g.snr_median,
                )
                for device_id, _, h in rows
                for g in h.gateways
            ],
        )


# What the operator views read -------------------------------------------------------------

# Devices of one supplier only when `supplier_id` is given (a supplier's key).
_SCOPE = """
    (%(supplier_id)s::int IS NULL OR d.supplier_id = %(supplier_id)s)
    AND (%(city)s::text IS NULL OR d.city = %(city)s)
    AND (%(supplier)s::text IS NULL OR s.slug = %(supplier)s)
    AND (%(dataset)s::text IS NULL OR ds.slug = %(dataset)s)
    AND (%(profile)s::text IS NULL OR d.profile = %(profile)s)
    AND (%(dev_eui)s::text IS NULL OR d.dev_eui = %(dev_eui)s)
"""


@dataclass(frozen=True, slots=True)
class DeviceHealthRow:
    """A device with its health row, if computed yet."""

    device_id: int
    dev_eui: str
    name: str
    city: str
    supplier_slug: str
    dataset_slug: str
    profile: str
    latitude: float | None
    longitude: float | None
    last_seen_at: datetime | None
    computed_at: datetime | None
    frames_24h: int | None
    lost_24h: int | None
    frames_7d: int | None
    lost_7d: int | None
    resets_7d: int | None
    learned_interval_s: int | None
    rssi_median: float | None
    rssi_worst: float | None
    snr_median: float | None
    snr_worst: float | None
    data_rates: dict[str, int] | None
    airtime_24h_s: float | None
    battery_metric: str | None
    battery_value: float | None
    battery_time: datetime | None
    battery_trend_per_day: float | None
    battery_empty_at: datetime | None


def list_device_health(
    conn: psycopg.Connection,
    *,
    supplier_id: int | None = None,
    city: str | None = None,
    supplier: str | None = None,
    dataset: str | None = None,
    profile: str | None = None,
    dev_eui: str | None = None,
) -> list[DeviceHealthRow]:
    """List devices with their health, by DevEUI; `supplier_id` keeps one supplier's only."""
    rows = conn.execute(
        f"""
        SELECT d.id, d.dev_eui, d.name, d.city, s.slug, ds.slug, d.profile, d.latitude,
               d.longitude, d.last_seen_at, h.computed_at, h.frames_24h, h.lost_24h,
               h.frames_7d, h.lost_7d, h.resets_7d, h.learned_interval_s, h.rssi_median,
               h.rssi_worst, h.snr_median, h.snr_worst, h.data_rates, h.airtime_24h_s,
               h.battery_metric, h.battery_value, h.battery_time, h.battery_trend_per_day,
               h.battery_empty_at
        FROM device d
        JOIN supplier s ON s.id = d.supplier_id
        JOIN dataset ds ON ds.id = d.dataset_id
        LEFT JOIN device_health h ON h.device_id = d.id
        WHERE {_SCOPE}
        ORDER BY d.dev_eui
        """,
        {
            "supplier_id": supplier_id,
            "city": city,
            "supplier": supplier,
            "dataset": dataset,
            "profile": profile,
            "dev_eui": dev_eui,
        },
    ).fetchall()
    return [DeviceHealthRow(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class GatewayLinkRow:
    """One gateway's view of one device (device_gateway), with the device's location."""

    dev_eui: str
    name: str
    latitude: float | None
    longitude: float | None
    gateway_id: str
    source: str
    city: str
    uplinks_24h: int
    uplinks_7d: int
    last_heard_at: datetime
    rssi_best: float | None
    rssi_median: float | None
    snr_best: float | None
    snr_median: float | None


def list_gateway_links(
    conn: psycopg.Connection,
    *,
    supplier_id: int | None = None,
    city: str | None = None,
    dev_eui: str | None = None,
) -> list[GatewayLinkRow]:
    """List the (device, gateway) links, of one supplier's devices when `supplier_id` is given."""
    rows = conn.execute(
        """
        SELECT d.dev_eui, d.name, d.latitude, d.longitude, g.gateway_id, g.source, g.city,
               g.uplinks_24h, g.uplinks_7d, g.last_heard_at, g.rssi_best, g.rssi_median,
               g.snr_best, g.snr_median
        FROM device_gateway g JOIN device d ON d.id = g.device_id
        WHERE (%(supplier_id)s::int IS NULL OR d.supplier_id = %(supplier_id)s)
          AND (%(city)s::text IS NULL OR g.city = %(city)s)
          AND (%(dev_eui)s::text IS NULL OR d.dev_eui = %(dev_eui)s)
        ORDER BY g.gateway_id, d.dev_eui
        """,
        {"supplier_id": supplier_id, "city": city, "dev_eui": dev_eui},
    ).fetchall()
    return [GatewayLinkRow(*row) for row in rows]


def select_gateway_last_heard(conn: psycopg.Connection) -> dict[str, tuple[str, datetime]]:
    """Return gateway id -> (city, when it last heard any registered device)."""
    rows = conn.execute(
        """
        SELECT DISTINCT ON (gateway_id) gateway_id, city, last_heard_at
        FROM device_gateway
        ORDER BY gateway_id, last_heard_at DESC
        """
    ).fetchall()
    return {g: (c, t) for g, c, t in rows}
