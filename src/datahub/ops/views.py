"""The operator's views, built from the health tables: devices with their status, gateways,
and the coverage map. Shared by the API, the `datahub ops` commands and the telemetry."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from datahub.config import HealthSettings
from datahub.ops import health
from datahub.ops.airtime import TTN_DAILY_BUDGET_S
from datahub.ops.health import Status
from datahub.storage.device_health import DeviceHealthRow, GatewayLinkRow

IntervalOf = Callable[[str], int | None]


@dataclass(frozen=True, slots=True)
class DeviceView:
    row: DeviceHealthRow
    status: Status
    expected_interval_s: int | None
    interval_source: str | None  # profile | learned

    @property
    def airtime_share(self) -> float | None:
        """The day's airtime as a share of TTN's fair-use budget."""
        seconds = self.row.airtime_24h_s
        return seconds / TTN_DAILY_BUDGET_S if seconds is not None else None


def device_views(
    rows: Sequence[DeviceHealthRow],
    *,
    interval_of: IntervalOf,
    now: datetime,
    settings: HealthSettings,
) -> list[DeviceView]:
    """Give each device its expected interval (profile, else learned) and its status."""
    views = []
    for row in rows:
        interval = interval_of(row.profile)
        source = "profile" if interval else None
        if not interval and row.learned_interval_s:
            interval, source = row.learned_interval_s, "learned"
        state = health.status(
            row.last_seen_at,
            interval,
            now=now,
            late_after=settings.late_after_intervals,
            silent_after=settings.silent_after_intervals,
        )
        views.append(DeviceView(row, state, interval, source))
    return views


@dataclass(frozen=True, slots=True)
class GatewayView:
    gateway_id: str
    city: str
    source: str
    status: Status  # ok or silent
    last_heard_at: datetime
    uplinks_24h: int
    uplinks_per_hour: float
    devices_24h: int
    devices_7d: int
    rssi: tuple[float, float, float] | None  # min, median, max of the devices' median RSSI
    snr: tuple[float, float, float] | None


def gateway_views(
    links: Sequence[GatewayLinkRow], *, now: datetime, silent_after_s: int
) -> list[GatewayView]:
    """Sum the (device, gateway) links per gateway, by gateway id."""
    by_gateway: dict[str, list[GatewayLinkRow]] = {}
    for link in links:
        by_gateway.setdefault(link.gateway_id, []).append(link)
    views = []
    for gateway_id, rows in sorted(by_gateway.items()):
        newest = max(rows, key=lambda r: r.last_heard_at)
        silent = now - newest.last_heard_at > timedelta(seconds=silent_after_s)
        uplinks = sum(r.uplinks_24h for r in rows)
        views.append(
            GatewayView(
                gateway_id=gateway_id,
                city=newest.city,
                source=newest.source,
                status=Status.SILENT if silent else Status.OK,
                last_heard_at=newest.last_heard_at,
                uplinks_24h=uplinks,
                uplinks_per_hour=uplinks / 24,
                devices_24h=sum(1 for r in rows if r.uplinks_24h),
                devices_7d=len(rows),
                rssi=_three([r.rssi_median for r in rows]),
                snr=_three([r.snr_median for r in rows]),
            )
        )
    return views


def _three(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return (min(known), statistics.median(known), max(known))


def coverage(links: Sequence[GatewayLinkRow]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: a point per located device with the gateways that hear it."""
    by_device: dict[str, list[GatewayLinkRow]] = {}
    for link in links:
        if link.latitude is not None and link.longitude is not None:
            by_device.setdefault(link.dev_eui, []).append(link)
    features = []
    for dev_eui, rows in sorted(by_device.items()):
        first = rows[0]
        rssi = [r.rssi_best for r in rows if r.rssi_best is not None]
        snr = [r.snr_best for r in rows if r.snr_best is not None]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [first.longitude, first.latitude]},
                "properties": {
                    "dev_eui": dev_eui,
                    "name": first.name,
                    "best_rssi": max(rssi) if rssi else None,
                    "best_snr": max(snr) if snr else None,
                    "gateways": [
                        {
                            "gateway_id": r.gateway_id,
                            "uplinks_7d": r.uplinks_7d,
                            "rssi_best": r.rssi_best,
                            "snr_best": r.snr_best,
                        }
                        for r in sorted(rows, key=lambda r: r.gateway_id)
                    ],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
