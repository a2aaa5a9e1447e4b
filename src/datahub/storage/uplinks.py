"""The uplink and uplink_dedup tables: every uplink received, kept raw for audit and re-decoding."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from datahub.domain import DecodeStatus, Uplink


@dataclass(slots=True)  # not frozen: one per uplink ingested, built 5x faster
class UplinkRow:
    """An uplink with what the pipeline made of it."""

    uplink: Uplink
    device_id: int | None
    status: DecodeStatus
    decoder: str | None = None
    error: str | None = None


def claim_keys(
    conn: psycopg.Connection,
    *,
    keys: Sequence[tuple[bytes, datetime]],
    digests: Mapping[bytes, bytes] | None = None,
    legacy_keys: Mapping[bytes, bytes] | None = None,
) -> set[bytes]:
    """Record dedup keys; return those not seen before (the uplinks to store now).

    Each key comes with its uplink's received_at, and is kept with the digest of its
    uplink's content from `digests`. `legacy_keys` gives, for uplinks that may have been
    stored under the key scheme before migration 0008, their key of that scheme: stored
    with the same received_at, it is the same uplink, and its key is not claimed (see
    `select_legacy_until`).
    """
    if not keys:
        return set()
    digests = digests or {}
    # In key order, so that two writers claiming overlapping keys (the ingest and a back-fill)
    # lock them in the same order and cannot deadlock.
    keys = sorted(keys)
    params = ([k for k, _ in keys], [t for _, t in keys], [digests.get(k) for k, _ in keys])
    if not legacy_keys:
        rows = conn.execute(
            """
            INSERT INTO uplink_dedup (dedup_key, received_at, content_digest)
            SELECT * FROM unnest(%s::bytea[], %s::timestamptz[], %s::bytea[])
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING dedup_key
            """,
            params,
        ).fetchall()
    else:
        rows = conn.execute(
            """
            INSERT INTO uplink_dedup (dedup_key, received_at, content_digest)
            SELECT n.dedup_key, n.received_at, n.content_digest
            FROM unnest(%s::bytea[], %s::timestamptz[], %s::bytea[], %s::bytea[])
                AS n (dedup_key, received_at, content_digest, legacy_key)
            WHERE n.legacy_key IS NULL OR NOT EXISTS (
                SELECT FROM uplink_dedup d
                WHERE d.dedup_key = n.legacy_key AND d.received_at = n.received_at
            )
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING dedup_key
            """,
            (*params, [legacy_keys.get(k) for k, _ in keys]),
        ).fetchall()
    return {bytes(key) for (key,) in rows}


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    """A dedup key as recorded: its uplink's received_at and the digest of its content."""

    received_at: datetime
    content_digest: bytes | None  # None: claimed before migration 0008


def select_claimed(conn: psycopg.Connection, *, keys: Collection[bytes]) -> dict[bytes, ClaimedKey]:
    """Return the recorded dedup keys among `keys`."""
    rows = conn.execute(
        """
        SELECT dedup_key, received_at, content_digest FROM uplink_dedup
        WHERE dedup_key = ANY(%s::bytea[])
        """,
        (list(keys),),
    ).fetchall()
    return {
        bytes(key): ClaimedKey(at, bytes(digest) if digest is not None else None)
        for key, at, digest in rows
    }


def select_legacy_until(conn: psycopg.Connection) -> datetime | None:
    """Return the latest received_at an uplink stored under the previous key scheme can have.

    Migration 0008 changed the ttn-v3 session key; uplinks received until this time may be
    stored under the key before it. None: nothing was stored before the change.
    """
    row = conn.execute("SELECT received_until FROM uplink_dedup_legacy").fetchone()
    return row[0] if row is not None else None


@dataclass(frozen=True, slots=True)
class StoredContent:
    """What a stored uplink carries that a redelivery repeats."""

    dev_eui: str
    f_port: int | None
    f_cnt: int
    payload: bytes


def select_contents(
    conn: psycopg.Connection, *, keys: Mapping[bytes, datetime]
) -> dict[bytes, StoredContent]:
    """Return the content of the stored uplinks with these keys and received_at, by key.

    One index probe per key: a join would read every chunk of the `uplink` hypertable.
    """
    rows = conn.execute(
        """
        SELECT n.dedup_key, u.dev_eui, u.f_port, u.f_cnt, u.payload
        FROM unnest(%s::bytea[], %s::timestamptz[]) AS n (dedup_key, received_at)
        CROSS JOIN LATERAL (
            SELECT dev_eui, f_port, f_cnt, payload FROM uplink
            WHERE received_at = n.received_at AND dedup_key = n.dedup_key
            LIMIT 1
        ) u
        """,
        (list(keys), list(keys.values())),
    ).fetchall()
    return {
        bytes(key): StoredContent(eui, port, f_cnt, bytes(payload))
        for key, eui, port, f_cnt, payload in rows
    }


