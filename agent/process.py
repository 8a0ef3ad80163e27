"""Run the real agent daemon as a subprocess (tests), like ``snaplab.array.process.ArrayProcess``.

    with AgentProcess(lab, "business01", certs=lab / "pki", manager=manager.target, ports=["P0"]) as agent:
        out, err, code = agent.run("iSMvollist", "-cr")

The host's state is ``<lab>/hosts/<host>/`` and its socket ``<lab>/run/agent-<host>.sock``, as in a lab
made by ``snaplab lab up``; ``command_env()`` is the environment a command process needs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from .cli import exec_command, socket_path

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class AgentProcessError(RuntimeError):
    """The daemon did not start (its output is in the message) or did not stop."""


class AgentProcess:
    def __init__(
        self,
        lab: Path | str,
        host: str,
        *,
        certs: Path | str,
        manager: str,
        role: str = "business",
        wwns: Iterable[str] = (),
        ports: Iterable[str] = (),
        cluster: str = "",
        cluster_role: str = "",
        log_level: str = "INFO",
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.lab = Path(lab).absolute()
        self.host = host
        self.certs = Path(certs).absolute()
        self.manager = manager
        self.role = role
        self.wwns, self.ports = list(wwns), list(ports)
        self.cluster, self.cluster_role = cluster, cluster_role
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.state = self.lab / "hosts" / host
        self.socket = Path(socket_path(self.lab, host))
        self.ready_file = self.lab / "run" / f"agent-{host}.ready.json"
        self.log_path = self.lab / "run" / f"agent-{host}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "snaplab.agent.daemon",
            "--host",
            self.host,
            "--state",
            str(self.state),
            "--certs",
            str(self.certs),
            "--manager",
            self.manager,
            "--socket",
            str(self.socket),
            "--ready-file",
            str(self.ready_file),
            "--role",
            self.role,
            "--log-level",
            self.log_level,
        ]
        for w in self.wwns:
            cmd += ["--wwn", w]
        for p in self.ports:
            cmd += ["--port", p]
        if self.cluster:
            cmd += ["--cluster", self.cluster]
        if self.cluster_role:
            cmd += ["--cluster-role", self.cluster_role]
        return cmd

    def start(self) -> Self:
        if self.running:
            raise AgentProcessError(f"already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.lab, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentProcessError(
                    f"snaplab-agent exited with status {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if json.loads(self.ready_file.read_text()).get("pid") == self.proc.pid:
                    return self
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        self.kill()
        raise AgentProcessError(f"snaplab-agent not ready after {self.ready_timeout}s:\n{self.log_tail()}")

    def log_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_start", 0))
                return f.read().decode(errors="replace")[-limit:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise AgentProcessError("not started")
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout``; returns the exit status."""
        code = self.kill(signal.SIGTERM, timeout)
        if code is None and self.proc is not None:
            code = self.kill(signal.SIGKILL)
        return code

    def restart(self) -> Self:
        """A server restart: stop, start again on the same state (C9)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- commands ------------------------------------------------------------------------------
    def command_env(self) -> dict[str, str]:
        return {**os.environ, "SNAPLAB_HOST": self.host, "SNAPLAB_LAB": str(self.lab)}

    def run(self, *argv: str, stdin: str = "", timeout: float | None = 60.0) -> tuple[str, str, int]:
        """Run one command through the agent in this process (no command process)."""
        return exec_command(self.lab, self.host, list(argv), stdin=stdin, timeout=timeout)

    def shell(
        self, *argv: str, stdin: str | None = None, cwd: Path | str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run one command as an operator would: its console script as a process of its own."""
        return subprocess.run(
            [script(argv[0]), *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            env=self.command_env(),
            cwd=cwd or self.lab,
            timeout=timeout,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )


def script(name: str) -> str:
    """The console script of a command (beside this Python first: no shims)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise AgentProcessError(f"console script {name} is not installed (pip install -e .)")
    return found
