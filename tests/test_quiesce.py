"""SnapLab extensions of issue 14 in a real lab (``snaplab lab up``; commands as processes of their own):
application-consistent snapshots (``iSMsc_create -quiesce``: writers really held, a hook past its deadline,
the consistency label in ``iSMsc_query -detail``) and an SRA-full policy set with ``iSMcfg srapolicy``,
shown by ``iSMview -all`` and its events in ``iSMview -event`` (docs/extensions-sra-quiesce.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, alive, run_ok
from snaplab.manager.arrays import DESCRIBE_TTL

pytestmark = pytest.mark.timeout(120)

LAB = """
    [[arrays]]
    name = "Small_Array"
    ports = ["00h/00h P_BIZ"]
    pools = [
      {{ number = 0, kind = "basic", capacity = "4GiB" }},
      {{ number = 1, kind = "dynamic", capacity = "4GiB" }},
      {{ number = 2, kind = "dynamic", capacity = "1GiB", sra_warn = [50] }},
    ]
    sra = [{{ pool = 1, capacity = "256MiB", name = "SDV1" }}, {{ pool = 2, capacity = "1MiB", name = "SDV2" }}]
    lds = [{{ number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 }},
           {{ number = "0040h", name = "bv002", capacity = "4MiB", pool = 0 }}]
    generations = [{{ bv = "bv001", pool = 1, svs = ["sv001_01", "sv001_02", "sv001_03"] }},
                   {{ bv = "bv002", pool = 2, svs = ["sv002_01"] }}]
    licences = ["DynamicSnapVolume", "AccessControl"]

    [[access]]
    ld = "bv001"
    port = "P_BIZ"

    [[access]]
    ld = "bv002"
    port = "P_BIZ"

    [[hosts]]
    name = "business01"
    role = "business"
    wwns = ["10:00:00:00:c9:00:00:01"]
    ports = ["P_BIZ"]
    quiesce = {{ freeze = "sh {hooks}/freeze.sh", thaw = "sh {hooks}/thaw.sh", deadline = 5 }}

    [[setup]]
    host = "business01"
    commands = ["DISKPART"]
    stdin = \"\"\"
    select disk 1
    create partition primary
    format fs=ntfs quick label=bv001
    assign letter=G
    \"\"\"

    [[setup]]
    host = "business01"
    commands = ["iSMvollist -cr"]
"""

# The hooks log when they ran (monotonic clock, as the test's); the freeze hook hangs while "hang" exists.
FREEZE = """echo "freeze $$ $(python3 -c 'import time; print(time.monotonic())')" >> {hooks}/hooks.log
while [ -f {hooks}/hang ]; do sleep 0.05; done
"""
THAW = """echo "thaw $$ $(python3 -c 'import time; print(time.monotonic())')" >> {hooks}/hooks.log
"""
# A program writing in G: with its file open: a line with the time every 2 ms.
WRITER = """import sys, time
with open("writer.log", "a", buffering=1) as f:
    while True:
        f.write(f"{time.monotonic():.6f}\\n")
        time.sleep(0.002)
