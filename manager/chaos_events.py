"""Chaos rules' firings as events of the manager's log (issue 10).

Every daemon appends each firing to its journal in the lab's chaos folder (snaplab/common/chaos.py)
before it acts, so a crash is recorded before the daemon dies. The manager reads the new complete
lines of every journal a few times a second and logs each as a WARNING event (``operation`` chaos,
iSM31339, the process as the source). How far it has read each journal is kept in its state folder,
so a restarted manager neither repeats nor loses a firing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from snaplab.common.chaos import journal_name, write_private

from .messages import M
from .state import ManagerState

log = logging.getLogger("snaplab.manager.chaos")

OFFSETS_FILE = "chaos-offsets.json"
POLL_SECONDS = 0.2


class ChaosReporter:
    def __init__(self, folder: Path, state: ManagerState, state_dir: Path) -> None:
        self.folder = folder
        self.state = state
        self.offsets_path = state_dir / OFFSETS_FILE
        # journal name -> [inode, bytes read]: a journal made anew (a new lab) is read from its start
        try:
            self.offsets: dict[str, list[int]] = json.loads(self.offsets_path.read_text())
        except (OSError, ValueError):
            self.offsets = {}

    def poll(self) -> int:
        """Log the firings written since the last poll; returns how many."""
        logged = 0
        try:
            journals = sorted(self.folder.glob(journal_name("*")))
        except OSError:
            return 0
        for path in journals:
            try:
                st = path.stat()
                size = st.st_size
                ino, done = self.offsets.get(path.name, [st.st_ino, 0])
                if ino != st.st_ino or size < done:  # a new journal under the old name
                    done = 0
                if size == done:
                    continue
                with path.open("rb") as f:
                    f.seek(done)
                    chunk = f.read(size - done)
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1  # complete lines only: a writer may be mid-line
            for line in chunk[:end].splitlines():
                self._log(line)
                logged += 1
            self.offsets[path.name] = [st.st_ino, done + end]
        if logged:
            tmp = self.offsets_path.with_name(f".{OFFSETS_FILE}.tmp")
            write_private(tmp, json.dumps(self.offsets).encode())
            os.replace(tmp, self.offsets_path)
        return logged

    def _log(self, line: bytes) -> None:
        try:
            rec = json.loads(line)
            process = str(rec["process"])
            detail = f"rule {rec['rule']} on {process} {rec['op']}: {rec['action']}"
        except (ValueError, KeyError, TypeError):
            log.warning("chaos journal line not understood: %r", line[:200])
            return
        source = process.partition(":")[2] or process
        self.state.log_event(source, "WARNING", "chaos", M.CHAOS_FIRED.msg_id, M.CHAOS_FIRED.text.format(detail=detail))

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                self.poll()
            except Exception:  # the event log must never stop the daemon
                log.exception("chaos journals not read")
            await asyncio.sleep(POLL_SECONDS)
