"""The operator page at /operator in Chromium: a key opens device health, gateways and alarms;
an administrator's key sees every device, a supplier's key its own devices only."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from dashboard_stack import Stack, Visit
from playwright.sync_api import Page

from datahub.config import Settings
from datahub.fairshare import admin
from datahub.ops.refresh import HealthRefresher

pytestmark = pytest.mark.services


def make_key(stack: Stack, slug: str, *, scopes: list[str], supplier: str | None = None) -> str:
    with psycopg.connect(stack.database.url) as conn:
        admin.add_consumer(
            conn, slug=slug, name=slug, purpose="public_interest", supplier=supplier,
            requests_per_s=1000, actor="cli:test",
        )  # fmt: skip
        _, secret = admin.create_key(conn, actor="cli:test", consumer=slug, scopes=scopes)
    with psycopg.connect(stack.database.url, autocommit=True) as conn:
        HealthRefresher(Settings(database_url=stack.database.url).health).refresh_due(conn)
    return secret


def open_with(visit: Callable[..., Visit], stack: Stack, key: str) -> Page:
    page = visit().page
    page.goto(f"{stack.url}/operator")
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#devices tbody tr", timeout=15_000)
    return page


def shown_devices(page: Page) -> set[str]:
    return set(page.locator("#devices tbody tr td:first-child").all_inner_texts())


def test_an_admin_key_shows_every_device_with_its_status(
    visit: Callable[..., Visit], stack: Stack
) -> None:
    page = open_with(visit, stack, make_key(stack, "page-ops", scopes=["read", "admin"]))
    every = set(stack.seeded.last_seen)  # every device seeded, open or not
    assert shown_devices(page) == every
    assert "ok:" in page.inner_text("#counts")
    statuses = dict(
        zip(
            page.locator("#devices tbody tr td:first-child").all_inner_texts(),
            page.locator("#devices tbody tr td:nth-child(4)").all_inner_texts(),
            strict=True,
        )
    )
    page.select_option("#filter-status", "silent")
    assert shown_devices(page) == {e for e, s in statuses.items() if s == "silent"}


def test_a_supplier_key_shows_its_own_devices_only(
    visit: Callable[..., Visit], stack: Stack
) -> None:
    own = next(iter(stack.seeded.restricted.values()))
    with psycopg.connect(stack.database.url) as conn:
        row = conn.execute(
            "SELECT s.slug FROM device d JOIN supplier s ON s.id = d.supplier_id"
            " WHERE d.dev_eui = %s",
            (own.dev_eui,),
        ).fetchone()
    assert row is not None
    supplier = row[0]
    page = open_with(visit, stack, make_key(stack, "page-sup", scopes=["read"], supplier=supplier))
    with psycopg.connect(stack.database.url) as conn:
        theirs = {
            e for (e,) in conn.execute(
                "SELECT d.dev_eui FROM device d JOIN supplier s ON s.id = d.supplier_id"
                " WHERE s.slug = %s", (supplier,),
            ).fetchall()
        }  # fmt: skip
    assert shown_devices(page) == theirs


def test_a_key_without_operator_rights_is_told_so(
    visit: Callable[..., Visit], stack: Stack
) -> None:
    key = make_key(stack, "page-reader", scopes=["read"])
    page = visit(allow=("403",)).page
    page.goto(f"{stack.url}/operator")
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#status:not([hidden])", timeout=15_000)
    assert "403" in page.inner_text("#status")
    assert page.locator("#views").is_hidden()
