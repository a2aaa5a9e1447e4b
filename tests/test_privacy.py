"""The privacy rule, pure: the grid, the public id, what a protected device shows."""

from __future__ import annotations

import hashlib
import hmac
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datahub.config import PrivacySettings
from datahub.privacy import (
    METRES_PER_DEGREE,
    Grid,
    PrivacyClass,
    View,
    hmac_pads,
    is_public_id,
    public_id,
    shows_series,
)

GRID_M = 250.0
LATITUDE = 51.5
GRID = Grid.of(GRID_M, latitude=LATITUDE)
# Positions where a grid of degrees is meant to be used, and a little beyond.
latitudes = st.floats(min_value=-80, max_value=80, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
grids = st.floats(min_value=10, max_value=10_000)


def _on_grid(value: float, step: float) -> bool:
    """Whether `value` is a cell centre of a grid of `step`: (n + 0.5) * step."""
    n = value / step - 0.5
    return math.isclose(n, round(n), abs_tol=1e-6)


@given(latitudes, longitudes, grids)
def test_every_snapped_position_is_a_cell_centre(lat: float, lon: float, grid_m: float) -> None:
    grid = Grid.of(grid_m, latitude=LATITUDE)
    snapped_lat, snapped_lon = grid.snap(lat, lon)
    assert _on_grid(snapped_lat, grid.lat_step)
    assert _on_grid(snapped_lon, grid.lon_step)


@given(latitudes, longitudes)
def test_snapping_is_stable(lat: float, lon: float) -> None:
    first = GRID.snap(lat, lon)
    assert GRID.snap(lat, lon) == first
    # A cell centre snaps to itself: whoever snaps a published position learns nothing.
    assert GRID.snap(*first) == first


@given(latitudes, longitudes, grids)
def test_a_snapped_position_lies_within_half_a_cell_diagonal(
    lat: float, lon: float, grid_m: float
) -> None:
    grid = Grid.of(grid_m, latitude=LATITUDE)
    snapped_lat, snapped_lon = grid.snap(lat, lon)
    # Distances in the grid's metres: square cells of grid_m at its latitude.
    north = (snapped_lat - lat) * METRES_PER_DEGREE
    east = (snapped_lon - lon) * METRES_PER_DEGREE * math.cos(math.radians(LATITUDE))
    assert abs(north) <= grid_m / 2 * (1 + 1e-9)
    assert abs(east) <= grid_m / 2 * (1 + 1e-9)
    assert math.hypot(north, east) <= grid_m * math.sqrt(2) / 2 * (1 + 1e-9)


@given(latitudes, longitudes, st.floats(min_value=-0.001, max_value=0.001))
def test_positions_in_one_cell_share_its_centre(lat: float, lon: float, shift: float) -> None:
    lat_cell = math.floor(lat / GRID.lat_step)
    moved = lat + shift
    if math.floor(moved / GRID.lat_step) == lat_cell:
        assert GRID.snap(moved, lon)[0] == GRID.snap(lat, lon)[0]


def test_the_cells_measure_the_grid_at_its_latitude() -> None:
    assert GRID.lat_step * METRES_PER_DEGREE == pytest.approx(GRID_M)
    east = GRID.lon_step * METRES_PER_DEGREE * math.cos(math.radians(LATITUDE))
    assert east == pytest.approx(GRID_M)


@given(st.text(alphabet="0123456789ABCDEF", min_size=16, max_size=16), st.binary(min_size=1))
def test_the_public_id_is_an_hmac_that_never_looks_like_a_dev_eui(dev_eui: str, key: bytes) -> None:
    shown = public_id(dev_eui, key=key)
    assert shown == public_id(dev_eui, key=key)
    assert is_public_id(shown) and not is_public_id(dev_eui)
    assert shown.startswith("pub-") and len(shown) == 24
    expected = hmac.new(key, dev_eui.encode(), hashlib.sha256).hexdigest()[:20]
    assert shown == "pub-" + expected


@given(st.binary(max_size=200), st.binary(max_size=40))
def test_the_padded_keys_compute_the_same_hmac(key: bytes, message: bytes) -> None:
    inner, outer = hmac_pads(key)
    by_pads = hashlib.sha256(outer + hashlib.sha256(inner + message).digest()).digest()
    assert by_pads == hmac.new(key, message, hashlib.sha256).digest()


VIEW = View.of(PrivacySettings())


@pytest.mark.parametrize(
    ("privacy", "protected", "name", "shown"),
    [
        (PrivacyClass.PRIVATE_OWNER, True, "Garten Familie Meier", "pub-x"),
        (PrivacyClass.PRIVATE_OWNER, False, "Garten Familie Meier", "Garten Familie Meier"),
        (PrivacyClass.PERSONAL, True, "Zähler Westenhellweg", "Zähler Westenhellweg"),
        (PrivacyClass.PERSONAL, True, "70B3D57ED0001234", "pub-x"),
        (PrivacyClass.PERSONAL, True, "counter 70b3d57ed0001234", "pub-x"),
        (PrivacyClass.PUBLIC_INFRASTRUCTURE, False, "70B3D57ED0001234", "70B3D57ED0001234"),
    ],
    ids=[
        "owner-label-hidden",
        "owner-granted",
        "personal-label-kept",
        "personal-dev-eui-name",
        "personal-dev-eui-in-name",
        "public",
    ],
)
def test_names(privacy: PrivacyClass, protected: bool, name: str, shown: str) -> None:
    assert VIEW.name(name, "pub-x", privacy, protected) == shown


def test_positions_and_series() -> None:
    exact = (51.51234, 7.46543)
    assert VIEW.position(*exact, PrivacyClass.PRIVATE_OWNER, True) == VIEW.grid.snap(*exact)
    assert VIEW.position(*exact, PrivacyClass.PRIVATE_OWNER, False) == exact
    assert VIEW.position(*exact, PrivacyClass.PERSONAL, True) == exact
    assert VIEW.position(None, None, PrivacyClass.PRIVATE_OWNER, True) is None
    assert not shows_series(PrivacyClass.PERSONAL, True)
    assert shows_series(PrivacyClass.PERSONAL, False)
    assert shows_series(PrivacyClass.PRIVATE_OWNER, True)
    assert VIEW.enough_devices(0) and VIEW.enough_devices(5)
    assert not VIEW.enough_devices(1) and not VIEW.enough_devices(4)
