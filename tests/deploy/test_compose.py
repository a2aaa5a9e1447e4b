"""deploy/compose: compose.yaml is valid by the Compose Specification's JSON schema
(vendored in compose-spec/), and every file it names is there."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from replicaset import PROJECT

from datahub.config import load_settings

COMPOSE = PROJECT / "deploy" / "compose"
SCHEMA = Path(__file__).parent / "compose-spec" / "compose-spec.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs if not k.startswith("#")}


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, and $$ for $."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if values.get(name):
            return values[name]
        assert op != ":?", f"{name} is required: {arg}"
        return arg if op == ":-" else ""

    text = re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", value, text)
    return text.replace("$$", "$")


@pytest.fixture
def compose() -> dict[str, Any]:
    """compose.yaml as Compose reads it with the variables of env.example."""
    text = interpolate((COMPOSE / "compose.yaml").read_text(), dotenv(COMPOSE / "env.example"))
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_is_valid(
    validator: jsonschema.Draft7Validator, compose: dict[str, Any]
) -> None:
    assert errors(validator, compose) == []


def test_the_schema_catches_a_misspelt_key(
    validator: jsonschema.Draft7Validator, compose: dict[str, Any]
) -> None:
    compose["services"]["api"]["restrat"] = "always"
    assert errors(validator, compose)


def test_every_file_it_names_is_there(compose: dict[str, Any]) -> None:
    named = [c["file"] for c in compose["configs"].values()]
    assert all((COMPOSE / name).is_file() for name in named), named
    assert (PROJECT / compose["services"]["api"]["build"]["dockerfile"]).is_file()
    # Made by the operator from the template, never committed: its content is secret.
    assert compose["secrets"]["ttn-bridge"]["file"] == "./ttn-bridge.conf"
    assert (PROJECT / "deploy" / "mosquitto-ttn-bridge.conf").is_file()


def test_datahub_accepts_each_workers_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mounted datahub.yaml and each worker's sources, read by datahub's own Settings:
    every worker in the shared subscriptions, with client ids of its own by its name."""
    workers = {name: s for name, s in compose["services"].items() if name.startswith("ingest")}
    assert len(workers) >= 2
    ids: list[str] = []
    for service in workers.values():
        for name, value in service["environment"].items():
            monkeypatch.setenv(name, value)
        # The config file as the container sees it, where the service mounts it.
        mounts = {c["target"]: compose["configs"][c["source"]]["file"] for c in service["configs"]}
        monkeypatch.setenv("DATAHUB_CONFIG", str(COMPOSE / mounts[os.environ["DATAHUB_CONFIG"]]))
        settings = load_settings()
        assert settings.database_url.get_secret_value().endswith("@timescaledb:5432/datahub")
        assert all(s.topic_filter.startswith("$share/datahub/") for s in settings.sources)
        assert settings.ingest.worker
        ids += [settings.client_id_for(s) for s in settings.sources]
    assert len(ids) == len(set(ids)) == 2 * len(workers)
