"""The licence and attribution that go with every response carrying data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote

import psycopg
from fastapi import Response

from datahub.api.schemas import LicenceOut
from datahub.domain import NO_LICENCE, NO_LICENCE_NAME
from datahub.storage import access
from datahub.storage.access import LicenceRow


def licences_of(conn: psycopg.Connection, dataset_ids: Iterable[int]) -> list[LicenceOut]:
    """Return the licences of the datasets a response drew on, by dataset slug."""
    ids = list(dataset_ids)
    return licences_out(access.licences_statement(dataset_ids=ids).run(conn)) if ids else []


def licences_out(rows: Iterable[LicenceRow]) -> list[LicenceOut]:
    """The licences of `access.licences_statement`'s rows, as a response shows them."""
    return [
        LicenceOut(
            dataset=row.dataset_slug,
            licence=row.licence_id,
            name=row.licence_name,
            url=row.licence_url,
            attribution=row.attribution,
        )
        for row in rows
    ]


def link_licences(response: Response, licences: Sequence[LicenceOut]) -> None:
    """Add an RFC 8288 `Link: <url>; rel="license"` per dataset, naming the dataset.

    For CSV, which has no place for them in the body. Datasets may share a licence and an
    attribution, so each link names its dataset twice: as its context (`anchor`, the
    dataset's entry in `/v1/datasets`) and as `dataset="<slug>"`. The attribution travels
    as an RFC 8187 `attribution*`, since it need not be ASCII, and as the link's `title*`.
    A dataset without a licence (`none`) links to its entry, which says so, and its link
    says it in its title: `licence="none"; title="no licence given"`.
    """
    links = [_link(lic) for lic in licences]
    if not links:
        return
    existing = response.headers.get("Link")
    response.headers["Link"] = ", ".join([existing, *links] if existing else links)


def _link(lic: LicenceOut) -> str:
    entry = f"/v1/datasets#{lic.dataset}"
    attribution = f"UTF-8''{quote(lic.attribution, safe='')}"
    named = f'anchor="{entry}"; dataset="{lic.dataset}"; attribution*={attribution}'
    if lic.url is None:  # only `none` has no URL (the check ck_dataset_licence_given)
        return (
            f'<{entry}>; rel="license"; {named}; licence="{NO_LICENCE}"; title="{NO_LICENCE_NAME}"'
        )
    return f'<{lic.url}>; rel="license"; {named}; title*={attribution}'
