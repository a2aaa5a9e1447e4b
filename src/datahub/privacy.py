"""Privacy classes: what a caller without a grant for a dataset sees of its devices.

Each device is of one class, its own or (none set) its dataset's:

    public_infrastructure  the city's own sensors: shown as they are
    private_owner          a citizen's sensor: its DevEUI replaced by a public id, its
                           name too, its position snapped to the centre of a grid cell
    personal               counts people or parks on private ground: its DevEUI replaced
                           by a public id; its readings only as aggregates over at least
                           `privacy.k_min` such devices, never one device's series

A caller with a grant for the dataset (or an admin, or the dataset's own supplier) sees
every device as it is. The rule is pure and lives here; storage/privacy.py renders its
SQL counterparts (the same grid and the same public id), tested equal.

The grid is fixed: cells of `grid_m` metres, square at `grid_latitude` (the hub's cities),
aligned on latitude and longitude 0. A position always snaps to the same centre, so
asking again, or averaging many answers, tells nothing more. The public id is the
HMAC-SHA-256 of the DevEUI under a key the hub keeps (storage/privacy.py), hex, truncated
to 80 bits and prefixed, so that it never looks like a DevEUI (16 hex digits).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datahub.config import PrivacySettings

# Metres per degree of latitude (WGS 84 mean): the grid's cell height in degrees.
METRES_PER_DEGREE = 111_320.0
PUBLIC_ID_PREFIX = "pub-"
PUBLIC_ID_HEX = 20  # 80 bits: no two of a million devices share one
PUBLIC_ID = re.compile(rf"^{PUBLIC_ID_PREFIX}[0-9a-f]{{{PUBLIC_ID_HEX}}}$")
HMAC_BLOCK = 64  # SHA-256's block size, in bytes


class PrivacyClass(StrEnum):
    """How much of a device a caller without a grant for its dataset may see."""

    PUBLIC_INFRASTRUCTURE = "public_infrastructure"
    PRIVATE_OWNER = "private_owner"
    PERSONAL = "personal"

    @property
    def hides_identity(self) -> bool:
        """Whether the DevEUI and name are replaced by the public id."""
        return self is not PrivacyClass.PUBLIC_INFRASTRUCTURE


@dataclass(frozen=True, slots=True)
class Grid:
    """The fixed grid a private owner's position snaps to."""

    lat_step: float  # degrees
    lon_step: float  # degrees

    @classmethod
    def of(cls, grid_m: float, *, latitude: float) -> Grid:
        """The grid of cells `grid_m` metres wide, square at `latitude`."""
        lat_step = grid_m / METRES_PER_DEGREE
        return cls(lat_step, lat_step / math.cos(math.radians(latitude)))

    def snap(self, latitude: float, longitude: float) -> tuple[float, float]:
        """Return the centre of the cell holding the position (latitude, longitude)."""
        # The same operations as storage/privacy.py's SQL, in the same order: IEEE double
        # division, floor, addition and multiplication give the same bits on both sides.
        return (
            (math.floor(latitude / self.lat_step) + 0.5) * self.lat_step,
            (math.floor(longitude / self.lon_step) + 0.5) * self.lon_step,
        )


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """Return HMAC's inner and outer padded keys (RFC 2104) of `key`, as SQL computes with."""
    if len(key) > HMAC_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(HMAC_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def public_id(dev_eui: str, *, key: bytes) -> str:
    """Return the stable public id of a device (DevEUI in upper-case hex)."""
    digest = hmac.new(key, dev_eui.encode("ascii"), hashlib.sha256).hexdigest()
    return PUBLIC_ID_PREFIX + digest[:PUBLIC_ID_HEX]


def is_public_id(text: str) -> bool:
    """Whether `text` is a public id (never a DevEUI)."""
    return PUBLIC_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class View:
    """What a device shows of itself, given its class and whether it is shown protected
    (storage/privacy.py decides that by the caller's grants, and its shown id)."""

    grid: Grid
    k_min: int

    @classmethod
    def of(cls, settings: PrivacySettings) -> View:
        """The view of the configured grid and k."""
        return cls(Grid.of(settings.grid_m, latitude=settings.grid_latitude), settings.k_min)

    def name(self, name: str, shown_id: str, privacy: PrivacyClass, protected: bool) -> str:
        """A device's name as shown: a private owner's own label is not published, and
        a protected name never carries the DevEUI (the registry's default name)."""
        if protected and (privacy is PrivacyClass.PRIVATE_OWNER or _has_dev_eui(name)):
            return shown_id
        return name

    def position(
        self,
        latitude: float | None,
        longitude: float | None,
        privacy: PrivacyClass,
        protected: bool,
    ) -> tuple[float, float] | None:
        """A device's position as shown: a private owner's snapped to the grid."""
        if latitude is None or longitude is None:
            return None
        if protected and privacy is PrivacyClass.PRIVATE_OWNER:
            return self.grid.snap(latitude, longitude)
        return (latitude, longitude)

    def enough_devices(self, personal: int) -> bool:
        """Whether an aggregate holding readings of `personal` protected personal devices
        may be shown: of none, or of at least k."""
        return personal == 0 or personal >= self.k_min


def shows_series(privacy: PrivacyClass, protected: bool) -> bool:
    """Whether one device's readings may be shown: never a protected personal device's."""
    return not (protected and privacy is PrivacyClass.PERSONAL)


_DEV_EUI_IN = re.compile(r"[0-9A-Fa-f]{16}")


def _has_dev_eui(name: str) -> bool:
    return _DEV_EUI_IN.search(name) is not None


def withheld_reason(metric: str, personal: int, k_min: int) -> str:
    """Say why an aggregate of personal devices is withheld."""
    return (
        f"{metric!r} of {personal} device(s) that count people or park on private ground: "
        f"their readings are published only as aggregates over at least {k_min} such "
        "devices; a grant for their dataset shows them"
    )
