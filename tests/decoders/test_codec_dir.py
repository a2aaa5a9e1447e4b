"""Profiles from a codec directory: yaml + js loading, validation, the merged catalog, rescans."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import decoders
from decoders.catalog import MetricKind
from decoders.codec_dir import CodecCatalog, load_profile
from decoders.javascript import CodecError

CODECS = Path(__file__).parents[1] / "fixtures" / "codecs"
DEPLOY_CODECS = Path(__file__).parents[2] / "deploy" / "codecs"

THERMOMETER_YAML = """\
description: Test thermometer in the TTN style
reporting_interval_s: 600
metrics:
  - {path: [temperature], metric: temperature, kind: gauge}
  - {path: humidity, metric: relative_humidity, kind: gauge}
  - {path: [battery, volts], metric: battery_voltage, kind: gauge, scale: 1}
examples:
  - description: Normal frame
    f_port: 1
    bytes_hex: 0a2b5009c4
    expected: {temperature: 26.03, humidity: 40, battery: {volts: 2.5}, status: ok}
"""


def add_codec(root: Path, profile_id: str, *, js: str = "ttn_thermometer.js", yaml: str) -> Path:
    """Write `<root>/<vendor>/<model>.js` (a fixture codec) and its yaml; return the .js."""
    target = root / f"{profile_id}.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CODECS / js, target)
    target.with_suffix(".yaml").write_text(yaml, encoding="utf-8")
    return target


def test_a_yaml_and_js_pair_becomes_a_profile(tmp_path: Path) -> None:
    js_file = add_codec(tmp_path, "acme/thermo-1", yaml=THERMOMETER_YAML)
    profile = load_profile(js_file)
    assert (profile.id, profile.vendor, profile.model) == ("acme/thermo-1", "acme", "thermo-1")
    assert profile.version == hashlib.sha256(js_file.read_bytes()).hexdigest()[:12]
    assert profile.reporting_interval_s == 600
    assert [(m.path, m.metric, m.kind) for m in profile.mappings] == [
        (("temperature",), "temperature", MetricKind.GAUGE),
        (("humidity",), "relative_humidity", MetricKind.GAUGE),
        (("battery", "volts"), "battery_voltage", MetricKind.GAUGE),
    ]
    (example,) = profile.examples
    assert profile.decode(example.f_port, example.payload) == example.expected


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (THERMOMETER_YAML.replace("metric: temperature", "metric: warmth"), "not a canonical"),
        (THERMOMETER_YAML.replace("kind: gauge}", "kind: level}", 1), "kind 'level'"),
        (THERMOMETER_YAML.replace("reporting_interval_s: 600", "interval: 600"), "unknown keys"),
        (THERMOMETER_YAML.replace("bytes_hex: 0a2b5009c4", "bytes_hex: xyz"), "is not hex"),
        ("metrics: [\n", "while parsing"),
        ("- just a list\n", "must be a mapping"),
        (THERMOMETER_YAML.replace("kind: gauge}", "kind: gauge, wrap: 16}", 1), "wrap is a"),
    ],
    ids=[
        "unknown-metric",
        "bad-kind",
        "unknown-key",
        "bad-hex",
        "bad-yaml",
        "not-a-mapping",
        "wrap-on-a-gauge",
    ],
)
def test_bad_yaml_names_the_file(tmp_path: Path, yaml: str, message: str) -> None:
    js_file = add_codec(tmp_path, "acme/thermo", yaml=yaml)
    with pytest.raises(CodecError, match=message) as caught:
        load_profile(js_file)
    assert str(js_file.with_suffix(".yaml")) in str(caught.value)


def test_a_codec_without_yaml_or_that_does_not_compile_names_the_file(tmp_path: Path) -> None:
    js_file = add_codec(tmp_path, "acme/thermo", yaml=THERMOMETER_YAML)
    js_file.with_suffix(".yaml").unlink()
    with pytest.raises(CodecError, match=r"no .*thermo\.yaml beside it"):
        load_profile(js_file)
    js_file.with_suffix(".yaml").write_text(THERMOMETER_YAML, encoding="utf-8")
    js_file.write_text("function decodeUplink(input) {", encoding="utf-8")
    with pytest.raises(CodecError, match="acme/thermo: does not compile"):
        load_profile(js_file)


def test_the_merged_catalog_adds_codecs_to_the_built_in_profiles(tmp_path: Path) -> None:
    add_codec(tmp_path, "acme/thermo", yaml=THERMOMETER_YAML)
    catalog = CodecCatalog(decoders.CATALOG, tmp_path)
    assert set(catalog) == set(decoders.CATALOG) | {"acme/thermo"}
    assert catalog.is_javascript("acme/thermo") and not catalog.is_javascript("dragino/lht65")
    assert catalog["dragino/lht65"] is decoders.CATALOG["dragino/lht65"]
    assert catalog.problems == {}


def test_bad_files_are_skipped_and_reported_and_good_ones_still_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    add_codec(tmp_path, "acme/thermo", yaml=THERMOMETER_YAML)
    broken = add_codec(tmp_path, "acme/broken", yaml=THERMOMETER_YAML.replace("600", "-1"))
    clash = add_codec(tmp_path, "dragino/lht65", yaml=THERMOMETER_YAML)
    (tmp_path / "acme" / "orphan.yaml").write_text(THERMOMETER_YAML, encoding="utf-8")
    catalog = CodecCatalog(decoders.CATALOG, tmp_path)
    assert "acme/thermo" in catalog and "acme/broken" not in catalog
    assert catalog["dragino/lht65"] is decoders.CATALOG["dragino/lht65"]
    assert set(catalog.problems) == {broken, clash, tmp_path / "acme" / "orphan.yaml"}
    assert "reporting_interval_s must be a positive integer" in catalog.problems[broken]
    assert "is a built-in profile" in catalog.problems[clash]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 3
    catalog.rescan()  # the same bad files are not reported again
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 3


def test_rescans_pick_up_added_changed_and_removed_codecs(tmp_path: Path) -> None:
    catalog = CodecCatalog(decoders.CATALOG, tmp_path)
    assert "acme/thermo" not in catalog
    js_file = add_codec(tmp_path, "acme/thermo", yaml=THERMOMETER_YAML)
    catalog.rescan()
    first = catalog["acme/thermo"]
    catalog.rescan()
    assert catalog["acme/thermo"] is first, "an unchanged codec is not loaded again"

    js_file.write_text(js_file.read_text() + "\n// v2\n", encoding="utf-8")
    catalog.rescan()
    assert catalog["acme/thermo"].version != first.version

    good = catalog["acme/thermo"]
    js_file.write_text("function decodeUplink(input) {", encoding="utf-8")  # half-copied
    catalog.rescan()
    assert catalog["acme/thermo"] is good, "the last good version stays in service"
    assert js_file in catalog.problems

    js_file.unlink()
    js_file.with_suffix(".yaml").unlink()
    catalog.rescan()
    assert "acme/thermo" not in catalog and catalog.problems == {}


def test_a_missing_directory_leaves_the_built_in_catalog(tmp_path: Path) -> None:
    catalog = CodecCatalog(decoders.CATALOG, tmp_path / "nowhere")
    assert set(catalog) == set(decoders.CATALOG)
    assert "does not exist" in catalog.problems[tmp_path / "nowhere"]


@pytest.mark.skipif(not DEPLOY_CODECS.is_dir(), reason="no demo codecs")
def test_the_demo_codecs_load_and_prove_their_examples() -> None:
    catalog = CodecCatalog({}, DEPLOY_CODECS)
    assert catalog.problems == {}
    assert len(catalog) >= 1
    for profile in catalog.values():
        assert profile.examples
        for example in profile.examples:
            assert profile.decode(example.f_port, example.payload) == example.expected
