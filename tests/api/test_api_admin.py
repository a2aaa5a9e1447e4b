"""The admin API (`/v1/admin/…`) and the published tariffs (`/v1/fairshare/tariffs`)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import API_LIMITS, UNLIMITED, Seed, build_app
from fastapi import FastAPI
from fastapi.testclient import TestClient

from datahub.fairshare import admin, keys

LICENCE = {"id": "CC-BY-4.0", "name": "CC BY 4.0", "url": "https://creativecommons.org/"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_key(
    conn: psycopg.Connection, slug: str, *, purpose: str, scopes: tuple[str, ...]
) -> dict[str, str]:
    """Add a consumer with one key; return its request headers."""
    admin.add_consumer(
        conn, actor="cli:test", slug=slug, name=slug, purpose=purpose, requests_per_s=1000
    )
    _, secret = admin.create_key(conn, actor="cli:test", consumer=slug, scopes=scopes)
    return bearer(secret)


@pytest.fixture
def ops(conn: psycopg.Connection, seed: Seed) -> dict[str, str]:
    """Headers of an administrator's key; the suppliers dew21 and stadtwerke-schwerte exist."""
    return make_key(conn, "ops", purpose="public_interest", scopes=("read", "admin"))


@pytest.fixture
def reader(conn: psycopg.Connection, seed: Seed) -> dict[str, str]:
    return make_key(conn, "reader", purpose="research", scopes=("read",))


def dataset_body(slug: str = "sws-waste", licence_class: str = "commercial") -> dict[str, Any]:
    return {
        "slug": slug,
        "supplier": "stadtwerke-schwerte",
        "name": "Waste bins",
        "licence_class": licence_class,
        "licence": LICENCE,
        "attribution": "Stadtwerke Schwerte",
    }


def tariff_body(dataset: str = "sws-waste", cents: int = 400_000, **more: Any) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "purpose": "commercial",
        "cents_per_million": cents,
        "shadow_cents_per_million": 400_000,
        "platform_fee_basis_points": 1500,
        **more,
    }


# Who may administer -----------------------------------------------------------------------

