"""Device health from a device's own uplinks and battery readings; pure, no I/O.

Frame loss
    The frames of a window are the device's uplinks received in it, in time order; uplinks
    with the same frame counter in a row (one frame heard by several gateways, delivered
    as several uplinks, or a confirmed frame repeated) are one frame. Between two
    consecutive frames of one session, `next - previous - 1` frames were lost. A counter
    that falls is a 16-bit roll-over when the previous value lies within `MAX_FCNT_GAP` of
    65,536 and the next one is small enough that the gap across the wrap is at most
    `MAX_FCNT_GAP` (65,535 -> 3 lost 3 frames); any other fall, or a jump of more than
    `MAX_FCNT_GAP`, starts a new session (a rejoin or a reboot), counted in `resets`, and no
    frame is counted lost across it. Frames sent before the window's first frame are not
    counted: the loss is the share of `received + lost` that never arrived.
Expected interval
    The profile's reporting interval; without one, the interval learned from the device's
    history: the median over consecutive frames of one session of their time apart divided
    by their counter difference (so lost frames do not stretch it), once there are at least
    `MIN_SAMPLES`.
Status
    `ok` while the last uplink is at most `late_after` intervals old, `late` up to
    `silent_after` intervals, `silent` beyond (or never heard, or no interval known and
    nothing heard for a day).
Battery
    The `battery` metric (percent) when the device reports it, else `battery_voltage`. Its
    trend is the least-squares slope over the readings of the last `BATTERY_DAYS` days, per
    day; a falling percentage gives the date it reaches 0 %. Voltages fall too unevenly
    (flat, then a knee) for a straight line to date their end, so they get a trend only.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from datahub.ops.airtime import airtime_s, data_rate_name

MAX_FCNT_GAP = 16_384  # LoRaWAN 1.0's MAX_FCNT_GAP: a larger jump is not a gap but a new session
FCNT16 = 65_536
MIN_SAMPLES = 3
BATTERY_DAYS = 14
BATTERY_METRICS = ("battery", "battery_voltage")  # preferred first
WINDOW_24H = timedelta(hours=24)
WINDOW_7D = timedelta(days=7)


class Status(StrEnum):
    OK = "ok"
    LATE = "late"
    SILENT = "silent"


@dataclass(frozen=True, slots=True)
class HeardUplink:
    """One stored uplink of a device, as health needs it: its best gateway's RSSI and SNR."""

    received_at: datetime
    f_cnt: int
    payload_bytes: int
    spreading_factor: int | None
    bandwidth: int | None
    best_rssi: float | None
    best_snr: float | None


@dataclass(frozen=True, slots=True)
class Loss:
    received: int  # distinct frames
    lost: int
    resets: int

    @property
    def ratio(self) -> float | None:
        """Share of frames sent (received + lost) that never arrived; None without frames."""
        sent = self.received + self.lost
        return self.lost / sent if sent else None


Frame = HeardUplink  # the uplinks of one frame merged into one


def frames(uplinks: Sequence[HeardUplink]) -> list[Frame]:
    """Merge consecutive uplinks with one frame counter into one frame (keeping the best
    RSSI and SNR any of them had), in time order."""
    out: list[Frame] = []
    for u in sorted(uplinks, key=lambda u: (u.received_at, u.f_cnt)):
        if out and out[-1].f_cnt == u.f_cnt:
            last = out[-1]
            out[-1] = HeardUplink(
                last.received_at,
                last.f_cnt,
                last.payload_bytes,
                last.spreading_factor,
                last.bandwidth,
                _max(last.best_rssi, u.best_rssi),
                _max(last.best_snr, u.best_snr),
            )
            continue
        out.append(u)
    return out


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def counter_step(previous: int, current: int) -> int | None:
    """Frames lost between two consecutive frames of a session; None: a new session."""
    if current > previous:
        gap = current - previous - 1
        return gap if gap < MAX_FCNT_GAP else None
    if previous < FCNT16 and current < previous:
        across = current + FCNT16 - previous - 1
        if across < MAX_FCNT_GAP:
            return across  # the 16-bit counter wrapped around
    return None


def loss(window: Sequence[Frame]) -> Loss:
    """Count received and lost frames and counter resets over frames in time order."""
    lost = resets = 0
    for previous, current in itertools.pairwise(window):
        step = counter_step(previous.f_cnt, current.f_cnt)
        if step is None:
            resets += 1
        else:
            lost += step
    return Loss(received=len(window), lost=lost, resets=resets)


