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

from datahub.domain import City, Device, LevelCalibration, Location, Placement
from datahub.privacy import PrivacyClass
from datahub.storage import datasets, devices, readings, suppliers
from datahub.storage.datasets import DatasetFields, DatasetMetadata
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
    "milesight-iot/vs133": ("people_in",),
    "dragino/ldds75": ("distance",),
}
# Where each profile's sensors measure: climate and parking outdoors, air quality indoors.
PLACEMENTS = {
    "dragino/lht65": Placement.OUTDOOR,
    "milesight-iot/am319": Placement.INDOOR,
    "nwave/nps405": Placement.OUTDOOR,
    "milesight-iot/vs133": Placement.OUTDOOR,
    "dragino/ldds75": Placement.OUTDOOR,
}
# A people counter's running total when the history starts: far above its counts per hour.
COUNTER_START = 1_400_000.0
BIN_LEVEL = LevelCalibration(empty=1100.0, full=150.0)


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
    area: str | None = None  # district or zone
    distance: float = 900.0  # waste bins: the newest distance (200: above 80 % full)
    privacy: PrivacyClass | None = None  # None: its dataset's class
    rate: float = 1.0  # people counters: how busy their street is


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
COUNTER_DATASET = DatasetSpec(
    slug="passanten-dortmund",
    supplier="do-wirtschaftsfoerderung",
    supplier_name="Wirtschaftsförderung Dortmund",
    name="Passantenfrequenz Dortmund",
    licence_class="open",
    licence_id="dl-de/by-2-0",
    licence_name="Datenlizenz Deutschland - Namensnennung - 2.0",
    licence_url="https://www.govdata.de/dl-de/by-2-0",
    attribution="Wirtschaftsförderung Dortmund",
)
# Not open, but their suppliers allow open summaries per district and zone.
SUMMARY_DATASETS = (
    DatasetSpec(
        slug="abfall-dortmund",
        supplier="entsorgung-dortmund",
        supplier_name="Entsorgung Dortmund GmbH",
        name="Füllstände Abfallbehälter Dortmund",
        licence_class="commercial",
        licence_id="kommerziell-1.0",
        licence_name="Nutzung gegen Entgelt",
        licence_url="http://dcat-ap.de/def/licenses/other-commercial",
        attribution="Entsorgung Dortmund GmbH",
    ),
    DatasetSpec(
        slug="parken-schwerte",
        supplier="sw-tiefbau",
        supplier_name="Stadt Schwerte, Tiefbau",
        name="Parkplätze Schwerte",
        licence_class="restricted",
        licence_id="vereinbarung-1.0",
        licence_name="Nutzung nach Vereinbarung",
        licence_url="http://dcat-ap.de/def/licenses/other-closed",
        attribution="Stadt Schwerte, Tiefbau",
    ),
)
RESTRICTED_DATASET = DatasetSpec(
    slug="werkschutz-intern",
    supplier="sicherheitsdienst-ruhr",
    supplier_name="Sicherheitsdienst Ruhr GmbH",
    name="Werkschutz intern",
    licence_class="restricted",
    licence_id="none",
    licence_name="no licence given",
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
COUNTER = DeviceSpec(
    "24E1247130000001",
    "do-passanten-westenhellweg",
    City.DORTMUND,
    "passanten-dortmund",
    "milesight-iot/vs133",
    51.5141,
    7.4610,
)
# Waste bins per district (five in one, two in the other: k is 5) and parking bays per
# zone in Schwerte (six and three), of the datasets with open summaries.
BINS = tuple(
    DeviceSpec(
        f"A8404100F10000{i:02X}",
        f"bin-{i}",
        City.DORTMUND,
        "abfall-dortmund",
        "dragino/ldds75",
        51.51 + i / 1000,
        7.46,
        area="Innenstadt-West" if i < 5 else "Hörde",
        distance=200.0 if i in (0, 1, 5) else 900.0,
    )
    for i in range(7)
)
BAYS = tuple(
    DeviceSpec(
        f"70B3D5C0B00000{i:02X}",
        f"bay-{i}",
        City.SCHWERTE,
        "parken-schwerte",
        "nwave/nps405",
        51.444 + i / 1000,
        7.565,
        area="Bahnhof" if i < 6 else "Ruhrtal",
        occupied=i in (0, 1, 6),
    )
    for i in range(9)
)
SUMMARY_DEVICES = (*BINS, *BAYS)
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


# A separate stack's people counters (seed_counting): in Schwerte as many personal ones as
# privacy.k_min asks for (its default), so the city's count is served; in Dortmund fewer,
# so it is withheld. A public counter in each city counts in either case.
K_MIN = 5
COUNTING_DATASET = DatasetSpec(
    slug="passanten-ruhr",
    supplier="ruhr-passanten",
    supplier_name="Passantenzählung Ruhr",
    name="Passantenfrequenz Dortmund und Schwerte",
    licence_class="open",
    licence_id="dl-de/by-2-0",
    licence_name="Datenlizenz Deutschland - Namensnennung - 2.0",
    licence_url="https://www.govdata.de/dl-de/by-2-0",
    attribution="Passantenzählung Ruhr",
)


PERSONAL_COUNTERS = tuple(
    DeviceSpec(
        f"24E12471C00000{i:02X}",
        f"sw-passanten-{i}",
        City.SCHWERTE,
        COUNTING_DATASET.slug,
        "milesight-iot/vs133",
        51.4440 + i / 1000,
        7.5650,
        privacy=PrivacyClass.PERSONAL,
        rate=1.0 + i / 2,
    )
    for i in range(K_MIN)
) + tuple(
    DeviceSpec(
        f"24E12471D00000{i:02X}",
        f"do-passanten-{i}",
        City.DORTMUND,
        COUNTING_DATASET.slug,
        "milesight-iot/vs133",
        51.5140 + i / 1000,
        7.4600,
        privacy=PrivacyClass.PERSONAL,
        rate=3.0 + i,
    )
    for i in range(2)
)
PUBLIC_COUNTERS = (
    DeviceSpec(
        "24E12471C0000100",
        "sw-passanten-markt",
        City.SCHWERTE,
        COUNTING_DATASET.slug,
        "milesight-iot/vs133",
        51.4430,
        7.5660,
        rate=0.5,
    ),
    DeviceSpec(
        "24E12471D0000100",
        "do-passanten-markt",
        City.DORTMUND,
        COUNTING_DATASET.slug,
        "milesight-iot/vs133",
        51.5130,
        7.4610,
        rate=0.25,
    ),
)
COUNTING_DEVICES = (*PERSONAL_COUNTERS, *PUBLIC_COUNTERS)


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
    if metric == "distance":
        return 1000.0
    raise ValueError(metric)


def people_counted(time: datetime) -> float:
    """People counted in the half hour before `time`: a busy street by day, quiet by night."""
    hour = time.hour + time.minute / 60
    return float(round(500 + 450 * math.cos(2 * math.pi * (hour - 15) / 24)))


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
    specs = (*OPEN_DATASETS, COUNTER_DATASET, *SUMMARY_DATASETS, RESTRICTED_DATASET)
    supplier_ids = _register_datasets(conn, specs)
    for d in SUMMARY_DATASETS:
        record = datasets.get_dataset(conn, slug=d.slug)
        assert record is not None
        datasets.update_metadata(
            conn, dataset_id=record.id, metadata=DatasetMetadata(public_summaries=True)
        )
    every = (*DEVICES, COUNTER, *SUMMARY_DEVICES, *RESTRICTED_DEVICES)
    seeded = Seeded(now=now)
    seeded.last_seen = _register_devices(
        conn, every, supplier_ids=supplier_ids, specs=specs, now=now, history=HISTORY
    )
    for spec in every:
        if spec in RESTRICTED_DEVICES:
            seeded.restricted[spec.dev_eui] = spec
        elif spec in DEVICES:
            seeded.devices[spec.dev_eui] = spec
    return seeded


def seed_counting(conn: psycopg.Connection, *, now: datetime | None = None) -> Seeded:
    """Register the people counters of COUNTING_DEVICES with a day of readings."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    specs = (COUNTING_DATASET,)
    supplier_ids = _register_datasets(conn, specs)
    seeded = Seeded(now=now, devices={s.dev_eui: s for s in COUNTING_DEVICES})
    seeded.last_seen = _register_devices(
        conn,
        COUNTING_DEVICES,
        supplier_ids=supplier_ids,
        specs=specs,
        now=now,
        history=timedelta(days=1),
    )
    return seeded


def _register_datasets(conn: psycopg.Connection, specs: tuple[DatasetSpec, ...]) -> dict[str, int]:
    """Register the datasets and their suppliers; return supplier slug -> id."""
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
    return supplier_ids


def _register_devices(
    conn: psycopg.Connection,
    every: tuple[DeviceSpec, ...],
    *,
    supplier_ids: dict[str, int],
    specs: tuple[DatasetSpec, ...],
    now: datetime,
    history: timedelta,
) -> dict[str, datetime]:
    """Register the devices and store their readings of `history` before `now`; return
    each one's last uplink."""
    supplier_of = {d.slug: d.supplier for d in specs}
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
                placement=PLACEMENTS[s.profile],
                area=s.area,
                level=BIN_LEVEL if s.profile == "dragino/ldds75" else None,
                privacy=s.privacy,
            )
            for s in every
        ],
        supplier_ids=supplier_ids,
    )
    ids = {eui: entry.device_id for eui, entry in devices.select_registry(conn).items()}
    last_seen: dict[str, datetime] = {}
    rows: list[ReadingRow] = []
    for spec in every:
        end = now - (spec.silent_for or timedelta(0))
        times = [end - i * STEP for i in range(int(history / STEP))]
        for metric in SEEDED_METRICS[spec.profile]:
            total = COUNTER_START
            for time in sorted(times):
                if metric == "people_in":
                    total += round(spec.rate * people_counted(time))
                    value = total
                else:
                    value = value_at(spec, metric, time)
                if time == times[0] and metric == "occupancy":
                    value = 1.0 if spec.occupied else 0.0
                if time == times[0] and metric == "distance":
                    value = spec.distance
                rows.append(ReadingRow(time, ids[spec.dev_eui], metric, value))
        last_seen[spec.dev_eui] = times[0]
    readings.insert_readings(conn, rows=rows)
    devices.mark_seen(conn, last_seen={ids[eui]: t for eui, t in last_seen.items()})
    return last_seen
