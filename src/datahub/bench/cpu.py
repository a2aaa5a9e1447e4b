"""CPU time of each part of a benchmark phase, read from Linux's /proc: the ingest workers,
the database server, the broker, the publishers and the whole machine.

A rate alone does not say why it is what it is. On a machine whose cores the broker, the
database, the ingest and the load generator share, the CPU each spends per uplink does:
set beside what the cores allow per uplink at a target rate (`budget_us`), it shows
which part stands in the way and whether any change to the ingest alone could reach it.

A server is found by the port it listens on, so only one on this machine is measured (a
remote database or broker is left out). A process group is a leader and its children;
children that exit during the phase count through the leader's reaped-children times (the
PostgreSQL postmaster reaps its backends), so connections opened or closed in the phase
are counted too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True, slots=True)
class Group:
    """Processes measured together: `pids`, and the children of `leader` (with those it
    reaped), if any."""

    pids: tuple[int, ...] = ()
    leader: int | None = None


def available() -> bool:
    """Tell whether this machine has /proc to read process times from."""
    return (PROC / "stat").is_file()


def server(host: str, port: int) -> Group | None:
    """The process listening on `port` with its children, if `host` is this machine."""
    if not available() or not _is_local(host):
        return None
    pid = listener_pid(port)
    return None if pid is None else Group(pids=(pid,), leader=pid)


def listener_pid(port: int) -> int | None:
    """The process holding a TCP socket that listens on `port`, if this user may see it."""
    inodes = {
        fields[9]
        for table in ("tcp", "tcp6")
        for fields in _rows(PROC / "net" / table)
        if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port
    }
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in _pids():
        with contextlib.suppress(OSError):  # gone, or not ours to look into
            for fd in (PROC / str(pid) / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return pid
    return None


class Watch:
    """CPU seconds of named groups, of this process's waited-for children and of the
    machine, between `__init__` and `stop`."""

    def __init__(self, groups: Mapping[str, Group | None]) -> None:
        self._groups = {name: g for name, g in groups.items() if g is not None}
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        """Seconds each group spent, `children` (the child processes waited for since
        the start, e.g. publishers) and `machine` (all busy CPU time)."""
        end = self._read()
        return {name: round(end[name] - self._start[name], 3) for name in end}

    def _read(self) -> dict[str, float]:
        parents = _parents() if any(g.leader for g in self._groups.values()) else {}
        seconds = {name: _group_seconds(g, parents) for name, g in self._groups.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds["children"] = children.ru_utime + children.ru_stime
        seconds["machine"] = _machine_busy_seconds()
        return seconds


def per_uplink_us(spent: Mapping[str, float], uplinks: int) -> dict[str, float]:
    """CPU microseconds per uplink of each part."""
    return {name: round(s * 1e6 / uplinks, 1) for name, s in spent.items()} if uplinks else {}


def budget_us(rate_per_s: float, cores: int | None = None) -> float:
    """The CPU microseconds per uplink that all of the machine's cores allow at `rate_per_s`."""
    return round((cores or os.cpu_count() or 1) * 1e6 / rate_per_s, 1) if rate_per_s > 0 else 0.0


def resident_mib(pid: int) -> int:
    """A process's resident memory (VmRSS) in MiB; 0 if it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return 0


def _group_seconds(group: Group, parents: Mapping[int, int]) -> float:
    pids = set(group.pids)
    if group.leader is not None:
        pids |= {pid for pid, parent in parents.items() if parent == group.leader}
    total = sum(_process_seconds(pid) for pid in pids)
    if group.leader is not None:
        total += _process_seconds(group.leader, reaped=True)
    return total


def _process_seconds(pid: int, *, reaped: bool = False) -> float:
    """User and system time of a process (all its threads), or of the children it reaped."""
    fields = _stat_fields(pid)
    if fields is None:  # exited between the listing and the read
        return 0.0
    # utime/stime are fields 14/15 of the stat line, cutime/cstime 16/17.
    first = 13 if reaped else 11
    return (int(fields[first]) + int(fields[first + 1])) / _TICKS_PER_S


def _parents() -> dict[int, int]:
    parents = {}
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is not None:
            parents[pid] = int(fields[1])  # field 4 of the stat line
    return parents


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, from field 3 (the state) on.

    The name, in parentheses, may itself hold spaces and parentheses; None if gone.
    """
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _machine_busy_seconds() -> float:
    """All cores' time not idle and not waiting for I/O, from the first line of /proc/stat."""
    fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_S


def _pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _rows(table: Path) -> Sequence[list[str]]:
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:  # no IPv6, say
        return []
    return [line.split() for line in lines]


def _is_local(host: str) -> bool:
    """Tell whether `host` names this machine (a loopback address or this host's name)."""
    if host in ("localhost", socket.gethostname()):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False
