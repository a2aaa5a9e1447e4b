"""Every profile replays its example vectors: the vendor codec's data object, exactly."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import decoders
from datahub.catalog import mismatch
from decoders import CATALOG, METRICS, Example, Profile

SHARED_VECTORS = (
    Path(__file__).parents[2] / ".." / "shared" / "vectors" / "ttn-device-repo-examples.json"
)

EXAMPLES = [
    pytest.param(profile, example, id=f"{profile.id}#{index}")
    for profile in CATALOG.values()
    for index, example in enumerate(profile.examples)
]


def shipped_document(profile: Profile) -> dict[str, Any]:
    source = resources.files("decoders") / "examples" / profile.vendor / f"{profile.model}.json"
    document: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize(("profile", "example"), EXAMPLES)
def test_decoder_reproduces_example(profile: Profile, example: Example) -> None:
    assert not example.errors, "examples whose vendor output is only errors are not shipped"
    decoded = profile.decode(example.f_port, example.payload)
    assert decoded == example.expected
    assert mismatch(decoded, example.expected) is None


@pytest.mark.parametrize("profile", CATALOG.values(), ids=lambda profile: profile.id)
def test_codec_runs_keep_the_codec_key_order(profile: Profile) -> None:
    # The codec runs were recorded from Node.js, whose JSON keeps insertion order; the
    # vendor's YAML examples have their own order, so only the runs are compared here.
    for run in shipped_document(profile)["codec_runs"]:
        decoded = profile.decode(run["f_port"], bytes.fromhex(run["bytes_hex"]))
        assert list(decoded) == list(run["expected"]), run["description"]


@pytest.mark.skipif(not SHARED_VECTORS.is_file(), reason="../shared is not present")
def test_shipped_examples_equal_the_shared_vectors() -> None:
    shared = json.loads(SHARED_VECTORS.read_text(encoding="utf-8"))
    shared_models = {f"{model['vendor']}/{model['model']}": model for model in shared["models"]}
    assert set(CATALOG) == set(shared_models)
    for profile_id, model in shared_models.items():
        document = shipped_document(CATALOG[profile_id])
        for key in ("vendor", "model", "codec_js", "codec_js_commit", "examples"):
            assert document[key] == model[key], f"{profile_id}: {key}"


def test_catalog_is_keyed_by_profile_id() -> None:
    for profile_id, profile in CATALOG.items():
        assert profile.id == profile_id == f"{profile.vendor}/{profile.model}"
        assert decoders.get_profile(profile_id) is profile
        assert profile.examples, f"{profile_id} ships no examples"
        assert profile.reporting_interval_s > 0
        assert profile.version


def test_unknown_profile_is_a_key_error_with_a_readable_message() -> None:
    with pytest.raises(KeyError) as caught:
        decoders.get_profile("acme/nothing")
    assert isinstance(caught.value, decoders.UnknownProfile)
    assert str(caught.value) == "unknown device profile 'acme/nothing'"


def test_metrics_are_keyed_by_name() -> None:
    for name, metric in METRICS.items():
        assert metric.name == name
        assert metric.unit
        assert metric.description


@pytest.mark.parametrize("profile", CATALOG.values(), ids=lambda profile: profile.id)
def test_mappings_name_canonical_metrics_once(profile: Profile) -> None:
    metrics = [mapping.metric for mapping in profile.mappings]
    assert metrics, f"{profile.id} maps no field"
    assert set(metrics) <= set(METRICS)
    assert len(metrics) == len(set(metrics))


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:  # never split keys on dots: "pm2.5" is one key
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


@pytest.mark.parametrize("profile", CATALOG.values(), ids=lambda profile: profile.id)
def test_every_mapped_path_is_a_number_in_some_example(profile: Profile) -> None:
    outputs = [profile.decode(example.f_port, example.payload) for example in profile.examples]
    for mapping in profile.mappings:
        values = [lookup(output, mapping.path) for output in outputs]
        assert any(isinstance(value, int | float) for value in values), mapping.path
