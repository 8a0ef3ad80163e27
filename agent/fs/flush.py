"""The flush: mount-folder changes go into the working copy, then only its changed pages to the volume.

A flush (``iSMrc_flush``, ``iSMrc_umount`` without ``-force``/``-offline``):

1. walk the folder; a file is changed when its kind, size, mtime (ns) or permission bits differ
   from what the last sync recorded, or, when its mtime is within 2 s of that sync (a write in the
   same timestamp tick could hide), when its content hash differs;
2. apply the created, changed and deleted entries to the working copy in one transaction; a file
   big enough to have overflow pages gets a new row (inserted under its name as a BLOB, the old row
   deleted, the name made TEXT again: the same size, so SQLite rewrites only the cell), so its new
   content lands on pages the volume's database does not use and needs no journal (writeback.py);
3. the working copy runs in WAL mode, so the committed frames name the pages the transaction
   touched; those (and pages past the old end) whose digest changed are written: the volume's free
   pages first, then the pages its database uses through the redo journal (journal.py), page 1 last;
4. keep the new digests.

A crash at any point leaves the volume with the old or the new flush (a mount replays a committed
journal). The debug hooks (``flush_stop_after``, ``flush_pause_at``) are described in writeback.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs import journal
from snaplab.agent.fs.archive import (
    DIGEST,
    FILES_DDL,
    FORMAT_ID,
    PAGE,
    VOLUME_DDL,
    entry_kind,
    file_hash,
    hash_matches,
    pack,
    page_digest,
    volume_form,
)
from snaplab.agent.fs.session import Base, Rec, Session, open_db
from snaplab.agent.fs.writeback import STOP_HOOK, NoRoom, finish, write_changes

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.host import Volume

log = logging.getLogger("snaplab.agent.filesystem")

RACY_NS = 2_000_000_000  # files modified this close to a sync are compared by content
WAL_MAGICS = (0x377F0682, 0x377F0683)
SPILL = 60 * 1024  # a file this large has overflow pages: its row is moved, not overwritten (step 2)
__all__ = ["STOP_HOOK", "FlushStats", "flush_volume", "walk"]


def wal_pages(wal: Path) -> set[int] | None:
    """Page numbers of the committed frames of a WAL file (None when it cannot be read as one)."""
    try:
        f = open(wal, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return set()
    with f:
        head = f.read(32)
        if not head:
            return set()
        if len(head) < 32:
            return None
        magic, _ver, psize, _seq, salt1, salt2 = struct.unpack(">IIIIII", head[:24])
        if magic not in WAL_MAGICS or psize != PAGE:
            return None
        committed: set[int] = set()
        pending: set[int] = set()
        off = 32
        while True:
            f.seek(off)
            fh = f.read(24)
            if len(fh) < 24:
                break
            page, commit, s1, s2 = struct.unpack(">IIII", fh[:16])
            if (s1, s2) != (salt1, salt2):
                break
            pending.add(page)
            if commit:
                committed |= pending
                pending = set()
            off += 24 + PAGE
        return committed


def walk(root: Path) -> dict[str, os.stat_result]:
    """Every file, folder and symbolic link under ``root``: relative name -> lstat."""
    out: dict[str, os.stat_result] = {}
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            log.warning("cannot read %s: %s", folder, exc)
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                k = entry_kind(st.st_mode)
                if k is None:
                    continue
                name = prefix + e.name
                out[name] = st
                if k == "d":
                    stack.append((name + "/", e.path))
    return out


@dataclass
class FlushStats:
    created: int = 0
    changed: int = 0
    deleted: int = 0
    pages: int = 0  # pages written to the volume
    writes: int = 0  # write calls (runs of adjacent pages)
    bytes: int = 0
    journalled: int = 0  # pages the volume's database used, written twice (journal, then in place)
    names: dict[str, str] = field(default_factory=dict)  # entry -> new, changed, deleted


@dataclass
class Plan:
    """What a flush must do: ``ops`` (put: new or replaced entry; check: a file whose stat differs or is
    racy, read to decide; meta: mode or folder mtime only), ``gone`` (deleted), ``unchanged``."""

    ops: list[tuple[str, str, os.stat_result, Rec | None]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unchanged: dict[str, Rec] = field(default_factory=dict)


def _plan(s: Session, tree: dict[str, os.stat_result]) -> Plan:
    plan = Plan()
    for name, st in tree.items():
        k = entry_kind(st.st_mode)
        rec = s.known.get(name)
        perm = stat.S_IMODE(st.st_mode)
        if rec is None or rec.kind != k:
            plan.ops.append(("put", name, st, rec))
        elif k == "f":
            same = rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns
            if not same or rec.mtime_ns >= rec.synced - RACY_NS:
                plan.ops.append(("check", name, st, rec))
            elif rec.perm != perm:
                plan.ops.append(("meta", name, st, rec))
            else:
                plan.unchanged[name] = rec
        elif k == "l":
            try:
                target = os.readlink(s.root / name)
            except OSError:
                continue
            if target != rec.target:
                plan.ops.append(("put", name, st, rec))
            else:
                plan.unchanged[name] = rec
        elif rec.mtime_ns != st.st_mtime_ns or rec.perm != perm:
            plan.ops.append(("meta", name, st, rec))
        else:
            plan.unchanged[name] = rec
    plan.gone = [n for n in s.known if n not in tree]
    return plan


def unflushed_entries(s: Session) -> dict[str, str]:
    """What the volume lacks of the mount folder: entries a flush began to write and did not finish,
    and those changed since (name -> new, changed, deleted). Reads only local files."""
    out = dict(s.unsynced)
    plan = _plan(s, walk(s.root)) if s.root.is_dir() else Plan()
    for kind, name, st, rec in plan.ops:
        if kind == "check" and rec is not None and stat.S_ISREG(st.st_mode):
            try:
                if (
                    rec.hash
                    and hash_matches((s.root / name).read_bytes(), rec.hash)
                    and st.st_size == rec.size
                ):
                    if (rec.mtime_ns, rec.perm) == (st.st_mtime_ns, stat.S_IMODE(st.st_mode)):
                        continue
            except OSError:
                continue
        out[name] = "new" if rec is None else "changed"
    for name in plan.gone:
        out[name] = "deleted"
    return out


def _upsert_files(conn: sqlite3.Connection, name: str, mtime_ns: int, h: bytes | None) -> None:
    """The file's snaplab_files row, updated where it is (a REPLACE would move it to a new rowid)."""
    conn.execute(
        "INSERT INTO snaplab_files(name, mtime_ns, hash) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET mtime_ns = excluded.mtime_ns, hash = excluded.hash",
        (name, mtime_ns, h),
    )


