"""What a test of the `datahub` command line sets up: the environment the command reads,
and the root logger, which `cli.main` points at the captured stderr."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from democatalog import DEPLOY_CODECS
from realservices import BROKER_URL


def point_cli_at(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Let the command read its settings from the environment: this database, the local
    broker and the deployment's codec directory, no config file."""
    monkeypatch.delenv("DATAHUB_CONFIG", raising=False)
    monkeypatch.setenv("DATAHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("DATAHUB_BROKER_URL", BROKER_URL)
    monkeypatch.setenv("DATAHUB_CATALOG__CODECS_DIR", str(DEPLOY_CODECS))


@contextmanager
def root_logging_kept() -> Iterator[None]:
    """Give the root logger its handlers and level back afterwards (the captured stderr
    `cli.main` pointed it at is closed after the test)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
