"""The API's telemetry (Prometheus): requests by route template and status, and their latency.

Served at `GET /metrics`. Labels are the method, the route's template (`/v1/devices/{dev_eui}`,
never the path itself) and the status code, so their number stays bounded; a request that
matched no route is counted under `route="unmatched"`.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as PromHistogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RequestTelemetry:
    """One application's request counters, in a registry of its own."""

    def __init__(self) -> None:
        self.collectors = CollectorRegistry()
        self.requests = Counter(
            "datahub_api_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.collectors,
        )
        self.latency = PromHistogram(
            "datahub_api_request_seconds",
            "time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.collectors,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class _Middleware:
    def __init__(self, app: ASGIApp, telemetry: RequestTelemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.telemetry.observe(scope["method"], template, status, time.perf_counter() - started)


def instrument(app: FastAPI) -> RequestTelemetry:
    """Count the app's requests and serve them at `GET /metrics`."""
    telemetry = RequestTelemetry()
    app.add_middleware(_Middleware, telemetry=telemetry)

    async def get_telemetry(request: Request) -> Response:
        return Response(generate_latest(telemetry.collectors), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", get_telemetry, include_in_schema=False)
    return telemetry
