"""Fixtures of the operations tests: a registered fleet, a local webhook receiver and a local
SMTP server (both real servers on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from datahub.domain import City, Device
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow


@dataclass
class Inbox:
    """What the local SMTP server received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    inbox: Inbox


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """An aiosmtpd server on loopback that keeps every message it is given."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield Smtp("127.0.0.1", port, inbox)
    controller.stop()


def register(
    conn: psycopg.Connection,
    *dev_euis: str,
    profile: str = "dragino/ldds75",
    city: City = City.DORTMUND,
    supplier: str = "edg",
) -> dict[str, int]:
    """Register devices of one supplier; return DevEUI -> device id."""
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow(supplier, supplier.upper())])
    devices.upsert_devices(
        conn,
        devices=[Device(e, f"bin {e[-4:]}", city, supplier, profile) for e in dev_euis],
        supplier_ids=ids,
    )
    registry = devices.select_registry(conn)
    return {e: registry[e].device_id for e in dev_euis}
