"""Which devices the open summaries count: those of datasets open or opened for summaries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class SummaryDevice:
    """A device as a summary groups it: by city and area, with a level sensor's calibration."""

    dev_eui: str
    city: str
    area: str | None
    dataset_id: int
    level_empty: float | None
    level_full: float | None


def select_summary_datasets(conn: psycopg.Connection) -> list[int]:
    """Return the ids of the datasets that may be summarised: open, or opened for summaries
    by their supplier."""
    rows = conn.execute(
        "SELECT id FROM dataset WHERE licence_class = 'open' OR public_summaries ORDER BY id"
    ).fetchall()
    return [dataset_id for (dataset_id,) in rows]


def select_devices(
    conn: psycopg.Connection,
    *,
    dataset_ids: Sequence[int],
    profiles: Sequence[str],
    city: str | None = None,
) -> dict[str, SummaryDevice]:
    """Return DevEUI -> device for the devices of these datasets and profiles (and city)."""
    rows = conn.execute(
        """
        SELECT dev_eui, city, area, dataset_id, level_empty, level_full FROM device
        WHERE dataset_id = ANY(%(datasets)s) AND profile = ANY(%(profiles)s)
          AND (%(city)s::text IS NULL OR city = %(city)s)
        """,
        {"datasets": list(dataset_ids), "profiles": list(profiles), "city": city},
    ).fetchall()
    return {row[0]: SummaryDevice(*row) for row in rows}
