"""The public dashboard: one page at `/` and its bundled assets under `/static/`.

The page reads only the public API (`/v1/...`) as an anonymous caller, so it shows what
the access rules let anyone see and nothing else; this module reads no readings or
devices itself. Its assets are built from web/ by `make web` into `STATIC_DIR`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from datahub.api.deps import SettingsDep
from datahub.config import Settings
from datahub.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
# Where web/src/index.html asks for the settings the page needs.
CONFIG_PLACEHOLDER = "__DATAHUB_DASHBOARD_CONFIG__"


class _Assets(StaticFiles):
    """The built bundle; answers 404 instead of failing while it is not built yet."""

    async def check_config(self) -> None:
        if STATIC_DIR.is_dir():
            await super().check_config()

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        # Fixed file names: the browser revalidates (ETag) instead of keeping a stale bundle.
        response.headers["Cache-Control"] = "no-cache"
        return response


router = APIRouter(include_in_schema=False)
router.mount("/static", _Assets(directory=STATIC_DIR, check_dir=False), name="static")


@router.get("/", response_class=HTMLResponse)
def get_dashboard(settings: SettingsDep) -> HTMLResponse:
    """Serve the dashboard page with the settings it needs (map tiles)."""
    return _page("index.html", settings)


@router.get("/operator", response_class=HTMLResponse)
def get_operator_page(settings: SettingsDep) -> HTMLResponse:
    """Serve the operator page; it asks for an API key and reads /v1/operations/ with it."""
    return _page("operator.html", settings)


def _page(name: str, settings: Settings) -> HTMLResponse:
    try:
        page = (STATIC_DIR / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(
            "the dashboard is not built; run `make web` (npm and esbuild, see docs/dashboard.md)"
        ) from None
    page = page.replace(CONFIG_PLACEHOLDER, _script_json(_page_config(settings)))
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": _content_security_policy(settings.dashboard.tiles.tile_url),
            "Cache-Control": "no-cache",
        },
    )


def _page_config(settings: Settings) -> dict[str, object]:
    tiles = settings.dashboard.tiles
    return {
        "tile_url": tiles.tile_url,
        "tile_attribution": tiles.attribution,
        "tile_max_zoom": tiles.max_zoom,
        # The fewest personal devices the API publishes an aggregate over: the page asks
        # for a city's count only where it has that many (docs/privacy.md).
        "k_min": settings.privacy.k_min,
    }


def _script_json(value: object) -> str:
    """Render JSON that cannot end the <script> element it is placed in."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _content_security_policy(tile_url: str) -> str:
    """Allow scripts, styles and API calls from this origin only; images also from the tiles.

    Everything the page runs is bundled, so a script from anywhere else is refused.
    """
    images = ["'self'", "data:", *_tile_sources(tile_url)]
    return "; ".join(
        (
            "default-src 'self'",
            f"img-src {' '.join(images)}",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'self'",
        )
    )


def _tile_sources(tile_url: str) -> list[str]:
    """The CSP source that covers every tile of an XYZ template; none for a relative URL."""
    parts = urlsplit(tile_url.replace("{s}", "SUBDOMAIN"))
    if not parts.scheme or not parts.netloc:
        return []
    host = parts.netloc.replace("SUBDOMAIN", "*")
    if "{" in host or "}" in host or host.count("*") > 1 or ("*" in host and host[0] != "*"):
        # A placeholder somewhere CSP cannot express: allow the scheme.
        return [f"{parts.scheme}:"]
    return [f"{parts.scheme}://{host}"]
