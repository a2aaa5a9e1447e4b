"""Reconnect back-fill: a QoS 0 TTN source loses its subscription while the broker is down;
what TTN publishes meanwhile reaches only its Storage Integration (here a local server speaking
the documented format). When the ingest reconnects it back-fills the gap by itself, and every
uplink is stored exactly once."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from faultkit import (
    Broker,
    Ingest,
    assert_exactly,
    drain,
    log_tail,
    scenario,
    stored,
    targets,
)
from prometheus_text import total
from realservices import temporary_database
from waiting import wait_until

import simulators
from datahub.domain import SourceFormat
from datahub.ingest.envelope import parse_rfc3339

pytestmark = pytest.mark.services

KEY = "NNSXS.FAULTKEY"


@dataclass
class StorageIntegration:
    """The uplinks The Things Stack stored for one application, served as it serves them."""

    app: str
    messages: list[tuple[datetime, bytes]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, sims: list[simulators.SimUplink]) -> None:
        with self.lock:
            for sim in sims:
                _, body = sim.message(SourceFormat.TTN_V3)
                self.messages.append((parse_rfc3339(json.loads(body)["received_at"]), body))

    def page(self, query: dict[str, str]) -> bytes:
        after = parse_rfc3339(query["after"]) if "after" in query else None
        before = parse_rfc3339(query["before"]) if "before" in query else None
        with self.lock:
            self.requests.append(query)
            chosen = [
                body
                for at, body in sorted(self.messages)
                if (after is None or at > after) and (before is None or at < before)
            ]
        limit = int(query.get("limit", "0")) or len(chosen)
        return b"".join(b'{"result": ' + body + b"}\n" for body in chosen[:limit])


@pytest.fixture
def storage_api() -> Iterator[tuple[StorageIntegration, str]]:
    state = StorageIntegration(app="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            path = f"/api/v3/as/applications/{state.app}/packages/storage/uplink_message"
            if url.path != path or self.headers.get("Authorization") != f"Bearer {KEY}":
                self.send_error(404 if url.path != path else 401)
                return
            body = state.page(dict(urllib.parse.parse_qsl(url.query)))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_qos0_source_backfills_the_gap_of_a_reconnect(
    storage_api: tuple[StorageIntegration, str], broker: Broker, tmp_path: Path
) -> None:
    storage, url = storage_api
    with temporary_database("timescaledb", "datahub_test_backfill_reconnect") as database:
        storage.app = "fault-dortmund-app"
        api = {"url": url, "application_id": storage.app, "api_key": KEY, "page_limit": 40}
        ingest = Ingest(
            broker.url,
            database.url,
            tmp_path,
            sources={"ttn-dortmund": {"qos": 0, "storage_api": api}},
        )
        # Dated from two minutes ahead, so that all lie after any gap start (and within the
        # accepted clock skew): the back-fill refetches the live ones too, as duplicates.
        start = datetime.now(UTC) + timedelta(seconds=120)
        sims = [
            s
            for s in simulators.generate(
                scenario(ingest.run), seed=3, start=start, end=start + timedelta(seconds=600)
            )
            if s.source == "ttn-dortmund"
        ]
        live, missed = sims[: len(sims) // 2], sims[len(sims) // 2 :]
        ingest.import_registry()
        ingest.start()
        try:
            storage.keep(live)
            simulators.publish(live, targets(broker.port), qos=1)
            wait_until("the live uplinks", lambda: stored(database.url) == len(live), 60)
            assert storage.requests == [], "the first connect must not back-fill"

            broker.stop()
            wait_until(
                "the source to go down",
                lambda: total(ingest.metrics(), "datahub_ingest_source_up") == 0,
                30,
            )
            storage.keep(missed)  # published while nothing was subscribed: TTN only stores it
            broker.start()

            wait_until("the ingest to reconnect", lambda: ingest.ready() == 200, 60)
            drain(database.url, ingest, len(sims), timeout=60)
            assert_exactly(database.url, sims)
            samples = ingest.metrics()
            assert total(samples, "datahub_ingest_backfilled_total") == len(missed)
            assert total(samples, "datahub_ingest_backfill_failures_total") == 0
            after = parse_rfc3339(storage.requests[0]["after"])
            assert after < min(s.time for s in missed)
            assert ingest.starts == 1 and ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()
