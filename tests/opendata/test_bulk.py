"""Bulk files of the demo's seeded open datasets: written, served, metered and rewritten."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from opendata_world import BASE_URL, DAY0, DAYS, NOW, World, metric_index

from datahub import cli
from datahub.config import Settings
from datahub.fairshare import admin
from datahub.opendata.bulk import HEADER, BulkReport, BulkWriter
from datahub.privacy import View
from datahub.storage import readings
from datahub.storage.readings import ReadingRow

DAY = timedelta(days=1)
CLIMATE = "do-stadtklima"


def write(conn: psycopg.Connection, settings: Settings, *, now: object = NOW) -> BulkReport:
    assert settings.opendata.bulk_dir is not None
    writer = BulkWriter(
        conn,
        directory=settings.opendata.bulk_dir,
        metric_index=metric_index(),
        delay=timedelta(minutes=settings.opendata.bulk_delay_minutes),
        view=View.of(settings.privacy),
    )
    return writer.run(now=now)  # type: ignore[arg-type]


def rows_of(body: bytes) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(gzip.decompress(body).decode("utf-8")))
    assert tuple(reader.fieldnames or ()) == HEADER
    return list(reader)


def listing(client: TestClient, **params: str) -> list[dict[str, object]]:
    response = client.get("/v1/bulk", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_files_of_each_day_and_the_month_hold_what_the_api_serves(
    client: TestClient, conn: psycopg.Connection, settings: Settings, world: World
) -> None:
    report = write(conn, settings)

    files = listing(client, dataset=CLIMATE)
    assert [f["period"] for f in files] == ["2026-11", "2026-11-28", "2026-11-29", "2026-11-30"]
    assert len(report.written) == 2 * len(files)  # the people counters' dataset too
    devices = {
        d["dev_eui"]: d
        for d in client.get("/v1/devices", params={"dataset": CLIMATE, "limit": 1000}).json()[
            "items"
        ]
    }
    month_rows: list[dict[str, str]] = []
    for day in range(DAYS):
        start = DAY0 + day * DAY
        listed = files[1 + day]
        response = client.get(f"/v1/bulk/{CLIMATE}/{listed['period']}.csv.gz")
        assert response.status_code == 200
        body = response.content
        assert hashlib.sha256(body).hexdigest() == listed["sha256"]
        assert response.headers["etag"] == f'"{listed["sha256"]}"'
        assert len(body) == listed["bytes"]
        rows = rows_of(body)
        assert len(rows) == listed["rows"]
        month_rows += rows
        # The same readings as the API serves, device by device.
        expected = set()
        for eui in devices:
            items = client.get(
                f"/v1/devices/{eui}/readings",
                params={
                    "from": start.isoformat(),
                    "to": (start + DAY).isoformat(),
                    "limit": 10_000,
                },
            ).json()["items"]
            expected |= {(i["time"], eui, i["metric"], i["value"], i["unit"]) for i in items}
        assert {
            (r["time"], r["device"], r["metric"], float(r["value"]), r["unit"]) for r in rows
        } == expected
        assert len(expected) == 3 * 2 * 48  # 3 sensors, 2 metrics, every half hour
        for r in rows:
            device = devices[r["device"]]
            assert (r["name"], r["city"], r["placement"]) == (
                device["name"],
                device["city"],
                device["placement"],
            )
            location = device["location"]
            assert (float(r["latitude"]), float(r["longitude"])) == (
                location["latitude"],
                location["longitude"],
            )
    month = client.get(f"/v1/bulk/{CLIMATE}/2026-11.csv.gz")
    assert rows_of(month.content) == month_rows
    assert files[0]["rows"] == len(month_rows)


def test_a_download_is_anonymous_public_interest_use_whoever_asks(
    client: TestClient, conn: psycopg.Connection, settings: Settings, world: World
) -> None:
    write(conn, settings)
    _, secret = admin.create_key(
        conn, actor="cli:test", consumer="ruhrroute-logistik", scopes=["read"]
    )
    (day,) = listing(
        client,
        dataset=CLIMATE,
        period="day",
        **{"from": "2026-11-29T12:00:00Z", "to": "2026-11-29T13:00:00Z"},
    )
    url = f"/v1/bulk/{CLIMATE}/{day['period']}.csv.gz"

    with_key = client.get(url, headers={"Authorization": f"Bearer {secret}"})
    again = client.get(url, headers={"If-None-Match": with_key.headers["etag"]})

    assert with_key.status_code == 200 and again.status_code == 304
    usage = conn.execute(
        """
        SELECT u.consumer_id, u.purpose, ds.slug, u.observations, u.endpoint
        FROM usage u JOIN dataset ds ON ds.id = u.dataset_id
        WHERE u.endpoint LIKE '/v1/bulk/%%'
        """
    ).fetchall()
    # One download charged, to nobody, as public-interest use, one observation per row;
    # the 304 served nothing.
    assert usage == [(None, "public_interest", CLIMATE, day["rows"], "/v1/bulk/{dataset}/{name}")]


def test_late_data_rewrites_its_day_and_month_and_nothing_else(
    client: TestClient, conn: psycopg.Connection, settings: Settings, world: World
) -> None:
    write(conn, settings)
    before = {f["period"]: f for f in listing(client, dataset=CLIMATE)}
    eui = world.device_ids("A84041000A")[0]
    late = ReadingRow(DAY0 + DAY + timedelta(minutes=7), world.ids[eui], "temperature", 12.5)
    readings.insert_readings(conn, rows=[late])

    report = write(conn, settings, now=NOW + timedelta(hours=1))

    after = {f["period"]: f for f in listing(client, dataset=CLIMATE)}
    changed = {p for p in after if after[p]["sha256"] != before[p]["sha256"]}
    assert changed == {"2026-11-29", "2026-11"}
    assert (after["2026-11-29"]["version"], after["2026-11"]["version"]) == (2, 2)
    assert after["2026-11-29"]["rows"] == before["2026-11-29"]["rows"] + 1  # type: ignore[operator]
    assert after["2026-11-28"] == before["2026-11-28"]
    rows = rows_of(client.get(f"/v1/bulk/{CLIMATE}/2026-11-29.csv.gz").content)
    assert {"time": "2026-11-29T00:07:00Z", "metric": "temperature", "value": "12.5"}.items() <= (
        next(r for r in rows if r["time"] == "2026-11-29T00:07:00Z").items()
    )
    # The replaced versions' files are gone; every recorded file is on disk.
    directory = settings.opendata.bulk_dir
    assert directory is not None
    on_disk = {p.relative_to(directory).as_posix() for p in Path(directory).glob("*/*/*.csv.gz")}
    assert on_disk == {name for (name,) in conn.execute("SELECT name FROM bulk_file").fetchall()}
    assert report.removed == 2  # the day and the month files they replace


def test_a_second_run_writes_nothing_and_changes_no_byte(
    client: TestClient, conn: psycopg.Connection, settings: Settings, world: World
) -> None:
    write(conn, settings)
    first = listing(client)
    report = write(conn, settings, now=NOW + timedelta(hours=2))
    assert (report.written, listing(client)) == ([], first)


def test_only_open_datasets_get_files_and_only_ended_days(
    client: TestClient, conn: psycopg.Connection, settings: Settings, world: World
) -> None:
    # At 00:30 the last day ended only half an hour ago: within the delay, not written.
    write(conn, settings, now=DAY0 + DAYS * DAY + timedelta(minutes=30))
    datasets = {(f["dataset"], f["period"]) for f in listing(client)}
    assert {d for d, _ in datasets} == {CLIMATE, "do-passanten"}
    assert ("do-stadtklima", "2026-11-30") not in datasets
    assert client.get("/v1/bulk/do-parken/2026-11-29.csv.gz").status_code == 404
    assert client.get(f"/v1/bulk/{CLIMATE}/2026-11-29.csv").status_code == 404


def test_the_command_needs_a_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATAHUB_OPENDATA__BULK_DIR", raising=False)
    monkeypatch.delenv("DATAHUB_CONFIG", raising=False)
    assert cli.main(["opendata", "bulk"]) == 2


def test_the_catalogue_lists_the_files_with_size_and_checksum(
    client: TestClient, conn: psycopg.Connection, settings: Settings, world: World
) -> None:
    from rdflib import Graph, URIRef
    from test_dcat import conforms

    write(conn, settings)
    graph = Graph().parse(data=client.get("/v1/catalogue").content, format="turtle")
    month = URIRef(f"{BASE_URL}/v1/catalogue#dataset-{CLIMATE}-2026-11")
    dcat = "http://www.w3.org/ns/dcat#"
    assert graph.value(month, URIRef(dcat + "downloadURL")) == URIRef(
        f"{BASE_URL}/v1/bulk/{CLIMATE}/2026-11.csv.gz"
    )
    # A month with a file of its own lists it, not its days.
    assert (None, None, URIRef(f"{BASE_URL}/v1/catalogue#dataset-{CLIMATE}-2026-11-29")) not in (
        graph
    )
    conforms(graph)
