"""The page and its assets as the API serves them, without a browser or a database."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from datahub.api.app import create_app
from datahub.api.routes.dashboard import STATIC_DIR
from datahub.config import DashboardSettings, Settings


@pytest.fixture(autouse=True)
def _built() -> None:
    if not (STATIC_DIR / "index.html").is_file():
        pytest.fail(f"the dashboard is not built in {STATIC_DIR}: run `make web`")


def client(**dashboard: object) -> TestClient:
    settings = Settings(dashboard=DashboardSettings(**dashboard))  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def page_config(html: str) -> dict[str, object]:
    found = re.search(r'<script id="datahub-config" type="application/json">(.*?)</script>', html)
    assert found is not None
    config: dict[str, object] = json.loads(found.group(1))
    return config


def test_the_page_carries_the_tile_settings() -> None:
    response = client(
        tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png",
        tile_attribution="</script><script>alert(1)</script> & Co",
    ).get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    config = page_config(response.text)
    assert config["tile_url"] == "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    # Settings cannot end the script element they are written into.
    assert config["tile_attribution"] == "</script><script>alert(1)</script> & Co"
    assert "<script>alert(1)" not in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "img-src 'self' data: https://*.tiles.example.org" in policy


@pytest.mark.parametrize(
    ("tile_url", "image_sources"),
    [
        pytest.param(
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            "'self' data: https://tile.openstreetmap.org",
            id="osm",
        ),
        pytest.param(
            "http://127.0.0.1:8080/tiles/{z}/{x}/{y}.png",
            "'self' data: http://127.0.0.1:8080",
            id="port",
        ),
        pytest.param("/tiles/{z}/{x}/{y}.png", "'self' data:", id="relative"),
        pytest.param("", "'self' data:", id="none"),
        pytest.param("https://{z}.example.org/{x}/{y}.png", "'self' data: https:", id="odd"),
    ],
)
def test_images_may_come_from_the_tile_server_only(tile_url: str, image_sources: str) -> None:
    policy = client(tile_url=tile_url).get("/").headers["content-security-policy"]
    assert f"img-src {image_sources};" in policy


def test_the_bundle_is_served_and_nothing_comes_from_elsewhere() -> None:
    api = client()
    html = api.get("/").text
    assets = re.findall(r'(?:src|href)="(/static/[^"?]+)', html)
    assert sorted(assets) == [
        "/static/dashboard.css",
        "/static/dashboard.js",
        "/static/favicon.svg",
    ]
    for asset in assets:
        response = api.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["cache-control"] == "no-cache"
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    assert api.get("/static/nothing.js").status_code == 404


def test_the_page_is_not_part_of_the_api_schema() -> None:
    api = client()
    paths = api.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/static") for p in paths)
    assert api.get("/docs").status_code == 200


def test_the_page_knows_how_many_personal_devices_an_aggregate_needs() -> None:
    settings = Settings(privacy={"k_min": 7})  # type: ignore[arg-type]
    response = TestClient(create_app(settings)).get("/")

    assert page_config(response.text)["k_min"] == 7


def test_the_official_basemap_by_name_with_its_credit() -> None:
    response = client(basemap="basemap.de").get("/")

    config = page_config(response.text)
    assert config["tile_url"] == (
        "https://sgx.geodatenzentrum.de/wmts_basemapde/tile/1.0.0/de_basemapde_web_raster_farbe"
        "/default/GLOBAL_WEBMERCATOR/{z}/{y}/{x}.png"
    )
    assert "basemap.de" in str(config["tile_attribution"])
    assert "BKG" in str(config["tile_attribution"])
    policy = response.headers["content-security-policy"]
    assert "img-src 'self' data: https://sgx.geodatenzentrum.de" in policy
    # A city's own tile server replaces the named one.
    own = page_config(client(basemap="basemap.de", tile_url="/tiles/{z}/{x}/{y}.png").get("/").text)
    assert own["tile_url"] == "/tiles/{z}/{x}/{y}.png"
