"""The privacy rule in SQL (datahub/privacy.py is the rule): a device's class, its public
id, its snapped position, and the key the public ids are made with.

The public id is HMAC-SHA-256 (RFC 2104) computed with PostgreSQL's built-in sha256()
from the padded keys in `privacy_key`, so that queries can filter and page by it, and
no process needs the key in memory. datahub.privacy.public_id computes the same.
"""

from __future__ import annotations

import psycopg

from datahub.privacy import PUBLIC_ID_HEX, PUBLIC_ID_PREFIX, hmac_pads


def privacy_of(d: str) -> str:
    """The class of device row `d`: its own, or its dataset's."""
    return (
        f"coalesce({d}.privacy, (SELECT pc.privacy FROM dataset pc WHERE pc.id = {d}.dataset_id))"
    )


def protected(d: str, granted: str = "granted") -> str:
    """Whether device row `d` is shown protected: its class protects it, and the int[]
    parameter named `granted` (the datasets the caller holds a grant for; NULL: all)
    does not hold its dataset."""
    return (
        f"({privacy_of(d)} <> 'public_infrastructure' AND %({granted})s::int[] IS NOT NULL"
        f" AND NOT ({d}.dataset_id = ANY(%({granted})s::int[])))"
    )


def shown_id(d: str, granted: str = "granted") -> str:
    """The id device row `d` is shown by: its public id if protected, else its DevEUI.

    Public ids sort after every DevEUI ('p' > 'F'), so ordering by the shown id tells
    nothing of a protected device's DevEUI.
    """
    return f"CASE WHEN {protected(d, granted)} THEN {public_id_of(d)} ELSE {d}.dev_eui END"


def is_public_id_of(d: str, param: str) -> str:
    """Whether parameter `param` is device row `d`'s public id (its class protects it)."""
    return f"({privacy_of(d)} <> 'public_infrastructure' AND {public_id_of(d)} = %({param})s)"


def granted_param(granted: frozenset[int] | None) -> list[int] | None:
    """The value of the `granted` parameter."""
    return sorted(granted) if granted is not None else None


def public_id_of(d: str) -> str:
    """The public id of device row `d`, whatever its class."""
    return (
        f"'{PUBLIC_ID_PREFIX}' || left(encode(sha256("
        "(SELECT pk.outer_pad FROM privacy_key pk) || sha256("
        f"(SELECT pk.inner_pad FROM privacy_key pk) || convert_to({d}.dev_eui, 'UTF8'))"
        f"), 'hex'), {PUBLIC_ID_HEX})"
    )


def snapped(value: str, step: str) -> str:
    """`value` (a latitude or longitude) snapped to its cell's centre on a grid of `step`
    degrees: the operations of datahub.privacy.Grid.snap, in its order."""
    return f"((floor({value} / {step}) + 0.5) * {step})"


def get_key_pads(conn: psycopg.Connection) -> tuple[bytes, bytes] | None:
    """Return the public ids' (inner, outer) padded keys, or None before the migration."""
    row = conn.execute("SELECT inner_pad, outer_pad FROM privacy_key").fetchone()
    return (bytes(row[0]), bytes(row[1])) if row is not None else None


def set_key(conn: psycopg.Connection, *, key: bytes) -> bool:
    """Make `key` the key of the public ids; return whether it changed them."""
    inner, outer = hmac_pads(key)
    row = conn.execute(
        """
        UPDATE privacy_key SET inner_pad = %s, outer_pad = %s, set_at = now()
        WHERE (inner_pad, outer_pad) IS DISTINCT FROM (%s::bytea, %s::bytea)
        RETURNING id
        """,
        (inner, outer, inner, outer),
    ).fetchone()
    return row is not None
