"""Rollups answer exactly what the raw readings answer: before and after a refresh, with late
readings and with re-decoded ones, on TimescaleDB and on plain PostgreSQL."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from realservices import BACKENDS, temporary_database

from datahub.domain import City, Device
from datahub.storage import datasets, devices, migrate, readings, rollups, suppliers
from datahub.storage.buckets import AggregateFn, CityScope, DeviceScope, floor_to
from datahub.storage.readings import BucketRow, ReadingRow
from datahub.storage.suppliers import SupplierRow

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
FNS = [AggregateFn.AVG, AggregateFn.MIN, AggregateFn.MAX, AggregateFn.SUM, AggregateFn.COUNT]


def register(conn: psycopg.Connection, *dev_euis: str) -> dict[str, int]:
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("dew21", "DEW21")])
    fleet = [Device(e, f"sensor {e[-4:]}", City.DORTMUND, "dew21", "climate") for e in dev_euis]
    devices.upsert_devices(conn, devices=fleet, supplier_ids=ids)
    return {e: entry.device_id for e, entry in devices.select_registry(conn).items()}


def series(device_id: int, start: datetime, count: int, step: timedelta) -> list[ReadingRow]:
    """Readings at irregular offsets (so that hours hold different counts), varied values."""
    return [
        ReadingRow(
            start + i * step + timedelta(seconds=(i * 37) % 600),
            device_id,
            "co2",
            400 + 150 * math.sin(i / 5) + device_id,
        )
        for i in range(count)
    ]


def expect(
    rows: Iterable[ReadingRow], fn: AggregateFn, width: timedelta, start: datetime, end: datetime
) -> dict[datetime, tuple[float, int]]:
    """The oracle: bucket -> (value, count), computed in Python from the readings."""
    buckets: dict[datetime, list[ReadingRow]] = defaultdict(list)
    for r in rows:
        if start <= r.time < end:
            buckets[floor_to(r.time, width)].append(r)
    merge = {
        AggregateFn.AVG: lambda g: sum(r.value for r in g) / len(g),
        AggregateFn.MIN: lambda g: min(r.value for r in g),
        AggregateFn.MAX: lambda g: max(r.value for r in g),
        AggregateFn.SUM: lambda g: sum(r.value for r in g),
        AggregateFn.COUNT: lambda g: float(len(g)),
        AggregateFn.LAST: lambda g: max(g, key=lambda r: r.time).value,
    }[fn]
    return {bucket: (merge(group), len(group)) for bucket, group in buckets.items()}


def answer(rows: list[BucketRow]) -> dict[datetime, tuple[float, int]]:
    return {r.time: (r.value, r.count) for r in rows}


def check(
    conn: psycopg.Connection,
    stored: list[ReadingRow],
    *,
    device_id: int | None,
    fn: AggregateFn,
    width: timedelta,
    start: datetime,
    end: datetime,
) -> None:
    got = readings.select_buckets(
        conn,
        scope=DeviceScope(device_id) if device_id is not None else CityScope("dortmund"),
        metric="co2",
        start=start,
        end=end,
        width=width,
        fn=fn,
    )
    want = expect((r for r in stored if device_id in (None, r.device_id)), fn, width, start, end)
    assert answer(got).keys() == want.keys()
    for bucket, (value, count) in answer(got).items():
        assert (value, count) == (pytest.approx(want[bucket][0]), want[bucket][1]), bucket


RANGES = {
    "aligned-days": (T0, T0 + 3 * DAY),
    "ragged-ends": (
        T0 + timedelta(hours=5, minutes=10),
        T0 + timedelta(days=2, hours=7, minutes=5),
    ),
    "within-an-hour": (T0 + timedelta(minutes=5), T0 + timedelta(minutes=50)),
}


@pytest.mark.parametrize("width", [HOUR, 3 * HOUR, DAY], ids=["1h", "3h", "1d"])
@pytest.mark.parametrize("span", RANGES, ids=list(RANGES))
def test_rollups_answer_like_the_raw_readings(
    conn: psycopg.Connection, width: timedelta, span: str
) -> None:
    ids = register(conn, "0000000000000001", "0000000000000002")
    stored = series(ids["0000000000000001"], T0 - DAY, 400, timedelta(minutes=15))
    stored += series(ids["0000000000000002"], T0, 90, timedelta(minutes=40))
    readings.insert_readings(conn, rows=stored)
    start, end = RANGES[span]
    for refreshed in (False, True):  # marked dirty (raw), then from the rollup tables
        if refreshed:
            assert rollups.refresh(conn) and rollups.count_dirty(conn) == 0
        for fn in [*FNS, AggregateFn.LAST]:
            check(
                conn,
                stored,
                device_id=ids["0000000000000001"],
                fn=fn,
                width=width,
                start=start,
                end=end,
            )
        for fn in FNS:  # last of a city is ambiguous between devices reporting at one time
            check(conn, stored, device_id=None, fn=fn, width=width, start=start, end=end)


def check_dirty_then_refreshed(
    conn: psycopg.Connection,
    stored: list[ReadingRow],
    *,
    device_id: int,
    fns: Sequence[AggregateFn],
) -> None:
    """Check hourly and daily buckets of three days while marked dirty, then refreshed."""
    for _ in range(2):
        for fn in fns:
            for width in (HOUR, DAY):
                check(
                    conn,
                    stored,
                    device_id=device_id,
                    fn=fn,
                    width=width,
                    start=T0,
                    end=T0 + 3 * DAY,
                )
        rollups.refresh(conn)


def refreshed_series(conn: psycopg.Connection, count: int) -> tuple[int, list[ReadingRow]]:
    """One device's readings every 15 minutes from T0, stored and their rollups refreshed."""
    device_id = register(conn, "0000000000000001")["0000000000000001"]
    stored = series(device_id, T0, count, timedelta(minutes=15))
    readings.insert_readings(conn, rows=stored)
    rollups.refresh(conn)
    return device_id, stored


