"""Metered requests charged with their answers, and answers kept for Idempotency-Keys: a
replay gets the answer again (IETF draft "The Idempotency-Key HTTP Header Field").

A request without the header is charged when its answer starts, if the route charged it
and the answer is a success (api/metering.py, `Meter.charge_now`): the answer then leaves
as it is, or is replaced by the charge's error (429 over the quota). One with the header
is held until its answer is rendered; if the route charged it (`Meter.settle`), the key,
the answer and the usage are committed in one durable transaction before the answer
leaves, so a replay can never get more than was charged. An answer larger than
`fairshare.idempotency_answer_max_bytes` is not kept: the request is refused (400),
nothing served or charged, and the client asks for less or sends no key. Errors, and
answers that serve nothing metered, are neither kept nor charged: a retry runs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datahub.api.metering import Meter
from datahub.errors import ApiError, BadRequest
from datahub.storage import usage
from datahub.storage.usage import Answer

log = logging.getLogger(__name__)

# Set on a replayed answer, so that a client can tell it from a first one.
REPLAYED = "Idempotent-Replayed"
# Headers not kept with an answer: the length is the body's; the server adds its own.
_NOT_KEPT = frozenset({"content-length", "date", "server"})
# How often an API process deletes the expired keys.
PRUNE_EVERY_S = 600.0


class Replay(Exception):
    """Raised by the meter's dependency: the request's key has a kept answer to give."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("replay")
        self.answer = answer


def answer_response(answer: Answer, *, replayed: bool) -> Response:
    """Render a kept answer, every header as it was (a `Link` may come several times)."""
    response = Response(answer.body, status_code=answer.status)
    response.raw_headers = [
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers),
        (b"content-length", str(len(answer.body)).encode()),
        *([(REPLAYED.lower().encode(), b"true")] if replayed else []),
    ]
    return response


class KeepAnswers:
    """ASGI middleware: charge a metered request with its answer; for one with an
    Idempotency-Key, send the answer the key keeps."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, render_error: Callable[[ApiError], Response]
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not any(name == b"idempotency-key" for name, _ in scope["headers"]):
            await self._charged(scope, receive, send, state)
            return
        held: list[Message] = []
        passing = False  # decided at the answer's start: is it charged with the answer?
        size = 0

        async def hold(message: Message) -> None:
            nonlocal passing, size
            if message["type"] == "http.response.start":
                meter = state.get("meter")
                passing = not (
                    isinstance(meter, Meter)
                    and meter.pending is not None
                    and 200 <= message["status"] < 300
                )
            if passing:  # an error, or a route that keeps nothing (a bulk file): streamed
                await send(message)
                return
            if message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size > self.max_bytes:  # refused whole below: keep no more of it
                    message = {**message, "body": b""}
            held.append(message)

        await self.app(scope, receive, hold)
        if passing or not held:
            return
        meter = state["meter"]
        start = held[0]
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        response: Response
        if size > self.max_bytes:
            response = self.render_error(
                BadRequest(
                    f"this answer is {size} bytes, more than the {self.max_bytes} kept "
                    "for an Idempotency-Key; ask for less (e.g. a smaller limit or range), "
                    "or send the request without Idempotency-Key"
                )
            )
        else:
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in start.get("headers", [])
                if name.decode("latin-1").lower() not in _NOT_KEPT
            ]
            try:
                answer = await meter.settle(Answer(start["status"], headers, body))
            except ApiError as exc:
                response = self.render_error(exc)
            else:
                response = answer_response(answer, replayed=meter.replayed)
        await response(scope, receive, send)

    async def _charged(
        self, scope: Scope, receive: Receive, send: Send, state: dict[str, Any]
    ) -> None:
        """Run a request without a key, charging it when its answer starts."""
        refused = False

        async def charge_first(message: Message) -> None:
            nonlocal refused
            if refused:  # the rest of an answer replaced by an error: not sent
                return
            if message["type"] == "http.response.start":
                meter = state.get("meter")
                if (
                    isinstance(meter, Meter)
                    and meter.pending is not None
                    and 200 <= message["status"] < 300
                ):
                    try:
                        await meter.charge_now()
                    except ApiError as exc:
                        refused = True
                        await self.render_error(exc)(scope, receive, send)
                        return
            await send(message)

        await self.app(scope, receive, charge_first)


async def prune_keys(pool: ConnectionPool[Any], *, kept_s: int) -> None:
    """Delete the expired Idempotency-Keys now and every PRUNE_EVERY_S, until cancelled."""

    def prune() -> int:
        with pool.connection() as conn:
            kept_since = datetime.now(UTC) - timedelta(seconds=kept_s)
            return usage.prune_idempotency_keys(conn, kept_since=kept_since)

    while True:
        try:
            pruned = await run_in_threadpool(prune)
        except Exception as exc:  # the database may be down: the next round tries again
            log.warning("expired Idempotency-Keys not pruned: %s", exc)
        else:
            if pruned:
                log.info("pruned %d expired Idempotency-Keys", pruned)
        await asyncio.sleep(PRUNE_EVERY_S)
