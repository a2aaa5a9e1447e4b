"""Administration: suppliers, datasets, consumers, API keys, grants and tariffs.

Every change needs a key with the `admin` scope, every list one with the `admin` or the
`ombudsman` scope (401 without a key or with a bad one, 403 without the scope). Lists read
the primary, which holds every change at once. The rules live in datahub.fairshare.admin,
which the CLI uses too; each change is in the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from datahub.api.admin_schemas import (
    AdminDatasetListOut,
    AdminDatasetOut,
    AdminDatasetQuery,
    AdminSupplierListOut,
    AdminSupplierOut,
    ConsumerIn,
    ConsumerListOut,
    ConsumerOut,
    ConsumerPatch,
    DatasetIn,
    DatasetPatch,
    GrantListOut,
    GrantOut,
    GrantQuery,
    KeyIn,
    KeyListOut,
    KeyOut,
    NewKeyOut,
    SupplierIn,
    TariffIn,
    TariffListOut,
    TariffOut,
    TariffQuery,
    consumer_out,
    dataset_out,
    grant_out,
    key_out,
    new_key_out,
    supplier_out,
    tariff_out,
)
from datahub.api.deps import Admin, Overseer, PrimaryConn, WriteConn
from datahub.api.schemas import error_responses
from datahub.errors import BadRequest
from datahub.fairshare import admin
from datahub.storage import consumers, datasets, suppliers
from datahub.storage.datasets import DatasetFields
from datahub.storage.tariffs import Price

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_READ_ERRORS = error_responses(401, 403, 422, 429, 503)
_WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 422, 429, 503)


# Suppliers --------------------------------------------------------------------------------


@router.get("/suppliers", response_model=AdminSupplierListOut, responses=_READ_ERRORS)
def list_suppliers(conn: PrimaryConn, caller: Overseer) -> AdminSupplierListOut:
    """List every supplier with its datasets and device count."""
    return AdminSupplierListOut(items=[supplier_out(r) for r in suppliers.list_suppliers(conn)])


@router.post(
    "/suppliers",
    response_model=AdminSupplierOut,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
)
def add_supplier(body: SupplierIn, conn: WriteConn, caller: Admin) -> AdminSupplierOut:
    """Add a supplier; it gets its own restricted dataset, named by its slug. 409 if it exists."""
    return supplier_out(
        admin.add_supplier(conn, actor=caller.actor, slug=body.slug, name=body.name, kind=body.kind)
    )


# Datasets ---------------------------------------------------------------------------------


@router.get("/datasets", response_model=AdminDatasetListOut, responses=_WRITE_ERRORS)
def list_datasets(
    params: Annotated[AdminDatasetQuery, Query()], conn: PrimaryConn, caller: Overseer
) -> AdminDatasetListOut:
    """List every dataset, whatever its licence class, with its device count."""
    owner = admin.supplier_id(conn, params.supplier) if params.supplier else None
    rows = datasets.list_datasets(conn, supplier_id=owner)
    return AdminDatasetListOut(items=[dataset_out(r) for r in rows])


@router.post(
    "/datasets",
    response_model=AdminDatasetOut,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
)
def add_dataset(body: DatasetIn, conn: WriteConn, caller: Admin) -> AdminDatasetOut:
    """Add a dataset of a supplier. Devices join it through the registry's `dataset` column."""
    fields = DatasetFields(
        name=body.name,
        licence_class=body.licence_class,
        licence_id=body.licence.id,
        licence_name=body.licence.name,
        licence_url=body.licence.url,
        attribution=body.attribution,
        privacy=body.privacy.value,
    )
    record = admin.add_dataset(
        conn, actor=caller.actor, slug=body.slug, supplier=body.supplier, fields=fields
    )
    if body.open_data is not None:
        record, _ = admin.update_dataset(
            conn,
            actor=caller.actor,
            slug=body.slug,
            changes=body.open_data.model_dump(),
            now=datetime.now(UTC),
        )
    return dataset_out(record)


@router.patch("/datasets/{slug}", response_model=AdminDatasetOut, responses=_WRITE_ERRORS)
def update_dataset(
    slug: str, body: DatasetPatch, conn: WriteConn, caller: Admin
) -> AdminDatasetOut:
    """Change a dataset's name, licence class, licence, attribution, privacy class,
    open-data metadata, how long its raw uplinks and readings are kept, or its legal basis.

    400 for making it open while it charges for use (open data is free), or for metadata
    outside the catalogue's vocabularies (licence IRI, themes, contributor id).
    """
    changes = body.model_dump(exclude_unset=True, exclude={"licence", "open_data"})
    if any(changes.get(k, "") is None for k in ("name", "licence_class", "attribution", "privacy")):
        raise BadRequest("name, licence_class, attribution and privacy cannot be null")
    if "licence" in body.model_fields_set:
        if body.licence is None:
            raise BadRequest("licence cannot be null")
        changes |= {
            "licence_id": body.licence.id,
            "licence_name": body.licence.name,
            "licence_url": body.licence.url,
        }
    if body.open_data is not None:
        changes |= body.open_data.model_dump(include=body.open_data.model_fields_set)
    record, _ = admin.update_dataset(
        conn, actor=caller.actor, slug=slug, changes=changes, now=datetime.now(UTC)
    )
    return dataset_out(record)


# Consumers and their keys -----------------------------------------------------------------


