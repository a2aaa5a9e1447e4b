"""The data the dashboard tests show: devices of both cities with a month of readings.

Written through the storage functions, as the ingest and the administration commands
write them. Times are relative to the moment of seeding, so "online" and "silent" mean
what they say when the browser looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from datahub.domain import City, Device, Location
from datahub.storage import datasets, devices, readings, suppliers
from datahub.storage.datasets import DatasetFields
from datahub.storage.readings import ReadingRow
from datahub.storage.suppliers import SupplierRow

HISTORY = timedelta(days=31)
STEP = timedelta(minutes=30)

# The metrics each profile gets readings of (a subset of what it reports, enough to
# colour the map, fill the summary and draw charts).
SEEDED_METRICS = {
    "dragino/lht65": ("temperature", "relative_humidity"),
    "milesight-iot/am319": ("temperature", "pm2_5", "co2"),
    "nwave/nps405": ("occupancy",),
}


@dataclass(frozen=True)
class DatasetSpec:
    slug: str
    supplier: str
    supplier_name: str
    name: str
    licence_class: str
    licence_id: str
    licence_name: str
    licence_url: str | None
    attribution: str


@dataclass(frozen=True)
class DeviceSpec:
    dev_eui: str
    name: str
    city: City
    dataset: str
    profile: str
    latitude: float
    longitude: float
    offset: float = 0.0  # added to every value, so devices differ
    silent_for: timedelta | None = None  # no uplink for this long: the device is silent
    occupied: bool = False  # parking bays: the latest state


OPEN_DATASETS = (
    DatasetSpec(
        slug="klima-dortmund",
        supplier="do-umweltamt",
        supplier_name="Stadt Dortmund, Umweltamt",
        name="Stadtklima Dortmund",
        licence_class="open",
        licence_id="dl-de/by-2-0",
        licence_name="Datenlizenz Deutschland - Namensnennung - 2.0",
        licence_url="https://www.govdata.de/dl-de/by-2-0",
        attribution="Stadt Dortmund, Umweltamt",
    ),
    DatasetSpec(
        slug="parken-dortmund",
        supplier="do-tiefbauamt",
        supplier_name="Stadt Dortmund, Tiefbauamt",
        name="Parkplätze Dortmund",
        licence_class="open",
        licence_id="dl-de/zero-2-0",
        licence_name="Datenlizenz Deutschland - Zero - 2.0",
        licence_url="https://www.govdata.de/dl-de/zero-2-0",
        attribution="Stadt Dortmund, Tiefbauamt",
    ),
    DatasetSpec(
        slug="luft-schwerte",
        supplier="stadtwerke-schwerte",
        supplier_name="Stadtwerke Schwerte GmbH",
        name="Luft und Klima Schwerte",
        licence_class="open",
        licence_id="CC-BY-4.0",
        licence_name="Creative Commons Attribution 4.0",
        licence_url="https://creativecommons.org/licenses/by/4.0/",
        attribution="© Stadtwerke Schwerte GmbH",
    ),
)
RESTRICTED_DATASET = DatasetSpec(
    slug="werkschutz-intern",
    supplier="sicherheitsdienst-ruhr",
    supplier_name="Sicherheitsdienst Ruhr GmbH",
    name="Werkschutz intern",
    licence_class="restricted",
    licence_id="proprietary",
    licence_name="All rights reserved",
    licence_url=None,
    attribution="Sicherheitsdienst Ruhr GmbH",
)

DEVICES = (
    # Dortmund: street climate, indoor air, parking bays.
    DeviceSpec(
        "A840410000000001",
        "do-klima-rathaus",
        City.DORTMUND,
        "klima-dortmund",
        "dragino/lht65",
        51.5118,
        7.4663,
        offset=0.0,
    ),
    DeviceSpec(
        "A840410000000002",
        "do-klima-westpark",
        City.DORTMUND,
        "klima-dortmund",
        "dragino/lht65",
        51.5102,
        7.4490,
        offset=1.5,
    ),
    DeviceSpec(
        "A840410000000003",
        "do-klima-hoesch",
        City.DORTMUND,
        "klima-dortmund",
        "dragino/lht65",
        51.5290,
        7.4820,
        offset=-1.0,
        silent_for=timedelta(days=3),
    ),
    DeviceSpec(
        "24E1247100000001",
        "do-luft-stadtbibliothek",
        City.DORTMUND,
        "klima-dortmund",
        "milesight-iot/am319",
        51.5135,
        7.4603,
        offset=2.0,
    ),
    DeviceSpec(
        "24E1247100000002",
        "do-luft-campus",
        City.DORTMUND,
        "klima-dortmund",
        "milesight-iot/am319",
        51.4926,
        7.4135,
        offset=6.0,
    ),
    DeviceSpec(
        "0000B00000000001",
        "do-parken-01",
        City.DORTMUND,
        "parken-dortmund",
        "nwave/nps405",
        51.5150,
        7.4620,
    ),
    DeviceSpec(
        "0000B00000000002",
        "do-parken-02",
        City.DORTMUND,
        "parken-dortmund",
        "nwave/nps405",
        51.5152,
        7.4625,
        occupied=True,
    ),
    DeviceSpec(
        "0000B00000000003",
        "do-parken-03",
        City.DORTMUND,
        "parken-dortmund",
        "nwave/nps405",
        51.5154,
        7.4630,
    ),
    # Schwerte: air and climate.
    DeviceSpec(
        "24E1247200000001",
        "sw-luft-rathaus",
        City.SCHWERTE,
        "luft-schwerte",
        "milesight-iot/am319",
        51.4448,
        7.5651,
        offset=-2.0,
    ),
    DeviceSpec(
        "24E1247200000002",
        "sw-luft-bahnhof",
        City.SCHWERTE,
        "luft-schwerte",
        "milesight-iot/am319",
        51.4420,
        7.5580,
        offset=4.0,
    ),
    DeviceSpec(
        "A840420000000001",
        "sw-klima-ruhrwiesen",
        City.SCHWERTE,
        "luft-schwerte",
        "dragino/lht65",
        51.4370,
        7.5700,
        offset=-0.5,
    ),
)
# The restricted dataset's devices, one per city; nothing of them may reach the page.
RESTRICTED_DEVICES = (
    DeviceSpec(
        "F0F0F0F000000001",
        "werkschutz-tor-nord",
        City.DORTMUND,
        "werkschutz-intern",
        "milesight-iot/am319",
        51.5200,
        7.4700,
        offset=30.0,
    ),
    DeviceSpec(
        "F0F0F0F000000002",
        "werkschutz-halle-5",
        City.SCHWERTE,
        "werkschutz-intern",
        "dragino/lht65",
        51.4450,
        7.5600,
        offset=10.0,
    ),
)


def value_at(spec: DeviceSpec, metric: str, time: datetime) -> float:
    """The reading of `metric` at `time`: a daily cycle per metric, shifted per device."""
    hour = time.hour + time.minute / 60
    cycle = math.cos(2 * math.pi * (hour - 15) / 24)
    if metric == "temperature":
        return round(8.0 + spec.offset + 4.0 * cycle, 2)
    if metric == "relative_humidity":
        return round(75.0 - 10.0 * cycle + spec.offset, 1)
    if metric == "pm2_5":
        return round(max(0.0, 9.0 + spec.offset - 3.0 * cycle), 1)
    if metric == "co2":
        return float(round(600 + 40 * spec.offset + 150 * cycle))
    if metric == "occupancy":
        return 0.0
    raise ValueError(metric)


@dataclass
class Seeded:
    """What was seeded, for the tests' expectations."""

    now: datetime
    devices: dict[str, DeviceSpec] = field(default_factory=dict)
    restricted: dict[str, DeviceSpec] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)


