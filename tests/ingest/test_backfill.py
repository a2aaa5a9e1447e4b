"""`datahub backfill` against a local server speaking The Things Stack Storage Integration's
documented format: paged NDJSON of `{"result": <uplink message>}` behind a bearer key."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import yaml
from counter_reset import counter_resets, ttn_body
from democatalog import DEPLOY_CODECS, demo_catalog
from realservices import BROKER_URL, Database, temporary_database

import simulators
from datahub.cli import main
from datahub.domain import SourceFormat
from datahub.ingest import decode, normalize
from datahub.ingest.envelope import parse_rfc3339

pytestmark = pytest.mark.services

APP, KEY = "dortmund-air", "NNSXS.TESTKEY"
PATH = f"/api/v3/as/applications/{APP}/packages/storage/uplink_message"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)


@dataclass
class StorageIntegration:
    """The stored uplinks of one application, served as TTN serves them."""

    messages: list[tuple[datetime, bytes]]
    garbage: bytes | None = None
    requests: list[dict[str, str]] = field(default_factory=list)

    def page(self, query: dict[str, str]) -> list[bytes]:
        after = parse_rfc3339(query["after"]) if "after" in query else None
        before = parse_rfc3339(query["before"]) if "before" in query else None
        limit = int(query.get("limit", "0")) or len(self.messages)
        chosen = [
            body
            for at, body in sorted(self.messages)
            if (after is None or at > after) and (before is None or at < before)
        ]
        lines = [b'{"result": ' + body + b"}" for body in chosen[:limit]]
        if self.garbage is not None and len(self.requests) == 1:
            lines.insert(0, self.garbage)
        return lines


@pytest.fixture
def integration() -> Iterator[tuple[StorageIntegration, str]]:
    sims = [
        s
        for s in simulators.generate(simulators.load_scenario(), seed=5, start=START, count=600)
        if s.source == "ttn-dortmund"
    ]
    messages = []
    for sim in sims:
        _, body = sim.message(SourceFormat.TTN_V3)
        messages.append((parse_rfc3339(json.loads(body)["received_at"]), body))
    state = StorageIntegration(messages)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != PATH:
                self.send_error(404)
                return
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self.send_error(401)
                return
            query = dict(urllib.parse.parse_qsl(url.query))
            state.requests.append(query)
            body = b"\n\n".join(state.page(query)) + b"\n"
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


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("timescaledb", "datahub_test_backfill") as database:
        yield database


def config(tmp_path: Path, database: Database, url: str, key: str = KEY) -> Path:
    path = tmp_path / "datahub.yaml"
    source = {
        "name": "ttn-dortmund",
        "city": "dortmund",
        "format": "ttn-v3",
        "storage_api": {"url": url, "application_id": APP, "api_key": key, "page_limit": 50},
    }
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": database.url,
                "broker_url": BROKER_URL,
                "sources": [source],
                "catalog": {"codecs_dir": str(DEPLOY_CODECS)},  # the demo registry needs it
            }
        )
    )
    registry = tmp_path / "devices.csv"
    simulators.write_registry_csv(simulators.load_scenario(), registry)
    assert main(["--config", str(path), "devices", "import", str(registry)]) == 0
    return path


def run(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, int]:
    capsys.readouterr()
    assert main(["--config", str(path), "backfill", "--source", "ttn-dortmund", *args]) == 0
    report: dict[str, int] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return report


def clear(database: Database) -> None:
    with psycopg.connect(database.url) as conn:
        conn.execute("TRUNCATE uplink, uplink_dedup, reading, dead_letter")


def readings(database: Database) -> set[tuple[str, datetime, str, float]]:
    with psycopg.connect(database.url) as conn:
        rows = conn.execute(
            "SELECT d.dev_eui, r.time, r.metric, r.value"
            " FROM reading r JOIN device d ON d.id = r.device_id"
        ).fetchall()
    return {(e, t, m, v) for e, t, m, v in rows}


def expected(bodies: list[bytes]) -> set[tuple[str, datetime, str, float]]:
    """The readings the payloads encode, through the decoders and normalization."""
    profiles = {d.dev_eui: d.profile for d in simulators.load_scenario().devices()}
    out = set()
    for body in bodies:
        doc = json.loads(body)
        dev_eui, up = doc["end_device_ids"]["dev_eui"], doc["uplink_message"]
        profile = demo_catalog()[profiles[dev_eui]]
        payload = base64.b64decode(up["frm_payload"])
        data = decode.decode_uplink(profile, f_port=up["f_port"], payload=payload).data
        at = parse_rfc3339(doc["received_at"])
        norm = normalize.to_readings(data, profile.mappings, time=at, dev_eui=dev_eui)
        out |= {(r.dev_eui, r.time, r.metric, r.value) for r in norm.readings}
    return out


def test_backfill_pages_through_everything_and_is_idempotent(
    integration: tuple[StorageIntegration, str],
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = integration
    clear(database)
    path = config(tmp_path, database, url)
    n = len(state.messages)

    first = run(path, capsys, "--since", (START - timedelta(hours=1)).isoformat())
    again = run(path, capsys, "--since", (START - timedelta(hours=1)).isoformat())

    assert first["stored"] == n and first["dead_letters"] == 0
    assert first["fetched"] >= n  # a page boundary may repeat an uplink
    assert first["duplicates"] == first["fetched"] - n
    assert again["stored"] == 0 and again["duplicates"] == again["fetched"]
    assert len(state.requests) >= 2 * (n // 50)
    assert all(q["limit"] == "50" for q in state.requests)
    assert readings(database) == expected([body for _, body in state.messages])


def test_since_and_until_bound_the_backfill(
    integration: tuple[StorageIntegration, str],
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = integration
    clear(database)
    path = config(tmp_path, database, url)
    times = sorted(at for at, _ in state.messages)
    since, until = times[10], times[60]

    report = run(path, capsys, "--since", since.isoformat(), "--until", until.isoformat())

    assert report["stored"] == sum(1 for at in times if since < at < until)
    assert state.requests[0]["before"].startswith(until.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_device_that_resets_its_frame_counter_is_backfilled_whole(
    integration: tuple[StorageIntegration, str],
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = integration
    clear(database)
    sims = list(simulators.generate(simulators.load_scenario(), seed=5, start=START, count=3000))
    resets = counter_resets(sims, start=START + timedelta(hours=1))
    state.messages = [(sim.time, ttn_body(sim)) for sim in resets]
    path = config(tmp_path, database, url)

    first = run(path, capsys, "--since", START.isoformat())
    again = run(path, capsys, "--since", START.isoformat())

    assert (first["stored"], first["dead_letters"]) == (100, 0)
    assert first["duplicates"] == first["fetched"] - 100
    assert (again["stored"], again["duplicates"]) == (0, again["fetched"])
    assert readings(database) == expected([body for _, body in state.messages])


def test_a_message_the_database_refuses_is_dead_lettered_alone(
    integration: tuple[StorageIntegration, str],
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = integration
    clear(database)
    at, body = state.messages[7]
    doc = json.loads(body)
    doc["uplink_message"]["decoded_payload"] = {"note": "\x00"}  # jsonb cannot store it
    state.messages[7] = (at, json.dumps(doc).encode())
    path = config(tmp_path, database, url)

    report = run(path, capsys, "--since", (START - timedelta(hours=1)).isoformat())

    n = len(state.messages)
    assert (report["stored"], report["dead_letters"]) == (n - 1, 1)
    assert report["fetched"] == report["stored"] + report["duplicates"] + 1
    with psycopg.connect(database.url) as conn:
        letters = conn.execute("SELECT stage, reason, body FROM dead_letter").fetchall()
    assert [(stage, reason) for stage, reason, _ in letters] == [("store", "storage_refused")]
    assert json.loads(bytes(letters[0][2]))["uplink_message"]["decoded_payload"] == {"note": "\x00"}


def test_a_line_that_is_no_uplink_becomes_a_dead_letter(
    integration: tuple[StorageIntegration, str],
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = integration
    clear(database)
    state.garbage = b'{"error": "not an uplink"}'
    path = config(tmp_path, database, url)

    report = run(path, capsys, "--since", (START - timedelta(hours=1)).isoformat())

    assert report["stored"] == len(state.messages)
    assert report["dead_letters"] == 1


def test_a_refused_key_is_an_error(
    integration: tuple[StorageIntegration, str],
    database: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = integration
    path = config(tmp_path, database, url, key="wrong")

    code = main(
        [
            "--config",
            str(path),
            "backfill",
            "--source",
            "ttn-dortmund",
            "--since",
            "2026-01-01T00:00:00Z",
        ]
    )

    assert code == 2
    assert "answered 401" in capsys.readouterr().err
