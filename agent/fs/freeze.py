"""Freezing mounted folders for a snapshot (SnapLab extension, issue 14): the programs writing there are held.

The host's file-system cache is a plain folder (cache.py), so there is no file system to freeze
(FIFREEZE); the agent holds the writers instead: every process of this machine with its working
folder or an open file under the folder (the ``handle`` tool's list, holders.py) is stopped
(SIGSTOP) and continued (SIGCONT) on release. A detached watchdog (``sh``, its own session)
continues them at the deadline whatever happens to the agent, so a freeze never outlasts it.
A process that opens a file under the folder only after the hold began is not held (documented in
docs/extensions-sra-quiesce.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from .holders import holders

log = logging.getLogger("snaplab.agent.filesystem")

# Reads what is left of the deadline and the pids, sleeps, continues them; killed on a timely release.
_WATCHDOG = 'read -r left pids; sleep "$left"; kill -CONT $pids 2>/dev/null; exit 0'


class Freeze:
    """Writers under ``folders`` held until :meth:`release` or ``deadline`` (time.monotonic())."""

    def __init__(self, folders: list[Path], deadline: float) -> None:
        self.folders = folders
        self.deadline = deadline
        self.pids: list[int] = []
        self.started = 0.0
        self.released_at: float | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    def hold(self) -> Freeze:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.started = self.released_at = time.monotonic()
            return self
        me = os.getpid()
        found = [pid for pid, _name in holders(self.folders) if pid != me] if self.folders else []
        self.started = time.monotonic()  # the window: from the first writer held (the scan holds nobody)
        if not found:
            return self
        self._watchdog = subprocess.Popen(
            ["sh", "-c", _WATCHDOG, "snaplab-thaw"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started = time.monotonic()
        for pid in found:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.kill(pid, signal.SIGSTOP)
                self.pids.append(pid)
        assert self._watchdog.stdin is not None
        try:
            left = max(0.0, self.deadline - time.monotonic())
            self._watchdog.stdin.write(f"{left:.3f} {' '.join(map(str, self.pids)) or '0'}\n".encode())
            self._watchdog.stdin.close()
        except OSError:  # the watchdog died: release at once rather than hold without a backstop
            self.release()
        log.info("froze %s: %d writers held", ", ".join(map(str, self.folders)), len(self.pids))
        return self

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def release(self) -> float:
        """Continue the writers (idempotent); returns how long they were held, in seconds."""
        if self.released_at is None:
            for pid in self.pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGCONT)
            self.released_at = min(time.monotonic(), max(self.deadline, self.started))
            if self._watchdog is not None:
                with contextlib.suppress(OSError):
                    os.killpg(self._watchdog.pid, signal.SIGKILL)
                self._watchdog.wait()
        return self.released_at - self.started

    def __enter__(self) -> Freeze:
        return self.hold()

    def __exit__(self, *exc: object) -> None:
        self.release()
