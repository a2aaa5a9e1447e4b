"""Who may read what: API keys, grants and visible datasets, and per-second rate windows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from datahub.storage.db import Statement


@dataclass(frozen=True, slots=True)
class KeyRow:
    """An API key with its consumer and the datasets that consumer may read."""

    key_id: int
    key_hash: bytes
    scopes: tuple[str, ...]
    revoked_at: datetime | None
    consumer_id: int
    consumer_slug: str
    purpose: str
    supplier_id: int | None
    monthly_quota: int | None
    requests_per_s: int | None
    dataset_ids: tuple[int, ...]
    granted_ids: tuple[int, ...]  # granted to the consumer, or its own supplier's


def get_key(conn: psycopg.Connection, *, prefix: str) -> KeyRow | None:
    """Return the key with this prefix and what its consumer may read, or None.

    A consumer reads the open datasets, those granted to it, and its own supplier's; only
    the latter two show protected devices as they are (datahub/privacy.py).
    """
    row = conn.execute(
        """
        SELECT k.id, k.key_hash, k.scopes, k.revoked_at, c.id, c.slug, c.purpose,
               c.supplier_id, c.monthly_quota, c.requests_per_s,
               ARRAY(
                   SELECT ds.id FROM dataset ds
                   WHERE ds.licence_class = 'open'
                      OR ds.supplier_id = c.supplier_id
                      OR ds.id IN (SELECT g.dataset_id FROM access_grant g
                                   WHERE g.consumer_id = c.id)
                   ORDER BY ds.id
               ),
               ARRAY(
                   SELECT ds.id FROM dataset ds
                   WHERE ds.supplier_id = c.supplier_id
                      OR ds.id IN (SELECT g.dataset_id FROM access_grant g
                                   WHERE g.consumer_id = c.id)
                   ORDER BY ds.id
               )
        FROM api_key k JOIN consumer c ON c.id = k.consumer_id
        WHERE k.prefix = %s
        """,
        (prefix,),
    ).fetchone()
    if row is None:
        return None
    key_id, key_hash, scopes, revoked_at, consumer_id, slug, purpose, *limits = row[:-2]
    dataset_ids, granted_ids = row[-2:]
    supplier_id, monthly_quota, requests_per_s = limits
    return KeyRow(
        key_id=key_id,
        key_hash=key_hash,
        scopes=tuple(scopes),
        revoked_at=revoked_at,
        consumer_id=consumer_id,
        consumer_slug=slug,
        purpose=purpose,
        supplier_id=supplier_id,
        monthly_quota=monthly_quota,
        requests_per_s=requests_per_s,
        dataset_ids=tuple(dataset_ids),
        granted_ids=tuple(granted_ids),
    )


def dataset_id(conn: psycopg.Connection, *, slug: str) -> int | None:
    """Return the id of the dataset with this slug, or None."""
    row = conn.execute("SELECT id FROM dataset WHERE slug = %s", (slug,)).fetchone()
    return row[0] if row is not None else None


def select_open_datasets(conn: psycopg.Connection) -> tuple[int, ...]:
    """Return the ids of the open datasets, which anyone may read."""
    rows = conn.execute(
        "SELECT id FROM dataset WHERE licence_class = 'open' ORDER BY id"
    ).fetchall()
    return tuple(dataset_id for (dataset_id,) in rows)


def take_rate_slot(
    conn: psycopg.Connection, *, subject: str, limit: int, at: datetime | None = None
) -> bool:
    """Count one request of `subject` in the second of `at` (default: now); False if over
    `limit`."""
    return take_rate_slots(conn, [(subject, limit)], at=at)[0]


def take_rate_slots(
    conn: psycopg.Connection, asked: Sequence[tuple[str, int]], *, at: datetime | None = None
) -> list[bool]:
    """Count one request for each (subject, limit) of `asked`, in order, in the second of
    `at` (default: now), in one statement; return for each whether it is within its limit.

    The window counts every request asked, refused ones too: the k-th request of a subject
    in a second is granted if k <= its limit. Each subject's count is raised atomically by
    the requests of the batch, so concurrent batches (of other processes) are numbered one
    after the other and never pass the limit together.
    """
    if not asked:
        return []
    wanted = Counter(subject for subject, _ in asked)
    subjects = sorted(wanted)  # rows locked in one order: two batches never deadlock
    rows = conn.execute(
        """
        INSERT INTO rate_window AS w (subject, second, requests)
        SELECT a.subject, date_trunc('second', coalesce(%(at)s::timestamptz, clock_timestamp())),
               a.requests
        FROM unnest(%(subjects)s::text[], %(requests)s::int[]) AS a (subject, requests)
        ON CONFLICT (subject, second) DO UPDATE SET requests = w.requests + excluded.requests
        RETURNING subject, requests
        """,
        {"subjects": subjects, "requests": [wanted[s] for s in subjects], "at": at},
    ).fetchall()
    # The number of the first request of each subject asked now, in its second.
    number = {subject: total - wanted[subject] for subject, total in rows}
    granted = []
    for subject, limit in asked:
        number[subject] += 1
        granted.append(number[subject] <= limit)
    return granted


def delete_old_rate_windows(conn: psycopg.Connection) -> int:
    """Forget rate windows older than a minute; return how many."""
    cur = conn.execute(
        "DELETE FROM rate_window WHERE second < clock_timestamp() - interval '1 minute'"
    )
    return cur.rowcount


def select_dataset_suppliers(
    conn: psycopg.Connection, *, dataset_ids: Sequence[int]
) -> dict[int, int]:
    """Return dataset id -> supplier id."""
    rows = conn.execute(
        "SELECT id, supplier_id FROM dataset WHERE id = ANY(%s)", (list(dataset_ids),)
    ).fetchall()
    return {dataset_id: supplier_id for dataset_id, supplier_id in rows}


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """A dataset as its readers see it: licence, attribution, and what it holds."""

    id: int
    slug: str
    name: str
    supplier_slug: str
    supplier_name: str
    licence_class: str
    licence_id: str
    licence_name: str
    licence_url: str | None
    attribution: str
    device_count: int
    profiles: tuple[str, ...]


def list_datasets(
    conn: psycopg.Connection, *, dataset_ids: Sequence[int] | None
) -> list[DatasetRow]:
    """List datasets by slug with their device counts and profiles; `dataset_ids` None: all."""
    rows = conn.execute(
        """
        SELECT ds.id, ds.slug, ds.name, s.slug, s.name, ds.licence_class, ds.licence_id,
               ds.licence_name, ds.licence_url, ds.attribution,
               count(d.id),
               coalesce(array_agg(DISTINCT d.profile) FILTER (WHERE d.id IS NOT NULL), '{}')
        FROM dataset ds
        JOIN supplier s ON s.id = ds.supplier_id
        LEFT JOIN device d ON d.dataset_id = ds.id
        WHERE %(ids)s::int[] IS NULL OR ds.id = ANY(%(ids)s::int[])
        GROUP BY ds.id, s.id
        ORDER BY ds.slug
        """,
        {"ids": list(dataset_ids) if dataset_ids is not None else None},
    ).fetchall()
    return [DatasetRow(*row[:-1], tuple(row[-1])) for row in rows]  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class LicenceRow:
    dataset_id: int
    dataset_slug: str
    licence_id: str
    licence_name: str
    licence_url: str | None
    attribution: str


# A `LicenceRow` of the dataset `ds`.
LICENCE_COLUMNS = "ds.id, ds.slug, ds.licence_id, ds.licence_name, ds.licence_url, ds.attribution"


def licences_statement(*, dataset_ids: Sequence[int]) -> Statement[list[LicenceRow]]:
    """The statement that returns the licence and attribution of each given dataset, by slug."""
    return Statement(
        f"""
        SELECT {LICENCE_COLUMNS}
        FROM dataset ds WHERE ds.id = ANY(%s) ORDER BY ds.slug
        """,
        (sorted(set(dataset_ids)),),
        lambda rows: [LicenceRow(*row) for row in rows],
    )
