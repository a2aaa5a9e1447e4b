"""The keys SensorThings ids are made of stay put: device ids across re-imports, metric
ids once given, and each device's location history (migration 0008)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from datahub import observations
from datahub.domain import City, Device, Location
from datahub.storage import devices, suppliers
from datahub.storage import sensorthings as sta
from datahub.storage.suppliers import SupplierRow


def fleet(location: Location | None) -> list[Device]:
    return [
        Device(f"70B3D57E0000A00{i}", f"s{i}", City.DORTMUND, "dew21", "elsys/ers-co2", location)
        for i in range(3)
    ]


def import_(conn: psycopg.Connection, location: Location | None) -> tuple[int, int]:
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("dew21", "DEW21")])
    return devices.upsert_devices(conn, devices=fleet(location), supplier_ids=ids)


def test_reimports_keep_device_ids_and_draw_no_new_ones(conn: psycopg.Connection) -> None:
    assert import_(conn, Location(51.5, 7.4)) == (3, 0)
    before = {e.dev_eui: e.device_id for e in devices.select_registry(conn).values()}
    for _ in range(3):
        assert import_(conn, Location(51.5, 7.4)) == (0, 3)
    after = {e.dev_eui: e.device_id for e in devices.select_registry(conn).values()}
    extra = Device("70B3D57E0000A009", "new", City.DORTMUND, "dew21", "elsys/ers-co2")
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("dew21", "DEW21")])
    devices.upsert_devices(conn, devices=[extra], supplier_ids=ids)
    newest = devices.select_registry(conn)["70B3D57E0000A009"].device_id

    assert after == before
    assert newest == max(before.values()) + 1  # the re-imports used up no ids


def test_a_location_is_recorded_when_it_changes_only(conn: psycopg.Connection) -> None:
    import_(conn, Location(51.5, 7.4))
    import_(conn, Location(51.5, 7.4))  # the same place: nothing new
    import_(conn, Location(51.6, 7.5))  # moved
    import_(conn, None)  # no coordinates: the history stays

    rows = conn.execute(
        "SELECT d.dev_eui, l.latitude FROM device_location l JOIN device d ON d.id = l.device_id"
        " ORDER BY d.dev_eui, l.since, l.id"
    ).fetchall()
    assert [lat for eui, lat in rows if eui == "70B3D57E0000A000"] == [51.5, 51.6]


def test_metric_ids_are_given_once_in_order(conn: psycopg.Connection) -> None:
    sta.ensure_ids(conn, metrics=["temperature", "co2"], profiles=["elsys/ers-co2"])
    first = sta.select_metric_ids(conn)
    sta.ensure_ids(conn, metrics=["temperature", "co2", "battery"], profiles=["elsys/ers-co2"])
    second = sta.select_metric_ids(conn)

    assert {k: second[k] for k in first} == first
    assert second["battery"] == max(first.values()) + 1


@pytest.mark.parametrize(
    "time",
    [
        datetime(2024, 5, 1, 12, 0, 0, 123_456, tzinfo=UTC),
        datetime(2136, 1, 1, tzinfo=UTC),
        observations.ORIGIN,
    ],
)
def test_an_observation_id_leads_back_to_its_reading(time: datetime) -> None:
    datastream = observations.datastream_id(observations.MAX_DEVICE_ID, 99)
    oid = observations.observation_id(datastream, time)
    key = observations.split_observation_id(oid)

    assert 0 < oid < 2**63
    assert key is not None
    assert (key.device_id, key.metric_id) == (observations.MAX_DEVICE_ID, 99)
    assert key.start <= time < key.end == key.start + timedelta(seconds=1 / 16)
    assert oid >> observations.TIME_BITS == datastream
