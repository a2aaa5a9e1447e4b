"""Checks and field readers shared by the vendor decoders; every failure is a DecodeError.

The vendor codecs read past the end of a short payload without noticing (JavaScript
gives `undefined`, which bitwise operators turn into 0), so their output for a bad
frame is silently wrong. The decoders check the frame first and refuse instead.
"""

from __future__ import annotations

from collections.abc import Collection

from decoders.catalog import DecodeError

# LoRaWAN application ports: 0 carries MAC commands only, 224 is the test protocol and
# 225-255 are reserved, so no application payload arrives outside 1..223.
APPLICATION_PORTS = range(1, 224)


def check_port(f_port: int, allowed: Collection[int] = APPLICATION_PORTS) -> None:
    """Refuse an f_port outside `allowed`."""
    if f_port not in allowed:
        if allowed is APPLICATION_PORTS:
            raise DecodeError(f"f_port {f_port} carries no application payload (1..223)")
        ports = ", ".join(str(port) for port in sorted(allowed))
        raise DecodeError(f"unexpected f_port {f_port}; this device reports on {ports}")


def check_length(payload: bytes, *lengths: int, frame: str) -> None:
    """Refuse a payload whose length is none of `lengths`."""
    if len(payload) not in lengths:
        expected = " or ".join(str(length) for length in lengths)
        raise DecodeError(f"{frame} is {expected} bytes long, got {len(payload)}")


def check_not_empty(payload: bytes) -> None:
    """Refuse an empty payload."""
    if not payload:
        raise DecodeError("empty payload")


def take(payload: bytes, start: int, size: int, what: str) -> bytes:
    """Return `size` bytes from `start`, refusing a payload that ends before them."""
    end = start + size
    if end > len(payload):
        raise DecodeError(
            f"truncated {what} at byte {start}: needs {size} bytes, "
            f"{max(len(payload) - start, 0)} left"
        )
    return payload[start:end]


def u16be(data: bytes, at: int = 0) -> int:
    return (data[at] << 8) | data[at + 1]


def s16be(data: bytes, at: int = 0) -> int:
    return int.from_bytes(data[at : at + 2], "big", signed=True)


def u16le(data: bytes, at: int = 0) -> int:
    return data[at] | (data[at + 1] << 8)


def s16le(data: bytes, at: int = 0) -> int:
    return int.from_bytes(data[at : at + 2], "little", signed=True)


def u32le(data: bytes, at: int = 0) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def u32be(data: bytes, at: int = 0) -> int:
    return int.from_bytes(data[at : at + 4], "big")


def s8(value: int) -> int:
    return value - 0x100 if value & 0x80 else value
