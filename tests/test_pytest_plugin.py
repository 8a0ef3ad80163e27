"""The pytest plugin as its users run it: pytest in a process of its own on a project that only installed snaplab.

examples/pytest-demo (P3 and a chaos retry on the ``lab`` fixture), two labs at once under
``pytest -n 2``, bad input as usage errors (one line, exit status 4, no traceback), a failing
test's report section with the logs, and Ctrl-C in the middle of a session: every run must leave
no process of its labs behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pytest-demo"
RUN_TIMEOUT = 420  # one inner pytest session: one or two labs started on a shared machine
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def base() -> Iterator[Path]:
    """A short folder under /tmp for the inner sessions' labs (agent sockets < 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="snlt", dir="/tmp"))
    try:
        yield folder
    finally:
        left = processes_naming(folder)
        for pid in left:  # never leave a daemon behind, whatever failed
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"processes of the inner session's labs survived it: {left}"


def processes_naming(folder: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(folder) in cmd and state != "Z":
            found.append(int(entry))
    return found


def env() -> dict[str, str]:
    # The inner session must not think it is an xdist worker of ours, nor take our options.
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in ("SNAPLAB_LAB", "SNAPLAB_HOST")}
    keep["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), keep.get("PATH", "")])
    return keep


def pytest_in(cwd: Path, base: Path, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--snaplab-base={base}", *args],
        cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False,
    )


def project(root: Path, files: dict[str, str]) -> Path:
    """A project of its own (its own ini, no conftest): only the installed plugin gives the fixtures."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -ra --strict-markers\n")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_the_example_project_passes(base: Path) -> None:
    ran = pytest_in(EXAMPLE, base)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert "4 passed" in out, out
    assert not processes_naming(base)
    assert list(base.iterdir()) == [], "a passing session removes its labs' folders"


RECORD = """
    import json, os, time
    from pathlib import Path


    def record(lab, worker, start):
        line = {"worker": worker, "folder": str(lab.folder), "start": start, "end": time.time(),
                "manager": lab.runtime["manager"]["target"]}
        with open(os.environ["SNAPLAB_PLUGIN_RECORD"], "a") as f:
            f.write(json.dumps(line) + "\\n")
"""

XDIST_TEST = """
    import sys, time
    from pathlib import Path
    import pytest
    sys.path.insert(0, str(Path(__file__).parent))
    from record import record


    @pytest.mark.parametrize("n", range(3))
    def test_own_lab(lab, worker_id, n):
        start = time.time()
        q = lab.array().query("bv001")
        assert [g.sv for g in q.live] == ["sv001_01"]  # the other worker's creates never show here
        g = lab.host("business01")
        assert not (g.path("G:") / "mine.txt").exists()
        g.write_file("G:/mine.txt", worker_id)
        lab.run("business01", "iSMrc_flush -drv G:").check()
        lab.run("business01", "iSMrc_umount -drv G:").check()
        lab.run("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic").check()
        lab.run("business01", "iSMrc_mount -drv G:").check()
        assert [g.sv for g in lab.array().query("bv001").live] == ["sv001_02", "sv001_01"]
        assert g.read_text("G:/mine.txt") == worker_id
        time.sleep(1)  # both workers' labs are busy at the same time
        record(lab, worker_id, start)
"""


@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_two_workers_run_two_labs_at_once(base: Path, tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    proj = project(tmp_path / "proj", {"record.py": RECORD, "test_a.py": XDIST_TEST, "test_b.py": XDIST_TEST})
    log = tmp_path / "record.jsonl"
    e = env() | {"SNAPLAB_PLUGIN_RECORD": str(log)}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", f"--snaplab-base={base}"],
        cwd=proj, env=e, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert "6 passed" in out, out
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    by_worker: dict[str, list[dict]] = {}
    for r in rows:
        by_worker.setdefault(r["worker"], []).append(r)
    assert sorted(by_worker) == ["gw0", "gw1"], rows
    folders = {w: {r["folder"] for r in rs} for w, rs in by_worker.items()}
    managers = {w: {r["manager"] for r in rs} for w, rs in by_worker.items()}
    assert all(len(f) == 1 for f in folders.values()) and folders["gw0"] != folders["gw1"], folders
    assert managers["gw0"].isdisjoint(managers["gw1"]), managers
    spans = {w: (min(r["start"] for r in rs), max(r["end"] for r in rs)) for w, rs in by_worker.items()}
    assert spans["gw0"][0] < spans["gw1"][1] and spans["gw1"][0] < spans["gw0"][1], spans  # at once
    assert all(len(str(Path(f) / "run" / "agent-business01.sock")) < 107 for fs in folders.values() for f in fs)
    assert not processes_naming(base)
    assert list(base.iterdir()) == [], "each worker removes its labs' folders"


def test_a_bad_lab_file_option_is_a_usage_error(base: Path, tmp_path: Path) -> None:
    proj = project(tmp_path / "proj", {"test_x.py": "def test_x(lab):\n    pass\n"})
    (proj / "bad.toml").write_text("[[arrays]]\nname = 'A'\nbogus = 1\n")
    for args, named in ((["--snaplab-lab", "missing.toml"], "missing.toml"), (["--snaplab-lab", "bad.toml"], "bad.toml")):
        ran = pytest_in(proj, base, *args, timeout=120)
        out = ran.stdout + ran.stderr
        assert ran.returncode == USAGE_ERROR, out
        assert "ERROR: snaplab: --snaplab-lab: " in out and named in out, out
        assert "Traceback" not in out and "INTERNALERROR" not in out, out
    (proj / "pytest.ini").write_text("[pytest]\nsnaplab_lab_file = bad.toml\n")  # the ini option, same check
    ran = pytest_in(proj, base, timeout=120)
    out = ran.stdout + ran.stderr
    assert ran.returncode == USAGE_ERROR and f"ERROR: snaplab: snaplab_lab_file: {proj / 'bad.toml'}:" in out, out
    assert list(base.iterdir()) == []  # nothing was started


def test_a_bad_marker_lab_file_is_a_usage_error(base: Path, tmp_path: Path) -> None:
    proj = project(tmp_path / "proj", {
        "labs/broken.toml": "[lab]\ndescription = 'x'\n[[hosts]]\nname = 'h1'\nrole = 'nonsense'\n",
        "tests/test_m.py": """
            import pytest


            @pytest.mark.snaplab(lab="../labs/broken.toml")
            def test_m(lab):
                pass
        """,
    })
    ran = pytest_in(proj, base, timeout=120)
    out = ran.stdout + ran.stderr
    assert ran.returncode == USAGE_ERROR, out
    assert "ERROR: snaplab: @pytest.mark.snaplab of tests/test_m.py::test_m: " in out and "broken.toml" in out, out
    assert "Traceback" not in out, out


BAD_INPUT_TESTS = """
    import pytest


    def test_unknown_checkpoint(lab):
        lab.rollback("no-such-checkpoint")


    def test_bad_chaos_op(lab):
        lab.chaos("host:business01", "iSMsc_bogus", error="iSM31005")


    def test_bad_chaos_probability(lab):
        lab.chaos("host:business01", "iSMsc_create", probability="2")


    def test_bad_lab_dict(lab_factory):
        lab_factory({"hosts": [{"name": "h1", "role": "nonsense"}]})


    def test_fails_with_the_logs(lab):
        lab.run("business01", "iSMsc_query -bv bv001 -bvflg ld -summary").check()
        assert False, "the test's own failure"


    def test_crashes_a_host(lab):
        lab.host("business02").kill()
        lab.chaos("manager", "Monitor", crash=True)
        assert lab.host("business02").state == "crashed"


    def test_still_runs(lab):
        assert lab.chaos_rules() == []  # a rule of a test before is gone
        assert lab.host("business02").state == "running"  # the host the test before killed is back


    @pytest.mark.snaplab(lab="small.toml")
    def test_marker_lab(lab, snaplab_lab):
        assert sorted(lab.runtime["hosts"]) == ["h1"] and lab.folder != snaplab_lab.folder
        assert lab.host("h1").path("G:").is_dir()


    def test_factory_lab(lab_factory, snaplab_lab):
        mine = lab_factory("small.toml", setup=False)
        assert mine.folder != snaplab_lab.folder and sorted(mine.runtime["hosts"]) == ["h1"]
        (mine.folder.parent.parent / "factory").write_text(str(mine.folder))
"""


@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_bad_input_in_tests_is_one_line_and_a_usage_error_marker_and_factory_labs(base: Path, tmp_path: Path) -> None:
    import tomli_w

    proj = project(tmp_path / "proj", {"test_bad.py": BAD_INPUT_TESTS, "small.toml": tomli_w.dumps(SMALL_LAB)})
    ran = pytest_in(proj, base)
    out = ran.stdout + ran.stderr
    assert ran.returncode == USAGE_ERROR, out
    assert "5 failed, 4 passed" in out, out
    factory = Path((base / "factory").read_text())
    assert not (factory / "runtime.json").exists()  # stopped after its test
    for expected in (
        "snaplab: iSM31291",  # no such checkpoint
        "no-such-checkpoint",
        "snaplab: iSM31338",  # no such operation of the target
        "iSMsc_bogus",
        "snaplab: iSM31335",  # a bad field of the rule
        "snaplab: <lab dict>:",
        "snaplab: bad input in 4 tests (usage errors)",
    ):
        assert expected in out, f"{expected!r} not in\n{out}"
    bad = out.split("_ test_unknown_checkpoint _")[1].split("_ test_fails_with_the_logs _")[0]
    assert "Traceback" not in bad and "def test_" not in bad, bad  # one line each, no traceback
    logs = out.split("_ test_fails_with_the_logs _")[1]
    assert "the test's own failure" in logs
    assert "snaplab lab " in logs and "--- manager: " in logs and "iSM_Log" in logs, logs
    assert "iSMsc_query :  : start -bv bv001 -bvflg ld -summary" in logs  # the host's iSM_Log: the test's command
    assert "the labs' folders (logs) are kept in " + str(base) in out, out
    assert not processes_naming(base)


CTRL_C_TEST = """
    import time


    def test_waits(snaplab_lab):
        (snaplab_lab.folder.parent.parent / "up").write_text(str(snaplab_lab.folder))
        time.sleep(300)
"""


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_the_labs(base: Path, tmp_path: Path, sig: signal.Signals) -> None:
    proj = project(tmp_path / "proj", {"test_c.py": CTRL_C_TEST})
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--snaplab-base={base}"],
        cwd=proj, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (base / "up").exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the lab did not start"
            time.sleep(0.2)
        folder = Path((base / "up").read_text())
        assert processes_naming(folder)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out, out
    assert not processes_naming(base), out
    assert not (folder / "runtime.json").exists()


# -- the API the fixtures hand out (snaplab.Lab), on a small lab given as a dict -------------------

SMALL_LAB = {
    "arrays": [{
        "name": "A1",
        "ports": ["00h/00h P0"],
        "pools": [{"number": 0, "kind": "basic", "capacity": "1GiB"}, {"number": 1, "kind": "dynamic", "capacity": "1GiB"}],
        "sra": [{"pool": 1, "capacity": "256MiB", "name": "SDV1", "number": "0100h"}],
        "lds": [{"number": "0010h", "name": "bv001", "format": "WN", "capacity": "64MiB", "pool": 0}],
        "generations": [{"bv": "bv001", "pool": 1, "svs": [{"name": "sv1", "number": "0011h"}, {"name": "sv2", "number": "0012h"}]}],
        "licences": ["DynamicSnapVolume", "AccessControl"],
    }],
    "hosts": [{"name": "h1", "role": "business", "wwns": ["10:00:00:00:c9:2a:09:01"], "ports": ["P0"]}],
    "access": [{"ld": "bv001", "port": "P0"}],
    "setup": [
        {"host": "h1", "command": "DISKPART", "stdin": "select disk 1\ncreate partition primary\nassign letter=G\n"},
        {"host": "h1", "command": "FORMAT G: /FS:NTFS /Q /Y"},
        {"host": "h1", "command": "iSMvollist -cr"},
    ],
}


@pytest.mark.timeout(300)
def test_the_python_api(base: Path) -> None:
    from snaplab.deploy.chaos import ChaosRuleError
    from snaplab.deploy.errors import LabError

    from snaplab import CommandError, Lab

    folder = base / "api"
    with Lab.start(SMALL_LAB, folder) as lab:
        assert (folder / "lab.toml").is_file() and lab.folder == folder.resolve()
        q = lab.array().query("bv001")
        assert (q.bv, q.live, [g.sv for g in q.generations]) == ("bv001", [], ["sv1", "sv2"])
        h1 = lab.host("h1")
        h1.write_file("G:\\d\\f.txt", "one")
        assert h1.read_text("G:/d/f.txt") == "one" and (h1.path("G:") / "d" / "f.txt").is_file()
        with pytest.raises(LabError, match="nothing is mounted"):
            h1.read_file("Q:\\x")

        seq = lab.last_seq()
        lab.checkpoint("before")
        for line in ("iSMrc_flush -drv G:", "iSMrc_umount -drv G:", "iSMsc_create -bv bv001 -bvflg ld -cyclic"):
            assert lab.run("h1", line).check().ok
        assert [(g.sv, g.relgen, g.state) for g in lab.array("A1").query("bv001").live] == [("sv1", -1, "snap/active")]
        assert ("h1", "iSMsc_create", "iSM19010") in [(e.source, e.operation, e.msg_id) for e in lab.events(after=seq)]
        with pytest.raises(CommandError) as err:
            lab.run("h1", "iSMsc_create -bv nosuch -bvflg ld").check()
        assert err.value.msg_id and err.value.msg_id.startswith("iSM") and err.value.result.rc != 0

        with lab.watch() as live:  # a chaos firing is an event of the log, seen live
            lab.chaos("host:h1", "iSMsc_query", error="iSM31005", count=1)
            assert lab.run("h1", "iSMsc_query -bv bv001 -bvflg ld").msg_id == "iSM31005"
            assert next(e for e in live if e.operation == "chaos").classification == "WARNING"
        assert [r.fired for r in lab.chaos_rules()] == [1]
        with pytest.raises(ChaosRuleError, match="iSM31338"):
            lab.chaos("host:h1", "iSMsc_nothing")
        assert len(lab.clear_chaos()) == 1

        assert "bv_failure" in " ".join(lab.fault("bv_failure", "bv001"))
        assert lab.fault("bv_failure", "bv001", clear=True) == []
        assert lab.run("manager", "iSMview -snap A1").ok

        lab.rollback("before")  # G: mounted again, no generation, the file as written
        assert lab.array().query("bv001").live == [] and h1.read_text("G:/d/f.txt") == "one"
        assert [c.name for c in lab.checkpoints()] == ["before"]
        lab.delete_checkpoint("before")

        with Lab(folder) as attached:  # attaching does not own: its `with` leaves the lab running
            assert attached.run("h1", "MOUNTVOL /L").ok
        assert lab.runtime["state"] == "up"
    assert not processes_naming(folder)
    with pytest.raises(LabError, match="no lab is running"):
        Lab(folder).run("h1", "MOUNTVOL /L")
