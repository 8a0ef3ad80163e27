"""CLI monitoring (issue 13 part 2): ``iSMview -event -follow``, sequence numbers, array names,
function ids, ``iSMview -host`` columns; snapshot operations from the management server's shell.

A real lab (``snaplab lab up``); every command is its own process: the management server's console
scripts with ``SNAPLAB_LAB`` set, host commands through labtools.run_on.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, RefLab, bin_dir, command_env, run_ok

pytestmark = pytest.mark.timeout(180)

ARRAY = "Osaka_Archive"
LAB = f"""
[lab]
description = "one array, a business server"

[[arrays]]
name = "{ARRAY}"
ports = ["00h/00h P_BIZ"]
restore_rate = 1  # MiB/s: a restore of 2 MiB of differences takes about 2 s
pools = [
  {{ number = 0, kind = "basic", capacity = "1GiB" }},
  {{ number = 1, kind = "dynamic", capacity = "1GiB" }},
]
sra = [{{ pool = 1, capacity = "128MiB", name = "SDV1", number = "0100h" }}]
lds = [{{ number = "0030h", name = "bv001", capacity = "16MiB", pool = 0 }}]
generations = [{{ bv = "bv001", pool = 1, svs = ["sv001_1", "sv001_2"], numbers = ["0031h", "0032h"] }}]
licences = ["DynamicSnapVolume", "AccessControl"]

[[access]]
ld = "bv001"
port = "P_BIZ"

[[hosts]]
name = "business01_with_a_long_name_x"
role = "business"
wwns = ["10:00:00:00:c9:2a:01:01"]
ports = ["P_BIZ"]

[[setup]]
host = "business01_with_a_long_name_x"
commands = ["iSMvollist -cr"]
"""
HOST = "business01_with_a_long_name_x"
LINE = re.compile(
    r"^ *(\d+) \w{3} \w{3} \d\d \d\d:\d\d:\d\d (\S+) (\S+) +(ERROR|WARNING|NOTICE|INFO) (\S+) : (\S+) : (.*)$"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefLab]:
    run = LabRun(tmp_path_factory.mktemp("mon"))
    try:
        up = run("lab", "up", str(run.write("lab.toml", LAB)), timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        yield RefLab(run)
    finally:
        run.teardown()


def console(lab: RefLab, *argv: str) -> subprocess.CompletedProcess[str]:
    """A console script of the management server, as its own process."""
    env = command_env(SNAPLAB_LAB=str(lab.folder))
    return subprocess.run(
        [os.path.join(bin_dir(), argv[0]), *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_BUFFERS: dict[int, bytearray] = {}


def read_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """One line of the process's stdout, or None if none came within ``timeout`` (read from the
    pipe itself: a buffered reader would keep lines that select() then never reports)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = _BUFFERS.setdefault(fd, bytearray())
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:  # the end: what is left, if anything
            if not buf:
                return None
            buf.extend(b"\n")
            break
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode() + "\n"


