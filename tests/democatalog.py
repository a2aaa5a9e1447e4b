"""The device catalog the demo runs with: the built-in profiles plus deploy/codecs.

The demo scenario has a fleet of a JavaScript-codec model (datahub/example-thermometer),
so every test that registers or decodes all demo devices needs the merged catalog, the one
`make demo` configures with DATAHUB_CATALOG__CODECS_DIR.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import decoders
from datahub.config import CatalogSettings
from decoders.codec_dir import CodecCatalog

DEPLOY_CODECS = Path(__file__).resolve().parents[1] / "deploy" / "codecs"
# The codecs' time limit in tests that are not about it. The limit is wall-clock time, and
# on a shared test machine under load a healthy call can take longer than the production
# default of 100 ms; tests/decoders/test_javascript.py proves the limit itself.
CODEC_TIMEOUT_MS = 5000


def demo_catalog_settings() -> CatalogSettings:
    """The `catalog` settings section of the demo: the project's deploy/codecs."""
    return CatalogSettings(codecs_dir=DEPLOY_CODECS, codec_timeout_ms=CODEC_TIMEOUT_MS)


@cache
def demo_catalog() -> CodecCatalog:
    """The merged catalog of the demo, loaded once per test session (one V8 context each)."""
    catalog = CodecCatalog(decoders.CATALOG, DEPLOY_CODECS, timeout_ms=CODEC_TIMEOUT_MS)
    assert not catalog.problems, catalog.problems
    return catalog
