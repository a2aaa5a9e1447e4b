"""The query string's rule: only the parameters a route declares, each single-valued one
at most once (422 otherwise).

Read from the app's own OpenAPI document, so that it holds for every route in it, present
and future, without a line of its own, and so that what the document says is what the
API accepts. Routes left out of the document (the dashboard page, its assets) are left
alone. It runs before anything else of a request (an app-wide dependency): a misspelt
parameter costs no database statement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from datahub.errors import BadRequest

# (method, path template) -> query parameter name -> whether it takes several values
Declared = Mapping[tuple[str, str], Mapping[str, bool]]


def declared_parameters(app: FastAPI) -> Declared:
    """Read every operation's query parameters from the app's OpenAPI document."""
    declared: dict[tuple[str, str], dict[str, bool]] = {}
    for path, operations in app.openapi().get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            declared[(method.upper(), path)] = {
                parameter["name"]: _is_array(parameter.get("schema", {}))
                for parameter in operation.get("parameters", ())
                if parameter.get("in") == "query"
            }
    return declared


def _is_array(schema: Mapping[str, Any]) -> bool:
    if schema.get("type") == "array":
        return True
    return any(_is_array(option) for option in schema.get("anyOf", ()))


async def check_query(request: Request) -> None:
    """Refuse a URL that is not UTF-8 (400), a query parameter the route does not declare,
    or a single one given twice (422)."""
    _check_utf8(request.scope.get("raw_path", b""), "path")
    _check_utf8(request.scope.get("query_string", b""), "query string")
    if not request.url.query:
        return
    route = request.scope.get("route")
    state = request.app.state
    if getattr(state, "declared_parameters", None) is None:
        state.declared_parameters = declared_parameters(request.app)
    # The document's templates are the routes' paths without converters: `{path}` for a
    # route's `{path:path}`.
    known = state.declared_parameters.get((request.method, getattr(route, "path_format", None)))
    if known is None:  # not in the document
        return
    errors: list[dict[str, Any]] = []
    for name, count in Counter(key for key, _ in request.query_params.multi_items()).items():
        if name not in known:
            errors.append(
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": "Extra inputs are not permitted",
                    "input": request.query_params.get(name),
                }
            )
        elif count > 1 and not known[name]:
            errors.append(
                {
                    "type": "single_value",
                    "loc": ("query", name),
                    "msg": f"takes one value, given {count}",
                    "input": request.query_params.getlist(name),
                }
            )
    if errors:
        raise RequestValidationError(errors)


def _check_utf8(raw: bytes, what: str) -> None:
    """Refuse percent-encoded bytes that are not UTF-8 instead of reading them as U+FFFD."""
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the URL's {what} is not UTF-8 once percent-decoded (byte "
            f"0x{decoded[exc.start]:02X} at {exc.start}); encode text as UTF-8"
        ) from None