def test_event_lines_show_seq_function_id_and_array(lab: RefLab) -> None:
    start = lab.last_seq()
    run_ok(lab.run, HOST, "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    assert console(lab, "iSMcfg", "faultset", "-kind", "bv_failure", "-target", "bv001").returncode == 0
    assert console(lab, "iSMcfg", "faultclear", "-kind", "bv_failure", "-target", "bv001").returncode == 0
    out = console(lab, "iSMview", "-event", "-after", str(start))
    assert out.returncode == 0, out.stderr
    rows = [LINE.match(line) for line in out.stdout.splitlines()]
    assert all(rows), out.stdout
    seqs = [int(m[1]) for m in rows]  # type: ignore[index]
    assert seqs == list(range(start + 1, start + 1 + len(seqs)))
    by_op = {m[5]: m for m in rows}  # type: ignore[index]
    assert by_op["iSMsc_create"][3] == "snapctl" and by_op["InjectFault"][3] == "fault"
    for op in ("iSMsc_create", "InjectFault", "ClearFault"):  # every event about the array names it
        assert ARRAY in by_op[op][7], by_op[op][0]
    assert f"({ARRAY}: bv_failure:bv001)" in by_op["InjectFault"][7]
    # -after takes the number a line shows
    again = console(lab, "iSMview", "-event", "-after", str(seqs[0]))
    assert again.stdout.splitlines() == out.stdout.splitlines()[1:]


def test_follow_sees_an_event_within_a_second_and_ctrl_c_ends_it(lab: RefLab) -> None:
    env = command_env(SNAPLAB_LAB=str(lab.folder))
    proc = subprocess.Popen(
        [os.path.join(bin_dir(), "iSMview"), "-event", "-follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        last = lab.last_seq()
        backlog = []
        while not backlog or int(LINE.match(backlog[-1])[1]) < last:  # type: ignore[index]
            line = read_line(proc, 15)
            assert line, f"no backlog from the follower: {backlog}"
            backlog.append(line)
        assert len(backlog) == 10  # tail -f: the last ten first
        for _ in range(3):
            run_ok(lab.run, HOST, "iSMsc_query -bv bv001 -bvflg ld")
            logged = time.monotonic()
            line = read_line(proc, 5)
            seen = time.monotonic()
            assert line and " iSMsc_query : " in line and ARRAY in line, line
            assert seen - logged < 1.0, f"{seen - logged:.2f} s"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and err == "" and "Traceback" not in out, (proc.returncode, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_follow_through_snaplab_exec_and_its_refusals(lab: RefLab) -> None:
    proc = subprocess.Popen(
        [
            *_snaplab(),
            "--lab",
            str(lab.folder),
            "exec",
            "manager",
            "--",
            "iSMview",
            "-event",
            "-follow",
            "-after",
            str(lab.last_seq()),
        ],
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        time.sleep(1.5)  # the follower is up (its first events are only those after -after)
        run_ok(lab.run, HOST, "iSMsc_query -bv bv001 -bvflg ld")
        line = read_line(proc, 5)
        assert line and " iSMsc_query : " in line, line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    bad = console(lab, "iSMview", "-event", "-follow", "-limit", "3")
    assert bad.returncode == 1 and bad.stderr.startswith("iSMview:Error: iSM"), bad.stderr
    assert "Traceback" not in bad.stderr


def _snaplab() -> list[str]:
    from labtools import snaplab_argv

    return snaplab_argv()


def test_host_list_columns_fit(lab: RefLab) -> None:
    out = console(lab, "iSMview", "-host")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()[1:]
    assert rows and all(len(row.split()) >= 6 for row in rows), out.stdout
    # each column starts where its header does, whatever the length of a name
    starts = [header.index(h) for h in ("Role", "Platform", "Cluster", "Enrolled")]
    for row in rows:
        for pos in starts:
            assert row[pos - 1] == " " and row[pos] != " ", (row, pos)


def test_restore_from_the_management_server_shows_its_progress(lab: RefLab) -> None:
    """iSMsc_restore in the management server's shell waits for the copy and shows its progress as
    it goes (each line when the figure moves), 100% last, then the result."""
    from snaplab.common.rpc import ClientTLS
    from snaplab.san.array_client import ArrayClient

    shell = [*_snaplab(), "--lab", str(lab.folder), "exec", "manager", "--", "bash", "-c"]
    made = subprocess.run(
        [*shell, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_2 -svflg ld"],
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    target = lab.runtime["arrays"][ARRAY]["target"]
    with ArrayClient(target, ClientTLS.from_folder(lab.pki, HOST), timeout=30) as disk:
        disk.write("bv001", 0, b"\x5a" * (2 << 20))  # 2 MiB the restore copies back
    start = lab.last_seq()
    proc = subprocess.Popen(
        [*shell, "iSMsc_restore -bv bv001 -bvflg ld -sv sv001_2 -svflg ld"],
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    seen: list[tuple[float, str]] = []
    try:
        began = time.monotonic()
        while line := read_line(proc, 30):
            seen.append((time.monotonic() - began, line.rstrip("\n")))
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    progress = [
        (t, m)
        for t, line in seen
        if (m := re.fullmatch(r"Restore Progress : (\d+)% \((\d+)/(\d+) blocks\)", line))
    ]
    pcts = [int(m[1]) for _, m in progress]
    assert len(pcts) >= 3 and pcts == sorted(pcts) and pcts[-1] == 100 and pcts[0] < 50, seen
    assert progress[-1][0] - progress[0][0] >= 1.0  # streamed as the copy went, not printed at the end
    after = [line for _, line in seen[len(progress) :]]
    assert after[0] == "iSMsc_restore:Info: iSM19012: iSMsc_restore has normally terminated.", seen
    ops = [(e.operation, e.classification) for e in lab.events_after(start)]
    assert ops == [("iSMsc_restore", "INFO")], ops  # the looks at its progress are not logged
