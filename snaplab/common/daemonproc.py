"""A daemon of ours run as a subprocess: start, wait for its ready file, stop, kill, restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class DaemonProcess:
    """One daemon subprocess on a state folder; subclasses give ``command()``, ``program`` and ``error``.

    It runs with cwd = the state folder's parent (never the repo root, so imports come from the
    install); its output goes to ``log_path`` (default ``<state>.log``) and its ready file is
    ``<state>.ready.json``, which must name the child's pid to count."""

    program = "daemon"
    error: type[Exception] = RuntimeError

    def _init_process(self, state_dir: Path | str, *, env: dict[str, str] | None,
                      log_path: Path | str | None, ready_timeout: float) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.env = env
        self.log_path = Path(log_path) if log_path else self.state_dir.with_name(self.state_dir.name + ".log")
        self.ready_file = self.state_dir.with_name(self.state_dir.name + ".ready.json")
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.ready: dict = {}
        self._log_start = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        if self.running:
            raise self.error(f"already running (pid {self.pid})")
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)  # a stale file from a killed daemon must not count
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.state_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **(self.env or {})},
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.error(f"{self.program} exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                info = json.loads(self.ready_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.02)
                continue
            if info.get("pid") == self.proc.pid:
                self.ready, self.port = info, int(info["port"])
                return
            time.sleep(0.02)
        raise self.error(f"{self.program} not ready after {self.ready_timeout}s:\n{self.log_tail()}")

    def log_tail(self, limit: int = 4000) -> str:
        """What the daemon printed since the last start (the end of it)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")[-limit:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise self.error("not started")
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send ``sig`` and wait for the exit; returns the exit status (None if it outlived ``timeout``)."""
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
        if self.proc is None:
            return None
        code = self.kill(signal.SIGTERM, timeout)
        if code is None:
            code = self.kill(signal.SIGKILL)
        return code

    def restart(self) -> Self:
        """Stop (if running) and start again on the same state and certificates; the port may change."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
