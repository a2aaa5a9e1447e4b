"""frost-sta-client, the Python client of FROST-Server, against a running `datahub api`:
it walks every entity set across pages (following `@iot.nextLink` as it does), filters,
orders descending, expands and selects, and what it reads equals the REST API's answers
for the same data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import frost_sta_client as fsc
import httpx
import psycopg
import pytest
from api_helpers import Seed
from realservices import Database, temporary_database

from datahub.domain import City, Location

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOURS = 30
# Real catalog profiles: `datahub api` serves the decoders' catalog.
DEVICES = {
    "70B3D57E0000F001": ("elsys/ers-co2", City.DORTMUND, Location(51.51, 7.46)),
    "70B3D57E0000F002": ("elsys/ers-co2", City.DORTMUND, Location(51.52, 7.47)),
    "70B3D57E0000F003": ("dragino/lht65", City.SCHWERTE, Location(51.44, 7.56)),
}
PAGE = 7  # a page size that splits every collection


@dataclass(frozen=True)
class Stack:
    url: str
    database: Database

    @property
    def sta(self) -> str:
        return f"{self.url}/sta/v1.1"


def seed(conn: psycopg.Connection) -> None:
    s = Seed(conn)
    for dev_eui, (profile, city, location) in DEVICES.items():
        supplier = "dew21" if city is City.DORTMUND else "stadtwerke-schwerte"
        s.device(dev_eui, profile=profile, city=city, location=location, supplier=supplier)
        base = int(dev_eui[-1]) * 10
        s.readings(
            dev_eui,
            "temperature",
            {T0 + timedelta(hours=h): base + h / 4 for h in range(HOURS)},
        )
        s.readings(
            dev_eui, "battery_voltage", {T0 + timedelta(hours=h): 3.0 + h / 100 for h in range(5)}
        )
    conn.commit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with temporary_database("timescaledb", "datahub_test_sta_frost") as database:
        with psycopg.connect(database.url) as conn:
            seed(conn)
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DATAHUB_") or k.startswith("DATAHUB_TEST_")
        }
        env |= {
            "DATAHUB_DATABASE_URL": database.url,
            "DATAHUB_LOG_LEVEL": "WARNING",
            "DATAHUB_FAIRSHARE__ANONYMOUS_REQUESTS_PER_S": "100000",
        }
        command = [sys.executable, "-m", "datahub.cli", "api", "--host", "127.0.0.1"]
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url, process)
                yield Stack(url, database)
            finally:
                process.terminate()
                process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"datahub api did not become ready at {url}")


@pytest.fixture(scope="module")
def service(stack: Stack) -> fsc.SensorThingsService:
    return fsc.SensorThingsService(stack.sta)


@pytest.fixture(scope="module")
def rest(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def walk(query: Any) -> list[Any]:
    """Every entity of a query, page by page as the client follows @iot.nextLink."""
    return list(query.top(PAGE).list())


def test_every_entity_set_is_walked_across_pages(
    service: fsc.SensorThingsService, rest: httpx.Client
) -> None:
    things = walk(service.things().query())
    devices = rest.get("/v1/devices").json()["items"]
    assert sorted(t.properties["dev_eui"] for t in things) == sorted(d["dev_eui"] for d in devices)
    assert {t.name for t in things} == {d["name"] for d in devices}

    datastreams = walk(service.datastreams().query())
    # Each device's profile metrics (and those of its readings)
    expected = sum(len(d["metrics"]) for d in devices)
    assert len(datastreams) == expected
    assert len({d.id for d in datastreams}) == expected

    observations = walk(service.observations().query())
    assert len(observations) == len(DEVICES) * (HOURS + 5)
    assert len({o.id for o in observations}) == len(observations)

    for dao, at_least in (
        (service.locations(), len(DEVICES)),
        (service.historical_locations(), len(DEVICES)),
        (service.features_of_interest(), len(DEVICES)),
        (service.sensors(), 2),
        (service.observed_properties(), 2),
    ):
        assert len(walk(dao.query())) >= at_least


def datastream_of(service: fsc.SensorThingsService, dev_eui: str, metric: str) -> Any:
    found = list(
        service.datastreams()
        .query()
        .filter(f"Thing/properties/dev_eui eq '{dev_eui}' and ObservedProperty/name eq '{metric}'")
        .list()
    )
    assert len(found) == 1
    return found[0]


def temperatures(rest: httpx.Client, dev_eui: str) -> list[dict[str, Any]]:
    """A device's temperature readings, as the REST API serves them."""
    items: list[dict[str, Any]] = rest.get(
        f"/v1/devices/{dev_eui}/readings",
        params={
            "metric": "temperature",
            "from": T0.isoformat(),
            "to": (T0 + timedelta(days=2)).isoformat(),
        },
    ).json()["items"]
    return items