Op = tuple[str, str, os.stat_result, Rec | None]


def _moves(op: Op) -> bool:
    """Whether the op writes a file big enough for overflow pages (its row is moved: step 2)."""
    return op[0] in ("put", "check") and stat.S_ISREG(op[2].st_mode) and op[2].st_size > SPILL


def _apply(conn: sqlite3.Connection, root: Path, plan: Plan, t0: int, stats: FlushStats) -> dict[str, Rec]:
    """Apply a plan to the working copy (inside the caller's transaction); returns the new records.
    Rows of big files are inserted first, before anything is deleted, so their pages come from the
    volume's free pages and not from pages this transaction frees (which the volume still uses)."""
    known = dict(plan.unchanged)
    moved: list[str] = []
    for op in [o for o in plan.ops if _moves(o)] + [o for o in plan.ops if not _moves(o)]:
        _put(conn, root, op, t0, stats, known, moved if _moves(op) else None)
    for name in plan.gone:
        conn.execute("DELETE FROM sqlar WHERE name = ?", (name,))
        conn.execute("DELETE FROM snaplab_files WHERE name = ?", (name,))
        stats.deleted += 1
        stats.names[name] = "deleted"
    for name in moved:
        conn.execute("DELETE FROM sqlar WHERE name = ?", (name,))
        conn.execute("UPDATE sqlar SET name = CAST(name AS TEXT) WHERE name = CAST(? AS BLOB)", (name,))
    return known