def seed(conn: psycopg.Connection, *, now: datetime | None = None) -> Seeded:
    """Register the datasets and devices and store their readings; the caller commits."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    specs = (*OPEN_DATASETS, RESTRICTED_DATASET)
    supplier_ids = suppliers.upsert_suppliers(
        conn,
        suppliers=[SupplierRow(d.supplier, d.supplier_name, "city_department") for d in specs],
    )
    for d in specs:
        datasets.insert_dataset(
            conn,
            slug=d.slug,
            supplier_id=supplier_ids[d.supplier],
            fields=DatasetFields(
                name=d.name,
                licence_class=d.licence_class,
                licence_id=d.licence_id,
                licence_name=d.licence_name,
                licence_url=d.licence_url,
                attribution=d.attribution,
            ),
        )
    supplier_of = {d.slug: d.supplier for d in specs}
    every = (*DEVICES, *RESTRICTED_DEVICES)
    devices.upsert_devices(
        conn,
        devices=[
            Device(
                dev_eui=s.dev_eui,
                name=s.name,
                city=s.city,
                supplier=supplier_of[s.dataset],
                profile=s.profile,
                location=Location(s.latitude, s.longitude),
                dataset=s.dataset,
            )
            for s in every
        ],
        supplier_ids=supplier_ids,
    )
    ids = {eui: entry.device_id for eui, entry in devices.select_registry(conn).items()}
    seeded = Seeded(now=now)
    rows: list[ReadingRow] = []
    for spec in every:
        end = now - (spec.silent_for or timedelta(0))
        times = [end - i * STEP for i in range(int(HISTORY / STEP))]
        for metric in SEEDED_METRICS[spec.profile]:
            for time in times:
                value = value_at(spec, metric, time)
                if metric == "occupancy" and time == times[0]:
                    value = 1.0 if spec.occupied else 0.0
                rows.append(ReadingRow(time, ids[spec.dev_eui], metric, value))
        seeded.last_seen[spec.dev_eui] = times[0]
        (seeded.restricted if spec in RESTRICTED_DEVICES else seeded.devices)[spec.dev_eui] = spec
    readings.insert_readings(conn, rows=rows)
    devices.mark_seen(conn, last_seen={ids[eui]: t for eui, t in seeded.last_seen.items()})
    return seeded
