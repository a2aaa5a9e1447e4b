"""The interactive API documentation at `/docs`, with Swagger UI served from the package.

FastAPI's own `/docs` loads Swagger UI from a CDN and shows a blank page without internet;
here the page and its assets come from the `swagger-ui-bundle-v2` package (Swagger UI
5, which reads OpenAPI 3.1; Apache-2.0, its licence ships in the package), as the
dashboard's assets come from the API itself.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(swagger_ui_bundle.swagger_ui_path)

router = APIRouter(include_in_schema=False)
router.mount("/docs/assets", StaticFiles(directory=ASSETS), name="docs-assets")


@router.get("/docs", response_class=HTMLResponse)
def get_docs(request: Request) -> HTMLResponse:
    """Serve Swagger UI on the app's OpenAPI document."""
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png",
    )
