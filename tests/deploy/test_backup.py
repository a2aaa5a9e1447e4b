"""deploy/backup.sh on a private primary that archives its WAL: base backups taken while
uplinks are written, pruned, restored into new data directories and replayed, to the end of
the archive (every uplink written) and to a moment (the uplinks committed before it)."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import psycopg
from replicaset import (
    BACKUP,
    ROOT,
    ReplicaSet,
    make_uplinks,
    store_uplinks,
    stored_keys,
)
from waiting import wait_until

BATCH = 50
WAL_NAME = 24  # hex digits of a WAL segment's file name


class Writer(threading.Thread):
    """Stores batches of uplinks until stopped; `keys` holds those of committed batches."""

    def __init__(self, database_url: str, label: str) -> None:
        super().__init__(name="uplink-writer", daemon=True)
        self.url, self.label = database_url, label
        self.keys: set[bytes] = set()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                f_cnt = 0
                while not self.stop_event.is_set():
                    batch = make_uplinks(self.label, f_cnt, BATCH)
                    assert store_uplinks(conn, batch) == BATCH
                    self.keys.update(u.dedup_key for u in batch)
                    f_cnt += BATCH
                    time.sleep(0.01)
        except BaseException as exc:
            self.error = exc

    def wrote(self, count: int) -> bool:
        assert self.error is None, f"the writer failed: {self.error!r}"
        return len(self.keys) >= count

    def finish(self) -> set[bytes]:
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error
        return self.keys


def write(database_url: str, run: str, batches: int) -> set[bytes]:
    keys: set[bytes] = set()
    with psycopg.connect(database_url) as conn:
        for i in range(batches):
            batch = make_uplinks(run, i * BATCH, BATCH)
            assert store_uplinks(conn, batch) == BATCH
            keys.update(u.dedup_key for u in batch)
    return keys


def archived(rs: ReplicaSet) -> list[str]:
    """The WAL segments in the archive, oldest first."""
    wal = ROOT / rs.backups.lstrip("/") / "wal"
    return sorted(p.name for p in wal.iterdir() if len(p.name) == WAL_NAME)


def archive_everything(rs: ReplicaSet) -> None:
    """Close the current WAL segment and wait until the archive holds it."""
    with psycopg.connect(rs.primary_url(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    wait_until(f"WAL segment {row[0]} in the archive", lambda: row[0] in archived(rs), 30)


def restore(rs: ReplicaSet, name: str, *options: str) -> ReplicaSet:
    """Restore the newest base backup into a new set's primary and start it to promotion."""
    restored = ReplicaSet(name, archive=False)
    try:
        rs.backup("restore", rs.backups, f"{restored.dir}/primary", "--no-archive", *options)
        restored.services("start", "timescaledb")

        def promoted() -> bool:
            with psycopg.connect(restored.primary_url(), autocommit=True) as conn:
                return conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

        wait_until("the restored server to finish recovery", promoted, 60)
    except BaseException:
        restored.close()
        raise
    return restored


def test_a_restore_replays_base_backup_and_archive_to_every_uplink(rs: ReplicaSet) -> None:
    url = rs.create_database("backup_test")
    writer = Writer(url, "during")
    writer.start()
    wait_until("uplinks before the backups", lambda: writer.wrote(10 * BATCH), 30)
    first = rs.backup("base", rs.backups).strip()
    second = rs.backup("base", rs.backups).strip()
    wait_until("uplinks after the backups", lambda: writer.wrote(20 * BATCH), 30)
    during = writer.finish()
    before_moment = write(url, "after", 10)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    moment: datetime = row[0]
    time.sleep(0.2)
    after_moment = write(url, "later", 10)

    assert rs.backup("prune", rs.backups, "1") == ""
    listing = rs.backup("list", rs.backups)
    assert f"base {second}" in listing and f"base {first}" not in listing
    start = listing.split("starts at ")[1].split()[0]
    archive_everything(rs)
    assert archived(rs)[0] == start, "prune keeps the WAL from the kept base's start on"

    everything = during | before_moment | after_moment
    full = restore(rs, "restored")
    try:
        assert stored_keys(full.primary_url("backup_test")) == everything
    finally:
        full.close()

    until = restore(rs, "until", "--target-time", moment.isoformat())
    try:
        assert stored_keys(until.primary_url("backup_test")) == during | before_moment
    finally:
        until.close()


def archive_wal(source: Path, archive: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BACKUP), "archive-wal", str(source), str(archive)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_archive_wal_archives_once_and_never_overwrites(tmp_path: Path) -> None:
    archive = tmp_path / "wal"
    archive.mkdir()
    segment = tmp_path / "000000010000000000000007"
    segment.write_bytes(b"first" * 1000)

    assert archive_wal(segment, archive).returncode == 0
    # The server retries a segment whose archiving it did not see succeed.
    assert archive_wal(segment, archive).returncode == 0
    segment.write_bytes(b"other" * 1000)
    refused = archive_wal(segment, archive)

    assert refused.returncode == 1 and "refusing to overwrite" in refused.stderr
    assert (archive / segment.name).read_bytes() == b"first" * 1000
    assert sorted(p.name for p in archive.iterdir()) == [segment.name]
