"""The licence and attribution that go with every response carrying data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote

import psycopg
from fastapi import Response

from datahub.api.schemas import LicenceOut
from datahub.storage import access


def licences_of(conn: psycopg.Connection, dataset_ids: Iterable[int]) -> list[LicenceOut]:
    """Return the licences of the datasets a response drew on, by dataset slug."""
    return [
        LicenceOut(
            dataset=row.dataset_slug,
            licence=row.licence_id,
            name=row.licence_name,
            url=row.licence_url,
            attribution=row.attribution,
        )
        for row in access.select_licences(conn, dataset_ids=list(dataset_ids))
    ]


def link_licences(response: Response, licences: Sequence[LicenceOut]) -> None:
    """Add an RFC 8288 `Link: <url>; rel="license"` per dataset, naming the dataset.

    For CSV, which has no place for them in the body. Datasets may share a licence and an
    attribution, so each link names its dataset twice: as its context (`anchor`, the
    dataset's entry in `/v1/datasets`) and as `dataset="<slug>"`. The attribution travels
    as an RFC 8187 `title*`, since it need not be ASCII. A licence without a public URL (an
    agreement of the hub's own) links to the dataset's entry, which describes it.
    """
    links = [
        f'<{lic.url or f"/v1/datasets#{lic.dataset}"}>; rel="license"; '
        f'anchor="/v1/datasets#{lic.dataset}"; dataset="{lic.dataset}"; '
        f"title*=UTF-8''{quote(lic.attribution, safe='')}"
        for lic in licences
    ]
    if not links:
        return
    existing = response.headers.get("Link")
    response.headers["Link"] = ", ".join([existing, *links] if existing else links)