def _put(
    conn: sqlite3.Connection,
    root: Path,
    op: Op,
    t0: int,
    stats: FlushStats,
    known: dict[str, Rec],
    moved: list[str] | None,
) -> None:
    """One created, changed or touched entry; with ``moved``, a changed file's new row goes in under
    its name as a BLOB (renamed once the old row is gone) and its name is added to ``moved``."""
    kind, name, st, rec = op
    k = entry_kind(st.st_mode) or "f"
    perm = stat.S_IMODE(st.st_mode)
    mtime_ns = st.st_mtime_ns
    path = root / name
    if kind == "meta":
        assert rec is not None
        conn.execute(
            "UPDATE sqlar SET mode = ?, mtime = ? WHERE name = ?", (st.st_mode, mtime_ns // 10**9, name)
        )
        _upsert_files(conn, name, mtime_ns, rec.hash)
        known[name] = Rec(rec.kind, rec.size, mtime_ns, perm, rec.hash, rec.target, t0)
        stats.changed += 1
        stats.names[name] = "changed"
        return
    target, h = "", None
    if k == "d":
        sz, data = 0, None
    elif k == "l":
        try:
            target = os.readlink(path)
        except OSError:
            return
        sz, data = -1, target.encode(errors="surrogateescape")
    else:
        try:
            with open(path, "rb") as f:
                content = f.read()
        except OSError as exc:
            log.warning("flush: cannot read %s: %s", path, exc)
            if rec is not None:
                known[name] = rec
            return
        h = file_hash(content)
        if (
            kind == "check"
            and rec is not None
            and rec.hash
            and len(content) == rec.size
            and (h == rec.hash or hash_matches(content, rec.hash))
        ):
            if (rec.mtime_ns, rec.perm) != (mtime_ns, perm):  # touched, not changed
                conn.execute(
                    "UPDATE sqlar SET mode = ?, mtime = ? WHERE name = ?",
                    (st.st_mode, mtime_ns // 10**9, name),
                )
                _upsert_files(conn, name, mtime_ns, h)
                stats.changed += 1
                stats.names[name] = "changed"
            known[name] = Rec("f", rec.size, mtime_ns, perm, h, "", t0)
            return
        sz, data = len(content), pack(content)
    row = (st.st_mode, mtime_ns // 10**9, sz, data, name)
    exists = conn.execute("SELECT 1 FROM sqlar WHERE name = ?", (name,)).fetchone() is not None
    if not exists:
        conn.execute("INSERT INTO sqlar(mode, mtime, sz, data, name) VALUES (?, ?, ?, ?, ?)", row)
        stats.created += 1
        stats.names[name] = "new"
    elif moved is not None:
        conn.execute(
            "INSERT INTO sqlar(mode, mtime, sz, data, name) VALUES (?, ?, ?, ?, CAST(? AS BLOB))", row
        )
        moved.append(name)
        stats.changed += 1
        stats.names[name] = "changed"
    else:
        conn.execute("UPDATE sqlar SET mode = ?, mtime = ?, sz = ?, data = ? WHERE name = ?", row)
        stats.changed += 1
        stats.names[name] = "changed"
    _upsert_files(conn, name, mtime_ns, h)
    known[name] = Rec(k, max(sz, 0), mtime_ns, perm, h, target, t0)


class PageFile:
    """A database file read page by page as it is on disk (not its WAL): ``with PageFile(path) as f``."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        self.pages = os.path.getsize(path) // PAGE

    def __enter__(self) -> PageFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.f.close()

    def read(self, p: int) -> bytes:
        self.f.seek((p - 1) * PAGE)
        return self.f.read(PAGE)

    def free(self) -> frozenset[int]:
        """The free-list leaves of the database."""
        if not self.pages:
            return frozenset()
        return frozenset(journal.free_leaves(self.read, self.read(1), self.pages)[1])


def hold_back(plan: Plan, keep: Callable[[str, os.stat_result], bool]) -> None:
    """Leave out of ``plan`` the new and changed entries ``keep`` refuses (the lazy writer's young
    and small files): the volume keeps what it holds of them (their records stay), a later flush
    writes them. Deletions and folders are not held back."""
    ops = []
    for op in plan.ops:
        kind, name, st, rec = op
        if kind == "meta" or keep(name, st):
            ops.append(op)
        elif rec is not None:
            plan.unchanged[name] = rec
    plan.ops = ops


def flush_volume(
    volume: Volume, s: Session, debug: Path | None, keep: Callable[[str, os.stat_result], bool] | None = None
) -> FlushStats:
    """Write what changed in the mount folder of a mounted volume to it (module docstring); ``debug`` is
    the folder of the hooks (None: no hook is for this flush). iSM13639 when the mount folder is gone,
    iSM13630 when the volume is full.
    ``keep``: only the entries it accepts (the lazy writer, lazywriter.py); None: everything."""
    if not s.root.is_dir():  # the mount folder itself was removed: not a volume any more
        log.warning("flush of %s: its folder %s is gone", volume.name, s.root)
        raise CommandError(E.PATH_NOT_NORMAL)
    stats = FlushStats()
    if s.committed:  # an earlier flush committed its journal and stopped: complete it first
        complete(volume, s, stats)
    t0 = time.time_ns()
    tree = walk(s.root)
    plan = _plan(s, tree)
    if keep is not None:
        hold_back(plan, keep)
    undo: dict[int, bytes] = {}
    with PageFile(s.db) as f:
        before_pages, before_free = f.pages, f.free()
    saved = (s.known, dict(s.unsynced), s.base, None if s.dirty is None else set(s.dirty))
    if plan.ops or plan.gone:
        conn = open_db(s.db, s.size // PAGE - 1)  # the last block is the journal's
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(VOLUME_DDL)
                conn.execute(FILES_DDL)
                # rows this flush writes hold format 2 hashes (a format 1 volume's rows stay readable)
                conn.execute(
                    "UPDATE snaplab_volume SET value = ? WHERE key = 'format' AND value IS NOT ?",
                    (FORMAT_ID, FORMAT_ID),
                )
                known = _apply(conn, s.root, plan, t0, stats)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if "full" in str(exc):
                    raise CommandError(
                        E.DISK_OPERATION, detail="There is not enough space on the disk."
                    ) from None
                raise
            dirty = wal_pages(Path(str(s.db) + "-wal"))
            undo = _undo(s.db, dirty, before_pages, before_free)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        # from here the working copy is ahead of the volume until its pages are written
        s.known = known
        s.unsynced.update(stats.names)
        s.base = s.base or Base(s.pages, before_free)
        s.dirty = None if dirty is None or s.dirty is None else s.dirty | dirty
    if s.dirty is not None and not s.dirty and not s.pending:
        return stats
    base = s.base or Base(s.pages, before_free)
    with PageFile(s.db) as f:
        new_pages, new_free = f.pages, f.free()
        changed = _changed(s, f, s.dirty)
    try:
        write_changes(volume, s, changed, base, new_pages, set(new_free), stats, debug, undo)
    except NoRoom:
        _revert(s.db, undo, before_pages)
        s.known, s.unsynced, s.base, s.dirty = saved
        log.warning("flush of %s refused: no room for its journal", volume.name)
        raise CommandError(E.DISK_OPERATION, detail="There is not enough space on the disk.") from None
    s.dirty = set()
    s.unsynced = {}
    log.info(
        "flush of %s: %d created, %d changed, %d deleted; %d pages in %d writes (%d through the journal)",
        volume.name,
        stats.created,
        stats.changed,
        stats.deleted,
        stats.pages,
        stats.writes,
        stats.journalled,
    )
    return stats


def complete(volume: Volume, s: Session, stats: FlushStats | None = None) -> None:
    """Write in place what a committed flush of this session had not (as a mount would replay it)."""
    if not s.committed:
        return
    with PageFile(s.db) as f:
        pages = f.pages
        content = {p: (volume_form(f.read(p)) if p == 1 else f.read(p)) for p in s.pending if p <= pages}
    finish(volume, s, content, stats or FlushStats(), pages)
    s.unsynced = {}


def _undo(db: Path, dirty: set[int] | None, pages: int, free: frozenset[int]) -> dict[int, bytes]:
    """The pages the transaction changed that the working copy used before it, as they were (its
    file is not checkpointed yet): what a refused flush puts back."""
    if not dirty:
        return {}
    with PageFile(db) as f:
        return {p: f.read(p) for p in dirty if p <= pages and p not in free}


def _revert(db: Path, undo: dict[int, bytes], pages: int) -> None:
    """Put the working copy back as it was before the transaction (undo pages, old length)."""
    with open(db, "r+b") as f:
        for p, page in undo.items():
            f.seek((p - 1) * PAGE)
            f.write(page)
        f.truncate(pages * PAGE)


def _changed(s: Session, f: PageFile, dirty: set[int] | None) -> dict[int, bytes]:
    """The pages of the working copy the volume does not hold: of those the WAL named (None: all),
    the pending ones and those past the volume's end, the ones whose digest differs."""
    new_pages = f.pages
    if dirty is None:
        candidates = set(range(1, new_pages + 1))
    else:
        candidates = dirty | s.pending | set(range(s.pages + 1, new_pages + 1))
    changed: dict[int, bytes] = {}
    for p in sorted(c for c in candidates if c <= new_pages):
        page = f.read(p)
        if p == 1:
            page = volume_form(page)
        if (
            p <= s.pages
            and p not in s.pending
            and s.digests[(p - 1) * DIGEST : p * DIGEST] == page_digest(page)
        ):
            continue
        changed[p] = page
    return changed