def test_a_late_reading_counts_at_once_and_after_the_refresh(conn: psycopg.Connection) -> None:
    device_id, stored = refreshed_series(conn, 300)
    late = ReadingRow(T0 + timedelta(days=1, hours=3, minutes=1), device_id, "co2", 9999.0)
    readings.insert_readings(conn, rows=[late])
    stored.append(late)
    check_dirty_then_refreshed(conn, stored, device_id=device_id, fns=FNS)


def test_re_decoded_readings_replace_the_rollups(conn: psycopg.Connection) -> None:
    device_id, stored = refreshed_series(conn, 200)
    # A fixed decoder halves every value of the second day and finds no co2 in one uplink.
    redo = [r for r in stored if T0 + DAY <= r.time < T0 + 2 * DAY]
    fixed = [ReadingRow(r.time, r.device_id, r.metric, r.value / 2) for r in redo[1:]]
    readings.replace_readings(conn, keys=[(r.device_id, r.time) for r in redo], rows=fixed)
    stored = [r for r in stored if r not in redo] + fixed
    check_dirty_then_refreshed(conn, stored, device_id=device_id, fns=[*FNS, AggregateFn.LAST])


def test_a_bucket_whose_readings_are_all_gone_disappears(conn: psycopg.Connection) -> None:
    device_id, stored = refreshed_series(conn, 8)
    readings.replace_readings(conn, keys=[(r.device_id, r.time) for r in stored], rows=[])
    rollups.refresh(conn)
    got = readings.select_buckets(
        conn,
        scope=DeviceScope(device_id),
        metric="co2",
        start=T0,
        end=T0 + DAY,
        width=HOUR,
        fn=AggregateFn.AVG,
    )
    assert got == []


def test_rebuild_recomputes_bulk_loaded_days(conn: psycopg.Connection) -> None:
    ids = register(conn, "0000000000000001")
    device_id = ids["0000000000000001"]
    stored = series(device_id, T0, 200, timedelta(minutes=15))
    readings.insert_readings(conn, rows=stored)
    rollups.rebuild(conn, start=T0, end=T0 + 3 * DAY)
    assert rollups.count_dirty(conn) == 0
    for fn in FNS:
        check(conn, stored, device_id=device_id, fn=fn, width=DAY, start=T0, end=T0 + 3 * DAY)


