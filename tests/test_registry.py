"""The registry CSV: placement, area and level calibration, and what a file leaves alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from datahub.domain import LevelCalibration, Placement
from datahub.registry import RegistryFileError, read_registry_csv

PROFILES = ("dragino/ldds75", "dragino/lht65")
HEADER = "dev_eui,name,city,supplier,profile"


def registry(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_placement_area_and_level_are_read(tmp_path: Path) -> None:
    path = registry(
        tmp_path,
        f"{HEADER},placement,area,level_empty,level_full\n"
        "A8404100F1000001,bin 1,dortmund,edg,dragino/ldds75,outdoor,Hörde,1100,150\n"
        "A84041000A000002,tree,dortmund,edg,dragino/lht65,,,,\n",
    )

    read = read_registry_csv(path, profiles=PROFILES)

    bin_one, tree = read.devices
    assert (bin_one.placement, bin_one.area, bin_one.level) == (
        Placement.OUTDOOR,
        "Hörde",
        LevelCalibration(empty=1100.0, full=150.0),
    )
    assert (tree.placement, tree.area, tree.level) == (None, None, None)
    assert read.keep == frozenset()


def test_a_file_without_the_columns_keeps_what_the_registry_holds(tmp_path: Path) -> None:
    path = registry(
        tmp_path, f"{HEADER},area\nA8404100F1000001,bin,dortmund,edg,dragino/ldds75,X\n"
    )
    assert read_registry_csv(path, profiles=PROFILES).keep == frozenset({"placement", "level"})


@pytest.mark.parametrize(
    ("columns", "values", "message"),
    [
        pytest.param("placement", "inside", "placement 'inside' is not one of", id="placement"),
        pytest.param("level_empty,level_full", "1100,", "both be numbers", id="half-level"),
        pytest.param("level_empty,level_full", "150,150", "must differ", id="equal-level"),
        pytest.param("level_empty,level_full", "nan,150", "finite", id="nan-level"),
        pytest.param("level_empty", "1100", "come together", id="one-column"),
        pytest.param("area", "x" * 101, "at most 100", id="long-area"),
    ],
)
def test_bad_values_name_their_line(
    tmp_path: Path, columns: str, values: str, message: str
) -> None:
    path = registry(
        tmp_path, f"{HEADER},{columns}\nA8404100F1000001,bin,dortmund,edg,dragino/ldds75,{values}\n"
    )
    with pytest.raises(RegistryFileError, match=message):
        read_registry_csv(path, profiles=PROFILES)


def test_fill_is_a_share_of_the_calibrated_range() -> None:
    level = LevelCalibration(empty=1100, full=150)
    assert [level.fill(d) for d in (1100, 150, 625, 1300, 100)] == [0.0, 1.0, 0.5, 0.0, 1.0]
