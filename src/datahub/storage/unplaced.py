"""What the ingest stored but could not place: uplinks of unknown devices, and uplinks whose
device has no decoder or whose decoder failed, per profile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True, slots=True)
class UnknownDeviceRow:
    """A DevEUI heard without being registered (uplinks with decode_status unknown_device)."""

    dev_eui: str
    uplinks: int
    first_seen: datetime
    last_seen: datetime
    source: str  # of the newest uplink
    city: str
    last_f_port: int | None
    last_payload: bytes
    gateways: list[str]
    registered: bool  # registered since: `datahub redecode` decodes what came before


def list_unknown_devices(
    conn: psycopg.Connection,
    *,
    since: datetime | None = None,
    city: str | None = None,
    source: str | None = None,
    after: str | None = None,
    limit: int = 1000,
) -> list[UnknownDeviceRow]:
    """List the DevEUIs of unknown-device uplinks by DevEUI, with counts and the newest one.

    The partial index on non-decoded uplinks finds them without reading the decoded ones.
    """
    rows = conn.execute(
        """
        WITH unknown AS (
            SELECT u.dev_eui, count(*) AS uplinks, min(u.received_at) AS first_seen,
                   max(u.received_at) AS last_seen
            FROM uplink u
            WHERE u.decode_status = 'unknown_device'
              AND (%(since)s::timestamptz IS NULL OR u.received_at >= %(since)s)
              AND (%(city)s::text IS NULL OR u.city = %(city)s)
              AND (%(source)s::text IS NULL OR u.source = %(source)s)
              AND (%(after)s::text IS NULL OR u.dev_eui > %(after)s)
            GROUP BY u.dev_eui
            ORDER BY u.dev_eui
            LIMIT %(limit)s
        )
        SELECT k.dev_eui, k.uplinks, k.first_seen, k.last_seen, n.source, n.city, n.f_port,
               n.payload,
               ARRAY(
                   SELECT DISTINCT g->>'gateway_id'
                   FROM uplink h CROSS JOIN jsonb_array_elements(h.radio->'gateways') AS g
                   WHERE h.dev_eui = k.dev_eui AND h.decode_status = 'unknown_device'
                     AND h.received_at >= k.first_seen AND g->>'gateway_id' IS NOT NULL
                   ORDER BY 1
               ),
               EXISTS (SELECT 1 FROM device d WHERE d.dev_eui = k.dev_eui)
        FROM unknown k
        CROSS JOIN LATERAL (
            SELECT u.source, u.city, u.f_port, u.payload FROM uplink u
            WHERE u.dev_eui = k.dev_eui AND u.received_at = k.last_seen
              AND u.decode_status = 'unknown_device'
            LIMIT 1
        ) AS n
        ORDER BY k.dev_eui
        """,
        {"since": since, "city": city, "source": source, "after": after, "limit": limit},
    ).fetchall()
    return [
        UnknownDeviceRow(e, n, first, last, src, c, port, bytes(payload), list(gws), reg)
        for e, n, first, last, src, c, port, payload, gws, reg in rows
    ]


@dataclass(frozen=True, slots=True)
class DecodeFailureRow:
    """Uplinks of registered devices that gave no readings, per profile and status."""

    profile: str
    status: str  # failed | no_decoder
    uplinks: int
    devices: int
    first_seen: datetime
    last_seen: datetime
    last_error: str | None
    last_decoder: str | None


def list_decode_failures(
    conn: psycopg.Connection, *, since: datetime | None = None, profile: str | None = None
) -> list[DecodeFailureRow]:
    """Count failed and undecodable uplinks per profile, with the newest error."""
    rows = conn.execute(
        """
        SELECT d.profile, u.decode_status, count(*), count(DISTINCT u.dev_eui),
               min(u.received_at), max(u.received_at),
               (array_agg(u.decode_error ORDER BY u.received_at DESC))[1],
               (array_agg(u.decoder ORDER BY u.received_at DESC))[1]
        FROM uplink u JOIN device d ON d.id = u.device_id
        WHERE u.decode_status IN ('failed', 'no_decoder')
          AND (%(since)s::timestamptz IS NULL OR u.received_at >= %(since)s)
          AND (%(profile)s::text IS NULL OR d.profile = %(profile)s)
        GROUP BY 1, 2
        ORDER BY 1, 2
        """,
        {"since": since, "profile": profile},
    ).fetchall()
    return [DecodeFailureRow(*row) for row in rows]


def count_unknown_uplinks(
    conn: psycopg.Connection, *, dev_euis: list[str]
) -> dict[str, tuple[int, datetime]]:
    """Return DevEUI -> (unknown-device uplinks, the first one's time) for these DevEUIs."""
    rows = conn.execute(
        """
        SELECT dev_eui, count(*), min(received_at) FROM uplink
        WHERE decode_status = 'unknown_device' AND dev_eui = ANY(%s::text[])
        GROUP BY dev_eui
        """,
        (dev_euis,),
    ).fetchall()
    return {e: (int(n), first) for e, n, first in rows}