@router.get("/consumers", response_model=ConsumerListOut, responses=_READ_ERRORS)
def list_consumers(conn: PrimaryConn, caller: Overseer) -> ConsumerListOut:
    """List every consumer with its purpose, limits, grants and number of active keys."""
    return ConsumerListOut(items=[consumer_out(r) for r in consumers.list_consumers(conn)])


@router.post(
    "/consumers",
    response_model=ConsumerOut,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
)
def add_consumer(body: ConsumerIn, conn: WriteConn, caller: Admin) -> ConsumerOut:
    """Add a consumer; make it keys with `POST /v1/admin/consumers/{slug}/keys`."""
    record = admin.add_consumer(
        conn,
        actor=caller.actor,
        slug=body.slug,
        name=body.name,
        purpose=body.purpose,
        supplier=body.supplier,
        monthly_quota=body.monthly_quota,
        requests_per_s=body.requests_per_s,
    )
    return consumer_out(record)


@router.patch("/consumers/{slug}", response_model=ConsumerOut, responses=_WRITE_ERRORS)
def update_consumer(slug: str, body: ConsumerPatch, conn: WriteConn, caller: Admin) -> ConsumerOut:
    """Change a consumer's name, purpose, supplier, monthly quota or rate limit."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None or changes.get("purpose", "") is None:
        raise BadRequest("name and purpose cannot be null")
    record, _ = admin.update_consumer(
        conn, actor=caller.actor, slug=slug, changes=changes, now=datetime.now(UTC)
    )
    return consumer_out(record)


@router.post(
    "/consumers/{slug}/keys",
    response_model=NewKeyOut,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
)
def create_key(
    slug: str, body: KeyIn, response: Response, conn: WriteConn, caller: Admin
) -> NewKeyOut:
    """Make an API key for a consumer. The key is in this answer only; only its hash is kept."""
    record, secret = admin.create_key(
        conn, actor=caller.actor, consumer=slug, scopes=body.scopes, label=body.label
    )
    response.headers["Cache-Control"] = "no-store"
    return new_key_out(record, secret)


@router.get("/consumers/{slug}/keys", response_model=KeyListOut, responses=_WRITE_ERRORS)
def list_keys(slug: str, conn: PrimaryConn, caller: Overseer) -> KeyListOut:
    """List a consumer's keys by prefix, revoked ones too; never the keys themselves."""
    return KeyListOut(items=[key_out(r) for r in admin.list_keys(conn, consumer=slug)])


@router.delete("/keys/{prefix}", response_model=KeyOut, responses=_WRITE_ERRORS)
def revoke_key(prefix: str, conn: WriteConn, caller: Admin) -> KeyOut:
    """Revoke a key by its prefix: from now on it is answered 401. Revoking again is a no-op."""
    return key_out(admin.revoke_key(conn, actor=caller.actor, prefix=prefix))


# Grants -----------------------------------------------------------------------------------


@router.get("/grants", response_model=GrantListOut, responses=_WRITE_ERRORS)
def list_grants(
    params: Annotated[GrantQuery, Query()], conn: PrimaryConn, caller: Overseer
) -> GrantListOut:
    """List grants, of one consumer or on one dataset if asked."""
    rows = admin.list_grants(conn, consumer=params.consumer, dataset=params.dataset)
    return GrantListOut(items=[grant_out(r) for r in rows])


@router.put("/grants/{consumer}/{dataset}", response_model=GrantOut, responses=_WRITE_ERRORS)
def put_grant(
    consumer: str, dataset: str, response: Response, conn: WriteConn, caller: Admin
) -> GrantOut:
    """Grant a consumer a restricted or commercial dataset: 201 if new, 200 if it had it."""
    grant, created = admin.add_grant(conn, actor=caller.actor, consumer=consumer, dataset=dataset)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return grant_out(grant)


@router.delete(
    "/grants/{consumer}/{dataset}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_WRITE_ERRORS,
)
def delete_grant(consumer: str, dataset: str, conn: WriteConn, caller: Admin) -> None:
    """Withdraw a consumer's grant on a dataset; 404 if it had none."""
    admin.revoke_grant(conn, actor=caller.actor, consumer=consumer, dataset=dataset)


# Tariffs ----------------------------------------------------------------------------------


@router.get("/tariffs", response_model=TariffListOut, responses=_WRITE_ERRORS)
def list_tariffs(
    params: Annotated[TariffQuery, Query()], conn: PrimaryConn, caller: Overseer
) -> TariffListOut:
    """List every tariff version, marking those in force now."""
    rows = admin.list_tariffs(conn, at=datetime.now(UTC), dataset=params.dataset)
    return TariffListOut(items=[tariff_out(r) for r in rows if r.current or not params.current])


@router.post(
    "/tariffs",
    response_model=TariffOut,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE_ERRORS,
)
def add_tariff(body: TariffIn, conn: WriteConn, caller: Admin) -> TariffOut:
    """Add the next version of a dataset's tariff for a purpose, from `valid_from` (now).

    400 for a price on an open dataset (open data is free; set its shadow price), or a
    `valid_from` not after the latest version's or inside a closed period.
    """
    record = admin.add_tariff(
        conn,
        actor=caller.actor,
        dataset=body.dataset,
        purpose=body.purpose,
        price=Price(
            body.cents_per_million, body.shadow_cents_per_million, body.platform_fee_basis_points
        ),
        now=datetime.now(UTC),
        valid_from=body.valid_from,
    )
    return tariff_out(record)
