"""The ingest's telemetry: stage counters become labelled families, read at scrape time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from prometheus_text import parse_samples

from datahub.ingest.pipeline import Stats
from datahub.ingest.telemetry import IngestTelemetry

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


class FakeState:
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def counters(self) -> Mapping[tuple[str, str | None], int]:
        return self.stats.snapshot_by_source()

    def backlog(self) -> int:
        return 7

    def last_stored_at(self) -> datetime | None:
        return self.stats.last_stored_at

    def sources_online(self) -> Mapping[str, bool]:
        return {"ttn": True, "cs": False}

    def database_up(self) -> bool:
        return True

    def leading(self) -> Mapping[str, bool]:
        return {"rollups": True, "dedup-retention": False}


def scrape(metrics: IngestTelemetry) -> dict[str, float]:
    return parse_samples(metrics.render().decode())


def test_stage_counters_become_families_labelled_by_source_and_reason() -> None:
    stats = Stats()
    stats.add("received", 5, source="ttn")
    stats.add("stored", 3, source="ttn")
    stats.add("duplicates", 1, source="ttn")
    stats.add("dead_letter.bad_envelope", 1, source="ttn")
    stats.add("unknown_device", 2, source="cs")
    stats.add("retries", 4)
    stats.mark_stored(NOW - timedelta(seconds=90))
    metrics = IngestTelemetry(FakeState(stats), clock=lambda: NOW)

    found = scrape(metrics)

    assert found['datahub_ingest_received_total{source="ttn"}'] == 5
    assert found['datahub_ingest_stored_total{source="ttn"}'] == 3
    assert found['datahub_ingest_duplicates_total{source="ttn"}'] == 1
    assert found['datahub_ingest_dead_letters_total{reason="bad_envelope",source="ttn"}'] == 1
    assert found['datahub_ingest_undecoded_total{reason="unknown_device",source="cs"}'] == 2
    assert found["datahub_ingest_retries_total"] == 4
    assert found["datahub_ingest_backlog_messages"] == 7
    assert found["datahub_ingest_lag_seconds"] == 90
    assert found['datahub_ingest_source_up{source="cs"}'] == 0
    assert found["datahub_ingest_database_up"] == 1
    assert found['datahub_ingest_leader{job="rollups"}'] == 1
    assert found['datahub_ingest_leader{job="dedup-retention"}'] == 0


def test_counters_are_read_at_scrape_time() -> None:
    stats = Stats()
    metrics = IngestTelemetry(FakeState(stats), clock=lambda: NOW)
    assert 'datahub_ingest_received_total{source="ttn"}' not in scrape(metrics)

    stats.add("received", 2, source="ttn")
    metrics.batch_seconds.observe(0.02)

    found = scrape(metrics)
    assert found['datahub_ingest_received_total{source="ttn"}'] == 2
    assert found["datahub_ingest_batch_seconds_count"] == 1
