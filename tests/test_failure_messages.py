"""Messages when something fails (issue 8 item 12), through the real daemons of the reference lab.

Each used to show something else: a dead manager was "iSM31065 Disk array does not respond" with
gRPC's own text; a dead array showed gRPC's text; a frozen array made ``iSMview -d`` fail with iSM31066
after 31 s instead of showing it ``unknown``; host commands failed for seconds after the array came
back; with a BV failure query/create said "Not Ready"; iSM31031 printed byte counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from snaplab.manager.arrays import DESCRIBE_TTL
from snaplab.manager.console import run_console

from snaplab.common.rpc import ClientTLS, make_channel, wait_healthy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, RefLab, alive

pytestmark = pytest.mark.timeout(180)

ARRAY = RefLab.ARRAY
RAW_GRPC = ("failed to connect", "StatusCode", "Deadline Exceeded", "ipv4:", "Socket closed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefLab]:
    run = LabRun(tmp_path_factory.mktemp("failures"))
    try:
        up = run("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield RefLab(run)
    finally:
        run.teardown()


def error_line(lab: RefLab, host: str, line: str) -> str:
    ran = lab.cmd(host, line)
    assert ran.code == 1 and ran.stdout == "", ran
    assert not any(raw in ran.stderr for raw in RAW_GRPC), ran
    return ran.stderr.strip()


def test_a_licence_shortfall_is_told_in_sizes(lab: RefLab) -> None:
    assert (
        run_console(
            ["iSMcfg", "licenseadd", "-product", "DynamicSnapVolume", "-capacity", "1GB"], lab.folder
        )[2]
        == 0
    )
    try:
        _, err, code = run_console(
            ["iSMcfg", "generationadd", "-bvname", "DB_CTL_BV", "-poolnumber", "1"], lab.folder
        )
        assert code == 1
        assert err == (
            "iSMcfg:Error: iSM31031: Licensed capacity of DynamicSnapVolume (1.0GB) is less than physical "
            "capacity (512.0GB).\n"
        )
    finally:
        run_console(
            ["iSMcfg", "licenseadd", "-product", "DynamicSnapVolume", "-capacity", "512GB"], lab.folder
        )


def test_a_bv_failure_is_named_by_query_and_create(lab: RefLab) -> None:
    assert run_console(["iSMcfg", "faultset", "-kind", "bv_failure", "-target", "bv001"], lab.folder)[2] == 0
    try:
        failure = "iSM19062: BV has a physical failure; volume is not accessible. (bv001)"
        assert (
            error_line(lab, "business01", "iSMsc_query -bv bv001 -bvflg ld")
            == f"iSMsc_query:Error: {failure}"
        )
        assert (
            error_line(lab, "business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")
            == f"iSMsc_create:Error: {failure}"
        )
    finally:
        run_console(["iSMcfg", "faultclear", "-kind", "bv_failure", "-target", "bv001"], lab.folder)


def test_a_frozen_array_is_unknown_to_state_monitoring(lab: RefLab) -> None:
    pid = lab.runtime["arrays"][ARRAY]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(DESCRIBE_TTL + 0.1)  # past the manager's cached Describe (fresh after lab up when run alone)
        out, err, code = run_console(["iSMview", "-d"], lab.folder)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert code == 0, err
    assert out.splitlines()[2].split() == ["S2800", ARRAY, "unknown", "stopped"]
    out, _, _ = run_console(["iSMview", "-d"], lab.folder)
    assert out.splitlines()[2].split() == ["S2800", ARRAY, "ready", "running"]  # the lab file's product id


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _restart_on_the_same_port(lab: RefLab, argv: list[str], port: int) -> subprocess.Popen[bytes]:
    argv = [a if a != "127.0.0.1:0" else f"127.0.0.1:{port}" for a in argv]
    log = (lab.folder / "run" / "array-restarted.log").open("ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    channel = make_channel(f"127.0.0.1:{port}", ClientTLS.from_folder(lab.pki, "admin"))
    try:
        wait_healthy(channel, timeout=30)
    finally:
        channel.close()
    return proc


def test_a_dead_array_is_named_and_host_commands_work_at_once_when_it_is_back(lab: RefLab) -> None:
    rt = lab.runtime["arrays"][ARRAY]
    port = int(rt["target"].rsplit(":", 1)[1])
    argv = Path(f"/proc/{rt['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
    os.kill(rt["pid"], signal.SIGKILL)
    _wait_gone(rt["pid"])
    gone = f"iSM31065: Disk array does not respond. ({ARRAY})"
    # routed through the manager, and the host's own block I/O (Disks) on the SAN
    assert error_line(lab, "backup01", "iSMsc_query -bv bv001 -bvflg ld") == f"iSMsc_query:Error: {gone}"
    assert error_line(lab, "backup01", "iSMvollist -cr") == f"iSMvollist:Error: {gone}"
    away = time.monotonic() + 12  # long enough for gRPC's default reconnect backoff to reach several seconds
    while time.monotonic() < away:
        assert error_line(lab, "backup01", "iSMsc_query -bv bv001 -bvflg ld") == f"iSMsc_query:Error: {gone}"
    proc = _restart_on_the_same_port(lab, argv, port)
    try:
        back = time.monotonic()
        for line in ("iSMsc_query -bv bv001 -bvflg ld", "iSMvollist -cr"):
            while True:
                ran = lab.cmd("backup01", line)
                if ran.code == 0:
                    break
                assert time.monotonic() - back < 3, ran  # gRPC's own reconnect backoff grows to 120 s
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_dead_manager_is_named_as_the_management_server(lab: RefLab) -> None:
    rt = lab.runtime["manager"]
    os.kill(rt["pid"], signal.SIGKILL)
    _wait_gone(rt["pid"])
    line = f"iSMsc_query:Error: iSM31066: Management server does not respond. ({rt['target']})"
    assert error_line(lab, "backup01", "iSMsc_query -bv bv001 -bvflg ld") == line
    _, err, code = run_console(["iSMview", "-d"], lab.folder)
    assert (
        code == 1
        and err.startswith("iSMview:Error: iSM31066: ")
        and grpc.StatusCode.UNAVAILABLE.name not in err
    )
