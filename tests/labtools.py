"""Helpers for tests that run real labs: the `snaplab` command, a lab folder's processes, host commands.

Test modules load it with ``sys.path.insert(0, <tests folder>)`` (pytest runs with
``--import-mode=importlib``, which puts no test folder on ``sys.path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLI_TIMEOUT = 120  # one snaplab command (the default lab's up runs every setup command)
COMMAND_TIMEOUT = 60  # one host command (iSMsc_wait waits for a restore, DISKPART formats)


def bin_dir() -> str:
    """The folder of this interpreter's console scripts (snaplab, iSMsc_*, ...), ahead of any shim."""
    return os.path.dirname(sys.executable)


def command_env(**extra: str) -> dict[str, str]:
    """The environment a person has after the README's setup: the console scripts on PATH, no lab
    variables unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("SNAPLAB_LAB", "SNAPLAB_HOST")}
    env["PATH"] = os.pathsep.join([bin_dir(), env.get("PATH", "")])
    env.update(extra)
    return env


def snaplab_argv() -> list[str]:
    script = shutil.which("snaplab", path=os.pathsep.join([bin_dir(), os.environ.get("PATH", "")]))
    return [script] if script else [sys.executable, "-m", "snaplab.deploy.cli"]


def snaplab(
    *args: str, cwd: Path, timeout: float = CLI_TIMEOUT, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SNAPLAB_LAB", "SNAPLAB_HOST")}
    return subprocess.run(
        [*snaplab_argv(), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def lab_processes(folder: Path) -> list[int]:
    """Every live process whose command line names the lab folder (other than this test's own)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmd and alive(int(entry)):
            out.append(int(entry))
    return out


class LabRun:
    """One lab folder under ``root``; remembers every pid it saw so teardown can prove they are gone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "lab"
        self.pids: set[int] = set()

    def __call__(
        self, *args: str, timeout: float = CLI_TIMEOUT, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return snaplab("--lab", str(self.folder), *args, cwd=self.root, timeout=timeout, stdin=stdin)
        finally:
            self.remember()

    def remember(self) -> None:
        rt = self.runtime()
        if rt:
            self.pids |= {p["pid"] for p in rt.get("processes", [])}

    def runtime(self) -> dict | None:
        try:
            return json.loads((self.folder / "runtime.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def leftovers(self) -> list[int]:
        return sorted({p for p in self.pids if alive(p)} | set(lab_processes(self.folder)))

    def teardown(self) -> None:
        self.remember()
        try:
            snaplab("lab", "down", "--lab", str(self.folder), cwd=self.root, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        left = self.leftovers()
        for pid in left:  # never leave a daemon behind, whatever failed above
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not left, f"processes of the lab survived 'snaplab lab down': {left}"


@dataclass(frozen=True)
class Ran:
    """One host command as it ran: the line, what it printed, its exit status."""

    host: str
    line: str
    stdout: str
    stderr: str
    code: int

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def __str__(self) -> str:
        return f"{self.host}> {self.line}\n[exit {self.code}]\n{self.stdout}{self.stderr}"


# the names test_lab.py has always used
_snaplab_argv = snaplab_argv
_alive = alive
_lab_processes = lab_processes


def run_on(
    folder: Path,
    host: str,
    line: str,
    *,
    cwd: Path,
    stdin: str | None = None,
    shell: bool = False,
    timeout: float = COMMAND_TIMEOUT,
) -> Ran:
    """Run one command line on ``host`` of the lab in ``folder``, as its own OS process, the way an
    operator does: the console script with ``SNAPLAB_HOST`` and ``SNAPLAB_LAB`` set.

    Without ``shell`` the line is split on blanks only, as the Windows command prompt of the guide
    does, so ``\\\\?\\Volume{...}\\`` reaches the command as printed; with ``shell`` it is a bash line
    (redirections, pipes)."""
    env = command_env(SNAPLAB_LAB=str(folder), SNAPLAB_HOST=host)
    argv: str | list[str] = ["bash", "-c", line] if shell else line.split()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(host, line, proc.stdout, proc.stderr, proc.returncode)


class RefLab:
    """A running lab made from the reference lab file: commands on its hosts, clients with its
    certificates, its event log and its files."""

    ARRAY = "Tokyo_Customer_DataBase"

    def __init__(self, run: LabRun) -> None:
        self.run = run
        self.folder = run.folder
        self.root = run.root
        self.pki = self.folder / "pki"

    @property
    def runtime(self) -> dict:
        return json.loads((self.folder / "runtime.json").read_text())

    def cmd(self, host: str, line: str, **kw: Any) -> Ran:
        return run_on(self.folder, host, line, cwd=self.root, **kw)

    def manager(self, principal: str) -> Any:
        from snaplab.manager.client import ManagerClient

        from snaplab.common.rpc import ClientTLS

        return ManagerClient(self.runtime["manager"]["target"], ClientTLS.from_folder(self.pki, principal), timeout=30)

    def array(self, principal: str) -> Any:
        from snaplab.common.rpc import ClientTLS
        from snaplab.san.array_client import ArrayClient

        target = self.runtime["arrays"][self.ARRAY]["target"]
        return ArrayClient(target, ClientTLS.from_folder(self.pki, principal), timeout=30)

    def last_seq(self) -> int:
        with self.manager("admin") as m:
            events = m.events()
        return events[-1].seq if events else 0

    def events_after(self, seq: int) -> list[Any]:
        with self.manager("admin") as m:
            return m.events(after_seq=seq)

    def log(self, name: str) -> Path:
        return self.folder / "run" / name


def run_ok(lab: LabRun, host: str, line: str, code: int = 0) -> Ran:
    """``run_on`` in ``lab``'s folder, asserting the exit status (0 unless ``code`` says otherwise)."""
    ran = run_on(lab.folder, host, line, cwd=lab.root)
    assert ran.code == code, str(ran)
    return ran


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative name."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
