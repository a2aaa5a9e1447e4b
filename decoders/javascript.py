"""Vendor JavaScript codecs, run in a sandboxed V8 (mini-racer) with a time and memory limit.

An operator adds a device model by dropping in the vendor's codec from The Things Network
device repository or a ChirpStack device profile. Entry points, detected in this order:

- `decodeUplink(input)`, input `{bytes, fPort, recvTime, variables}`, returning
  `{data, warnings, errors}` (The Things Stack, ChirpStack v4);
- `Decoder(bytes, port)`, the legacy TTN v2 payload function, returning the data object;
- `Decode(fPort, bytes, variables)`, ChirpStack v3, returning the data object.

Sandbox: each codec gets its own V8 isolate (a `MiniRacer`), so one codec's globals never
reach another's. V8 without Node or a browser has no `require`, `process`, `fetch`,
`XMLHttpRequest` or file access at all; the timers mini-racer adds are removed, so nothing
runs after a call returns.
The codec runs in sloppy mode, as vendors write them (undeclared globals are allowed).

State: one context per codec, kept between calls: a fresh context per call would cost
milliseconds (a new isolate and its thread) instead of a few hundred microseconds, and
would lose the globals vendor codecs sometimes keep. Globals a codec sets survive into its
next call of the same process, so a codec must not rely on them for correctness. A call that times
out or exceeds the memory limit discards the context (V8's memory limit is sticky and the
codec's state may be half-written); the next call compiles the codec afresh.

Threads: a lock guards each context, so the ingest thread and API or CLI threads may share
a codec; calls of one codec run one at a time.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSParseException,
    JSTimeoutException,
    MiniRacer,
)

from decoders.catalog import DecodeError

DEFAULT_TIMEOUT_MS = 100
DEFAULT_MAX_MEMORY_BYTES = 64 * 1024 * 1024
# Loading runs the codec's top-level code once; vendors' files sometimes build lookup tables.
LOAD_TIMEOUT_MS = 1000
# `decode_many` hands payloads to V8 this many at a time, under one call's time limit: a
# call costs a hand-over to V8's thread (~400 µs here), decoding a payload a few µs.
BATCH_CALLS = 64

EntryPoint = Literal["decodeUplink", "Decoder", "Decode"]

# Run before the codec. mini-racer installs setTimeout/clearTimeout on Atomics.waitAsync;
# a timer would fire after a call returned, outside its time limit, so codecs get none
# (codecs decode synchronously; the network servers give them no timers either).
_NO_TIMERS = """
setTimeout = undefined; clearTimeout = undefined; __timer_manager = undefined;
delete Atomics.waitAsync;
"""

# Installed after the codec in its context. Captures JSON.stringify before any call, so a
# codec that reassigns JSON cannot change how results cross back; returns the result's
# JS type beside its value, so Python can tell undefined, arrays and objects apart.
_SHIM = """
var __datahub_call = (function (stringify) {
  var entry = typeof decodeUplink === 'function' ? 'decodeUplink'
    : typeof Decoder === 'function' ? 'Decoder'
    : typeof Decode === 'function' ? 'Decode' : null;
  function typeName(v) {
    return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  }
  function call(bytes, fPort, recvTime, variables) {
    var result;
    if (entry === 'decodeUplink') {
      result = decodeUplink({bytes: bytes, fPort: fPort, recvTime: new Date(recvTime),
                             variables: variables});
    } else if (entry === 'Decoder') {
      result = Decoder(bytes, fPort);
    } else {
      result = Decode(fPort, bytes, variables);
    }
    return stringify({type: typeName(result), value: result === undefined ? null : result});
  }
  // Many calls in one: a JSON array with each call's result, or null where it threw.
  call.many = function (calls) {
    var results = [];
    for (var i = 0; i < calls.length; i++) {
      try {
        results.push(call(calls[i][0], calls[i][1], calls[i][2], calls[i][3]));
      } catch (e) {
        results.push('null');
      }
    }
    return '[' + results.join(',') + ']';
  };
  call.entry = entry;
  return call;
})(JSON.stringify);
__datahub_call.entry
"""


class CodecError(ValueError):
    """A codec file that cannot be used: it does not compile or has no entry point."""


class JsCodec:
    """One vendor codec, compiled once into its own V8 context and called many times."""

    contexts_created = 0  # every context any codec created, for tests and metrics

    def __init__(
        self,
        source: str,
        *,
        name: str,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    ) -> None:
        self.name = name  # where the codec came from, for messages: a file path or profile id
        self.source = source
        self.timeout_ms = timeout_ms
        self.max_memory_bytes = max_memory_bytes
        self._lock = threading.Lock()
        self._racer: MiniRacer | None = None
        with self._lock:
            self.entry: EntryPoint = self._open()

    def _open(self) -> EntryPoint:
        """Compile the codec into a new context; the caller holds the lock."""
        racer = MiniRacer()
        JsCodec.contexts_created += 1
        racer.set_hard_memory_limit(self.max_memory_bytes)
        try:
            racer.eval(_NO_TIMERS)
            racer.eval(self.source, timeout_sec=LOAD_TIMEOUT_MS / 1000)
            entry = racer.eval(_SHIM, timeout_sec=LOAD_TIMEOUT_MS / 1000)
        except JSParseException as exc:
            _close(racer)
            raise CodecError(f"{self.name}: does not compile: {_first_line(exc)}") from exc
        except JSTimeoutException as exc:
            _close(racer)
            raise CodecError(f"{self.name}: top-level code ran over {LOAD_TIMEOUT_MS} ms") from exc
        except JSEvalException as exc:
            _close(racer)
            raise CodecError(f"{self.name}: top-level code failed: {_first_line(exc)}") from exc
        if entry not in ("decodeUplink", "Decoder", "Decode"):
            _close(racer)
            raise CodecError(
                f"{self.name}: defines none of decodeUplink(input), Decoder(bytes, port) "
                "or Decode(fPort, bytes, variables)"
            )
        self._racer = racer
        return entry  # type: ignore[return-value]

    def close(self) -> None:
        """Free the V8 context; a later call compiles the codec again."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._racer is not None:
            _close(self._racer)
            self._racer = None

    def _call(self, args: str, function: str = "__datahub_call") -> object:
        """Call the entry point once, under the lock; a time overrun is left to `run`."""
        if self._racer is None:  # discarded after a time or memory overrun
            try:
                self._open()
            except CodecError as exc:
                raise DecodeError(str(exc)) from exc
        racer = self._racer
        assert racer is not None
        try:
            return racer.eval(f"{function}(...{args})", timeout_sec=self.timeout_ms / 1000)
        except JSTimeoutException:
            raise
        except JSOOMException as exc:
            self._discard()
            raise DecodeError(
                f"codec {self.name} exceeded its memory limit of "
                f"{self.max_memory_bytes // (1024 * 1024)} MiB"
            ) from exc
        except JSEvalException as exc:
            raise DecodeError(f"codec {self.name} threw: {_first_line(exc)}") from exc

    def run(
        self,
        f_port: int,
        payload: bytes,
        *,
        recv_time: datetime | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call the codec; return `{data, warnings, errors}` as it returned them.

        The legacy entry points return the data object alone; it comes back wrapped as
        `{data, warnings: [], errors: []}`. A codec that throws, runs over its time or
        memory limit, or returns something other than an object raises DecodeError.
        """
        args = json.dumps(_arguments(f_port, payload, recv_time, variables), separators=(",", ":"))
        with self._lock:
            # The limit is wall-clock time: on a loaded machine a healthy call can be
            # descheduled past it. One retry, in a fresh context, tells that apart from a
            # codec that really runs away, which then costs twice the limit.
            try:
                text = self._call(args)
            except JSTimeoutException:
                self._discard()
                try:
                    text = self._call(args)
                except JSTimeoutException as exc:
                    self._discard()
                    raise DecodeError(
                        f"codec {self.name} ran over its time limit of {self.timeout_ms} ms, twice"
                    ) from exc
        if not isinstance(text, str):
            raise DecodeError(f"codec {self.name} returned a value JSON cannot represent")
        return self._result(json.loads(text))

    def _result(self, returned: dict[str, Any]) -> dict[str, Any]:
        kind, value = returned["type"], returned["value"]
        if kind != "object":
            raise DecodeError(f"codec {self.name} returned {kind}, not an object")
        if self.entry != "decodeUplink":
            return {"data": value, "warnings": [], "errors": []}
        return value  # type: ignore[no-any-return]

    def run_many(self, calls: Sequence[tuple[int, bytes]]) -> list[dict[str, Any] | DecodeError]:
        """`run` over many (f_port, payload) pairs; each result is what `run` returns or raises.

        Up to `BATCH_CALLS` calls go to V8 at once under one call's time limit. A call that
        throws is run again alone, so that its error reads as `run`'s would; a group that
        runs over the limit or out of memory is run call by call, each under its own limit,
        so a runaway payload still costs only its own calls.
        """
        now = datetime.now(UTC)
        results: list[dict[str, Any] | DecodeError] = []
        for start in range(0, len(calls), BATCH_CALLS):
            group = calls[start : start + BATCH_CALLS]
            args = json.dumps(
                [[_arguments(f_port, payload, now, None) for f_port, payload in group]],
                separators=(",", ":"),
            )
            returned: list[Any] | None = None
            with self._lock:
                try:
                    text = self._call(args, "__datahub_call.many")
                    returned = json.loads(text) if isinstance(text, str) else None
                except JSTimeoutException:
                    self._discard()
                except DecodeError:
                    pass  # out of memory (the context is discarded) or not compiling
            for i, (f_port, payload) in enumerate(group):
                try:
                    if returned is not None and returned[i] is not None:
                        results.append(self._result(returned[i]))
                    else:
                        results.append(self.run(f_port, payload, recv_time=now))
                except DecodeError as exc:
                    results.append(exc)
        return results

    def decode(self, f_port: int, payload: bytes) -> dict[str, Any]:
        """Return the codec's data object, as a catalog decoder does; errors raise DecodeError."""
        return self._data(self.run(f_port, payload))

    def decode_many(self, calls: Sequence[tuple[int, bytes]]) -> list[dict[str, Any] | DecodeError]:
        """`decode` over many (f_port, payload) pairs, as `run_many` runs them."""
        results: list[dict[str, Any] | DecodeError] = []
        for result in self.run_many(calls):
            try:
                results.append(result if isinstance(result, DecodeError) else self._data(result))
            except DecodeError as exc:
                results.append(exc)
        return results

    def _data(self, result: dict[str, Any]) -> dict[str, Any]:
        errors = result.get("errors")
        if errors:
            listed = errors if isinstance(errors, list) else [errors]
            raise DecodeError("; ".join(str(error) for error in listed))
        data = result.get("data")
        if not isinstance(data, dict):
            kind = "nothing" if data is None else type(data).__name__
            raise DecodeError(f"codec {self.name} returned {kind} as data, not an object")
        return data


def _arguments(
    f_port: int,
    payload: bytes,
    recv_time: datetime | None,
    variables: Mapping[str, Any] | None,
) -> list[Any]:
    """The shim's arguments for one call: bytes, fPort, recvTime, variables."""
    return [
        list(payload),
        f_port,
        (recv_time or datetime.now(UTC)).isoformat(),
        dict(variables or {}),
    ]


def _close(racer: MiniRacer) -> None:
    """Close a context once V8 has reported on any call it terminated."""
    # A terminated call reports back from V8's thread after it was given up on; a trivial
    # call queued behind it returns once that report is in, so closing the context after it
    # does not leave V8 calling into a closed event loop.
    with contextlib.suppress(JSEvalException):
        racer.eval("0", timeout_sec=1)
    racer.close()


def _first_line(exc: Exception) -> str:
    """The JS error's message and line, without V8's source excerpt and stack."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where, sep, message = first.partition(": ")
    if sep and where.startswith("<anonymous>:"):
        return f"{message} (line {where.removeprefix('<anonymous>:')})"
    return first
