"""Migration 0002 (reading provenance) goes up, down and up again on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from realservices import BACKENDS, Database, temporary_database

from datahub.storage import migrate


@pytest.fixture(params=sorted(BACKENDS))
def fresh(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database of this test alone, migrated to head."""
    with temporary_database(request.param, f"datahub_test_mig_{request.param}") as database:
        yield database


def schema(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        column = conn.execute(
            """
            SELECT data_type, is_nullable FROM information_schema.columns
            WHERE table_name = 'reading' AND column_name = 'decoder_id'
            """
        ).fetchone()
        table = conn.execute("SELECT to_regclass('decoder') IS NOT NULL").fetchone()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        hypertables = []
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            hypertables = [
                name
                for (name,) in conn.execute(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
                )
            ]
    return {
        "version": version[0] if version else None,
        "decoder_table": table[0] if table else None,
        "decoder_id": column,
        "hypertables": hypertables,
    }


def test_up_down_up(fresh: Database) -> None:
    hypertables = ["reading", "uplink"] if fresh.backend == "timescaledb" else []
    head = {
        "version": "0002",
        "decoder_table": True,
        "decoder_id": ("smallint", "YES"),
        "hypertables": hypertables,
    }
    assert schema(fresh.url) == head
    with psycopg.connect(fresh.url) as conn:
        conn.execute("INSERT INTO decoder (name) VALUES ('acme/thermo@1#00000000')")
        conn.execute(
            """
            INSERT INTO supplier (slug, name) VALUES ('acme', 'Acme');
            INSERT INTO device (dev_eui, name, city, supplier_id, profile)
                VALUES ('0000000000000001', 'x', 'dortmund', 1, 'acme/thermo');
            INSERT INTO reading (time, device_id, metric, value, decoder_id)
                VALUES (now(), 1, 'temperature', 20.5, 1);
            """
        )

    migrate.downgrade(fresh.settings(), "0001")

    assert schema(fresh.url) == {
        "version": "0001",
        "decoder_table": False,
        "decoder_id": None,
        "hypertables": hypertables,
    }
    with psycopg.connect(fresh.url) as conn:  # the readings stay, without their decoder
        assert conn.execute("SELECT metric, value FROM reading").fetchall() == [
            ("temperature", 20.5)
        ]

    migrate.upgrade(fresh.settings())

    assert schema(fresh.url) == head
    with psycopg.connect(fresh.url) as conn:
        assert conn.execute("SELECT decoder_id FROM reading").fetchall() == [(None,)]
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                """
                INSERT INTO reading (time, device_id, metric, value, decoder_id)
                VALUES (now(), 1, 'battery', 3.1, 99)
                """
            )