def test_observations_of_a_datastream_equal_the_rest_readings(
    service: fsc.SensorThingsService, rest: httpx.Client
) -> None:
    dev_eui = "70B3D57E0000F002"
    datastream = datastream_of(service, dev_eui, "temperature")
    readings = temperatures(rest, dev_eui)

    ascending = walk(datastream.get_observations().query().orderby("phenomenonTime", "ASC"))
    descending = walk(datastream.get_observations().query().orderby("phenomenonTime", "DESC"))

    pairs = [(o.phenomenon_time, o.result) for o in ascending]
    assert pairs == [(r["time"], r["value"]) for r in readings]
    assert [(o.phenomenon_time, o.result) for o in descending] == pairs[::-1]
    assert datastream.unit_of_measurement.symbol == "Cel"


def test_filters_equal_the_rest_readings_filtered(
    service: fsc.SensorThingsService, rest: httpx.Client
) -> None:
    dev_eui = "70B3D57E0000F001"
    datastream = datastream_of(service, dev_eui, "temperature")
    readings = temperatures(rest, dev_eui)
    start = (T0 + timedelta(hours=5)).isoformat().replace("+00:00", "Z")

    found = walk(
        datastream.get_observations()
        .query()
        .filter(f"result ge 12 and phenomenonTime gt {start}")
        .orderby("result", "DESC")
    )

    expected = sorted(
        (r["value"] for r in readings if r["value"] >= 12 and r["time"] > start), reverse=True
    )
    assert [o.result for o in found] == expected


def test_expand_and_select(service: fsc.SensorThingsService, rest: httpx.Client) -> None:
    things = list(
        service.things()
        .query()
        .expand(
            "Datastreams($select=name,unitOfMeasurement;"
            "$expand=Observations($top=1;$orderby=phenomenonTime desc))"
        )
        .list()
    )
    latest = {
        (i["dev_eui"], i["metric"]): i["value"] for i in rest.get("/v1/latest").json()["items"]
    }

    for thing in things:
        for datastream in thing.datastreams:
            metric = datastream.name.rsplit(" ", 1)[-1]
            # The expanded page itself: $top=1 of the newest first.
            newest = [o.result for o in datastream.observations.entities]
            wanted = latest.get((thing.properties["dev_eui"], metric))
            assert newest == ([wanted] if wanted is not None else [])
            assert datastream.unit_of_measurement is not None

    selected = list(service.observations().query().select("result").top(3).list())
    assert all(o.result is not None and o.phenomenon_time is None for o in selected)


def test_a_deep_page_of_the_next_link_is_the_same_as_walking_to_it(
    service: fsc.SensorThingsService, stack: Stack
) -> None:
    url = f"{stack.sta}/Observations?$top=5"
    seen: list[int] = []
    with httpx.Client(timeout=30) as client:
        while url:
            body = client.get(url).json()
            seen += [o["@iot.id"] for o in body["value"]]
            url = body.get("@iot.nextLink")
            assert url is None or url.startswith("http://127.0.0.1")

    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == len(DEVICES) * (HOURS + 5)
