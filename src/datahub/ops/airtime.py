"""LoRa time on air of an uplink, EU868, after Semtech's formula (SX1276 datasheet, 4.1.1.7).

An uplink's PHY payload is the application payload plus 13 bytes of LoRaWAN framing (MHDR
1, DevAddr 4, FCtrl 1, FCnt 2, FPort 1, MIC 4); MAC commands in FOpts are not known to the
hub and are left out. Uplinks use coding rate 4/5, an 8-symbol preamble, an explicit
header and a CRC; low data rate optimisation is on at SF11 and SF12 at 125 kHz, as the
LoRaWAN regional parameters require. An uplink without a spreading factor (FSK, or a
network server that did not say) has no LoRa airtime to compute.
"""

from __future__ import annotations

import math

LORAWAN_OVERHEAD_BYTES = 13
# The Things Network's fair-use policy: 30 seconds of uplink airtime per device and day.
TTN_DAILY_BUDGET_S = 30.0
_PREAMBLE_SYMBOLS = 8
_CODING_RATE = 1  # 4/5


def airtime_s(payload_bytes: int, *, spreading_factor: int, bandwidth: int | None) -> float:
    """Seconds on air of a LoRa uplink with this application payload (125 kHz by default)."""
    phy = payload_bytes + LORAWAN_OVERHEAD_BYTES
    sf = spreading_factor
    bw = bandwidth or 125_000
    symbol_s = 2**sf / bw
    low_rate = 1 if bw == 125_000 and sf >= 11 else 0
    numerator = 8 * phy - 4 * sf + 28 + 16
    symbols = 8 + max(math.ceil(numerator / (4 * (sf - 2 * low_rate))) * (_CODING_RATE + 4), 0)
    return float((_PREAMBLE_SYMBOLS + 4.25) * symbol_s + symbols * symbol_s)


def data_rate_name(spreading_factor: int | None, bandwidth: int | None) -> str:
    """Name a data rate as `SF7BW125`; `unknown` without a spreading factor."""
    if spreading_factor is None:
        return "unknown"
    return f"SF{spreading_factor}BW{(bandwidth or 125_000) // 1000}"
