"""Device health computed from uplinks, without services: loss, intervals, airtime, battery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datahub.ops import airtime, health
from datahub.ops.health import HeardUplink, Loss, Status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def heard(
    minutes_ago: float, f_cnt: int, *gateways: tuple[str, float, float], sf: int = 7
) -> HeardUplink:
    """An uplink heard by these (gateway, RSSI, SNR); the database gives the best of each."""
    return HeardUplink(
        received_at=NOW - timedelta(minutes=minutes_ago),
        f_cnt=f_cnt,
        payload_bytes=10,
        spreading_factor=sf,
        bandwidth=125_000,
        best_rssi=max((rssi for _, rssi, _ in gateways), default=None),
        best_snr=max((snr for _, _, snr in gateways), default=None),
    )


def counters(*f_cnts: int) -> list[HeardUplink]:
    """Uplinks 10 minutes apart, the last one now, with these frame counters."""
    n = len(f_cnts)
    return [heard(10 * (n - 1 - i), f, ("gw", -100.0, 5.0)) for i, f in enumerate(f_cnts)]


@pytest.mark.parametrize(
    ("f_cnts", "expected"),
    [
        pytest.param((1, 2, 3, 4), Loss(4, 0, 0), id="no-gap"),
        pytest.param((1, 2, 5, 6), Loss(4, 2, 0), id="gap-of-two"),
        pytest.param((1, 2, 2, 3), Loss(3, 0, 0), id="duplicate-counted-once"),
        pytest.param((65_533, 65_535, 1, 2), Loss(4, 2, 0), id="16-bit-roll-over"),
        pytest.param((500, 503, 0, 1, 4), Loss(5, 4, 1), id="reset-starts-a-session"),
        pytest.param((10, 40_000), Loss(2, 0, 1), id="jump-beyond-max-gap-is-a-reset"),
        pytest.param((), Loss(0, 0, 0), id="nothing"),
    ],
)
def test_loss_counts_gaps_within_sessions(f_cnts: tuple[int, ...], expected: Loss) -> None:
    assert health.loss(health.frames(counters(*f_cnts))) == expected


def test_loss_ratio_is_the_share_of_sent_frames_lost() -> None:
    assert Loss(received=8, lost=2, resets=0).ratio == 0.2
    assert Loss(0, 0, 0).ratio is None


def test_windows_split_24_hours_from_7_days() -> None:
    uplinks = [heard(60 * 24 * 3, 10), heard(60 * 24 * 3 - 10, 12), heard(60, 20), heard(30, 23)]
    result = health.compute(uplinks, [], now=NOW)
    assert result.loss_24h == Loss(2, 2, 0)
    assert result.loss_7d == Loss(4, 1 + 7 + 2, 0)


def test_learned_interval_ignores_lost_frames() -> None:
    # Every 10 minutes a frame, two of them lost: still 600 s.
    assert health.learned_interval_s(health.frames(counters(1, 2, 3, 5, 6, 8))) == 600
    assert health.learned_interval_s(health.frames(counters(1, 2))) is None


def test_radio_figures_take_the_best_gateway_of_each_frame() -> None:
    uplinks = [
        heard(30, 1, ("a", -110.0, -5.0), ("b", -90.0, 7.0)),
        heard(20, 2, ("a", -100.0, 2.0)),
        heard(20, 2, ("b", -95.0, 3.0)),  # the same frame through another gateway
        heard(10, 3, ("b", -120.0, -12.0), sf=12),
    ]
    result = health.compute(uplinks, [], now=NOW)
    assert (result.rssi.median, result.rssi.worst) == (-95.0, -120.0)
    assert (result.snr.median, result.snr.worst) == (3.0, -12.0)
    assert result.data_rates == {"SF12BW125": 1, "SF7BW125": 2}


@pytest.mark.parametrize(
    ("payload", "sf", "bandwidth", "milliseconds"),
    [
        # The Things Network's airtime calculator, 13-byte LoRaWAN overhead included.
        pytest.param(13, 7, 125_000, 61.7, id="13B-SF7"),
        pytest.param(10, 12, 125_000, 1482.8, id="10B-SF12"),
        pytest.param(51, 9, 125_000, 390.1, id="51B-SF9"),
        pytest.param(13, 7, 250_000, 30.8, id="13B-SF7-250kHz"),
    ],
)
def test_airtime_follows_the_lora_formula(
    payload: int, sf: int, bandwidth: int, milliseconds: float
) -> None:
    seconds = airtime.airtime_s(payload, spreading_factor=sf, bandwidth=bandwidth)
    assert round(seconds * 1000, 1) == milliseconds


def test_daily_airtime_sums_the_frames_of_the_last_24_hours() -> None:
    uplinks = [heard(60 * 25, 1), heard(60, 2), heard(30, 3), heard(30, 3)]
    one = airtime.airtime_s(10, spreading_factor=7, bandwidth=125_000)
    assert health.compute(uplinks, [], now=NOW).airtime_24h_s == pytest.approx(2 * one)


def test_battery_trend_and_the_day_it_runs_out() -> None:
    days = [NOW - timedelta(days=10 - d) for d in range(11)]
    readings = [(t, "battery", 60.0 - 2 * i) for i, t in enumerate(days)]
    readings += [(t, "battery_voltage", 3.6) for t in days]
    battery = health.battery(readings)
    assert battery is not None
    assert (battery.metric, battery.value) == ("battery", 40.0)
    assert battery.trend_per_day == pytest.approx(-2.0)
    assert battery.empty_at == NOW + timedelta(days=20)


def test_voltage_only_gets_a_trend_not_an_end() -> None:
    days = [NOW - timedelta(days=4 - d) for d in range(5)]
    battery = health.battery([(t, "battery_voltage", 3.6 - 0.01 * i) for i, t in enumerate(days)])
    assert battery is not None and battery.empty_at is None
    assert battery.trend_per_day == pytest.approx(-0.01)


@pytest.mark.parametrize(
    ("minutes_ago", "expected"),
    [(10, Status.OK), (15, Status.OK), (20, Status.LATE), (30, Status.LATE), (31, Status.SILENT)],
)
def test_status_by_intervals_since_the_last_uplink(minutes_ago: int, expected: Status) -> None:
    seen = NOW - timedelta(minutes=minutes_ago)
    got = health.status(seen, 600, now=NOW, late_after=1.5, silent_after=3.0)
    assert got is expected
    assert health.status(None, 600, now=NOW, late_after=1.5, silent_after=3.0) is Status.SILENT
