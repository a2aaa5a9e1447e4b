"""`HEAD` wherever `GET` is answered (RFC 9110, 9.3.2): the request runs as a `GET` and
the response's body is dropped, its headers (`Content-Length` too) kept.

A `HEAD` is marked (`request.state.head`) so that metering counts nothing: its answer
serves no observation. It takes a slot of the caller's rate limit like any request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: answer HEAD as GET without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET", "state": {**scope.get("state", {}), "head": True}}

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {**message, "body": b""}
            await send(message)

        await self.app(as_get, receive, headers_only)
