"""An alert rule as a value: its kind, scope, thresholds and channels (ops/rules.py checks
and stores them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    THRESHOLD = "threshold"
    BATTERY = "battery"
    SILENCE = "silence"
    GATEWAY_SILENT = "gateway_silent"


class Scope(StrEnum):
    ALL = "all"
    DEVICE = "device"
    PROFILE = "profile"
    DATASET = "dataset"
    SUPPLIER = "supplier"
    CITY = "city"
    GATEWAY = "gateway"


class Operator(StrEnum):
    ABOVE = "above"
    BELOW = "below"


DEVICE_SCOPES = (Scope.ALL, Scope.DEVICE, Scope.PROFILE, Scope.DATASET, Scope.SUPPLIER, Scope.CITY)
GATEWAY_SCOPES = (Scope.ALL, Scope.CITY, Scope.GATEWAY)
READING_KINDS = (Kind.THRESHOLD, Kind.BATTERY)


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule as stored; `id` is 0 before it is."""

    name: str
    kind: Kind
    scope: Scope = Scope.ALL
    scope_value: str | None = None
    metric: str | None = None
    operator: Operator | None = None
    open_value: float | None = None
    clear_value: float | None = None
    hold_s: int = 0
    intervals: float | None = None
    silent_s: int | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    email_to: tuple[str, ...] = ()
    cooldown_s: int = 0
    enabled: bool = True
    id: int = 0

    def breached(self, value: float) -> bool:
        """Tell whether a reading is beyond the opening threshold."""
        assert self.open_value is not None
        if self.operator is Operator.BELOW:
            return value < self.open_value
        return value > self.open_value

    def cleared(self, value: float) -> bool:
        """Tell whether a reading is back at or beyond the clearing threshold."""
        clear = self.clear_value if self.clear_value is not None else self.open_value
        assert clear is not None
        if self.operator is Operator.BELOW:
            return value >= clear
        return value <= clear
