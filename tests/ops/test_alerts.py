"""Alert rules on a real database, delivered to a real local webhook receiver and SMTP server:
transitions, hysteresis, hold, cooldown, the outbox under rollback, silence, bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from opskit import Smtp, register
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from datahub.config import AlertSettings, SmtpSettings
from datahub.errors import Unprocessable
from datahub.ops import rules, scheduler
from datahub.ops.delivery import SIGNATURE_HEADER, Deliverer
from datahub.ops.engine import AlertEngine
from datahub.ops.rule import Kind, Operator, Rule, Scope
from datahub.storage import alerts, devices
from datahub.storage.readings import ReadingRow, insert_readings

BIN = "A840410000000001"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SECRET = "s3cret-for-the-test"


def settings(smtp: Smtp | None = None, **more: object) -> AlertSettings:
    mail = (
        SmtpSettings(
            host=smtp.host, port=smtp.port, security="none", from_address="hub@example.org"
        )
        if smtp
        else None
    )
    return AlertSettings(smtp=mail, rule_cache_s=0, retry_base_s=60, **more)  # type: ignore[arg-type]


def fill_rule(url: str, **more: object) -> Rule:
    fields: dict[str, object] = {
        "name": "bins-full",
        "kind": Kind.THRESHOLD,
        "scope": Scope.SUPPLIER,
        "scope_value": "edg",
        "metric": "fill_level",
        "operator": Operator.ABOVE,
        "open_value": 80.0,
        "clear_value": 60.0,
        "hold_s": 600,
        "webhook_url": url,
        "webhook_secret": SECRET,
        "email_to": ("depot@example.org",),
        "cooldown_s": 3600,
    }
    return Rule(**{**fields, **more})  # type: ignore[arg-type]


class Receiver:
    """Requests a pytest-httpserver endpoint got, answered 200."""

    def __init__(self, server: HTTPServer) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        server.expect_request("/hook", method="POST").respond_with_handler(self.handle)
        self.url = server.url_for("/hook")

    def handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), request.get_data()))
        return Response("ok", status=200)

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.requests]


@pytest.fixture
def receiver(httpserver: HTTPServer) -> Iterator[Receiver]:
    yield Receiver(httpserver)


def feed(
    conn: psycopg.Connection, engine: AlertEngine, device_id: int, values: list[tuple[int, float]]
) -> int:
    """Store fill levels (minute offset from T0, value), one batch each; return transitions."""
    total = 0
    for minutes, value in values:
        rows = [ReadingRow(T0 + timedelta(minutes=minutes), device_id, "fill_level", value)]
        insert_readings(conn, rows=rows)
        total += engine.evaluate(conn, rows, now=T0 + timedelta(minutes=minutes))
    return total


def test_fill_levels_open_and_clear_once_each_by_webhook_and_email(
    conn: psycopg.Connection, receiver: Receiver, smtp: Smtp
) -> None:
    ids = register(conn, BIN)
    config = settings(smtp)
    rules.create_rule(conn, rule=fill_rule(receiver.url), alerts_settings=config, actor="cli:test")
    engine = AlertEngine(config)
    deliverer = Deliverer(config, clock=lambda: T0 + timedelta(days=1))

    assert feed(conn, engine, ids[BIN], [(0, 70.0), (10, 85.0), (20, 85.0), (30, 60.0)]) == 2
    assert deliverer.deliver_due(conn) == 4  # open and cleared, each by webhook and e-mail

    assert receiver.events() == ["open", "cleared"]
    keys = [headers["Idempotency-Key"] for headers, _ in receiver.requests]
    assert len(set(keys)) == 2
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == expected
        assert json.loads(body)["idempotency_key"] == headers["Idempotency-Key"]
    opened = json.loads(receiver.requests[0][1])
    assert opened["alarm"]["subject"] == BIN
    assert (opened["alarm"]["value"], opened["alarm"]["at"]) == (85.0, "2026-12-01T08:20:00+00:00")
    subjects = [m["Subject"] for m in smtp.inbox.messages]
    assert subjects == [
        f"[datahub] OPEN: bins-full - {BIN}",
        f"[datahub] cleared: bins-full - {BIN}",
    ]
    # Each channel's notification has its own key; the e-mail's is its Message-ID.
    mailed = {n.idempotency_key for n in alerts.list_notifications(conn) if n.channel == "email"}
    assert {m["Message-ID"] for m in smtp.inbox.messages} == {f"<{k}@datahub>" for k in mailed}

    # Full again within the hour's cooldown: the alarm is recorded, nobody is told.
    assert feed(conn, engine, ids[BIN], [(40, 90.0), (50, 95.0), (55, 40.0)]) == 2
    assert deliverer.deliver_due(conn) == 0
    assert receiver.events() == ["open", "cleared"]
    assert len(smtp.inbox.messages) == 2
    log = alerts.list_notifications(conn, rule="bins-full")
    assert sorted((n.event, n.channel, n.status) for n in log) == sorted(
        [
            (e, c, s)
            for e in ("open", "cleared")
            for c in ("webhook", "email")
            for s in ("sent", "suppressed")
        ]
    )
    states = [a.state for a in alerts.list_alarms(conn, states=["open", "acknowledged", "cleared"])]
    assert states == ["cleared", "cleared"]


def test_a_reading_inside_the_band_or_a_short_breach_opens_nothing(
    conn: psycopg.Connection, receiver: Receiver
) -> None:
    ids = register(conn, BIN)
    config = settings()
    rules.create_rule(
        conn, rule=fill_rule(receiver.url, email_to=()), alerts_settings=config, actor="cli:test"
    )
    engine = AlertEngine(config)
    # Above for 5 minutes only, then inside the band (70): the hold starts over.
    assert feed(conn, engine, ids[BIN], [(0, 85.0), (5, 90.0), (8, 70.0), (12, 85.0)]) == 0
    # A reading older than the last evaluated one changes nothing.
    assert feed(conn, engine, ids[BIN], [(1, 99.0)]) == 0
    assert feed(conn, engine, ids[BIN], [(22, 81.0)]) == 1


def test_a_batch_rolled_back_and_stored_again_yields_its_transition_once(
    conn: psycopg.Connection, receiver: Receiver
) -> None:
    ids = register(conn, BIN)
    config = settings()
    rules.create_rule(
        conn,
        rule=fill_rule(receiver.url, email_to=(), hold_s=0),
        alerts_settings=config,
        actor="cli:test",
    )
    engine = AlertEngine(config)
    rows = [ReadingRow(T0, ids[BIN], "fill_level", 90.0)]
    with pytest.raises(RuntimeError), conn.transaction():
        insert_readings(conn, rows=rows)
        assert engine.evaluate(conn, rows, now=T0) == 1
        raise RuntimeError("the batch's commit failed")
    with conn.transaction():
        insert_readings(conn, rows=rows)
        assert engine.evaluate(conn, rows, now=T0) == 1
    # Redelivered once more after its commit: a reading already evaluated.
    assert engine.evaluate(conn, rows, now=T0) == 0
    pending = alerts.list_notifications(conn, rule="bins-full")
    assert [(n.event, n.status) for n in pending] == [("open", "pending")]


def test_an_unreachable_webhook_is_retried_later_and_logged(conn: psycopg.Connection) -> None:
    ids = register(conn, BIN)
    config = settings(webhook_timeout_s=2)
    url = "http://127.0.0.1:9/nobody-listens"
    rules.create_rule(
        conn, rule=fill_rule(url, email_to=(), hold_s=0), alerts_settings=config, actor="cli:test"
    )
    feed(conn, AlertEngine(config), ids[BIN], [(0, 90.0)])
    now = T0 + timedelta(minutes=1)
    deliverer = Deliverer(config, clock=lambda: now)
    assert deliverer.deliver_due(conn) == 0
    (n,) = alerts.list_notifications(conn, rule="bins-full")
    assert (n.status, n.attempts) == ("pending", 1)
    assert n.last_error and "Connection refused" in n.last_error
    assert deliverer.deliver_due(conn) == 0  # not due again before its back-off
    assert deliverer.failed_attempts == 1


def test_a_device_that_stops_sending_raises_one_silence_alarm(
    conn: psycopg.Connection, receiver: Receiver
) -> None:
    ids = register(conn, BIN, "A840410000000002")
    config = settings()
    rule = Rule(
        name="bins-silent", kind=Kind.SILENCE, intervals=3, webhook_url=receiver.url,
        webhook_secret=SECRET,
    )  # fmt: skip
    rules.create_rule(conn, rule=rule, alerts_settings=config, actor="cli:test")
    devices.mark_seen(conn, last_seen={ids[BIN]: T0, ids["A840410000000002"]: T0})

    def interval(profile: str) -> int:
        return 1200

    for minutes in (30, 59, 61, 90):  # silent after 3 x 20 min
        scheduler.run_once(conn, now=T0 + timedelta(minutes=minutes), interval_of=interval)
    devices.mark_seen(conn, last_seen={ids["A840410000000002"]: T0 + timedelta(minutes=95)})
    scheduler.run_once(conn, now=T0 + timedelta(minutes=96), interval_of=interval)
    Deliverer(config).deliver_due(conn)
    events = [
        (json.loads(b)["event"], json.loads(b)["alarm"]["subject"]) for _, b in receiver.requests
    ]
    assert sorted(events) == sorted(
        [("open", BIN), ("open", "A840410000000002"), ("cleared", "A840410000000002")]
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clear_value": 90.0}, "clear_value 90.0 must be at or below open_value 80.0"),
        ({"metric": "fill"}, "metric 'fill' is not a canonical metric"),
        ({"webhook_url": "ftp://example.org/x"}, "must look like https://host/path"),
        ({"webhook_url": "http://exa mple.org/"}, "without spaces"),
        ({"email_to": ("not-an-address",)}, "is not an e-mail address"),
        ({"scope": Scope.GATEWAY, "scope_value": "gw"}, "is scoped to one of"),
        ({"name": "Bins Full"}, "rule name"),
        ({"hold_s": -1}, "0 or more"),
    ],
)
def test_malformed_rules_are_refused_with_the_reason(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(Unprocessable, match=message.replace("(", r"\(").replace(")", r"\)")):
        rules.check_rule(
            fill_rule("https://example.org/hook", **changes),
            alerts_settings=settings(Smtp("127.0.0.1", 25, None)),
        )  # type: ignore[arg-type]


def test_email_without_a_mail_server_is_refused() -> None:
    with pytest.raises(Unprocessable, match="needs a mail server"):
        rules.check_rule(fill_rule("https://example.org/hook"), alerts_settings=settings())
