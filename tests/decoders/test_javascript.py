"""Vendor JavaScript codecs in the sandbox: entry points, limits, isolation, cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from democatalog import CODEC_TIMEOUT_MS

from decoders import DecodeError
from decoders.javascript import BATCH_CALLS, CodecError, JsCodec

CODECS = Path(__file__).parents[1] / "fixtures" / "codecs"


def codec(name: str, **limits: int) -> JsCodec:
    """Load a test codec; the time limit is generous unless a test sets its own (see
    democatalog.CODEC_TIMEOUT_MS)."""
    limits.setdefault("timeout_ms", CODEC_TIMEOUT_MS)
    return JsCodec((CODECS / name).read_text(encoding="utf-8"), name=name, **limits)


@pytest.fixture(scope="module")
def thermometer() -> JsCodec:
    return codec("ttn_thermometer.js")


def test_ttn_decode_uplink_with_modern_syntax(thermometer: JsCodec) -> None:
    assert thermometer.entry == "decodeUplink"
    result = thermometer.run(1, bytes.fromhex("0a2b5009c4"))
    assert result == {
        "data": {
            "temperature": 26.03,
            "humidity": 40,
            "battery": {"volts": 2.5},
            "status": "ok",
        },
        "warnings": [],
    }
    # Types are exact: JSON integers come back as int, fractions as float.
    assert type(result["data"]["humidity"]) is int


def test_ttn_warnings_and_negative_values(thermometer: JsCodec) -> None:
    result = thermometer.run(1, bytes.fromhex("ff38510960"))
    assert result["data"]["temperature"] == -2.0
    assert result["warnings"] == ["low battery: 2.4 V"]


def test_codec_errors_become_decode_errors(thermometer: JsCodec) -> None:
    assert thermometer.run(2, b"\x00")["errors"] == ["unknown fPort 2"]
    with pytest.raises(DecodeError, match="unknown fPort 2"):
        thermometer.decode(2, b"\x00")
    with pytest.raises(DecodeError, match="battery frame not supported"):
        codec("returns_errors.js").decode(1, b"\x00")


def test_legacy_decoder_in_sloppy_mode_keeps_its_globals() -> None:
    legacy = codec("legacy_decoder.js")
    assert legacy.entry == "Decoder"
    first = legacy.run(5, bytes.fromhex("ff9c"))
    assert first == {
        "data": {"temperature": -10, "port": 5, "calls": 1},
        "warnings": [],
        "errors": [],
    }
    # One context per codec: the undeclared global survives into the next call.
    assert legacy.decode(5, bytes.fromhex("00fa"))["calls"] == 2


def test_chirpstack_v3_decode_gets_port_and_variables() -> None:
    v3 = codec("chirpstack_v3.js")
    assert v3.entry == "Decode"
    assert v3.decode(2, bytes.fromhex("0100")) == {"distance": 256, "port": 2, "site": None}
    result = v3.run(2, bytes.fromhex("0100"), variables={"offset": "4", "site": "Ruhr"})
    assert result["data"] == {"distance": 260, "port": 2, "site": "Ruhr"}


def test_a_codec_that_throws_gives_the_message_and_line() -> None:
    with pytest.raises(DecodeError, match=r"threw: RangeError: expected 4 bytes, got 1 \(line 3\)"):
        codec("throws.js").decode(1, b"\x01")


@pytest.mark.parametrize(
    ("f_port", "message"),
    [
        (1, "returned undefined, not an object"),
        (2, "returned number, not an object"),
        (3, "returned list as data"),
        (4, "returned nothing as data"),
    ],
    ids=["undefined", "number", "array-data", "no-data"],
)
def test_a_codec_returning_no_object_is_refused(f_port: int, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        codec("returns_undefined.js").decode(f_port, b"\x00")


def test_an_endless_loop_is_stopped_at_the_time_limit() -> None:
    looping = codec("loops_forever.js", timeout_ms=50)
    started = time.monotonic()
    with pytest.raises(DecodeError, match="time limit of 50 ms, twice"):
        looping.decode(1, b"\x00")
    # Tried twice, in two contexts: a healthy call descheduled past the limit gets a second
    # chance, a runaway costs twice the limit and a recompile.
    assert time.monotonic() - started < 1.0
    # The codec is compiled afresh on the next call, and stopped again.
    with pytest.raises(DecodeError, match="time limit"):
        looping.decode(1, b"\x00")


def test_unbounded_allocation_is_stopped_and_the_codec_recovers() -> None:
    hoarder = codec("allocates.js", max_memory_bytes=32 * 1024 * 1024, timeout_ms=5000)
    with pytest.raises(DecodeError, match="memory limit of 32 MiB"):
        hoarder.decode(1, b"\x01")
    # The poisoned context was dropped; a new one decodes normally.
    assert hoarder.decode(1, b"\x00") == {"small": True}
    # And the runtime as a whole still works.
    assert codec("chirpstack_v3.js").decode(1, b"\x00\x01")["distance"] == 1


def one_by_one(js: JsCodec, calls: list[tuple[int, bytes]]) -> list[object]:
    """What `decode` returns for each call, or the message of the DecodeError it raises."""
    results: list[object] = []
    for f_port, payload in calls:
        try:
            results.append(js.decode(f_port, payload))
        except DecodeError as exc:
            results.append(str(exc))
    return results


def in_batch(js: JsCodec, calls: list[tuple[int, bytes]]) -> list[object]:
    return [str(r) if isinstance(r, DecodeError) else r for r in js.decode_many(calls)]


def test_many_payloads_decode_as_they_do_one_by_one(thermometer: JsCodec) -> None:
    calls = [
        (1, bytes.fromhex("0a2b5009c4")),
        (2, b"\x00"),  # the codec's own errors list
        (1, bytes.fromhex("ff38510960")),
        (1, b"\x01"),  # too short
    ]
    assert in_batch(thermometer, calls) == one_by_one(thermometer, calls)
    assert in_batch(thermometer, []) == []


def test_a_throwing_payload_in_a_batch_reads_as_it_does_alone() -> None:
    throws = codec("throws.js")
    results = in_batch(throws, [(1, b"\x01\x02\x03\x04"), (1, b"\x01"), (1, bytes(4))])
    assert results[0] == results[2] == {"ok": True}
    assert results[1] == one_by_one(throws, [(1, b"\x01")])[0]
    assert "threw: RangeError: expected 4 bytes, got 1 (line 3)" in str(results[1])


def test_a_batch_keeps_the_order_of_calls_across_its_groups() -> None:
    legacy = codec("legacy_decoder.js")
    count = 2 * BATCH_CALLS + 5  # three groups handed to V8
    results = legacy.decode_many([(7, bytes([0, i % 256])) for i in range(count)])
    assert [r["calls"] for r in results] == list(range(1, count + 1))  # type: ignore[index]
    assert [r["temperature"] for r in results[:3]] == [0.0, 0.1, 0.2]  # type: ignore[index]


def test_a_runaway_payload_in_a_batch_costs_only_its_own_calls() -> None:
    looping = codec("loops_on_ff.js", timeout_ms=50)
    calls = [(1, b"\x01"), (1, b"\xff"), (1, b"\x02")]
    started = time.monotonic()
    results = in_batch(looping, calls)
    # The group ran over its limit once, then each call ran under its own: the runaway twice.
    assert time.monotonic() - started < 1.0
    assert results[0] == {"first": 1}
    assert "time limit of 50 ms, twice" in str(results[1])
    assert results[2] == {"first": 2}


def test_a_batch_that_runs_out_of_memory_recovers_call_by_call() -> None:
    hoarder = codec("allocates.js", max_memory_bytes=32 * 1024 * 1024, timeout_ms=5000)
    results = in_batch(hoarder, [(1, b"\x00"), (1, b"\x01"), (1, b"\x00")])
    assert results[0] == results[2] == {"small": True}
    assert "memory limit of 32 MiB" in str(results[1])


def test_no_host_facilities_reach_the_sandbox() -> None:
    data = codec("sandbox_probe.js").decode(1, b"\x00")
    assert data == {
        "require": "undefined",
        "process": "undefined",
        "fetch": "undefined",
        "XMLHttpRequest": "undefined",
        "importScripts": "undefined",
        "Deno": "undefined",
        "Bun": "undefined",
        "module": "undefined",
        # Timers would run after a call returned, outside its time limit: none are given.
        "setTimeout": "undefined",
        "waitAsync": "undefined",
        "globalThisKeys": [],
    }


def test_globals_do_not_leak_between_codecs() -> None:
    setter, reader = codec("sets_global.js"), codec("reads_global.js")
    assert setter.decode(1, b"\x07") == {"secret": 7}
    assert reader.decode(1, b"\x00") == {"shared": "undefined", "secret": "undefined"}


def test_a_second_decode_reuses_the_compiled_context(thermometer: JsCodec) -> None:
    thermometer.decode(1, bytes.fromhex("0a2b5009c4"))
    before = JsCodec.contexts_created
    for _ in range(20):
        thermometer.decode(1, bytes.fromhex("0a2b5009c4"))
    assert JsCodec.contexts_created == before


def test_threads_share_a_codec_safely(thermometer: JsCodec) -> None:
    results: list[float] = []

    def work() -> None:
        for _ in range(25):
            results.append(thermometer.decode(1, bytes.fromhex("0a2b5009c4"))["temperature"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [26.03] * 100


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("function decodeUplink(input) {", "does not compile: SyntaxError"),
        ("function somethingElse() {}", "defines none of decodeUplink"),
        ("throw new Error('at load')", "top-level code failed: Error: at load"),
        ("while (true) {}", "top-level code ran over"),
    ],
    ids=["syntax", "no-entry", "throws-at-load", "loops-at-load"],
)
def test_unusable_codec_files_are_refused_at_load(source: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        JsCodec(source, name="bad.js")