"""


@dataclass
class Lab:
    run: LabRun
    hooks: Path
    g: Path

    def cmd(self, line: str, code: int = 0) -> Ran:
        return run_ok(self.run, "business01", line, code)

    def manager(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "manager", "--", *args)

    def hook_log(self) -> list[tuple[str, int, float]]:
        path = self.hooks / "hooks.log"
        rows = path.read_text().split("\n") if path.exists() else []
        return [(w, int(p), float(t)) for w, p, t in (r.split() for r in rows if r)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("quiesce")
    hooks = root / "hooks"
    hooks.mkdir()
    (hooks / "freeze.sh").write_text(FREEZE.format(hooks=hooks))
    (hooks / "thaw.sh").write_text(THAW.format(hooks=hooks))
    run = LabRun(root)
    try:
        up = run("lab", "up", str(run.write("quiesce.toml", LAB.format(hooks=hooks))), timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        g = Path(run("path", "business01", "G:").stdout.strip())
        yield Lab(run, hooks, g)
    finally:
        run.teardown()


def proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


@pytest.fixture
def writer(lab: Lab) -> Iterator[subprocess.Popen[bytes]]:
    (lab.g / "writer.log").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", WRITER], cwd=lab.g)
    try:
        deadline = time.monotonic() + 10
        while not (lab.g / "writer.log").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield proc
    finally:
        os.kill(proc.pid, 18)  # SIGCONT, whatever the test left
        proc.kill()
        proc.wait()


def watch_states(pid: int, stop: threading.Event, seen: list[str]) -> None:
    while not stop.is_set():
        seen.append(proc_state(pid))
        time.sleep(0.0005)


def stamps(lab: Lab) -> list[float]:
    return [float(x) for x in (lab.g / "writer.log").read_text().split()[:-1]]


def test_quiesce_holds_the_writers_and_labels_the_snapshot_application(
    lab: Lab, writer: subprocess.Popen[bytes]
) -> None:
    (lab.g / "dirty.bin").write_bytes(os.urandom(1 << 20))  # 1 MiB to flush while frozen
    stop, seen = threading.Event(), []
    t = threading.Thread(target=watch_states, args=(writer.pid, stop, seen))
    t.start()
    before = len(lab.hook_log())
    try:
        ran = lab.cmd("iSMsc_create -bv bv001 -bvflg ld -sv sv001_01 -svflg ld -quiesce")
    finally:
        stop.set()
        t.join()
    assert "iSM31282" in ran.stdout and "application-consistent" in ran.stdout, ran
    frozen_ms = int(ran.stdout.split("frozen for ")[1].split(" ms")[0])
    assert "T" in seen, "the writer was never stopped during the freeze"
    assert proc_state(writer.pid) != "T"  # released
    hooks = lab.hook_log()[before:]
    assert [h[0] for h in hooks] == ["freeze", "thaw"], hooks
    # The writer's lines show a pause at least as long as most of the freeze, between freeze and thaw.
    time.sleep(0.1)
    s = [x for x in stamps(lab) if hooks[0][2] <= x <= hooks[1][2] + 0.05]
    gaps = [b - a for a, b in zip(s, s[1:])]
    assert max(gaps) * 1000 >= 0.8 * frozen_ms, (max(gaps), frozen_ms)
    assert stamps(lab)[-1] > hooks[1][2]  # writing again after the thaw

    detail = lab.cmd("iSMsc_query -bv bv001 -bvflg ld -detail").stdout
    block = detail.split("sv001_01")[1].split("SV:LD Name")[0]
    assert "Consistency          : application" in block, detail


def test_a_hook_past_the_deadline_releases_on_time_and_labels_crash(
    lab: Lab, writer: subprocess.Popen[bytes]
) -> None:
    (lab.hooks / "hang").touch()
    before = len(lab.hook_log())
    t0 = time.monotonic()
    try:
        ran = lab.cmd("iSMsc_create -bv bv001 -bvflg ld -sv sv001_02 -svflg ld -quiesce -deadline 1")
    finally:
        (lab.hooks / "hang").unlink()
    took = time.monotonic() - t0
    assert "iSM31283" in ran.stderr and "crash-consistent" in ran.stderr, ran
    assert "iSM19010" in ran.stdout and took < 6, (took, ran)
    hooks = lab.hook_log()[before:]
    assert [h[0] for h in hooks] == ["freeze", "thaw"], hooks
    assert hooks[1][2] - hooks[0][2] < 1.0 + 0.5, hooks  # the thaw came at the deadline
    assert not alive(hooks[0][1])  # the hanging hook was stopped
    assert proc_state(writer.pid) != "T"
    n = len(stamps(lab))
    time.sleep(0.1)
    assert len(stamps(lab)) > n  # the writer writes on

    detail = lab.cmd("iSMsc_query -bv bv001 -bvflg ld -detail").stdout
    assert "Consistency          : crash" in detail.split("sv001_02")[1].split("SV:LD Name")[0], detail
    # Without -quiesce the guide's create and layout: no label at all.
    lab.cmd("iSMsc_create -bv bv001 -bvflg ld -sv sv001_03 -svflg ld")
    detail = lab.cmd("iSMsc_query -bv bv001 -bvflg ld -detail").stdout
    assert "Consistency" not in detail.split("sv001_03")[1].split("SV:LD Name")[0], detail


def test_quiesce_options_are_checked(lab: Lab) -> None:
    ran = lab.cmd("iSMsc_create -bv bv001 -bvflg ld -sv sv001_03 -svflg ld -deadline 3", code=1)
    assert "iSM11100" in ran.stderr and "SnapLab extension" in ran.stderr, ran


def test_sra_policy_by_iSMcfg_shown_by_iSMview_and_its_events_logged(lab: Lab) -> None:
    from snaplab.common.rpc import ClientTLS, SnapLabClientError
    from snaplab.san.array_client import ArrayClient

    ran = lab.manager("iSMcfg", "srapolicy", "-poolnumber", "2", "-policy", "fail-writes", "-warn", "50,90")
    assert ran.returncode == 0 and "iSM31285" in ran.stdout and "fail-writes" in ran.stdout, ran.stdout + ran.stderr
    bad = lab.manager("iSMcfg", "srapolicy", "-poolnumber", "2", "-policy", "purge")
    assert bad.returncode != 0 and "iSM31278" in bad.stderr, bad.stdout + bad.stderr
    rt = lab.run.runtime()
    assert rt is not None
    target = rt["arrays"]["Small_Array"]["target"]
    with ArrayClient(target, ClientTLS.from_folder(lab.run.folder / "pki", "business01")) as biz:
        biz.write("bv002", 0, b"\x01" * (2 << 20))
        lab.cmd("iSMsc_create -bv bv002 -bvflg ld -sv sv002_01 -svflg ld")
        biz.write("bv002", 0, b"\x02" * (1 << 20))  # the 1 MiB SRA is full
        with pytest.raises(SnapLabClientError) as info:
            biz.write("bv002", 1 << 20, b"\x02" * 65536)
        assert info.value.msg_id == "iSM31275"
    time.sleep(DESCRIBE_TTL)  # the manager's cached view of the array, written to behind its back
    view = lab.manager("iSMview", "-all", "Small_Array").stdout
    pool2 = view.split("--- Pool Detail Information ---")[3].split("\n\n")[0]  # pools 0, 1, 2
    assert "SRA Full Policy          : fail-writes (SnapLab extension)" in pool2, view
    assert "SRA Used Percent         : 100%" in pool2 and "SRA Warn Thresholds      : 50%,90%" in pool2, view
    events = lab.manager("iSMview", "-event").stdout
    # one write crossed both thresholds: one event, for the highest
    assert events.count("iSM31280") == 1 and "threshold 90%" in events, events
