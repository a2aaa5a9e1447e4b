"""The delivery worker: sends pending notifications by webhook and e-mail, at least once each.

A notification is locked (`FOR UPDATE SKIP LOCKED`) while it is sent, so several workers
share the queue without sending one twice at the same time; a worker killed mid-send
leaves it pending, and it is sent again with the same idempotency key. A failed attempt
is logged and retried after a back-off that doubles from `alerts.retry_base_s` up to
`alerts.retry_max_s`; after `alerts.delivery_attempts` attempts it is `failed`.

Webhook: `POST` of the notification's JSON (the same bytes every attempt) with the headers
`Idempotency-Key` and `X-Datahub-Signature: sha256=<hex>`, the HMAC-SHA256 of the body
under the rule's webhook secret. Any 2xx answer is delivery.
E-mail: one message to the rule's recipients through `alerts.smtp`, its `Message-ID`
made of the idempotency key, so a repeat is recognisable as the same message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import orjson
import psycopg

import datahub
from datahub.config import AlertSettings, SmtpSettings
from datahub.storage import alerts
from datahub.storage.alerts import PendingNotification

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Datahub-Signature"


class DeliveryError(Exception):
    """One attempt to deliver a notification failed; the message says how."""


def body_of(payload: dict[str, Any]) -> bytes:
    """The webhook body of a notification: canonical JSON, identical on every attempt."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(n: PendingNotification, *, timeout_s: float) -> str:
    """POST the notification; return what the receiver answered, or raise DeliveryError."""
    body = body_of(n.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"datahub/{datahub.__version__}",
        "Idempotency-Key": str(n.idempotency_key),
    }
    if n.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(body, n.webhook_secret)
    request = urllib.request.Request(n.target, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from exc
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


def email_message(n: PendingNotification, *, sender: str) -> EmailMessage:
    """The e-mail of a notification."""
    alarm, rule = n.payload["alarm"], n.payload["rule"]
    verb = "OPEN" if n.event == "open" else "cleared"
    message = EmailMessage()
    message["Subject"] = f"[datahub] {verb}: {rule['name']} - {alarm['subject']}"
    message["From"] = sender
    message["To"] = n.target
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{n.idempotency_key}@datahub>"
    message.set_content(
        f"Alarm {alarm['id']} of rule {rule['name']} ({rule['kind']}) {n.event} "
        f"for {alarm['subject_kind']} {alarm['subject']} at {alarm['at']}.\n\n"
        f"{alarm['detail']}\n\nIdempotency key: {n.idempotency_key}\n"
    )
    return message


def send_email(n: PendingNotification, *, smtp: SmtpSettings) -> str:
    """Send the notification's e-mail; return the server's answer, or raise DeliveryError."""
    message = email_message(n, sender=smtp.from_address)
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout_s, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.username is not None and smtp.password is not None:
                client.login(smtp.username, smtp.password.get_secret_value())
            refused = client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if refused:
        raise DeliveryError(f"recipients refused: {', '.join(sorted(refused))}")
    return f"accepted for {n.target}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Deliverer:
    """Send what is due, one notification per transaction."""

    def __init__(self, settings: AlertSettings, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._settings = settings
        self._clock = clock
        self.sent = 0
        self.failed_attempts = 0

    def deliver_due(
        self, conn: psycopg.Connection, *, stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Send every notification due now; return how many were delivered."""
        delivered = 0
        while not stop():
            with conn.transaction():
                n = alerts.claim_pending(conn, now=self._clock())
                if n is None:
                    break
                delivered += self._attempt(conn, n)
        return delivered

    def _attempt(self, conn: psycopg.Connection, n: PendingNotification) -> int:
        try:
            detail = self._send(n)
        except DeliveryError as exc:
            self.failed_attempts += 1
            attempts = n.attempts + 1
            final = attempts >= self._settings.delivery_attempts
            delay = min(
                self._settings.retry_base_s * 2 ** (attempts - 1), self._settings.retry_max_s
            )
            now = self._clock()
            log.warning(
                "notification %s (%s to %s) attempt %d failed: %s%s",
                n.idempotency_key, n.channel, n.target, attempts, exc,
                "; giving up" if final else f"; retrying in {delay:.0f} s",
            )  # fmt: skip
            alerts.record_attempt(
                conn,
                notification_id=n.id,
                at=now,
                ok=False,
                detail=str(exc),
                status="failed" if final else "pending",
                next_attempt_at=None if final else now + timedelta(seconds=delay),
            )
            return 0
        alerts.record_attempt(
            conn,
            notification_id=n.id,
            at=self._clock(),
            ok=True,
            detail=detail,
            status="sent",
            next_attempt_at=None,
        )
        self.sent += 1
        return 1

    def _send(self, n: PendingNotification) -> str:
        if n.channel == "webhook":
            return post_webhook(n, timeout_s=self._settings.webhook_timeout_s)
        if self._settings.smtp is None:
            raise DeliveryError("no mail server configured (alerts.smtp)")
        return send_email(n, smtp=self._settings.smtp)
