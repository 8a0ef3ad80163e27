"""How a flush's changed pages reach the volume: free pages first, then the journal, then in place.

The three phases (journal.py says why the volume always holds the old or the new flush):

1. ``data``: the changed pages the volume's database does not use (its free-list leaves, pages past
   its end) are written in place;
2. ``journal``: the changed pages it does use are written to journal slots, then the commit record;
3. ``place``: those pages are written in place, page 1 (the header) last.

Adjacent pages go in one write. The session (session.py) tracks each page the volume holds (its
digest), what is still to write (``pending``), the volume's database while the flush is not committed
(``base``) and whether it is (``committed``: the next flush, or a mount, completes it).

Debug hooks, files in ``<state>/debug/`` read (and removed) by the next flush that writes pages:

* ``flush_stop_after`` (K): the flush stops after K pages of its in-place phase, as if the host died
  there: it fails with iSM13639, the cache stays (its next flush completes the volume, and so would
  its next mount, by replaying the journal); a snapshot taken now holds torn pages (README "Host file
  systems": the guide's damage case);
* ``flush_pause_at`` (``PHASE K``, PHASE data, journal or place): the flush pauses after K pages of
  that phase (or at its end, when it has fewer), writes ``flush_paused`` (JSON: phase, pages, of, pid)
  and waits until that file is removed (at most PAUSE_LIMIT s): a crash test kills the agent there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs import journal
from snaplab.agent.fs.archive import DIGEST, PAGE, UNKNOWN, WRITE_CHUNK, page_digest, volume_form
from snaplab.agent.fs.session import Base, Session

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.fs.flush import FlushStats
    from snaplab.agent.host import Volume

log = logging.getLogger("snaplab.agent.filesystem")

STOP_HOOK = "flush_stop_after"
PAUSE_HOOK = "flush_pause_at"
PAUSED = "flush_paused"
PHASES = ("data", "journal", "place")
PAUSE_LIMIT = 120.0


class NoRoom(Exception):
    """The volume has too few free blocks for the flush's journal (nothing was written)."""


@dataclass
class Hooks:
    folder: Path
    stop_after: int | None = None
    pause: tuple[str, int] | None = None

    @classmethod
    def read(cls, folder: Path) -> Hooks:
        h = cls(folder)
        text = _take(folder / STOP_HOOK)
        if text is not None:
            try:
                h.stop_after = max(0, int(text))
            except ValueError:
                log.warning("debug hook %s: %r is not a page count", STOP_HOOK, text)
        text = _take(folder / PAUSE_HOOK)
        if text is not None:
            parts = text.split()
            if len(parts) == 2 and parts[0] in PHASES and parts[1].isdigit():
                h.pause = (parts[0], int(parts[1]))
            else:
                log.warning(
                    "debug hook %s: %r is not 'PHASE K' (PHASE: %s)", PAUSE_HOOK, text, ", ".join(PHASES)
                )
        return h

    def cut(self, phase: str, total: int) -> int | None:
        """After how many pages of ``phase`` a hook fires (None: none does)."""
        if self.pause is not None and self.pause[0] == phase:
            return min(self.pause[1], total)
        if phase == "place" and self.stop_after is not None and self.stop_after < total:
            return self.stop_after
        return None

    def fire(self, phase: str, done: int, total: int, name: str) -> None:
        if self.pause is not None and self.pause[0] == phase:
            self.pause = None
            marker = self.folder / PAUSED
            marker.write_text(json.dumps({"phase": phase, "pages": done, "of": total, "pid": os.getpid()}))
            log.warning(
                "flush of %s paused after %d of %d %s pages (debug hook %s)",
                name,
                done,
                total,
                phase,
                PAUSE_HOOK,
            )
            deadline = time.monotonic() + PAUSE_LIMIT
            while marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            marker.unlink(missing_ok=True)
            return
        log.warning(
            "flush of %s stopped after %d of %d in-place pages (debug hook %s)", name, done, total, STOP_HOOK
        )
        raise CommandError(E.PATH_NOT_NORMAL)


