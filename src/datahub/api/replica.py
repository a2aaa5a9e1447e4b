"""How far behind its primary the replica the API reads from is, measured by a thread of
each API process (`database.replica_url`).

Staleness is bounded by WAL positions and this process's own clock, never the servers'
clocks: every `interval_s` the monitor notes the time and then the primary's flushed WAL
position (every commit acknowledged by then lies before it), and reads the position the
replica has replayed. A replica that has replayed past the position noted at time t holds
every commit made before t, so what it serves at time s lacks at most the commits of the
last s - t seconds: its staleness at s. It grows by itself between measurements, so a
monitor that cannot reach the replica, or the primary, never vouches for old data; an idle
primary does not make the replica look stale, as `pg_last_xact_replay_timestamp()`
would.

A replica that does not answer within `CHECK_TIMEOUT_S` (or not at all, or is no longer
in recovery) is unreachable until it answers again; so is one that a request could not
get a connection to (`suspect`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from datahub.config import Settings
from datahub.errors import StorageUnavailable
from datahub.storage import db, replication

log = logging.getLogger(__name__)

# A replica slower than this to tell its replay position is treated as unreachable: a
# request would wait as long for its data. The same bounds a new connection to it.
CHECK_TIMEOUT_S = 2.0
APPLICATION_NAME = f"{db.APPLICATION_NAME}-replica-monitor"


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """The replica as the monitor last found it."""

    reachable: bool
    fresh_as_of: float | None  # time.monotonic() before which it holds every commit
    staleness_s: float | None  # the bound now; None until a measurement succeeded
    detail: str  # why it is unreachable or unmeasured; empty when neither
    primary_reachable: bool | None  # whether the primary answered the last check; None: none yet

    def usable(self, max_lag_s: float) -> bool:
        """Whether reads may go to it under the staleness bound `max_lag_s`."""
        return self.reachable and self.staleness_s is not None and self.staleness_s <= max_lag_s

    def describe(self) -> str:
        """Say, for a client or a log, why the replica is not read (after "the replica")."""
        if not self.reachable:
            return f"is unreachable ({self.detail})"
        if self.staleness_s is None:
            return f"has not been measured yet ({self.detail})"
        return f"is {self.staleness_s:.1f} s behind the primary"


class ReplicaMonitor:
    """Measures the replica's staleness every `interval_s` on a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        replica = settings.replica_conninfo
        if replica is None:
            raise ValueError("a replica monitor needs database.replica_url")
        self._replica_conninfo = replica
        max_lag = settings.database.replica_max_lag_s
        self.interval_s = min(1.0, max_lag / 4)
        # Its own bounds: a check must not wait as long as a request may.
        self._settings = settings.model_copy(
            update={
                "database": settings.database.model_copy(
                    update={
                        "connect_timeout_s": CHECK_TIMEOUT_S,
                        "response_timeout_s": CHECK_TIMEOUT_S,
                    }
                )
            }
        )
        self._keep_s = 2 * max_lag  # primary positions older than this vouch for nothing usable
        self._samples: deque[tuple[float, int]] = deque()  # (time noted, flushed position)
        self._fresh_as_of: float | None = None
        self._reachable = False
        self._detail = "not checked yet"
        self._primary_up: bool | None = None
        self._conns: dict[str, psycopg.Connection] = {}
        self._timeouts_checked: set[str] = set()
        self._lock = threading.Lock()  # guards what status() reads
        self._checking = threading.Lock()  # one check at a time: its connections are shared
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * CHECK_TIMEOUT_S + self.interval_s)
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def status(self) -> ReplicaStatus:
        """The replica's reachability and its staleness bound now."""
        with self._lock:
            fresh_as_of, reachable, detail = self._fresh_as_of, self._reachable, self._detail
        staleness = None if fresh_as_of is None else max(time.monotonic() - fresh_as_of, 0.0)
        return ReplicaStatus(reachable, fresh_as_of, staleness, detail, self._primary_up)

    def suspect(self, detail: str) -> None:
        """Treat the replica as unreachable until a check finds it again."""
        with self._lock:
            if self._reachable:
                log.warning("the replica is unreachable: %s; reading on the primary", detail)
            self._reachable, self._detail = False, detail

    def check(self) -> None:
        """Measure once: note the primary's position, then read the replica's. Called by
        the monitor's thread, and by a request that could not get a replica connection."""
        with self._checking:
            self._check()

    def _check(self) -> None:
        noted_at = time.monotonic()
        try:
            flushed = replication.get_flushed_lsn(self._connection("primary", None))
        except (StorageUnavailable, psycopg.Error) as exc:
            # Without the primary's position the bound cannot improve; it grows meanwhile.
            self._drop("primary")
            self._primary_up = False
            log.debug("replica monitor: the primary does not answer: %s", exc)
        else:
            self._primary_up = True
            self._samples.append((noted_at, flushed))
            while self._samples and self._samples[0][0] < noted_at - self._keep_s:
                self._samples.popleft()
        try:
            replayed = replication.get_replayed_lsn(
                self._connection("replica", self._replica_conninfo)
            )
        except (StorageUnavailable, psycopg.Error) as exc:
            self._drop("replica")
            self.suspect(f"{type(exc).__name__}: {str(exc).strip() or 'no answer'}")
            return
        if replayed is None:
            self.suspect("the server is not in recovery: not a replica, or promoted")
            return
        vouched = [at for at, position in self._samples if position <= replayed]
        with self._lock:
            if vouched and (self._fresh_as_of is None or max(vouched) > self._fresh_as_of):
                self._fresh_as_of = max(vouched)
            if not self._reachable:
                log.info("the replica answers: reading on it while within the bound")
            self._reachable, self._detail = True, ""

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a bug must not leave the process vouching for a stale replica
                log.exception("replica monitor: check failed")
                self.suspect("its check failed")

    def _connection(self, name: str, conninfo: str | None) -> psycopg.Connection:
        conn = self._conns.get(name)
        if conn is None or conn.closed or conn.broken:
            conn = db.connect(
                self._settings,
                conninfo=conninfo,
                autocommit=True,
                application_name=APPLICATION_NAME,
            )
            self._conns[name] = conn
            if name not in self._timeouts_checked:
                self._timeouts_checked.add(name)
                self._check_statement_timeout(name, conn)
        return conn

    def _check_statement_timeout(self, name: str, conn: psycopg.Connection) -> None:
        """Warn if the server applies no statement_timeout (behind a pooler in transaction
        mode, datahub cannot set it per connection: the role must have it)."""
        wanted = self._settings.database.statement_timeout_ms
        found = replication.get_statement_timeout_ms(conn)
        if wanted and not found:
            log.warning(
                "the %s applies no statement_timeout to datahub's sessions (with "
                "database.transaction_pooling none is sent at start-up): set it on the role, "
                "ALTER ROLE … SET statement_timeout = '%dms'",
                name,
                wanted,
            )

    def _drop(self, name: str) -> None:
        conn = self._conns.pop(name, None)
        if conn is not None:
            conn.close()


class ReplicaCollector(Collector):
    """The replica's state in the API's /metrics, read at scrape time."""

    def __init__(self, monitor: ReplicaMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        status = self._monitor.status()
        yield GaugeMetricFamily(
            "datahub_api_replica_up",
            "1 while the replica the API reads from answers its monitor",
            value=1.0 if status.reachable else 0.0,
        )
        yield GaugeMetricFamily(
            "datahub_api_replica_staleness_seconds",
            "the most recent writes a read on the replica may miss (NaN before a measurement)",
            value=float("nan") if status.staleness_s is None else status.staleness_s,
        )