def prune_dedup_keys(conn: psycopg.Connection, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` dedup keys of uplinks received before `before`, oldest first;
    return how many. Keys another transaction holds are skipped, not waited for."""
    cur = conn.execute(
        """
        DELETE FROM uplink_dedup
        WHERE dedup_key IN (
            SELECT dedup_key FROM uplink_dedup
            WHERE received_at < %s
            ORDER BY received_at
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        """,
        (before, limit),
    )
    return cur.rowcount


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


@dataclass(frozen=True, slots=True)
class StoredUplink:
    """A stored uplink as re-decoding needs it: its key, payload and what was made of it."""

    received_at: datetime
    dedup_key: bytes
    dev_eui: str
    device_id: int | None
    f_port: int | None
    payload: bytes
    status: DecodeStatus
    decoder: str | None
    error: str | None


# Statuses of uplinks that have no readings yet but may get some once the registry or the
# catalog knows their device.
PENDING = (DecodeStatus.UNKNOWN_DEVICE, DecodeStatus.NO_DECODER, DecodeStatus.FAILED)


def _redecode_filter(
    *,
    profile: str | None,
    dev_eui: str | None,
    pending: bool,
    since: datetime | None,
    until: datetime | None,
) -> tuple[sql.Composable, dict[str, object]]:
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, object] = {}
    if profile is not None:
        where.append(
            sql.SQL("u.dev_eui IN (SELECT dev_eui FROM device WHERE profile = %(profile)s)")
        )
        params["profile"] = profile
    if dev_eui is not None:
        where.append(sql.SQL("u.dev_eui = %(dev_eui)s"))
        params["dev_eui"] = dev_eui
    if pending:
        where.append(sql.SQL("u.decode_status = ANY(%(pending)s::text[])"))
        params["pending"] = [str(status) for status in PENDING]
    if since is not None:
        where.append(sql.SQL("u.received_at >= %(since)s"))
        params["since"] = since
    if until is not None:
        where.append(sql.SQL("u.received_at < %(until)s"))
        params["until"] = until
    return sql.SQL(" AND ").join(where), params


def select_for_redecode(
    conn: psycopg.Connection,
    *,
    profile: str | None = None,
    dev_eui: str | None = None,
    pending: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, bytes] | None = None,
    limit: int,
) -> list[StoredUplink]:
    """Select uplinks in (received_at, dedup_key) order, after a keyset position.

    Filters combine: uplinks of devices registered with `profile`, of `dev_eui`, only
    `pending` ones (see PENDING), received in [since, until).
    """
    where, params = _redecode_filter(
        profile=profile, dev_eui=dev_eui, pending=pending, since=since, until=until
    )
    if after is not None:
        where = sql.SQL(
            "{} AND (u.received_at, u.dedup_key) > (%(after_at)s, %(after_key)s)"
        ).format(where)
        params["after_at"], params["after_key"] = after
    params["limit"] = limit
    rows = conn.execute(
        sql.SQL(
            """
            SELECT u.received_at, u.dedup_key, u.dev_eui, u.device_id, u.f_port, u.payload,
                   u.decode_status, u.decoder, u.decode_error
            FROM uplink u
            WHERE {where}
            ORDER BY u.received_at, u.dedup_key
            LIMIT %(limit)s
            """
        ).format(where=where),
        params,
    ).fetchall()
    return [
        StoredUplink(
            at, bytes(key), eui, device_id, port, bytes(payload), DecodeStatus(st), dec, err
        )
        for at, key, eui, device_id, port, payload, st, dec, err in rows
    ]


def count_for_redecode(
    conn: psycopg.Connection,
    *,
    profile: str | None = None,
    dev_eui: str | None = None,
    pending: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Count the uplinks `select_for_redecode` walks through with the same filters."""
    where, params = _redecode_filter(
        profile=profile, dev_eui=dev_eui, pending=pending, since=since, until=until
    )
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM uplink u WHERE {where}").format(where=where), params
    ).fetchone()
    return int(row[0]) if row is not None else 0


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What re-decoding made of a stored uplink, identified by its primary key."""

    received_at: datetime
    dedup_key: bytes
    device_id: int | None
    status: DecodeStatus
    decoder: str | None
    error: str | None


def mark_decoded(conn: psycopg.Connection, *, results: Sequence[DecodeResult]) -> None:
    """Record what re-decoding made of uplinks: device, decode status, decoder and error."""
    if not results:
        return
    conn.execute(
        """
        UPDATE uplink u SET
            device_id = r.device_id, decode_status = r.status, decoder = r.decoder,
            decode_error = r.error
        FROM unnest(%s::timestamptz[], %s::bytea[], %s::int[], %s::text[], %s::text[],
                    %s::text[]) AS r (received_at, dedup_key, device_id, status, decoder, error)
        WHERE u.received_at = r.received_at AND u.dedup_key = r.dedup_key
        """,
        (
            [r.received_at for r in results],
            [r.dedup_key for r in results],
            [r.device_id for r in results],
            [str(r.status) for r in results],
            [r.decoder for r in results],
            [r.error for r in results],
        ),
    )


def count_uplinks(conn: psycopg.Connection) -> dict[str, int]:
    """Count stored uplinks by decode status."""
    rows = conn.execute("SELECT decode_status, count(*) FROM uplink GROUP BY 1").fetchall()
    return {status: count for status, count in rows}
