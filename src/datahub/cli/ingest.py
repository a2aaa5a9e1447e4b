"""`datahub ingest`: subscribe to every source and store uplinks until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import signal
from types import FrameType

from datahub.config import Settings
from datahub.errors import ConfigError
from datahub.ingest.supervisor import Ingest, tuned_collector

log = logging.getLogger("datahub")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub ingest`: none, the sources come from the settings."""
    parser.set_defaults(run=_ingest)


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.sources:
        raise ConfigError("no sources configured: list them under `sources:` in the config file")
    if settings.database.transaction_pooling:
        raise ConfigError(
            "the ingest holds its leadership of the singleton jobs in database sessions: give "
            "it database_url of the primary itself (or of a pooler in session mode), without "
            "database.transaction_pooling"
        )
    ingest = Ingest(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        ingest.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with tuned_collector():  # once start-up has built what lives as long as the process
        ingest.run()
    log.info("ingest stopped: %s", json.dumps(ingest.pipeline.stats.snapshot(), sort_keys=True))
    return 0
