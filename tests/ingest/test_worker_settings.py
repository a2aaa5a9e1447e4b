"""One configuration for every ingest worker: `ingest.worker` names each, and gives each
its own MQTT client ids, the same after every restart."""

from __future__ import annotations

import pytest

from datahub.config import Settings, SourceSettings
from datahub.errors import ConfigError

SOURCE = SourceSettings(name="cs", city="schwerte", format="chirpstack-v4-json")


def settings(client_id: str | None, worker: str | None) -> Settings:
    source = SOURCE.model_copy(update={"client_id": client_id})
    return Settings(sources=(source,), ingest={"worker": worker})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("client_id", "worker", "expected"),
    [
        (None, None, "datahub-ingest-cs"),
        (None, "2", "datahub-ingest-2-cs"),
        ("hub-{worker}-cs", "ingest-1", "hub-ingest-1-cs"),
        ("fixed", "3", "fixed"),
    ],
    ids=["default", "default-of-a-worker", "placeholder", "fixed"],
)
def test_a_workers_client_id(client_id: str | None, worker: str | None, expected: str) -> None:
    config = settings(client_id, worker)
    assert config.client_id_for(config.sources[0]) == expected


def test_a_placeholder_without_a_worker_name_is_an_error() -> None:
    config = settings("hub-{worker}", None)
    with pytest.raises(ConfigError, match=r"ingest\.worker"):
        config.client_id_for(config.sources[0])


@pytest.mark.parametrize("name", ["", "-a", "a/b", "x" * 33])
def test_a_worker_name_fits_client_ids_and_application_names(name: str) -> None:
    with pytest.raises(ValueError, match="worker"):
        Settings(ingest={"worker": name})  # type: ignore[arg-type]
