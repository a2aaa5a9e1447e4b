"""`datahub decode --codec`, `datahub decoders list` and `datahub decoders test`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import decoders
from datahub import cli
from datahub.catalog import open_catalog
from datahub.config import load_settings
from datahub.registry_import import RegistryFileError, read_registry_csv

CODECS = Path(__file__).parent / "fixtures" / "codecs"
YAML = """\
description: Test thermometer in the TTN style
reporting_interval_s: 600
metrics:
  - {path: [temperature], metric: temperature, kind: gauge}
examples:
  - {f_port: 1, bytes_hex: 0a2b5009c4,
     expected: {temperature: 26.03, humidity: 40, battery: {volts: 2.5}, status: ok}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose codec directory holds one JS codec, acme/thermo."""
    codecs_dir = tmp_path / "codecs"
    (codecs_dir / "acme").mkdir(parents=True)
    shutil.copyfile(CODECS / "ttn_thermometer.js", codecs_dir / "acme" / "thermo.js")
    (codecs_dir / "acme" / "thermo.yaml").write_text(YAML, encoding="utf-8")
    path = tmp_path / "datahub.yaml"
    path.write_text(f"catalog:\n  codecs_dir: {codecs_dir}\n", encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_decode_with_a_codec_prints_what_it_returned(capsys: pytest.CaptureFixture[str]) -> None:
    codec = str(CODECS / "ttn_thermometer.js")
    code, out = run(
        capsys, "decode", "--codec", codec, "--f-port", "1", "--payload-hex", "ff38510960"
    )
    assert code == 0
    assert json.loads(out) == {
        "data": {"temperature": -2, "humidity": 40.5, "battery": {"volts": 2.4}, "status": "ok"},
        "warnings": ["low battery: 2.4 V"],
        "errors": [],
    }


def test_decode_with_a_codec_exits_1_on_errors(capsys: pytest.CaptureFixture[str]) -> None:
    codec = str(CODECS / "ttn_thermometer.js")
    code, out = run(capsys, "decode", "--codec", codec, "--f-port", "9", "--payload-hex", "00")
    assert code == 1
    assert json.loads(out) == {"data": None, "warnings": [], "errors": ["unknown fPort 9"]}
    looping = str(CODECS / "loops_forever.js")
    code, out = run(capsys, "decode", "--codec", looping, "--f-port", "1", "--payload-hex", "00")
    assert code == 1
    assert "time limit of 100 ms" in json.loads(out)["errors"][0]


def test_decode_with_a_legacy_codec_wraps_its_result(capsys: pytest.CaptureFixture[str]) -> None:
    codec = str(CODECS / "legacy_decoder.js")
    code, out = run(capsys, "decode", "--codec", codec, "--f-port", "3", "--payload-hex", "00fa")
    assert (code, json.loads(out)) == (
        0,
        {"data": {"temperature": 25, "port": 3, "calls": 1}, "warnings": [], "errors": []},
    )


def test_decode_with_a_profile_of_the_codec_directory(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    argv = ["--config", str(config), "decode", "--profile", "acme/thermo", "--f-port", "1"]
    code, out = run(capsys, *argv, "--payload-hex", "0a2b5009c4")
    assert code == 0
    assert json.loads(out)["data"]["temperature"] == 26.03


def test_decoders_list_shows_both_kinds(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, out = run(capsys, "--config", str(config), "decoders", "list", "--json")
    assert code == 0
    listed = {entry["id"]: entry for entry in json.loads(out)}
    assert set(listed) == set(decoders.CATALOG) | {"acme/thermo"}
    thermo = listed["acme/thermo"]
    assert (thermo["vendor"], thermo["model"], thermo["kind"]) == ("acme", "thermo", "javascript")
    assert len(thermo["version"]) == 12 and thermo["metrics"] == ["temperature"]
    assert listed["dragino/lht65"]["kind"] == "python"

    code, out = run(capsys, "--config", str(config), "decoders", "list")
    assert code == 0 and "acme/thermo" in out and "javascript" in out


def test_decoders_test_replays_every_example(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out = run(capsys, "--config", str(config), "decoders", "test")
    assert code == 0
    assert "acme/thermo#0 example 0: pass" in out
    assert "FAIL" not in out
    expected = sum(len(p.examples) for p in decoders.CATALOG.values()) + 1
    assert f"{expected} passed, 0 failed, 0 bad files" in out


def test_decoders_test_fails_on_a_wrong_example_or_a_bad_file(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    codecs_dir = config.parent / "codecs"
    thermo_yaml = codecs_dir / "acme" / "thermo.yaml"
    thermo_yaml.write_text(YAML.replace("temperature: 26.03", "temperature: 26"), encoding="utf-8")
    code, out = run(capsys, "--config", str(config), "decoders", "test", "--profile", "acme/thermo")
    assert code == 1
    assert "acme/thermo#0 example 0: FAIL  data['temperature']: 26.03 != 26" in out

    thermo_yaml.write_text(YAML, encoding="utf-8")
    (codecs_dir / "acme" / "broken.js").write_text("function decodeUplink(", encoding="utf-8")
    (codecs_dir / "acme" / "broken.yaml").write_text(YAML, encoding="utf-8")
    code, out = run(capsys, "--config", str(config), "decoders", "test")
    assert code == 1
    assert "broken.js: FAIL" in out and "does not compile" in out


def test_devices_import_knows_the_codec_directory_profiles(tmp_path: Path, config: Path) -> None:
    registry_csv = tmp_path / "registry.csv"
    registry_csv.write_text(
        "dev_eui,name,city,supplier,profile\n"
        "A84041000A0000FF,do-thermo-1,dortmund,stadt-do,acme/thermo\n",
        encoding="utf-8",
    )
    catalog = open_catalog(load_settings(config))
    (line,) = read_registry_csv(registry_csv, profiles=catalog).lines
    assert line.stated["profile"] == "acme/thermo"
    with pytest.raises(RegistryFileError, match="acme/thermo"):
        read_registry_csv(registry_csv, profiles=decoders.CATALOG)


def test_a_relative_codec_directory_is_read_beside_the_config_file(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config.write_text("catalog:\n  codecs_dir: codecs\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as an operator's shell, not the service's folder
    monkeypatch.delenv("DATAHUB_CATALOG__CODECS_DIR", raising=False)
    assert load_settings(config).catalog.codecs_dir == tmp_path / "codecs"
    code, out = run(capsys, "--config", str(config), "decoders", "list")
    assert code == 0 and "acme/thermo" in out
