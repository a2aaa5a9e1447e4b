"""The systemd units of deploy/systemd, checked offline by systemd-analyze: they load
without a warning, with the shared hardening drop-in, and expose little; and the one
hardening option that differs between them, MemoryDenyWriteExecute, is right for each."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from realservices import BACKENDS
from replicaset import BACKUP, PROJECT, free_port
from waiting import wait_until

UNITS = PROJECT / "deploy" / "systemd"
INSTANCES = [
    "datahub-api@8001.service",
    "datahub-ingest@1.service",
    "datahub-backfill@ttn-dortmund.service",
    "datahub-backfill@ttn-dortmund.timer",
    "datahub-close-period.service",
    "datahub-close-period.timer",
    "datahub-migrate.service",
    "datahub-backup.service",
    "datahub-backup.timer",
]
SERVICES = [unit for unit in INSTANCES if unit.endswith(".service")]
# systemd-analyze security's scale: 0 (locked down) to 10 (exposed); "OK" is below 2.
MOST_EXPOSURE = 2.0
DATAHUB = Path(sys.executable).parent / "datahub"


@pytest.fixture(scope="module")
def unit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units as installed here: the commands they run exist on this machine."""
    path = tmp_path_factory.mktemp("systemd")
    shutil.copytree(UNITS, path, dirs_exist_ok=True)
    for unit in path.glob("*.service"):
        text = unit.read_text()
        text = text.replace("/opt/datahub/bin/datahub", str(DATAHUB))
        text = text.replace("/usr/local/bin/datahub-backup", str(BACKUP))
        unit.write_text(text)
    return path


def analyze(unit_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A trailing colon: the units here, then systemd's own (the targets they name).
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_path}:"}
    return subprocess.run(
        ["systemd-analyze", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_every_unit_file_is_instantiated_here() -> None:
    names = {p.name for p in UNITS.glob("*.service")} | {p.name for p in UNITS.glob("*.timer")}
    instantiated = {re.sub(r"@[^.]+\.", "@.", unit) for unit in INSTANCES}
    assert names == instantiated


@pytest.mark.parametrize("unit", INSTANCES)
def test_unit_verifies_without_a_warning(unit_path: Path, unit: str) -> None:
    done = analyze(unit_path, "verify", "--man=no", unit)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("unit", SERVICES)
def test_service_is_hardened(unit_path: Path, unit: str) -> None:
    done = analyze(unit_path, "security", "--offline=true", unit)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MOST_EXPOSURE, done.stdout
    for option in ("NoNewPrivileges=", "ProtectSystem=", "CapabilityBoundingSet="):
        assert f"✓ {option}" in done.stdout, f"{option} is not set for {unit}"


def _refuse_exec_gain() -> bool:
    """Whether this kernel offers prctl(PR_SET_MDWE), Linux's MemoryDenyWriteExecute."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(66, 0, 0, 0, 0) >= 0)  # PR_GET_MDWE


# Runs the command after it with MemoryDenyWriteExecute's rule in force, as systemd would.
MDWE = (
    "import ctypes, os, sys;"
    "libc = ctypes.CDLL(None, use_errno=True);"
    "assert libc.prctl(65, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno());"
    "os.execv(sys.argv[1], sys.argv[1:])"
)
needs_mdwe = pytest.mark.skipif(
    not _refuse_exec_gain(), reason="the kernel has no PR_SET_MDWE (Linux < 6.3)"
)


@pytest.mark.services
@needs_mdwe
def test_the_api_serves_without_writable_executable_memory() -> None:
    port = free_port("127.0.0.1")
    env = {**os.environ, "DATAHUB_DATABASE_URL": BACKENDS["timescaledb"]}
    env.pop("DATAHUB_CONFIG", None)
    api = subprocess.Popen(
        [sys.executable, "-c", MDWE, str(DATAHUB), "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def status(path: str) -> int:
            url = f"http://127.0.0.1:{port}{path}"
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status)

        def up() -> bool:
            assert api.poll() is None, "the API exited"
            try:
                return status("/health/live") == 200
            except OSError:
                return False

        wait_until("the API to answer", up, 60)
        assert [status(p) for p in ("/health/ready", "/v1/metrics", "/")] == [200, 200, 200]
    finally:
        api.terminate()
        api.wait(30)


@needs_mdwe
def test_the_ingest_codec_engine_needs_writable_executable_memory() -> None:
    """V8 compiles JavaScript to machine code: under the rule it dies, so the ingest and
    the back-fill (which decode with vendor codecs) run without it."""
    script = "from py_mini_racer import MiniRacer; print(MiniRacer().eval('6 * 7'))"
    free = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert free.stdout.strip() == "42"
    ruled = subprocess.run(
        [sys.executable, "-c", MDWE, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ruled.returncode != 0 and ruled.stdout.strip() != "42"
