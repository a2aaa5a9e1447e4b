"""A private TimescaleDB primary with a streaming replica and PgBouncer in front of both,
started by deploy/services.sh in the shared trixie root, for tests that stop a replica,
archive WAL or restore backups. The shared services are never touched.

Each set lives in a directory of its own inside the root (its data directories, logs and
backups) and a state directory of its own (PgBouncer's files, services.sh's lock), listens
on free ports of its own loopback "hosts" (primary 127.0.0.2, replica 127.0.0.3,
PgBouncer 127.0.0.4) and is stopped and deleted by `close`.

    with replica_set("api") as rs:           # primary + replica + PgBouncer, running
        url = rs.create_database("api_test")  # migrated on the primary, exposed by PgBouncer
        rs.bouncer_url("api_test")            # writes: the primary through PgBouncer
        rs.bouncer_url("api_test", replica=True)  # reads: the replica through PgBouncer
        rs.services("stop", "replica")        # a failover test
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
from waiting import wait_until

from datahub.config import Settings
from datahub.domain import City, DecodeStatus, Uplink
from datahub.storage import migrate, uplinks
from datahub.storage.uplinks import UplinkRow

PROJECT = Path(__file__).resolve().parent.parent
SERVICES = PROJECT / "deploy" / "services.sh"
BACKUP = PROJECT / "deploy" / "backup.sh"
STATE_DIR = Path(os.environ.get("DATAHUB_STATE_DIR", "/var/lib/datahub-local"))
ROOT = Path(os.environ.get("DATAHUB_TIMESCALE_ROOT", STATE_DIR / "timescale-root"))

PRIMARY_HOST = "127.0.0.2"
REPLICA_HOST = "127.0.0.3"
PGBOUNCER_HOST = "127.0.0.4"
START_TIMEOUT_S = 60


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def in_root(*argv: str) -> None:
    """Run a command in the trixie root (whose user ids differ from the host's)."""
    subprocess.run(["chroot", str(ROOT), *argv], check=True, capture_output=True)


def root_dir(path: str) -> Path:
    """Make a directory inside the root, owned by the root's user postgres; return its host path."""
    (ROOT / path.lstrip("/")).mkdir(mode=0o700, parents=True)
    in_root("chown", "postgres:postgres", path)
    return ROOT / path.lstrip("/")


def url(host: str, port: int, dbname: str, user: str = "datahub") -> str:
    return f"postgresql://{user}@{host}:{port}/{quote(dbname)}"


class ReplicaSet:
    """A primary, its replica and PgBouncer, run by deploy/services.sh with private settings."""

    def __init__(self, name: str, *, archive: bool = True) -> None:
        self.name = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.dir = f"/tmp/datahub-{self.name}"  # inside the root
        self.backups = f"{self.dir}/backups"
        self.state = Path(tempfile.mkdtemp(prefix=f"datahub-{name}-"))
        self.state.chmod(0o755)  # PgBouncer runs as user postgres, its files are in here
        self.primary_port = free_port(PRIMARY_HOST)
        self.replica_port = free_port(REPLICA_HOST)
        self.bouncer_port = free_port(PGBOUNCER_HOST)
        self.databases = ["datahub"]
        self.archive = archive
        root_dir(self.dir)
        if archive:
            root_dir(self.backups)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATAHUB_STATE_DIR": str(self.state),
            "DATAHUB_TIMESCALE_ROOT": str(ROOT),
            "DATAHUB_TSDB_DIR": self.dir,
            "DATAHUB_TSDB_HOST": PRIMARY_HOST,
            "DATAHUB_TSDB_PORT": str(self.primary_port),
            "DATAHUB_TSDB_SHARED_BUFFERS": "128MB",
            "DATAHUB_TSDB_WAL_ARCHIVE": f"{self.backups}/wal" if self.archive else "",
            "DATAHUB_REPLICA_HOST": REPLICA_HOST,
            "DATAHUB_REPLICA_PORT": str(self.replica_port),
            "DATAHUB_PGBOUNCER_HOST": PGBOUNCER_HOST,
            "DATAHUB_PGBOUNCER_PORT": str(self.bouncer_port),
            "DATAHUB_PGBOUNCER_DATABASES": " ".join(self.databases),
            "DATAHUB_START_TIMEOUT": str(START_TIMEOUT_S),
        }

    def services(self, command: str, *names: str, check: bool = True) -> str:
        """Run deploy/services.sh on this set; return its output (stdout and stderr)."""
        done = subprocess.run(
            ["bash", str(SERVICES), command, *names],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=3 * START_TIMEOUT_S,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"services.sh {command} {' '.join(names)} exited {done.returncode}:\n{done.stdout}"
            )
        return done.stdout

    def backup(self, *args: str) -> str:
        """Run deploy/backup.sh on this set's primary (as the root's postgres); return stdout."""
        env = {
            **os.environ,
            "DATAHUB_PG_ROOT": str(ROOT),
            "DATAHUB_BACKUP_CONNINFO": (
                f"host={PRIMARY_HOST} port={self.primary_port} user=postgres"
            ),
        }
        done = subprocess.run(
            ["bash", str(BACKUP), *args], env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise AssertionError(
                f"backup.sh {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
            )
        return done.stdout

    def start(self) -> None:
        self.services("start", "timescaledb", "replica", "pgbouncer")

    def close(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self.services("stop", "pgbouncer", "replica", "timescaledb")
        shutil.rmtree(ROOT / self.dir.lstrip("/"), ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def primary_url(self, dbname: str = "datahub") -> str:
        return url(PRIMARY_HOST, self.primary_port, dbname)

    def replica_url(self, dbname: str = "datahub") -> str:
        return url(REPLICA_HOST, self.replica_port, dbname)

    def bouncer_url(self, dbname: str = "datahub", *, replica: bool = False) -> str:
        """The database through PgBouncer: on the primary, or with `replica` on the replica."""
        return url(PGBOUNCER_HOST, self.bouncer_port, f"{dbname}_replica" if replica else dbname)

    def expose(self, dbname: str) -> None:
        """Give PgBouncer the database `dbname` on both servers (a reload, not a restart)."""
        if dbname not in self.databases:
            self.databases.append(dbname)
            self.services("start", "pgbouncer")

    def create_database(self, dbname: str) -> str:
        """Create and migrate a database on the primary, expose it; return its primary URL."""
        with psycopg.connect(self.primary_url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        database_url = self.primary_url(dbname)
        migrate.upgrade(Settings(database_url=database_url))
        self.expose(dbname)
        return database_url

    def wait_replayed(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary_url(), autocommit=True) as primary:
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]

        def replayed() -> bool:
            with psycopg.connect(self.replica_url(), autocommit=True) as replica:
                done = replica.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
            return bool(done and done[0])

        wait_until(f"the replica to replay up to {target}", replayed, timeout)


def make_uplinks(run: str, first: int, count: int) -> list[Uplink]:
    """`count` distinct uplinks of a device of this run, frame counters from `first` on."""
    dev_eui = hashlib.blake2b(run.encode(), digest_size=8).hexdigest()
    now = datetime.now(UTC)
    return [
        Uplink(
            dev_eui=dev_eui,
            city=City.DORTMUND,
            source="replica-test",
            received_at=now,
            f_port=1,
            f_cnt=f_cnt,
            payload=f_cnt.to_bytes(4, "big"),
            dedup_key=hashlib.blake2b(f"{run}/{f_cnt}".encode(), digest_size=16).digest(),
        )
        for f_cnt in range(first, first + count)
    ]


def store_uplinks(conn: psycopg.Connection, batch: list[Uplink]) -> int:
    """Store a batch in one transaction as the ingest does (keys claimed, rows copied)."""
    with conn.transaction():
        fresh = uplinks.claim_keys(conn, keys=[(u.dedup_key, u.received_at) for u in batch])
        rows = [
            UplinkRow(u, device_id=None, status=DecodeStatus.UNKNOWN_DEVICE)
            for u in batch
            if u.dedup_key in fresh
        ]
        uplinks.insert_uplinks(conn, rows=rows)
    return len(rows)


def stored_keys(database_url: str) -> set[bytes]:
    with psycopg.connect(database_url, prepare_threshold=None) as conn:
        return {bytes(k) for (k,) in conn.execute("SELECT dedup_key FROM uplink")}


@contextlib.contextmanager
def replica_set(name: str, *, archive: bool = True) -> Iterator[ReplicaSet]:
    """A running private primary + replica + PgBouncer, stopped and deleted afterwards."""
    rs = ReplicaSet(name, archive=archive)
    try:
        rs.start()
        yield rs
    finally:
        rs.close()
