"""Space reclaim (issue 12): the blocks a generation delete frees are given back to the file system.

A delete frees physical blocks (engine._tx puts them on the family's free list once it has
committed); the data file would keep occupying them until a write reuses them, so deleting every
generation would leave the file as big as it ever was. After a transaction that deleted a
generation, this worker cuts the file back to its high-water mark and punches the free blocks out of it (``Family.punch``: a hole, the
file's size unchanged), one run of at most ``RUN`` blocks per hold of the engine's lock, so
operations wait at most one run (punching is slow on a file system mounted with ``discard``), and
only once the array has been quiet for ``QUIET`` (no commit), unless ``BACKLOG`` blocks wait.

Only blocks of the free list are punched, under the lock: a block a transaction allocates is no
longer free (``Family.alloc`` drops it from ``unpunched``), and a block a lab checkpoint pins never
gets on the free list (checkpoints.py). A crash before the punch leaves the space held; after a
restart every free block counts as unpunched and the next delete gives it back.
"""

from __future__ import annotations

import logging
import time

from .blockstore import Family

log = logging.getLogger("snaplab.array")

RUN = 16  # blocks (1 MiB) punched per hold of the lock
PAUSE = 0.0005  # seconds between runs: lets waiting operations take the lock
QUIET = 0.05  # seconds without a commit before punching: operations in a burst do not wait for it
BACKLOG = 4096  # blocks (256 MiB) left to punch in a family past which it punches even in a burst


class ReclaimMixin:
    """The background reclaimer (started by ``ArrayEngine.__init__``) and ``reclaim_settle``."""

    def _reclaim_next(self) -> Family | None:
        for fam in self.families.values():
            if fam.reclaim_due:
                return fam
        return None

    def _reclaim_worker(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (fam := self._reclaim_next()) is None:
                    self._cond.wait(timeout=1.0)
                if self._closed:
                    return
                try:
                    fam.trim()
                except OSError as exc:
                    log.warning("cannot trim %s: %s", fam.path, exc)
                if not fam.free_loaded:  # read now: after a load its free blocks count as not given back
                    fam.free  # noqa: B018 - the property reads the list
                runs = _runs(sorted(fam.unpunched))
            for start, n in runs:
                with self._lock:
                    while (not self._closed and len(fam.unpunched) < BACKLOG
                           and (quiet := time.monotonic() - self._last_commit) < QUIET):
                        self._cond.wait(timeout=QUIET - quiet)
                    if self._closed or self.families.get(fam.ld) is not fam:
                        break  # reloaded or unbound meanwhile: the new state has its own lists
                    try:
                        for s, k in _runs([p for p in range(start, start + n) if p in fam.unpunched]):
                            if not fam.punch(s, k):  # not possible on this file system: keep the space
                                fam.unpunched.clear()
                                break
                    except Exception:  # never let the worker die; the space just stays held
                        log.exception("reclaim of %s failed", fam.path)
                        fam.unpunched.clear()
                    if not fam.unpunched:
                        break
                time.sleep(PAUSE)
            with self._lock:
                if not fam.unpunched:
                    fam.reclaim_due = False
                self._cond.notify_all()

    def reclaim_settle(self, timeout: float = 60.0) -> bool:
        """Wait until the reclaimer has given back all it was due to (tests, benchmarks). True if so."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(f.reclaim_due for f in self.families.values()):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(timeout=min(left, 0.5))
        return True


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    """(start, length) runs of consecutive blocks (sorted input), each at most ``RUN`` long."""
    out: list[tuple[int, int]] = []
    for p in blocks:
        if out and out[-1][0] + out[-1][1] == p and out[-1][1] < RUN:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out