# A value for each path parameter of the admin routes: the caller is refused before any
# lookup, so they need not exist.
PATH_VALUES = {
    "slug": "ops",
    "prefix": "abcdefabcdef",
    "consumer": "ops",
    "dataset": "dew21",
    "name": "x",
    "letter_id": "1",
    "seq": "1",
}


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the app under /v1/admin/ (from its OpenAPI document, which
    lists every route), its parameters filled in."""
    return sorted(
        (method.upper(), path.format(**PATH_VALUES))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1/admin/")
        for method in operations
    )


NO_KEY = {
    "no key": {},
    "an empty X-API-Key": {"X-API-Key": ""},
    "a blank X-API-Key": {"X-API-Key": "  "},
    "an empty bearer": {"Authorization": "Bearer "},
    "an empty Authorization": {"Authorization": ""},
}


def test_every_admin_route_needs_a_key_with_the_admin_scope(
    database: Any, conn: psycopg.Connection, ops: dict[str, str], reader: dict[str, str]
) -> None:
    # Some hundred anonymous calls in a row: without the anonymous rate limit, which has
    # tests of its own, so that each is answered for its key and not for the rate.
    app = build_app(database.settings(api=API_LIMITS, fairshare=UNLIMITED), conn)
    client = TestClient(app)
    routes = admin_routes(app)
    assert len(routes) >= 16
    assert {m for m, _ in routes} == {"GET", "POST", "PATCH", "PUT", "DELETE"}
    for method, path in routes:
        for why, headers in NO_KEY.items():
            response = client.request(method, path, json={}, headers=headers)
            assert (response.status_code, response.json()["error"]) == (401, "Unauthorized"), (
                method,
                path,
                why,
            )
            assert response.headers["www-authenticate"] == 'Bearer realm="datahub"'
        read_only = client.request(method, path, json={}, headers=reader)
        assert (read_only.status_code, read_only.json()["error"]) == (403, "Forbidden")
        assert "admin" in read_only.json()["detail"]
        for key in ("dh_notakey", f"dh_{'A' * 12}_{'b' * 43}"):
            refused = client.request(method, path, json={}, headers=bearer(key))
            assert refused.status_code == 401, (method, path, key)


def test_a_revoked_admin_key_is_refused(client: TestClient, conn: psycopg.Connection) -> None:
    headers = make_key(conn, "ops", purpose="public_interest", scopes=("admin",))
    prefix = keys.parse_prefix(headers["Authorization"].removeprefix("Bearer "))
    assert client.get("/v1/admin/suppliers", headers=headers).status_code == 200

    revoked = client.delete(f"/v1/admin/keys/{prefix}", headers=headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    after = client.get("/v1/admin/suppliers", headers=headers)
    assert (after.status_code, after.json()["detail"]) == (401, "the API key has been revoked")


# Suppliers and datasets -------------------------------------------------------------------


def test_supplier_round_trip(client: TestClient, ops: dict[str, str]) -> None:
    body = {"slug": "edg", "name": "EDG Entsorgung Dortmund GmbH", "kind": "waste_company"}
    added = client.post("/v1/admin/suppliers", json=body, headers=ops)
    again = client.post("/v1/admin/suppliers", json=body, headers=ops)
    listed = client.get("/v1/admin/suppliers", headers=ops).json()["items"]

    assert added.status_code == 201
    assert added.json() | {"created_at": None} == {
        **body,
        "datasets": ["edg"],
        "device_count": 0,
        "created_at": None,
    }
    assert again.status_code == 409
    assert again.json() == {"error": "Conflict", "detail": "supplier 'edg' exists"}
    assert [s["slug"] for s in listed] == ["dew21", "edg", "stadtwerke-schwerte"]


def test_dataset_round_trip(client: TestClient, ops: dict[str, str], seed: Seed) -> None:
    seed.device("70B3D57E00000009", supplier="stadtwerke-schwerte")
    added = client.post("/v1/admin/datasets", json=dataset_body(), headers=ops)
    patched = client.patch(
        "/v1/admin/datasets/sws-waste",
        json={
            "name": "Waste bin fill levels",
            "licence": {"id": "none", "name": "no licence given"},
            "privacy": "personal",
        },
        headers=ops,
    )
    listed = client.get(
        "/v1/admin/datasets", params={"supplier": "stadtwerke-schwerte"}, headers=ops
    ).json()["items"]

    assert added.status_code == 201
    assert added.json()["licence"] == LICENCE
    assert added.json()["privacy"] == "public_infrastructure"
    assert patched.status_code == 200
    assert patched.json()["name"] == "Waste bin fill levels"
    assert patched.json()["licence"] == {"id": "none", "name": "no licence given", "url": None}
    assert patched.json()["attribution"] == "Stadtwerke Schwerte"
    assert patched.json()["privacy"] == "personal"
    assert [(d["slug"], d["device_count"]) for d in listed] == [
        ("stadtwerke-schwerte", 1),
        ("sws-waste", 0),
    ]


def test_a_licence_without_url_is_refused_and_changes_nothing(
    client: TestClient, ops: dict[str, str]
) -> None:
    client.post("/v1/admin/datasets", json=dataset_body(), headers=ops)
    patched = client.patch(
        "/v1/admin/datasets/sws-waste",
        json={"licence": {"id": "own", "name": "Own terms"}},
        headers=ops,
    )
    (listed,) = [
        d
        for d in client.get("/v1/admin/datasets", headers=ops).json()["items"]
        if d["slug"] == "sws-waste"
    ]

    assert patched.status_code == 400
    assert patched.json() == {
        "error": "BadRequest",
        "detail": "licence 'own' needs a licence URL (e.g. its dcat-ap.de IRI, "
        "http://dcat-ap.de/def/licenses/dl-by-de/2.0 or "
        "http://dcat-ap.de/def/licenses/other-closed), or the licence id 'none' "
        "(no licence given)",
    }
    assert listed["licence"] == LICENCE


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        pytest.param(dataset_body("dew21"), 409, "Conflict", id="duplicate"),
        pytest.param(dataset_body() | {"supplier": "nobody"}, 404, "NotFound", id="no-supplier"),
        pytest.param(dataset_body("Bad Slug"), 422, "ValidationError", id="bad-slug"),
        pytest.param(dataset_body("x", "free"), 422, "ValidationError", id="bad-class"),
        pytest.param(
            dataset_body() | {"privacy": "secret"}, 422, "ValidationError", id="bad-privacy"
        ),
        pytest.param(dataset_body() | {"owner": "x"}, 422, "ValidationError", id="extra-field"),
        pytest.param(
            dataset_body() | {"licence": LICENCE | {"url": "javascript:alert(1)"}},
            400,
            "BadRequest",
            id="bad-url",
        ),
        pytest.param(
            dataset_body() | {"licence": {"id": "own", "name": "Own terms"}},
            400,
            "BadRequest",
            id="no-licence-url",
        ),
        pytest.param(
            dataset_body("x", "open") | {"licence": {"id": "none", "name": "no licence given"}},
            400,
            "BadRequest",
            id="open-without-licence",
        ),
    ],
)
def test_refused_datasets(
    client: TestClient, ops: dict[str, str], body: dict[str, Any], status: int, error: str
) -> None:
    response = client.post("/v1/admin/datasets", json=body, headers=ops)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_open_data_metadata_round_trip(client: TestClient, ops: dict[str, str]) -> None:
    first = client.patch(
        "/v1/admin/datasets/dew21",
        json={"open_data": {"keywords": ["Wasser"], "themes": ["ENER"], "public_summaries": True}},
        headers=ops,
    )
    second = client.patch(
        "/v1/admin/datasets/dew21", json={"open_data": {"title_en": "Water meters"}}, headers=ops
    )
    refused = client.patch(
        "/v1/admin/datasets/dew21", json={"open_data": {"themes": ["WATER"]}}, headers=ops
    )

    assert first.status_code == second.status_code == 200
    # A PATCH changes only the metadata it names.
    assert second.json()["open_data"] | {"title_en": None} == first.json()["open_data"]
    assert second.json()["open_data"]["title_en"] == "Water meters"
    assert first.json()["open_data"]["keywords"] == ["Wasser"]
    assert (refused.status_code, refused.json()["error"]) == (400, "BadRequest")
    assert "not an EU data theme" in refused.json()["detail"]


def test_patching_an_unknown_dataset_or_nulling_a_field(
    client: TestClient, ops: dict[str, str]
) -> None:
    unknown = client.patch("/v1/admin/datasets/nothing", json={"name": "x"}, headers=ops)
    nulled = client.patch("/v1/admin/datasets/dew21", json={"name": None}, headers=ops)
    assert (unknown.status_code, nulled.status_code) == (404, 400)


# Consumers, keys and grants ---------------------------------------------------------------


def test_consumer_round_trip(client: TestClient, ops: dict[str, str]) -> None:
    body = {
        "slug": "ruhrroute",
        "name": "RuhrRoute Logistik GmbH",
        "purpose": "commercial",
        "supplier": "dew21",
        "monthly_quota": 2_000_000,
        "requests_per_s": 10,
    }
    added = client.post("/v1/admin/consumers", json=body, headers=ops)
    patched = client.patch(
        "/v1/admin/consumers/ruhrroute",
        json={"monthly_quota": None, "supplier": None},
        headers=ops,
    )
    listed = client.get("/v1/admin/consumers", headers=ops).json()["items"]

    assert added.status_code == 201
    assert {k: added.json()[k] for k in body} == body
    assert added.json()["active_keys"] == 0
    assert patched.json()["monthly_quota"] is None
    assert patched.json()["supplier"] is None
    assert patched.json()["requests_per_s"] == 10
    assert [c["slug"] for c in listed] == ["ops", "ruhrroute"]
    assert client.post("/v1/admin/consumers", json=body, headers=ops).status_code == 409


def test_a_key_is_shown_once_works_and_stops_working_when_revoked(
    client: TestClient, ops: dict[str, str], conn: psycopg.Connection
) -> None:
    admin.add_consumer(
        conn, actor="cli:test", slug="lab", name="Lab", purpose="research", requests_per_s=100
    )
    made = client.post("/v1/admin/consumers/lab/keys", json={"label": "notebook"}, headers=ops)
    secret = made.json()["key"]
    prefix = made.json()["prefix"]
    listed = client.get("/v1/admin/consumers/lab/keys", headers=ops)

    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    assert made.json()["scopes"] == ["read"]
    assert secret.startswith(f"dh_{prefix}_")
    assert secret not in listed.text
    assert [k["prefix"] for k in listed.json()["items"]] == [prefix]
    stored = conn.execute("SELECT key_hash FROM api_key WHERE prefix = %s", (prefix,)).fetchone()
    assert stored == (keys.hash_key(secret),)

    assert client.get("/v1/datasets", headers=bearer(secret)).status_code == 200
    assert client.delete(f"/v1/admin/keys/{prefix}", headers=ops).status_code == 200
    refused = client.get("/v1/datasets", headers=bearer(secret))
    assert refused.status_code == 401
    assert client.delete("/v1/admin/keys/nosuchprefix", headers=ops).status_code == 404


def test_a_key_with_an_unknown_scope_is_refused(client: TestClient, ops: dict[str, str]) -> None:
    response = client.post("/v1/admin/consumers/ops/keys", json={"scopes": ["root"]}, headers=ops)
    assert response.status_code == 422


def test_a_grant_opens_a_restricted_dataset_to_its_consumer(
    client: TestClient, ops: dict[str, str], reader: dict[str, str], conn: psycopg.Connection
) -> None:
    conn.execute("UPDATE dataset SET licence_class = 'restricted' WHERE slug = 'dew21'")

    def visible() -> list[str]:
        return [d["slug"] for d in client.get("/v1/datasets", headers=reader).json()["items"]]

    assert "dew21" not in visible()
    first = client.put("/v1/admin/grants/reader/dew21", headers=ops)
    second = client.put("/v1/admin/grants/reader/dew21", headers=ops)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["licence_class"] == "restricted"
    assert "dew21" in visible()
    listed = client.get("/v1/admin/grants", params={"consumer": "reader"}, headers=ops).json()
    assert [(g["consumer"], g["dataset"]) for g in listed["items"]] == [("reader", "dew21")]

    assert client.delete("/v1/admin/grants/reader/dew21", headers=ops).status_code == 204
    assert "dew21" not in visible()
    again = client.delete("/v1/admin/grants/reader/dew21", headers=ops)
    assert (again.status_code, again.json()["error"]) == (404, "NotFound")
    unknown = client.put("/v1/admin/grants/nobody/dew21", headers=ops)
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "no consumer 'nobody'")


# Tariffs ----------------------------------------------------------------------------------


def test_tariff_versions_and_their_publication(client: TestClient, ops: dict[str, str]) -> None:
    client.post("/v1/admin/datasets", json=dataset_body(), headers=ops)
    first = client.post(
        "/v1/admin/tariffs",
        json=tariff_body(valid_from="2026-01-01T00:00:00+01:00"),
        headers=ops,
    )
    second = client.post("/v1/admin/tariffs", json=tariff_body(cents=500_000), headers=ops)
    rewrite = client.post(
        "/v1/admin/tariffs", json=tariff_body(valid_from="2026-02-01T00:00:00Z"), headers=ops
    )

    assert first.status_code == 201
    assert first.json() | {"current": None} == {
        "dataset": "sws-waste",
        "supplier": "stadtwerke-schwerte",
        "licence_class": "commercial",
        "purpose": "commercial",
        "version": 1,
        "valid_from": "2025-12-31T23:00:00Z",
        "cents_per_million": 400_000,
        "shadow_cents_per_million": 400_000,
        "platform_fee_basis_points": 1500,
        "current": None,
    }
    assert second.json()["version"] == 2
    assert (rewrite.status_code, rewrite.json()["error"]) == (400, "BadRequest")
    assert "rewrite history" in rewrite.json()["detail"]

    # Published to anyone, without a key; the admin view lists the same.
    published = client.get("/v1/fairshare/tariffs", params={"dataset": "sws-waste"})
    assert published.status_code == 200
    versions = [(t["version"], t["current"]) for t in published.json()["items"]]
    assert versions == [(1, False), (2, True)]
    current = client.get("/v1/fairshare/tariffs", params={"current": "true"}).json()["items"]
    assert [(t["dataset"], t["version"]) for t in current] == [("sws-waste", 2)]
    assert client.get("/v1/admin/tariffs", headers=ops).json() == published.json()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(tariff_body("dew21", cents=1), 400, id="priced-open-data"),
        pytest.param(tariff_body("nothing"), 404, id="unknown-dataset"),
        pytest.param(tariff_body(cents=-1), 422, id="negative"),
        pytest.param(tariff_body(platform_fee_basis_points=10_001), 422, id="fee-over-100%"),
        pytest.param(tariff_body(valid_from="2026-01-01T00:00:00"), 422, id="naive-time"),
        pytest.param(tariff_body(purpose="fun"), 422, id="bad-purpose"),
    ],
)
def test_refused_tariffs(
    client: TestClient, ops: dict[str, str], body: dict[str, Any], status: int
) -> None:
    client.post("/v1/admin/datasets", json=dataset_body(), headers=ops)
    response = client.post("/v1/admin/tariffs", json=body, headers=ops)
    assert response.status_code == status, response.json()


def test_open_data_stays_free(client: TestClient, ops: dict[str, str]) -> None:
    client.post("/v1/admin/datasets", json=dataset_body(), headers=ops)
    client.post("/v1/admin/tariffs", json=tariff_body(), headers=ops)

    opened = client.patch(
        "/v1/admin/datasets/sws-waste", json={"licence_class": "open"}, headers=ops
    )
    assert (opened.status_code, opened.json()["error"]) == (400, "BadRequest")
    assert "open data is free" in opened.json()["detail"]


def test_the_admin_routes_are_documented(app: FastAPI, client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    admin_operations = [
        op for path, ops in paths.items() if path.startswith("/v1/admin/") for op in ops.values()
    ]
    assert len(admin_operations) == len(admin_routes(app))
    for operation in admin_operations:
        assert operation["tags"] == ["admin"]
        assert {"401", "403"} <= set(operation["responses"])
        assert operation.get("description") or operation.get("summary")
