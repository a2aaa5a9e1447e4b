"""deploy/kubernetes: every manifest is valid for Kubernetes 1.29 and the newest release
kubernetes-validate knows (strict: no unknown field), the probes ask the ports the settings
open, every container requests resources, every Secret and ConfigMap it names exists, and
the settings it hands datahub are accepted by datahub's own Settings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import ValidationError, latest_version, validate
from replicaset import PROJECT

from datahub.config import load_settings

MANIFESTS = PROJECT / "deploy" / "kubernetes"
VERSIONS = ["1.29.0", latest_version()]
Doc = dict[str, Any]


def documents() -> list[tuple[str, Doc]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    ]


DOCS = documents()


def of_kind(*kinds: str) -> list[Doc]:
    return [doc for _, doc in DOCS if doc["kind"] in kinds]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def containers() -> Iterator[tuple[str, Doc, Doc]]:
    for doc in of_kind("Deployment", "StatefulSet", "Job", "CronJob"):
        for container in pod_spec(doc)["containers"]:
            yield doc["metadata"]["name"], pod_spec(doc), container


def by_name(kind: str, name: str) -> Doc:
    [doc] = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[name for name, _ in DOCS])
def test_manifest_is_valid(name: str, doc: Doc, version: str) -> None:
    validate(doc, version, strict=True)


def test_a_misspelt_field_is_refused() -> None:
    doc = json.loads(json.dumps(by_name("Deployment", "datahub-api")))
    doc["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(ValidationError):
        validate(doc, VERSIONS[-1], strict=True)


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("k8s") / "datahub.yaml"
    path.write_text(by_name("ConfigMap", "datahub-config")["data"]["datahub.yaml"])
    return path


def test_probes_ask_the_ports_the_settings_open(settings_file: Path) -> None:
    settings = load_settings(settings_file)
    expected = {"datahub-api": settings.api.port, "datahub-ingest": settings.ingest.metrics_port}
    for workload, port in expected.items():
        [container] = pod_spec(by_name(*kind_of(workload)))["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            assert container[probe]["httpGet"]["path"] == path
            assert ports[container[probe]["httpGet"]["port"]] == port


def kind_of(workload: str) -> tuple[str, str]:
    [doc] = [d for d in of_kind("Deployment", "StatefulSet") if d["metadata"]["name"] == workload]
    return doc["kind"], workload


@pytest.mark.parametrize(("workload", "pod", "container"), list(containers()))
def test_every_container_requests_resources_and_drops_privileges(
    workload: str, pod: Doc, container: Doc
) -> None:
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_every_secret_and_config_map_named_exists() -> None:
    secrets = {d["metadata"]["name"]: d["stringData"] for d in of_kind("Secret")}
    maps = {d["metadata"]["name"] for d in of_kind("ConfigMap")}
    for _, pod, container in containers():
        for env in container.get("env", []):
            if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                assert ref["key"] in secrets[ref["name"]], ref
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps


def expanded_sources(container: Doc) -> str:
    """DATAHUB_SOURCES as Kubernetes hands it over: $(VAR) replaced by earlier variables."""
    values = {"BROKER_USERNAME": "u", "BROKER_PASSWORD": "p"}
    [sources] = [e["value"] for e in container["env"] if e["name"] == "DATAHUB_SOURCES"]
    return re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], sources)


def test_datahub_accepts_the_settings_handed_to_it(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [ingest] = pod_spec(by_name("StatefulSet", "datahub-ingest"))["containers"]
    backfill = by_name("Secret", "datahub-backfill-sources")["stringData"]["DATAHUB_SOURCES"]
    for sources in (expanded_sources(ingest), backfill):
        monkeypatch.setenv("DATAHUB_SOURCES", sources)
        settings = load_settings(settings_file)
        assert settings.sources
        assert all(s.topic_filter.startswith("$share/datahub/") for s in settings.sources)
    # The worker's name is its pod's, from the downward API.
    [worker] = [e for e in ingest["env"] if e["name"] == "DATAHUB_INGEST__WORKER"]
    assert worker["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    monkeypatch.setenv("DATAHUB_INGEST__WORKER", "datahub-ingest-0")
    monkeypatch.setenv("DATAHUB_SOURCES", expanded_sources(ingest))
    settings = load_settings(settings_file)
    ids = [settings.client_id_for(s) for s in settings.sources]
    assert ids == ["datahub-ingest-0-ttn", "datahub-ingest-0-cs"]


def test_the_api_reads_on_the_replica_through_pgbouncer(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [api] = pod_spec(by_name("Deployment", "datahub-api"))["containers"]
    secret = by_name("Secret", "datahub-secrets")["stringData"]
    for env in api["env"]:
        if env["name"].startswith("DATAHUB_DATABASE"):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            monkeypatch.setenv(env["name"], secret[ref["key"]] if ref else env["value"])
    settings = load_settings(settings_file)
    assert settings.database.transaction_pooling
    assert settings.replica_conninfo is not None
    assert settings.replica_conninfo.endswith(":6432/datahub_replica")
    assert settings.conninfo.endswith(":6432/datahub")