def learned_interval_s(window: Sequence[Frame]) -> int | None:
    """The device's own reporting interval in whole seconds, from frames in time order."""
    samples = []
    for previous, current in itertools.pairwise(window):
        step = counter_step(previous.f_cnt, current.f_cnt)
        if step is None:
            continue
        seconds = (current.received_at - previous.received_at).total_seconds()
        samples.append(seconds / (step + 1))
    if len(samples) < MIN_SAMPLES:
        return None
    return max(1, round(statistics.median(samples)))


def status(
    last_seen: datetime | None,
    interval_s: float | None,
    *,
    now: datetime,
    late_after: float,
    silent_after: float,
) -> Status:
    """Say whether a device reports on time, is overdue, or has gone silent."""
    if last_seen is None:
        return Status.SILENT
    age = (now - last_seen).total_seconds()
    if interval_s is None:
        return Status.OK if age <= WINDOW_24H.total_seconds() else Status.SILENT
    if age <= late_after * interval_s:
        return Status.OK
    if age <= silent_after * interval_s:
        return Status.LATE
    return Status.SILENT


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and worst (lowest) of a radio figure."""

    median: float | None
    worst: float | None


def _spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(None, None)
    return Spread(statistics.median(values), min(values))


@dataclass(frozen=True, slots=True)
class GatewayLink:
    """How one gateway hears a device."""

    gateway_id: str
    source: str
    city: str
    uplinks_24h: int
    uplinks_7d: int
    last_heard_at: datetime
    rssi_best: float | None
    rssi_median: float | None
    snr_best: float | None
    snr_median: float | None


@dataclass(frozen=True, slots=True)
class Battery:
    metric: str
    value: float
    time: datetime
    trend_per_day: float | None
    empty_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """Everything the operator view shows of one device, as of `computed_at`."""

    computed_at: datetime
    loss_24h: Loss
    loss_7d: Loss
    learned_interval_s: int | None
    rssi: Spread
    snr: Spread
    data_rates: dict[str, int]
    airtime_24h_s: float
    battery: Battery | None
    gateways: list[GatewayLink] = field(default_factory=list)


def battery(readings: Sequence[tuple[datetime, str, float]]) -> Battery | None:
    """Latest battery value with its trend, from (time, metric, value) readings."""
    for metric in BATTERY_METRICS:
        series = sorted((t, v) for t, m, v in readings if m == metric)
        if series:
            return _battery(metric, series)
    return None


def _battery(metric: str, series: Sequence[tuple[datetime, float]]) -> Battery:
    last_time, last_value = series[-1]
    t0 = series[0][0]
    xs = [(t - t0).total_seconds() / 86_400 for t, _ in series]
    ys = [v for _, v in series]
    trend = empty_at = None
    if len(series) >= MIN_SAMPLES and xs[-1] - xs[0] >= 1.0:
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mean_x) ** 2 for x in xs)
        trend = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
        if metric == "battery" and trend < 0:
            # Where the fitted line reaches 0 %, from the line's value now.
            fitted_now = mean_y + trend * (xs[-1] - mean_x)
            empty_at = last_time + timedelta(days=max(fitted_now, 0.0) / -trend)
    return Battery(metric, last_value, last_time, trend, empty_at)


def compute(
    uplinks: Sequence[HeardUplink],
    battery_readings: Sequence[tuple[datetime, str, float]],
    *,
    now: datetime,
    gateways: Sequence[GatewayLink] = (),
) -> DeviceHealth:
    """Compute a device's health from its last 7 days of uplinks and its battery readings;
    `gateways` (how each gateway heard it, aggregated by the database) is passed through."""
    week = [u for u in uplinks if now - WINDOW_7D < u.received_at <= now]
    week_frames = frames(week)
    day_frames = [f for f in week_frames if f.received_at > now - WINDOW_24H]
    best_rssi = [f.best_rssi for f in week_frames if f.best_rssi is not None]
    best_snr = [f.best_snr for f in week_frames if f.best_snr is not None]
    rates: dict[str, int] = {}
    for f in week_frames:
        name = data_rate_name(f.spreading_factor, f.bandwidth)
        rates[name] = rates.get(name, 0) + 1
    airtime = sum(
        airtime_s(f.payload_bytes, spreading_factor=f.spreading_factor, bandwidth=f.bandwidth)
        for f in day_frames
        if f.spreading_factor is not None
    )
    return DeviceHealth(
        computed_at=now,
        loss_24h=loss(day_frames),
        loss_7d=loss(week_frames),
        learned_interval_s=learned_interval_s(week_frames),
        rssi=_spread(best_rssi),
        snr=_spread(best_snr),
        data_rates=dict(sorted(rates.items())),
        airtime_24h_s=airtime,
        battery=battery(battery_readings),
        gateways=list(gateways),
    )
