"""The API against its own OpenAPI document, by schemathesis: requests generated from the
schema, valid and invalid, never get a 5xx, and every answer matches what the schema says.

The app runs with its real connection pool (its lifespan) on a TimescaleDB database of this
module only, seeded and committed, so that generated requests can find devices and readings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
import schemathesis
from api_helpers import API_LIMITS, UNLIMITED, Seed, at, build_app
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from realservices import Database, temporary_database
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from datahub.api.app import create_app
from datahub.domain import City, Location

pytestmark = pytest.mark.services

# Not positive_data_acceptance: a schema-valid request may still be a documented 400 (a
# forged cursor, a range too long).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 50  # per operation and generation mode; 1000 found nothing more
# The generated requests commit their rate windows to the module's database: with the
# anonymous rate limit, the next test's requests in the same second would be answered 429.


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    """A TimescaleDB database of this module only: its seed is committed, not rolled back."""
    with temporary_database("timescaledb", "datahub_test_api_schema") as database:
        with psycopg.connect(database.url) as conn:
            seed = Seed(conn)
            seed.device(
                "70B3D57ED0000001",
                profile="decentlab/dl-sht35",
                location=Location(51.4897, 7.5149),
            )
            seed.device("70B3D57ED0000002", profile="browan/tbms100", supplier="dew21")
            seed.device(
                "70B3D57ED0000003",
                city=City.SCHWERTE,
                supplier="stadtwerke-schwerte",
                profile="retired-model",
            )
            for minutes in range(0, 24 * 60, 30):
                seed.readings("70B3D57ED0000001", "temperature", {at(minutes): 10 + minutes / 100})
                seed.readings(
                    "70B3D57ED0000002", "occupancy", {at(minutes, days=1): float(minutes % 2)}
                )
            seed.seen("70B3D57ED0000001", at(days=1) - timedelta(minutes=1))
        yield database


@pytest.fixture(scope="module")
def schema(database: Database) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(database.settings(api=API_LIMITS, fairshare=UNLIMITED))
    # Schemathesis runs the app's lifespan (the pool) on the first request and keeps it
    # running; stop it before the database is dropped.
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    schemathesis.python.asgi.shutdown_lifespans()


@pytest.fixture
def app(database: Database, conn: psycopg.Connection) -> FastAPI:
    """The API on the test's connection, without the anonymous rate limit (UNLIMITED)."""
    return build_app(database.settings(api=API_LIMITS, fairshare=UNLIMITED), conn)


def test_generated_requests_get_no_server_error_and_conforming_answers(
    schema: schemathesis.BaseSchema,
) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                pass  # no invalid request to make: the operation has no parameters to spoil
            except (Exception, FailureGroup) as exc:  # collect every operation's, then report
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)


def cursor(*fields: str) -> str:
    """A well-formed cursor with any content, as a client could forge one."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


READINGS = "/v1/devices/70B3D57ED0000001/readings"


@pytest.mark.parametrize(
    ("path", "params", "status", "detail_part"),
    [
        pytest.param(
            "/v1/devices", {"supplier": "dew\x0021"}, 422, "'supplier'", id="nul-supplier"
        ),
        pytest.param(
            "/v1/latest", {"supplier": "dew\x0021"}, 422, "'supplier'", id="nul-supplier-latest"
        ),
        pytest.param("/v1/devices", {"supplier": "DEW21"}, 422, "'supplier'", id="not-a-slug"),
        pytest.param(
            "/v1/devices", {"cursor": cursor("d", "\x00")}, 400, "cursor", id="nul-device-cursor"
        ),
        pytest.param(
            READINGS,
            {"cursor": cursor("r", "2024-05-01T00:00:00Z", "temp\x00")},
            400,
            "cursor",
            id="nul-reading-cursor",
        ),
        pytest.param(
            "/v1/readings/aggregate",
            {"metric": "temperature", "city": "dortmund", "from": "0001-01-01T00:00:00+01:00"},
            422,
            "out of range",
            id="from-before-year-1-in-utc",
        ),
        pytest.param(
            READINGS, {"to": "9999-12-31T23:59:59-01:00"}, 422, "out of range", id="to-after-9999"
        ),
        pytest.param(
            READINGS, {"to": "0001-01-01T01:00:00Z"}, 400, "no room", id="no-default-from"
        ),
    ],
)
def test_what_schemathesis_found_is_a_client_error(
    client: TestClient,
    path: str,
    params: dict[str, str],
    status: int,
    detail_part: str,
) -> None:
    response = client.get(path, params=params)

    assert response.status_code == status, response.text
    assert detail_part in response.json()["detail"]