def test_rollups_keep_each_buckets_datasets_and_the_callers_filter(
    conn: psycopg.Connection,
) -> None:
    # Two suppliers, each with its own (restricted) dataset, in one city.
    ids = suppliers.upsert_suppliers(
        conn, suppliers=[SupplierRow("dew21", "DEW21"), SupplierRow("tu", "TU Dortmund")]
    )
    fleet = [
        Device("00000000000000A1", "a", City.DORTMUND, "dew21", "climate"),
        Device("00000000000000B1", "b", City.DORTMUND, "tu", "climate"),
    ]
    devices.upsert_devices(conn, devices=fleet, supplier_ids=ids)
    registry = devices.select_registry(conn)
    a, b = registry["00000000000000A1"], registry["00000000000000B1"]
    ds_a = devices.device_statement(dev_eui="00000000000000A1").run(conn)
    ds_b = devices.device_statement(dev_eui="00000000000000B1").run(conn)
    assert ds_a is not None and ds_b is not None and ds_a.dataset_id != ds_b.dataset_id
    # Device a reports on the first two days, device b on the second and third only.
    stored_a = series(a.device_id, T0, 192, timedelta(minutes=15))
    stored_b = series(b.device_id, T0 + DAY, 192, timedelta(minutes=15))
    readings.insert_readings(conn, rows=stored_a + stored_b)

    def city(dataset_ids: list[int] | None, width: timedelta) -> list[BucketRow]:
        return readings.select_buckets(
            conn,
            scope=CityScope("dortmund", dataset_ids=_ids(dataset_ids)),
            metric="co2",
            start=T0,
            end=T0 + 3 * DAY,
            width=width,
            fn=AggregateFn.SUM,
        )

    def same(got: list[BucketRow], stored: list[ReadingRow], width: timedelta) -> None:
        want = expect(stored, AggregateFn.SUM, width, T0, T0 + 3 * DAY)
        assert answer(got).keys() == want.keys()
        for bucket, (value, count) in answer(got).items():
            assert (value, count) == (pytest.approx(want[bucket][0]), want[bucket][1])

    for _ in range(2):  # marked dirty (raw), then from the rollup tables
        for width in (HOUR, DAY):
            same(city(None, width), stored_a + stored_b, width)
            by_day = {r.time: r.datasets for r in city(None, DAY)}
            assert by_day == {
                T0: (ds_a.dataset_id,),
                T0 + DAY: tuple(sorted((ds_a.dataset_id, ds_b.dataset_id))),
                T0 + 2 * DAY: (ds_b.dataset_id,),
            }
            # A caller who sees dataset a only gets nothing of b's readings.
            only_a = city([ds_a.dataset_id], width)
            same(only_a, stored_a, width)
            assert {r.datasets for r in only_a} == {(ds_a.dataset_id,)}
            assert city([], width) == []
        rollups.refresh(conn)
        assert rollups.count_dirty(conn) == 0