def _take(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    path.unlink(missing_ok=True)
    return text


def _runs(order: list[int]) -> list[list[int]]:
    """``order`` cut into runs of adjacent pages (at most WRITE_CHUNK each), its order kept."""
    out: list[list[int]] = []
    for p in order:
        if out and p == out[-1][-1] + 1 and (len(out[-1]) + 1) * PAGE <= WRITE_CHUNK:
            out[-1].append(p)
        else:
            out.append([p])
    return out


class Writer:
    """One flush's writes to one volume: counts them, keeps the session's digests and pending set."""

    def __init__(self, volume: Volume, s: Session, stats: FlushStats, hooks: Hooks) -> None:
        self.volume, self.s, self.stats, self.hooks = volume, s, stats, hooks

    def _track(self, p: int, page: bytes) -> None:
        if p * DIGEST <= len(self.s.digests):
            self.s.digests[(p - 1) * DIGEST : p * DIGEST] = page_digest(page)
        self.s.pending.discard(p)

    def phase(self, phase: str, order: list[int], content: dict[int, bytes], *, track: bool = True) -> None:
        """Write the pages of ``order`` (in that order, adjacent ones together), firing a hook where set."""
        total = len(order)
        cut = self.hooks.cut(phase, total)
        done = 0
        if cut == 0:
            self.hooks.fire(phase, 0, total, self.volume.name)
        for run in _runs(order):
            pieces = [run]
            if cut is not None and done < cut < done + len(run):
                pieces = [run[: cut - done], run[cut - done :]]
            for piece in pieces:
                data = b"".join(content[p] for p in piece)
                self.volume.write((piece[0] - 1) * PAGE, data)
                self.stats.pages += len(piece)
                self.stats.writes += 1
                self.stats.bytes += len(data)
                if track:
                    for p in piece:
                        self._track(p, content[p])
                done += len(piece)
                if cut is not None and done == cut and cut > 0:
                    self.hooks.fire(phase, done, total, self.volume.name)


def free_in_both(p: int, base: Base, new_pages: int, new_free: set[int]) -> bool:
    """Whether neither the volume's database nor the new one uses page ``p``."""
    return (p > base.pages or p in base.free) and (p > new_pages or p in new_free)


def write_changes(
    volume: Volume,
    s: Session,
    changed: dict[int, bytes],
    base: Base,
    new_pages: int,
    new_free: set[int],
    stats: FlushStats,
    debug: Path | None,
    before: dict[int, bytes],
) -> None:
    """Bring the volume from ``base`` to the working copy: the three phases (module docstring).
    ``before``: pages as the working copy had them before this flush's transaction (what the volume
    holds of the live ones, when their digests say so; the others are read from the volume).
    NoRoom, before anything is written, when the journal does not fit above both databases."""
    live = sorted(p for p in changed if p <= base.pages and p not in base.free)
    data = sorted(p for p in changed if p > base.pages or p in base.free)
    total_blocks = volume.size // PAGE
    old = {p: _volume_page(p, before[p]) for p in live if p in before}
    old = {
        p: page
        for p, page in old.items()
        if bytes(s.digests[(p - 1) * DIGEST : p * DIGEST]) == page_digest(page)
    }
    old.update(journal.read_pages(volume, [p for p in live if p not in old]))
    jbytes = (
        journal.encode(volume.key, new_pages, s.seq + 1, {p: (old[p], changed[p]) for p in live})
        if live
        else b""
    )
    span = len(jbytes) // PAGE
    region = list(range(total_blocks - span + 1, total_blocks + 1))
    busy = set(changed) | s.pending
    if new_pages > total_blocks - max(span, 1) or any(
        p in busy or not free_in_both(p, base, new_pages, new_free) for p in region
    ):
        raise NoRoom()
    log.debug(
        "flush of %s: %d free pages, %d journalled %s in %d blocks",
        volume.name,
        len(data),
        len(live),
        live[:20],
        span,
    )
    if not changed:
        _done(s, new_pages)
        return
    hooks = Hooks.read(debug) if debug is not None else Hooks(Path("."))  # None: a flush no hook is for
    stats.journalled += len(live)
    if len(s.digests) < new_pages * DIGEST:
        s.digests += bytes(new_pages * DIGEST - len(s.digests))
    s.base = base
    s.pending |= set(changed)
    w = Writer(volume, s, stats, hooks)
    w.phase("data", data, changed)
    if live:
        for p in region:  # unknown until written (a free page of both databases)
            if p * DIGEST <= len(s.digests):
                s.digests[(p - 1) * DIGEST : p * DIGEST] = UNKNOWN
        w.phase("journal", region, {p: jbytes[i * PAGE : (i + 1) * PAGE] for i, p in enumerate(region)})
        s.committed = True
    w.phase("place", [p for p in live if p != 1] + ([1] if 1 in live else []), changed)
    _done(s, new_pages)
    s.seq += 1


def _done(s: Session, pages: int) -> None:
    """The volume holds the working copy: nothing pending, no base, no journal to complete."""
    s.pending = set()
    s.dirty = set()
    s.base = None
    s.committed = False
    s.pages = pages


def _volume_page(p: int, page: bytes) -> bytes:
    """A working-copy page as the volume keeps it (page 1 in rollback-journal form)."""
    return volume_form(page) if p == 1 else page


def finish(volume: Volume, s: Session, pages: dict[int, bytes], stats: FlushStats, new_pages: int) -> None:
    """Complete a committed flush: its pages still pending are written in place (page 1 last)."""
    w = Writer(volume, s, stats, Hooks(Path(".")))
    w.phase("place", sorted(p for p in pages if p != 1) + ([1] if 1 in pages else []), pages)
    _done(s, new_pages)
    s.seq += 1
