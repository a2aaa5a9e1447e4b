"""The scenario loader: the demo is valid, its registry stable; bad scenarios fail clearly."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from datahub.domain import City
from simulators.encoders import ENCODERS
from simulators.scenario import (
    REGISTRY_COLUMNS,
    Scenario,
    ScenarioError,
    distance_m,
    field_name,
    load_scenario,
    parse_scenario,
    registry_rows,
    write_registry_csv,
)


def test_demo_covers_both_cities_and_their_sources(demo: Scenario) -> None:
    assert {f.city for f in demo.fleets} == {City.DORTMUND, City.SCHWERTE}
    assert {f.city: f.source for f in demo.fleets} == {
        City.DORTMUND: "ttn-dortmund",
        City.SCHWERTE: "chirpstack-schwerte",
    }
    assert {"dragino/lht65", "elsys/ers-co2", "milesight-iot/em500-co2"} <= {
        f.profile for f in demo.fleets
    }


def test_demo_fleets_name_exactly_their_encoders_fields(demo: Scenario) -> None:
    for fleet in demo.fleets:
        assert set(fleet.values) == {field_name(p) for p in ENCODERS[fleet.profile].fields}


def test_dev_euis_are_unique_upper_hex(demo: Scenario) -> None:
    dev_euis = [d.dev_eui for d in demo.devices()]
    assert len(dev_euis) == sum(f.count for f in demo.fleets)
    assert len(set(dev_euis)) == len(dev_euis)
    assert all(re.fullmatch(r"[0-9A-F]{16}", e) for e in dev_euis)
    assert len({d.name for d in demo.devices()}) == len(dev_euis)


def test_dev_euis_are_prefix_plus_index(demo: Scenario) -> None:
    fleet = demo.fleets[0]
    devices = [d for d in demo.devices() if d.fleet == fleet.name]
    assert [d.dev_eui for d in devices[:2]] == [
        fleet.dev_eui_prefix + "1".rjust(16 - len(fleet.dev_eui_prefix), "0"),
        fleet.dev_eui_prefix + "2".rjust(16 - len(fleet.dev_eui_prefix), "0"),
    ]


def test_devices_lie_inside_their_city_and_fleet_radius(demo: Scenario) -> None:
    for device in demo.devices():
        city = demo.cities[device.city]
        radius_km = demo.fleet(device.fleet).radius_km or city.radius_km
        distance = distance_m(device.latitude, device.longitude, city.latitude, city.longitude)
        assert distance <= radius_km * 1000, device


def test_devices_spread_over_the_city(demo: Scenario) -> None:
    locations = [(d.latitude, d.longitude) for d in demo.devices()]
    assert len(set(locations)) == len(locations)  # no two devices stacked
    for city_name, city in demo.cities.items():
        distances = [
            distance_m(d.latitude, d.longitude, city.latitude, city.longitude)
            for d in demo.devices()
            if d.city == city_name
        ]
        assert max(distances) > 0.8 * city.radius_km * 1000
        assert min(distances) < 0.2 * city.radius_km * 1000


def test_registry_is_the_same_on_every_load(demo: Scenario) -> None:
    assert registry_rows(load_scenario()) == registry_rows(demo)


def test_registry_csv_round_trip(demo: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    written = write_registry_csv(demo, path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == REGISTRY_COLUMNS
        rows = list(reader)
    assert written == len(rows) == len(demo.devices())
    assert rows == registry_rows(demo)
    first, device = rows[0], demo.devices()[0]
    supplier = demo.supplier(device.supplier)
    assert first == {
        "dev_eui": device.dev_eui,
        "name": device.name,
        "city": device.city.value,
        "supplier": supplier.slug,
        "supplier_name": supplier.name,
        "supplier_kind": supplier.kind.value,
        "profile": device.profile,
        "latitude": f"{device.latitude:.6f}",
        "longitude": f"{device.longitude:.6f}",
        "placement": "outdoor",
        "area": "",
        "level_empty": "",
        "level_full": "",
    }
    assert float(first["latitude"]) == device.latitude
    bins = [r for r in rows if r["profile"] == "dragino/ldds75"]
    assert {(r["level_empty"], r["level_full"]) for r in bins} == {("1100", "150")}
    assert all(r["area"] for r in bins)


def test_areas_must_hold_the_whole_fleet(demo: Scenario) -> None:
    data = demo.model_dump(mode="json")
    fleet = next(f for f in data["fleets"] if f["name"] == "do-abfall")
    fleet["areas"] = {"Hörde": 1}
    with pytest.raises(ScenarioError, match="areas hold 1 devices, the fleet 50"):
        parse_scenario(data)


def test_registry_csv_to_an_open_file(demo: Scenario) -> None:
    buffer = io.StringIO()
    write_registry_csv(demo, buffer)
    assert buffer.getvalue().splitlines()[0] == ",".join(REGISTRY_COLUMNS)


Change = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Change:
    """A change that sets one key, addressed like "fleets.0.profile"."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _drop_first_value(data: dict[str, Any]) -> None:
    values = data["fleets"][0]["values"]
    del values[next(iter(values))]