def test_a_city_series_follows_devices_that_change_city_or_dataset(
    conn: psycopg.Connection,
) -> None:
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("dew21", "DEW21")])
    fleet = {
        "00000000000000A1": Device("00000000000000A1", "a", City.DORTMUND, "dew21", "climate"),
        "00000000000000A2": Device("00000000000000A2", "b", City.DORTMUND, "dew21", "level"),
        "00000000000000A3": Device("00000000000000A3", "c", City.DORTMUND, "dew21", "climate"),
    }
    devices.upsert_devices(conn, devices=list(fleet.values()), supplier_ids=ids)
    registry = {e: entry.device_id for e, entry in devices.select_registry(conn).items()}
    stored = [
        row
        for n, e in enumerate(sorted(registry))
        for row in series(registry[e], T0 + n * HOUR, 250, timedelta(minutes=20))
    ]
    readings.insert_readings(conn, rows=stored)
    rollups.refresh(conn)
    first = devices.device_statement(dev_eui="00000000000000A1").run(conn)
    assert first is not None
    fields = datasets.DatasetFields(
        "Level",
        "open",
        "CC-BY-4.0",
        "CC BY 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
        "DEW21",
    )
    other = datasets.insert_dataset(
        conn, slug="dew21-level", supplier_id=ids["dew21"], fields=fields
    )
    assert other is not None

    def same(city: str, dataset_ids: list[int] | None) -> None:
        members = {d.id for d in devices.list_devices(conn, city=city, dataset_ids=dataset_ids)}
        got = readings.select_buckets(
            conn,
            scope=CityScope(city, dataset_ids=_ids(dataset_ids)),
            metric="co2",
            start=T0,
            end=T0 + 3 * DAY,
            width=DAY,
            fn=AggregateFn.SUM,
        )
        want = expect(
            (r for r in stored if r.device_id in members), AggregateFn.SUM, DAY, T0, T0 + 3 * DAY
        )
        assert answer(got).keys() == want.keys()
        for bucket, (value, count) in answer(got).items():
            assert (value, count) == (pytest.approx(want[bucket][0]), want[bucket][1])

    def check_all() -> None:
        for city in ("dortmund", "schwerte"):
            for dataset_ids in (None, [first.dataset_id], [other], []):
                same(city, dataset_ids)

    check_all()
    # A2 moves into another dataset, A3 into another city; then both are refreshed.
    datasets.assign_devices(conn, dataset_id=other, supplier_id=ids["dew21"], profiles=["level"])
    moved = fleet["00000000000000A3"]
    devices.upsert_devices(
        conn,
        devices=[Device(moved.dev_eui, moved.name, City.SCHWERTE, "dew21", "climate")],
        supplier_ids=ids,
    )
    assert conn.execute("SELECT count(*) FROM rollup_city_dirty").fetchone() != (0,)
    check_all()  # marked: the groups' days come from their devices
    rollups.refresh(conn)
    assert conn.execute("SELECT count(*) FROM rollup_city_dirty").fetchone() == (0,)
    check_all()  # refreshed: from the cities' own rows
    # Registering a device again unchanged marks nothing.
    devices.upsert_devices(conn, devices=list(fleet.values())[:1], supplier_ids=ids)
    assert conn.execute("SELECT count(*) FROM rollup_city_dirty").fetchone() == (0,)


def newest(rows: Iterable[ReadingRow]) -> dict[tuple[int, str], tuple[datetime, float]]:
    """The oracle of `select_latest`: (device, metric) -> (time, value) of the newest reading."""
    best: dict[tuple[int, str], tuple[datetime, float]] = {}
    for r in rows:
        key = (r.device_id, r.metric)
        if key not in best or r.time > best[key][0]:
            best[key] = (r.time, r.value)
    return best


def latest(conn: psycopg.Connection, ids: dict[str, int]) -> dict[tuple[int, str], object]:
    got = readings.select_latest(conn, metrics_of={"climate": ["co2", "temperature"]})
    return {(ids[r.dev_eui], r.metric): (r.time, r.value) for r in got}


def test_latest_is_exact_before_and_after_each_refresh(conn: psycopg.Connection) -> None:
    ids = register(conn, "0000000000000001", "0000000000000002")
    one, two = ids["0000000000000001"], ids["0000000000000002"]
    stored = series(one, T0, 100, timedelta(minutes=15)) + series(two, T0, 50, timedelta(hours=1))
    stored += [ReadingRow(T0 + timedelta(minutes=5), one, "temperature", 12.5)]
    readings.insert_readings(conn, rows=stored)

    def same() -> None:
        assert latest(conn, ids) == newest(stored)

    for step in range(6):
        same()  # marked dirty: from the readings
        rollups.refresh(conn)
        assert rollups.count_dirty(conn) == 0
        same()  # refreshed: from reading_latest
        if step == 0:  # a late reading, older than the newest: nothing changes
            change = [ReadingRow(T0 + timedelta(minutes=1), one, "co2", 1.0)]
            readings.insert_readings(conn, rows=change)
            stored += change
        elif step == 1:  # a newer reading of one device
            change = [ReadingRow(T0 + 3 * DAY, two, "co2", 777.0)]
            readings.insert_readings(conn, rows=change)
            stored += change
        elif step == 2:  # a re-decode removes the newest reading: the one before is newest
            gone = max((r for r in stored if r.device_id == two), key=lambda r: r.time)
            readings.replace_readings(conn, keys=[(two, gone.time)], rows=[])
            stored.remove(gone)
        elif step == 3:  # a re-decode of a whole hour halves its values
            hour = [r for r in stored if r.device_id == one and r.time >= T0 + 24 * HOUR]
            hour = [r for r in hour if r.time < T0 + 25 * HOUR]
            fixed = [ReadingRow(r.time, r.device_id, r.metric, r.value / 2) for r in hour]
            readings.replace_readings(conn, keys=[(one, r.time) for r in hour], rows=fixed)
            stored = [r for r in stored if r not in hour] + fixed
        elif step == 4:  # a metric re-decoded away entirely leaves the answer
            temp = [r for r in stored if r.metric == "temperature"]
            readings.replace_readings(conn, keys=[(r.device_id, r.time) for r in temp], rows=[])
            keys = {(r.device_id, r.time) for r in temp}
            stored = [r for r in stored if (r.device_id, r.time) not in keys]
    assert conn.execute("SELECT count(*) FROM reading_latest").fetchone() == (2,)


