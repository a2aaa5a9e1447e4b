"""What the open-data catalogue says of each dataset beyond its own row: where and when."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    """A dataset's supplier name, its devices' cities and profiles, and its readings' span."""

    dataset_id: int
    supplier_name: str
    cities: tuple[str, ...]
    profiles: tuple[str, ...]
    first_reading: datetime | None
    last_reading: datetime | None


def select_listed_ids(conn: psycopg.Connection) -> list[int]:
    """Return the ids of the datasets the catalogue lists: open ones, and those their
    supplier lets be listed."""
    rows = conn.execute(
        "SELECT id FROM dataset WHERE licence_class = 'open' OR catalogue_listed ORDER BY slug"
    ).fetchall()
    return [dataset_id for (dataset_id,) in rows]


def select_facts(
    conn: psycopg.Connection, *, dataset_ids: Sequence[int]
) -> dict[int, DatasetFacts]:
    """Return dataset id -> its facts.

    The span of readings comes from the cities' daily rollups, whose rows the refresher
    keeps within seconds of the readings: one row per city, dataset, metric and day.
    """
    rows = conn.execute(
        """
        SELECT ds.id, s.name,
               ARRAY(SELECT DISTINCT d.city FROM device d WHERE d.dataset_id = ds.id
                     ORDER BY d.city),
               ARRAY(SELECT DISTINCT d.profile FROM device d WHERE d.dataset_id = ds.id
                     ORDER BY d.profile),
               (SELECT min(c.bucket) FROM reading_city_daily c WHERE c.dataset_id = ds.id),
               (SELECT max(c.last_time) FROM reading_city_daily c WHERE c.dataset_id = ds.id)
        FROM dataset ds JOIN supplier s ON s.id = ds.supplier_id
        WHERE ds.id = ANY(%s)
        """,
        (list(dataset_ids),),
    ).fetchall()
    return {
        row[0]: DatasetFacts(row[0], row[1], tuple(row[2]), tuple(row[3]), row[4], row[5])
        for row in rows
    }
