"""The uplink and uplink_dedup tables: every uplink received, kept raw for audit and re-decoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from datahub.domain import DecodeStatus, Uplink


@dataclass(frozen=True, slots=True)
class UplinkRow:
    """An uplink with what the pipeline made of it."""

    uplink: Uplink
    device_id: int | None
    status: DecodeStatus
    decoder: str | None = None
    error: str | None = None


def claim_keys(conn: psycopg.Connection, *, keys: Sequence[tuple[bytes, datetime]]) -> set[bytes]:
    """Record dedup keys; return those not seen before (the uplinks to store now)."""
    if not keys:
        return set()
    rows = conn.execute(
        """
        INSERT INTO uplink_dedup (dedup_key, received_at)
        SELECT * FROM unnest(%s::bytea[], %s::timestamptz[])
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING dedup_key
        """,
        ([k for k, _ in keys], [t for _, t in keys]),
    ).fetchall()
    return {bytes(key) for (key,) in rows}


def insert_uplinks(conn: psycopg.Connection, *, rows: Sequence[UplinkRow]) -> None:
    """Store uplinks whose keys were just claimed, by binary COPY."""
    if not rows:
        return
    with (
        conn.cursor() as cur,
        cur.copy(
            """
        COPY uplink (received_at, dedup_key, dev_eui, device_id, source, city, f_port, f_cnt,
                     dev_addr, payload, radio, ns_decoded, decode_status, decode_error, decoder)
        FROM STDIN (FORMAT BINARY)
        """
        ) as copy,
    ):
        copy.set_types(
            [
                "timestamptz",
                "bytea",
                "text",
                "int4",
                "text",
                "text",
                "int2",
                "int8",
                "text",
                "bytea",
                "jsonb",
                "jsonb",
                "text",
                "text",
                "text",
            ]
        )
        for row in rows:
            u = row.uplink
            copy.write_row(
                (
                    u.received_at,
                    u.dedup_key,
                    u.dev_eui,
                    row.device_id,
                    u.source,
                    str(u.city),
                    u.f_port,
                    u.f_cnt,
                    u.dev_addr,
                    u.payload,
                    Jsonb(u.radio.as_json()),
                    Jsonb(u.ns_decoded) if u.ns_decoded is not None else None,
                    str(row.status),
                    row.error,
                    row.decoder,
                )
            )


def count_uplinks(conn: psycopg.Connection) -> dict[str, int]:
    """Count stored uplinks by decode status."""
    rows = conn.execute("SELECT decode_status, count(*) FROM uplink GROUP BY 1").fetchall()
    return {status: count for status, count in rows}
