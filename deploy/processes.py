"""One daemon process of a lab: spawn it detached, wait for its ready file, know it is still ours, stop it.

Daemons run in their own session (output in ``<lab>/run/<process>.log``) so they outlive the
``snaplab lab up`` that started them. A process counts as the lab's only while its pid, start time
and command line (which names the lab folder) all match what was recorded.
"""

from __future__ import annotations

import errno
import importlib.util
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import LabError
from .folder import LabFolder, Report

READY_TIMEOUT = 30.0  # per daemon, from spawn to its ready file
STOP_TIMEOUT = 10.0  # SIGTERM -> exit, before SIGKILL
AGENT_STOP_TIMEOUT = 60.0  # an agent flushes its file-system caches as it stops


@dataclass
class Spawned:
    """A daemon this run started; ``ready`` is its ready file's content once it serves."""

    kind: str
    name: str
    argv: list[str]
    log: Path
    ready_file: Path
    popen: subprocess.Popen[bytes]
    log_start: int
    start_time: int
    ready: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.name if self.kind == "manager" else f"{self.kind} {self.name}"


def spawn(lab: LabFolder, kind: str, name: str, argv: list[str]) -> Spawned:
    """Start one daemon detached, with ``--ready-file`` added; its output is appended to its log."""
    log = lab.log(kind, name)
    ready = lab.run / f"{log.stem}.ready.json"
    ready.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "SNAPLAB_HOST"}
    env.update(SNAPLAB_LAB=str(lab.folder), PYTHONUNBUFFERED="1")
    argv = [*argv, "--ready-file", str(ready)]
    with open(log, "ab") as out:
        start = out.tell()
        out.write(f"--- {datetime.now():%Y/%m/%d %H:%M:%S} snaplab lab up: {' '.join(argv)}\n".encode())
        try:
            popen = subprocess.Popen(
                argv,
                cwd=lab.run,  # never the repo root: imports come from the install
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # outlives `snaplab lab up` and its terminal's signals
            )
        except OSError as exc:
            raise LabError(f"cannot start {kind} {name}: {exc.strerror}: {argv[0]}") from None
    stat = proc_stat(popen.pid)
    return Spawned(kind, name, argv, log, ready, popen, start, stat[1] if stat else 0)


def wait_ready(procs: list[Spawned], timeout: float = READY_TIMEOUT) -> None:
    """Until each ready file names its daemon's pid; ``LabError`` if one exits first or is late."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending:
        for p in list(pending):
            code = p.popen.poll()
            if code is not None:
                raise LabError(
                    f"{p.label} exited with status {code} before it was ready: {last_line(p.log, p.log_start)} "
                    f"(log: {p.log})"
                )
            try:
                info = json.loads(p.ready_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            if isinstance(info, dict) and info.get("pid") == p.popen.pid:
                p.ready = info
                pending.remove(p)
        if pending and time.monotonic() > deadline:
            p = pending[0]
            raise LabError(f"{p.label} was not ready after {timeout:.0f}s (log: {p.log})")
        if pending:
            time.sleep(0.05)


def record(s: Spawned, endpoint: str = "") -> dict[str, Any]:
    """The runtime.json entry of a started daemon."""
    return {
        "kind": s.kind,
        "name": s.name,
        "pid": s.popen.pid,
        "start_time": s.start_time,
        "endpoint": endpoint,
        # Prometheus metrics (issue 10): the port the daemon's ready file names
        "metrics": f"127.0.0.1:{s.ready['metrics_port']}" if s.ready and s.ready.get("metrics_port") else "",
        "log": str(s.log),
        "argv": s.argv,
    }


def is_ours(lab: LabFolder, rec: dict[str, Any]) -> bool:
    """Whether the runtime.json entry ``rec`` is a live process of this lab (not a reused pid)."""
    pid = rec.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    stat = proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return False
    if rec.get("start_time") and stat[1] != rec["start_time"]:
        return False  # the pid was reused by another process
    return str(lab.folder) in cmdline(pid)


def strays(lab: LabFolder) -> list[int]:
    """Daemons of this lab that runtime.json does not list (e.g. left by a killed ``lab up``):
    any process whose command line has ``--state`` or ``--socket`` under this folder."""
    me = os.getpid()
    out = []
    prefix = str(lab.folder) + os.sep
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        args = cmdline_args(int(entry))
        if any(
            a in ("--state", "--socket") and b.startswith(prefix) for a, b in itertools.pairwise(args)
        ):
            stat = proc_stat(int(entry))
            if stat is not None and stat[0] != "Z":
                out.append(int(entry))
    return out


def stop(
    lab: LabFolder,
    records: list[dict[str, Any]],
    *,
    verify: bool = True,
    report: Report = lambda _line: None,
    timeout: float = STOP_TIMEOUT,
) -> int:
    """SIGTERM, wait up to ``timeout``, SIGKILL the rest; returns how many were running."""

    def alive(rec: dict[str, Any]) -> bool:
        if verify:
            return is_ours(lab, rec)
        stat = proc_stat(rec["pid"])
        return stat is not None and stat[0] != "Z"

    live = [r for r in records if alive(r)]
    for r in live:
        send_signal(r["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(r) for r in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    for r in live:
        if alive(r):
            send_signal(r["pid"], signal.SIGKILL)
            report(f"{r['kind']} {r['name']} (pid {r['pid']}) did not stop on SIGTERM: killed")
        else:
            report(f"stopped {r['kind']} {r['name']} (pid {r['pid']})")
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(alive(r) for r in live) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(live)


def daemon_command(script: str, module: str) -> list[str]:
    """How to run a daemon: its console script (beside the running interpreter first, for venvs, then
    on PATH), else ``python -m MODULE`` when the module exists but the script is not installed yet."""
    found = shutil.which(
        script, path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    )
    if found is not None:
        return [found]
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        spec = None
    if spec is not None:
        return [sys.executable, "-m", module]
    raise LabError(f"{script} is not installed (run: python3 -m pip install -e '.[dev]')")


def last_line(log: Path, start: int = 0) -> str:
    """The last line a daemon wrote to its log since ``start`` (why it did not come up)."""
    try:
        with open(log, "rb") as f:
            f.seek(start)
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    lines = [ln for ln in lines if not ln.startswith("--- ")]
    return lines[-1] if lines else "no output"


# -- /proc -------------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold blanks and parentheses: split after its last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def cmdline_args(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def cmdline(pid: int) -> str:
    return " ".join(cmdline_args(pid))


def send_signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
