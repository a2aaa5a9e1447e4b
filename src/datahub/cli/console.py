"""How the `datahub` commands print: aligned tables for people, the API's JSON for programs,
and the one transaction a command runs in."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import BaseModel

from datahub.config import Settings
from datahub.storage import db


@contextmanager
def transaction(settings: Settings) -> Iterator[psycopg.Connection]:
    """Connect and run the command's work in one transaction: committed, or rolled back."""
    with db.connect(settings) as conn, conn.transaction():
        yield conn


def print_json(items: Sequence[BaseModel] | BaseModel | dict[str, Any]) -> None:
    """Print API models (one or a list) as the API renders them."""
    if isinstance(items, BaseModel):
        data: Any = items.model_dump(mode="json")
    elif isinstance(items, dict):
        data = items
    else:
        data = [item.model_dump(mode="json") for item in items]
    print(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    """Print rows as columns aligned under the header."""
    cells = [[str(h) for h in header], *([cell(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def cell(value: object) -> str:
    """Render one value: `-` for none, times in UTC, floats to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)
