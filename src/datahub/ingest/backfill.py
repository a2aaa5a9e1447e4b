"""Back-fill from The Things Stack Storage Integration: the uplinks an outage made us miss.

    GET {url}/api/v3/as/applications/{app}/packages/storage/uplink_message
        ?after=T&before=T&limit=N        Authorization: Bearer {api key}

answers one JSON object per line, `{"result": <uplink message>}`, the message being the same
document TTN publishes over MQTT. Each goes through the ingest pipeline like an MQTT message,
in batches of `ingest.batch_size` stored as the live ingest stores them
(`Pipeline.store_batch`: a message the database refuses becomes a dead letter alone); the
dedup keys make a back-fill idempotent and harmless next to the running ingest.
"""

from __future__ import annotations

import itertools
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import orjson

from datahub.config import Settings, SourceSettings, StorageApiSettings
from datahub.domain import SourceFormat
from datahub.errors import ConfigError, DatahubError
from datahub.ingest.envelope import parse_rfc3339
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import Outcome, Pipeline
from datahub.storage import db

log = logging.getLogger(__name__)

Opener = Callable[[urllib.request.Request, float], IO[bytes]]


class BackfillError(DatahubError):
    """The Storage Integration could not be read."""


@dataclass(frozen=True, slots=True)
class BackfillReport:
    fetched: int
    stored: int
    duplicates: int
    dead_letters: int

    def as_json(self) -> dict[str, int]:
        return {
            "fetched": self.fetched,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
        }


def _open(request: urllib.request.Request, timeout: float) -> IO[bytes]:
    response: IO[bytes] = urllib.request.urlopen(request, timeout=timeout)
    return response


def _rfc3339(time: datetime) -> str:
    return time.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def fetch_uplinks(
    api: StorageApiSettings,
    *,
    since: datetime,
    until: datetime | None = None,
    opener: Opener = _open,
) -> Iterator[bytes]:
    """Yield the stored uplink messages from `since` on, oldest first, page by page.

    A line that is not `{"result": {...}}` is yielded as it came, to become a dead letter.
    """
    after = since
    while True:
        params = {"after": _rfc3339(after), "limit": str(api.page_limit)}
        if until is not None:
            params["before"] = _rfc3339(until)
        app = urllib.parse.quote(api.application_id, safe="")
        url = (
            f"{api.url.rstrip('/')}/api/v3/as/applications/{app}/packages/storage/"
            f"uplink_message?{urllib.parse.urlencode(params)}"
        )
        request = urllib.request.Request(
            url,
            headers={
                "Authorization": f"Bearer {api.api_key.get_secret_value()}",
                "Accept": "text/event-stream",
            },
        )
        count, newest = 0, None
        try:
            with opener(request, api.timeout_s) as response:
                for line in response:
                    if not line.strip():
                        continue
                    count += 1
                    body, received_at = _result(line)
                    if received_at is not None and (newest is None or received_at > newest):
                        newest = received_at
                    yield body
        except urllib.error.HTTPError as exc:
            raise BackfillError(f"storage integration answered {exc.code} for {url}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BackfillError(f"storage integration unreachable at {url}: {exc}") from exc
        if count < api.page_limit or newest is None:
            return
        # The next page starts just before the newest uplink of this one, so that uplinks
        # sharing its timestamp are not skipped; the repeated ones are duplicates.
        following = newest - timedelta(microseconds=1)
        if following <= after:
            raise BackfillError(
                f"more than {api.page_limit} uplinks at {_rfc3339(newest)}: raise page_limit"
            )
        after = following


def _result(line: bytes) -> tuple[bytes, datetime | None]:
    try:
        doc: Any = orjson.loads(line)
        result = doc["result"]
        if not isinstance(result, dict):
            raise TypeError("result is not an object")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return line.strip(), None
    try:
        received_at = parse_rfc3339(result["received_at"])
    except (KeyError, TypeError, ValueError):
        received_at = None
    return orjson.dumps(result), received_at


def backfill(
    settings: Settings,
    source_name: str,
    *,
    since: datetime,
    until: datetime | None = None,
    opener: Opener = _open,
    pipeline: Pipeline | None = None,
) -> BackfillReport:
    """Fetch a TTN source's stored uplinks since `since` and store those not stored yet."""
    source = _source(settings, source_name)
    assert source.storage_api is not None
    pipeline = pipeline or Pipeline(settings)
    size = settings.ingest.batch_size
    fetched = 0
    topic = f"v3/{source.storage_api.application_id}/storage"
    outcome = Outcome(stored=0, duplicates=0, dead_letters=0)
    with db.connect(settings, autocommit=True, batch_writes=True) as conn:
        batch: list[Message] = []
        bodies = fetch_uplinks(source.storage_api, since=since, until=until, opener=opener)
        for body in itertools.chain(bodies, [None]):
            if body is not None:
                fetched += 1
                now = datetime.now(UTC)
                batch.append(Message(source.name, topic, body, qos=0, mid=0, arrived_at=now))
            if batch and (body is None or len(batch) >= size):
                outcome += pipeline.store_batch(conn, batch)
                batch = []
    report = BackfillReport(fetched, outcome.stored, outcome.duplicates, outcome.dead_letters)
    log.info("back-fill of %s since %s: %s", source.name, _rfc3339(since), report.as_json())
    return report


def _source(settings: Settings, name: str) -> SourceSettings:
    source = next((s for s in settings.sources if s.name == name), None)
    if source is None:
        known = ", ".join(s.name for s in settings.sources) or "none"
        raise ConfigError(f"no source named {name!r} (configured: {known})")
    if source.format is not SourceFormat.TTN_V3 or source.storage_api is None:
        raise ConfigError(
            f"source {name!r} has no `storage_api`: back-fill needs a ttn-v3 source with "
            "The Things Stack Storage Integration configured"
        )
    return source