def test_latest_follows_the_callers_filters(conn: psycopg.Connection) -> None:
    ids = register(conn, "0000000000000001")
    readings.insert_readings(conn, rows=series(ids["0000000000000001"], T0, 4, HOUR))
    rollups.refresh(conn)
    for metrics_of in ({"climate": ["co2"]}, {"level": ["co2"]}, {"climate": []}, {}):
        got = readings.select_latest(conn, metrics_of=metrics_of, city="dortmund")
        assert len(got) == (1 if metrics_of == {"climate": ["co2"]} else 0)
    assert readings.select_latest(conn, metrics_of={"climate": ["co2"]}, city="schwerte") == []
    assert readings.select_latest(conn, metrics_of={"climate": ["co2"]}, dataset_ids=[]) == []
    assert readings.select_latest(conn, metrics_of={"climate": ["co2"]}, supplier="x") == []
    assert len(readings.select_latest(conn, metrics_of={"climate": ["co2"]}, supplier="dew21")) == 1


def test_rebuild_sets_the_latest_readings(conn: psycopg.Connection) -> None:
    ids = register(conn, "0000000000000001")
    stored = series(ids["0000000000000001"], T0, 200, timedelta(minutes=15))
    readings.insert_readings(conn, rows=stored)
    rollups.rebuild(conn, start=T0, end=T0 + 3 * DAY)
    assert rollups.count_dirty(conn) == 0
    assert conn.execute("SELECT count(*) FROM reading_latest").fetchone() == (1,)
    assert latest(conn, ids) == newest(stored)


@pytest.mark.services
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_migration_goes_down_and_up_and_fills_the_rollups(backend: str) -> None:
    with temporary_database(backend, f"datahub_test_rollup_mig_{backend}") as database:
        with psycopg.connect(database.url) as conn:
            ids = register(conn, "0000000000000001")
            stored = series(ids["0000000000000001"], T0, 200, timedelta(minutes=15))
            readings.insert_readings(conn, rows=stored)
        migrate.downgrade(database.settings(), "0003")
        with psycopg.connect(database.url) as conn:
            tables = conn.execute(
                "SELECT to_regclass('reading_hourly'), to_regclass('rollup_dirty'),"
                " to_regclass('reading_latest'), to_regclass('reading_city_daily')"
            ).fetchone()
            assert tables == (None, None, None, None)
        migrate.upgrade(database.settings())
        with psycopg.connect(database.url) as conn:
            # Filled from the readings, nothing marked: the rollups alone answer.
            assert rollups.count_dirty(conn) == 0
            assert conn.execute("SELECT count(*) FROM reading_latest").fetchone() == (1,)
            assert latest(conn, {"0000000000000001": ids["0000000000000001"]}) == newest(stored)
            for fn in FNS:  # a city's whole days from reading_city_daily alone
                check(conn, stored, device_id=None, fn=fn, width=DAY, start=T0, end=T0 + 3 * DAY)
            for width in (HOUR, DAY):
                check(
                    conn,
                    stored,
                    device_id=ids["0000000000000001"],
                    fn=AggregateFn.AVG,
                    width=width,
                    start=T0,
                    end=T0 + 3 * DAY,
                )


def _ids(dataset_ids: list[int] | None) -> tuple[int, ...] | None:
    return tuple(dataset_ids) if dataset_ids is not None else None
