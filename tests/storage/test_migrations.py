"""Every migration goes down and up again on both backends, back to the same schema; the
reading provenance migration (0002) keeps the readings on its way down; decoders stay
append-only (0007)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from realservices import BACKENDS, Database, temporary_database

from datahub.storage import migrate

HEAD = "0008"
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]  # oldest first


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
        return {
            "version": version[0] if version else None,
            "decoder_table": table[0] if table else None,
            "decoder_id": column,
            "hypertables": hypertables(conn),
        }


def hypertables(conn: psycopg.Connection) -> list[str]:
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return []
    rows = conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def structure(url: str) -> dict[str, list[tuple[object, ...]]]:
    """The public schema's tables, columns, indexes, constraints, triggers and hypertables."""
    with psycopg.connect(url) as conn:
        found = {
            "columns": conn.execute(
                """
                SELECT table_name, column_name, data_type, is_nullable, column_default
                FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2
                """
            ).fetchall(),
            "indexes": conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall(),
            "constraints": conn.execute(
                """
                SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
                FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                WHERE n.nspname = 'public' ORDER BY 1, 2
                """
            ).fetchall(),
            "triggers": conn.execute(
                """
                SELECT event_object_table, trigger_name, action_statement
                FROM information_schema.triggers WHERE trigger_schema = 'public'
                ORDER BY 1, 2, 3
                """
            ).fetchall(),
            "version": conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            "hypertables": [(name,) for name in hypertables(conn)],
        }
    return found


@pytest.mark.parametrize("revision", REVISIONS)
def test_each_migration_goes_down_and_up_to_the_same_schema(fresh: Database, revision: str) -> None:
    head = structure(fresh.url)
    assert head["version"] == [(HEAD,)]
    below = REVISIONS[REVISIONS.index(revision) - 1] if revision != REVISIONS[0] else "base"

    migrate.downgrade(fresh.settings(), below)
    down = structure(fresh.url)
    migrate.upgrade(fresh.settings())

    assert down["version"] == ([] if below == "base" else [(below,)])
    assert down != head
    assert structure(fresh.url) == head


def test_provenance_up_down_up(fresh: Database) -> None:
    migrate.downgrade(fresh.settings(), "0002")
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

    migrate.upgrade(fresh.settings(), "0002")

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
    migrate.upgrade(fresh.settings())
    assert schema(fresh.url)["version"] == HEAD


def test_decoders_are_append_only(fresh: Database) -> None:
    """Readings refer to decoders by id without a foreign key (0007): no decoder may go."""
    with psycopg.connect(fresh.url, autocommit=True) as conn:
        conn.execute("INSERT INTO decoder (name) VALUES ('acme/thermo@1#00000000')")
        for statement in (
            "UPDATE decoder SET name = 'acme/thermo@2#00000000'",
            "UPDATE decoder SET id = DEFAULT",
            "DELETE FROM decoder",
            "TRUNCATE decoder",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT id, name FROM decoder").fetchall() == [
            (1, "acme/thermo@1#00000000")
        ]
