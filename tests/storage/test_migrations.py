"""Every migration goes down and up again on both backends, back to the same schema; the
reading provenance migration (0002) keeps the readings on its way down; decoders stay
append-only (0007); dedup keys stored before 0008 still recognise their redeliveries; every
dataset has a licence URL or says that none is given (0016)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from counter_reset import counter_resets
from democatalog import demo_catalog, demo_catalog_settings
from ingest_builders import NOW, SOURCES, generate, message, register
from realservices import BACKENDS, Database, temporary_database

import simulators
from datahub import audit
from datahub.ingest.pipeline import Pipeline
from datahub.storage import audit as audit_log
from datahub.storage import migrate, uplinks

pytestmark = pytest.mark.services

HEAD = "0016"
REVISIONS = [f"{n:04d}" for n in range(1, 17)]  # "0001" … "0016", oldest first


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


def test_keys_stored_before_0008_still_recognise_their_redeliveries(fresh: Database) -> None:
    """ttn-v3 uplinks stored under the previous keys are duplicates when they come again
    after the upgrade; another uplink under a previous key, after a counter reset, is new."""
    sims = counter_resets(
        generate(simulators.load_scenario(), 3000), start=NOW - timedelta(hours=3)
    )
    first, reset = sims[:50], sims[50:]
    settings = fresh.settings(sources=SOURCES, catalog=demo_catalog_settings())
    with psycopg.connect(fresh.url) as conn:  # the registry of today, kept by the downgrade
        register(conn, simulators.load_scenario())
    migrate.downgrade(fresh.settings(), "0007")
    with psycopg.connect(fresh.url) as conn:
        # What the version before stored: the first cycle, under the keys of its scheme.
        pipeline = Pipeline(settings, catalog=demo_catalog(), clock=lambda: NOW)
        rows = [item.row for item in pipeline.prepare([message(s) for s in first]).uplinks]
        for row in rows:
            assert row.uplink.legacy_key is not None
            row.uplink = dataclasses.replace(row.uplink, dedup_key=row.uplink.legacy_key)
            conn.execute(
                "INSERT INTO uplink_dedup (dedup_key, received_at) VALUES (%s, %s)",
                (row.uplink.dedup_key, row.uplink.received_at),
            )
        uplinks.insert_uplinks(conn, rows=rows)

    migrate.upgrade(fresh.settings())

    forged = message(first[0], payload=reset[0].payload)  # an old key, its time, other bytes
    with psycopg.connect(fresh.url) as conn:
        pipeline = Pipeline(settings, catalog=demo_catalog(), clock=lambda: NOW)
        result = pipeline.process(conn, [*[message(s) for s in sims], forged])
        assert (result.uplinks, result.duplicates, len(result.conflicts)) == (50, 50, 1)
        assert [item.row.uplink.f_cnt for item in result.fresh] == [s.f_cnt for s in reset]
        assert conn.execute("SELECT count(*) FROM uplink").fetchone() == (100,)
        (until,) = conn.execute("SELECT received_until FROM uplink_dedup_legacy").fetchone()
        assert until >= max(s.time for s in first)

    migrate.downgrade(fresh.settings(), "0007")
    with psycopg.connect(fresh.url) as conn:  # the uplinks and their keys stay
        assert conn.execute("SELECT count(*) FROM uplink_dedup").fetchone() == (100,)
        assert conn.execute("SELECT to_regclass('uplink_dedup_legacy')").fetchone() == (None,)


def test_dead_letters_stored_before_0008_keep_their_whole_body(fresh: Database) -> None:
    body = b"\x00" + bytes(range(256)) * 4096  # 1 MiB, stored whole before 0008
    migrate.downgrade(fresh.settings(), "0007")
    with psycopg.connect(fresh.url) as conn:
        conn.execute(
            """
            INSERT INTO dead_letter (source, topic, stage, reason, detail, body)
            VALUES ('ttn', 't', 'envelope', 'bad_envelope', 'too large', %s)
            """,
            (body,),
        )

    migrate.upgrade(fresh.settings())

    with psycopg.connect(fresh.url) as conn:
        row = conn.execute("SELECT body, body_length, body_sha256 FROM dead_letter").fetchone()
        assert row is not None
        assert (bytes(row[0]), row[1], bytes(row[2])) == (
            body,
            len(body),
            hashlib.sha256(body).digest(),
        )
    migrate.downgrade(fresh.settings(), "0007")
    with psycopg.connect(fresh.url) as conn:
        assert conn.execute("SELECT body FROM dead_letter").fetchone() == (body,)


LICENCES = "http://dcat-ap.de/def/licenses/"


def test_every_dataset_has_a_licence_url_or_says_none_is_given(fresh: Database) -> None:
    """Only a supplier's own dataset still carrying the placeholder becomes `none`; any
    other dataset without a URL keeps its licence and gets the IRI the catalogue gave it."""
    migrate.downgrade(fresh.settings(), "0015")
    with psycopg.connect(fresh.url) as conn:
        conn.execute(
            """
            INSERT INTO supplier (slug, name) VALUES ('acme', 'Acme'), ('tbs', 'TBS');
            INSERT INTO dataset (slug, supplier_id, name, licence_class, licence_id,
                                 licence_name, licence_url, attribution, licence_uri)
            SELECT d.slug, s.id, d.slug, d.class, d.id, d.name, d.url, 'Acme', d.uri
            FROM (VALUES
                -- the supplier's own datasets: one untouched, one an administrator changed
                ('acme', 'acme', 'restricted', 'proprietary', 'All rights reserved', NULL, NULL),
                ('tbs', 'tbs', 'commercial', 'own', 'Own terms', NULL, NULL),
                -- the placeholder on a dataset an administrator made: a choice, kept
                ('acme', 'acme-closed', 'restricted', 'proprietary', 'All rights reserved',
                 NULL, NULL),
                ('acme', 'acme-dl', 'open', 'dl-de/by-2-0', 'DL-DE BY 2.0', NULL, NULL),
                ('acme', 'acme-cc', 'open', ' CC-BY-4.0 ', 'CC BY 4.0', NULL, NULL),
                ('acme', 'acme-listed', 'open', 'dl-by-de/2.0', 'DL-DE BY 2.0', NULL, NULL),
                ('acme', 'acme-open', 'open', 'own-open', 'Own open terms', NULL, NULL),
                ('acme', 'acme-catalogued', 'commercial', 'x-1', 'X terms', NULL,
                 'http://dcat-ap.de/def/licenses/cc-by-nc/4.0'),
                ('acme', 'acme-url', 'open', 'CC-BY-4.0', 'CC BY 4.0',
                 'https://creativecommons.org/licenses/by/4.0/', NULL)
            ) AS d (supplier, slug, class, id, name, url, uri)
            JOIN supplier s ON s.slug = d.supplier;
            INSERT INTO device (dev_eui, name, city, supplier_id, dataset_id, profile)
            SELECT '0000000000000001', 'x', 'dortmund', supplier_id, id, 'acme/thermo'
            FROM dataset WHERE slug = 'acme';
            """
        )
        audit.record(conn, actor="cli:test", action="supplier.add", target="supplier:acme")
        before = dict(conn.execute("SELECT slug, updated_at FROM dataset").fetchall())

    migrate.upgrade(fresh.settings())

    with psycopg.connect(fresh.url) as conn:
        rows = conn.execute(
            "SELECT slug, licence_id, licence_name, licence_url, updated_at FROM dataset "
            "ORDER BY slug"
        ).fetchall()
        assert [row[:4] for row in rows] == [
            ("acme", "none", "no licence given", None),
            ("acme-catalogued", "x-1", "X terms", f"{LICENCES}cc-by-nc/4.0"),
            ("acme-cc", " CC-BY-4.0 ", "CC BY 4.0", f"{LICENCES}cc-by/4.0"),
            ("acme-closed", "proprietary", "All rights reserved", f"{LICENCES}other-closed"),
            ("acme-dl", "dl-de/by-2-0", "DL-DE BY 2.0", f"{LICENCES}dl-by-de/2.0"),
            ("acme-listed", "dl-by-de/2.0", "DL-DE BY 2.0", f"{LICENCES}dl-by-de/2.0"),
            ("acme-open", "own-open", "Own open terms", f"{LICENCES}other-open"),
            ("acme-url", "CC-BY-4.0", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
            ("tbs", "own", "Own terms", f"{LICENCES}other-commercial"),
        ]
        moved = {slug for slug, *_, updated_at in rows if updated_at != before[slug]}
        assert moved == {slug for slug, *_ in rows} - {"acme-url"}
        # Each change is in the audit log, chained onto the entries before it.
        entries = list(audit_log.iterate_entries(conn))
        assert audit.verify(entries).intact
        assert [(e.actor, e.action, e.target) for e in entries[1:]] == [
            ("migration:0016", "dataset.update", f"dataset:{slug}") for slug in sorted(moved)
        ]
        assert (entries[1].before, entries[1].after) == (
            {
                "licence_id": "proprietary",
                "licence_name": "All rights reserved",
                "licence_url": None,
            },
            {"licence_id": "none", "licence_name": "no licence given", "licence_url": None},
        )
        assert conn.execute(
            "SELECT ds.slug FROM device d JOIN dataset ds ON ds.id = d.dataset_id"
        ).fetchall() == [("acme",)]
        with pytest.raises(psycopg.errors.CheckViolation, match="ck_dataset_licence_given"):
            conn.execute("UPDATE dataset SET licence_url = NULL WHERE slug = 'acme-dl'")
    with psycopg.connect(fresh.url) as conn:
        conn.execute(
            """
            INSERT INTO dataset (slug, supplier_id, name, licence_class, licence_id,
                                 licence_name, attribution)
            SELECT 'acme-none', id, 'n', 'restricted', 'none', 'no licence given', 'Acme'
            FROM supplier WHERE slug = 'acme'
            """
        )

    migrate.downgrade(fresh.settings(), "0015")  # the licences stay; the check goes

    with psycopg.connect(fresh.url) as conn:
        assert conn.execute(
            "SELECT licence_id, licence_url FROM dataset WHERE slug IN ('acme', 'tbs') "
            "ORDER BY slug"
        ).fetchall() == [("none", None), ("own", f"{LICENCES}other-commercial")]
        conn.execute("UPDATE dataset SET licence_url = NULL WHERE slug = 'acme-dl'")