def _copy_first_fleet(data: dict[str, Any]) -> None:
    twin = dict(data["fleets"][0], name="twin")
    data["fleets"].append(twin)


INVALID = [
    pytest.param(
        _set("fleets.0.profile", "acme/unknown"),
        r"no encoder for profile 'acme/unknown'",
        id="unknown-profile",
    ),
    pytest.param(
        _set("fleets.0.supplier", "nobody"),
        r"supplier 'nobody' is not in `suppliers`",
        id="unknown-supplier",
    ),
    pytest.param(
        _set("fleets.0.source", "ttn-bochum"),
        r"source 'ttn-bochum' is not in `sources`",
        id="unknown-source",
    ),
    pytest.param(_set("fleets.0.city", "bochum"), r"fleets\.0\.city", id="unknown-city"),
    pytest.param(_set("fleets.0.dev_eui_prefix", "XYZ123"), r"dev_eui_prefix", id="prefix-not-hex"),
    pytest.param(_drop_first_value, r"`values` lacks", id="field-missing"),
    pytest.param(
        _set("fleets.0.values.no_such_field", {"mean": 1, "min": 0, "max": 2}),
        r"has no field no_such_field",
        id="field-unknown",
    ),
    pytest.param(_copy_first_fleet, r"dev_eui '[0-9A-F]{16}' appears twice", id="dev-eui-twice"),
    pytest.param(_set("fleets.0.count", 0), r"fleets\.0\.count", id="no-devices"),
    pytest.param(_set("fleets.0.interval_s", 1), r"fleets\.0\.interval_s", id="interval-too-short"),
    pytest.param(_set("timezone", "Mars/Olympus"), r"unknown time zone", id="bad-zone"),
]


@pytest.mark.parametrize(("change", "message"), INVALID)
def test_invalid_scenario_fails_clearly(
    scenario_data: dict[str, Any], change: Change, message: str
) -> None:
    change(scenario_data)
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(scenario_data)


def test_source_serving_another_city_is_refused(scenario_data: dict[str, Any]) -> None:
    fleet = next(f for f in scenario_data["fleets"] if f["city"] == "dortmund")
    fleet["source"] = "chirpstack-schwerte"
    with pytest.raises(ScenarioError, match="serves schwerte, not dortmund"):
        parse_scenario(scenario_data)


def test_bad_value_spec_names_its_fleet_and_field(scenario_data: dict[str, Any]) -> None:
    fleet = scenario_data["fleets"][0]
    name = next(iter(fleet["values"]))
    fleet["values"][name] = {"mean": 10, "min": 5, "max": 1}
    with pytest.raises(ScenarioError, match=rf"fleets\.0\.values\.{re.escape(name)}.*min 5"):
        parse_scenario(scenario_data)


def test_unknown_profile_error_names_the_file_and_fleet(
    scenario_data: dict[str, Any], tmp_path: Path
) -> None:
    scenario_data["fleets"][0]["profile"] = "acme/unknown"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(scenario_data), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert str(path) in message
    assert repr(scenario_data["fleets"][0]["name"]) in message
    assert "dragino/lht65" in message  # lists the profiles that do have encoders


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("fleets: [", "not valid YAML", id="not-yaml"),
        pytest.param("- just a list", "expected a mapping", id="not-a-mapping"),
    ],
)
def test_unreadable_file_fails_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_missing_file_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")
