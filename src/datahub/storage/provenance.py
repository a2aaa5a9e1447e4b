"""The decoder table: the names of the decoders (and mappings) that produced readings."""

from __future__ import annotations

from collections.abc import Collection

import psycopg


def select_decoder_ids(conn: psycopg.Connection, *, names: Collection[str]) -> dict[str, int]:
    """Return name -> id for the decoders already recorded."""
    if not names:
        return {}
    rows = conn.execute(
        "SELECT name, id FROM decoder WHERE name = ANY(%s::text[])", (list(names),)
    ).fetchall()
    return {name: decoder_id for name, decoder_id in rows}


def insert_decoders(conn: psycopg.Connection, *, names: Collection[str]) -> dict[str, int]:
    """Record decoder names not recorded yet; return name -> id for all of them.

    Insert only names a select did not find: every attempted insert takes a value of the
    smallint identity, also when ON CONFLICT then skips the row.
    """
    ids = select_decoder_ids(conn, names=names)
    missing = sorted(set(names) - ids.keys())
    if missing:
        rows = conn.execute(
            """
            INSERT INTO decoder (name) SELECT unnest(%s::text[])
            ON CONFLICT (name) DO NOTHING
            RETURNING name, id
            """,
            (missing,),
        ).fetchall()
        ids.update({name: decoder_id for name, decoder_id in rows})
        if len(ids) < len(set(names)):
            # Another transaction inserted a name meanwhile; this statement's snapshot sees it.
            ids.update(select_decoder_ids(conn, names=set(names) - ids.keys()))
    return ids
