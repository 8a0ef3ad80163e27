"""The lazy writer: what programs write in a mounted volume's cache reaches the volume by itself.

Windows' cache manager writes dirty pages behind the programs (its lazy writer scans each second and
writes an eighth of them, so a page waits about 8 s); only a flush (``iSMrc_flush``, an unmount)
writes everything. The guide's fallback when ``iSMrc_umount`` is refused relies on it: wait 60 s,
then create the snapshot; files under 600 bytes (they live in their MFT record, which only a flush
writes) and files being written may be missing from it, the rest is there.

Here a thread of the agent does the same: every ``TICK`` it writes to the volume, through the
ordinary flush (flush.py, with the journal), the files of each mounted cache that are at least
``SMALL`` bytes and were last written ``delay`` seconds ago or earlier, with folders, links and
deletions. The delay is a host setting, ``etc/iSMrpl.ini``::

    [LAZYWRITER]
    DELAY = 8      ; seconds (SnapLab extension; 0 turns the lazy writer off)

It takes the host like a command does (one at a time), never while a flush debug hook waits in
``<state>/debug/`` (the hook is for the flush a command runs: its own flush never takes one, even a
hook written after it looked), and a failure only logs a warning: the cache stays as it is, for the
next flush.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from snaplab.agent.host import Host

log = logging.getLogger("snaplab.agent.fs")

SMALL = 600  # bytes: a file smaller than this is left to a flush (the guide's "under 600 bytes")
DEFAULT_DELAY = 8.0  # seconds: Windows' lazy writer has written a dirty page within about 8 s
TICK = 1.0  # seconds between looks (the lazy writer's scan interval)


def ripe(delay: float, now_ns: int | None = None) -> Callable[[str, os.stat_result], bool]:
    """Which entries the lazy writer writes now: files of ``SMALL`` bytes or more, unchanged for
    ``delay`` seconds; everything that is not a regular file."""
    now = time.time_ns() if now_ns is None else now_ns
    age = int(delay * 1e9)

    def keep(_name: str, st: os.stat_result) -> bool:
        if not stat.S_ISREG(st.st_mode):
            return True
        return st.st_size >= SMALL and now - st.st_mtime_ns >= age

    return keep


class LazyWriter:
    """The agent's lazy-writer thread; ``start()`` after the boot scan, ``stop()`` before the
    shutdown flush."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lazy-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.once()
            except Exception:  # the thread never dies of one volume
                log.exception("lazy writer failed")

    def once(self) -> int:
        """One look: write what is ripe; returns the number of volumes written."""
        delay = self.host.lazy_write_delay()
        if delay <= 0 or self._hooked():
            return 0
        keep = ripe(delay)
        if not self.host.fs.ripe_sessions(keep):  # no lock and no array I/O while nothing is ripe
            return 0
        with self.host.command():
            return self.host.fs.lazy_write(keep)

    def _hooked(self) -> bool:
        debug = self.host.fs.debug
        try:
            return debug.is_dir() and any(debug.iterdir())
        except OSError:
            return False
