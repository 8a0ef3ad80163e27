"""The flush: mount-folder changes go into the working copy, then only its changed pages to the volume.

A flush (``iSMrc_flush``, ``iSMrc_umount`` without ``-force``/``-offline``):

1. walk the folder; a file is changed when its kind, size, mtime (ns) or permission bits differ
   from what the last sync recorded, or, when its mtime is within 2 s of that sync (a write in the
   same timestamp tick could hide), when its content hash differs;
2. apply the created, changed and deleted entries to the working copy in one transaction;
3. write to the array ONLY the pages whose digest changed: the working copy runs in WAL mode, so
   the committed frames name the pages the transaction touched; those (and pages past the old end)
   are compared with the digests, adjacent ones coalesced into one write, page 1 (the header) last;
4. keep the new digests.


A snapshot taken while a flush is writing its pages can hold a database whose pages do not agree
(page 1 is written last, so it still describes the old tree): such a volume fails the check
(chkdsk.py). To reproduce it, a debug hook makes the next flush of a host stop after K page writes,
as if the host died there: put K in ``<state>/debug/flush_stop_after`` (read and removed by that
flush, which then fails with iSM13639 and leaves the volume torn; the cache stays, so a later flush
completes it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs.archive import (
    DIGEST,
    FILES_DDL,
    PAGE,
    VOLUME_DDL,
    WRITE_CHUNK,
    digest,
    entry_kind,
    file_hash,
    pack,
    volume_form,
)
from snaplab.agent.fs.session import Rec, Session, open_db

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.host import Volume

log = logging.getLogger("snaplab.agent.filesystem")

RACY_NS = 2_000_000_000  # files modified this close to a sync are compared by content
WAL_MAGICS = (0x377F0682, 0x377F0683)
STOP_HOOK = "flush_stop_after"  # <state>/debug/<this>: K -> the next flush stops after K page writes


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


def _upsert_files(conn: sqlite3.Connection, name: str, mtime_ns: int, h: bytes | None) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO snaplab_files(name, mtime_ns, hash) VALUES (?, ?, ?)", (name, mtime_ns, h)
    )


def _apply(conn: sqlite3.Connection, root: Path, plan: Plan, t0: int, stats: FlushStats) -> dict[str, Rec]:
    """Apply a plan to the working copy (inside the caller's transaction); returns the new records."""
    known = dict(plan.unchanged)
    for name in plan.gone:
        conn.execute("DELETE FROM sqlar WHERE name = ?", (name,))
        conn.execute("DELETE FROM snaplab_files WHERE name = ?", (name,))
        stats.deleted += 1
    for op, name, st, rec in plan.ops:
        k = entry_kind(st.st_mode) or "f"
        perm = stat.S_IMODE(st.st_mode)
        mtime_ns = st.st_mtime_ns
        path = root / name
        if op == "meta":
            assert rec is not None
            conn.execute(
                "UPDATE sqlar SET mode = ?, mtime = ? WHERE name = ?", (st.st_mode, mtime_ns // 10**9, name)
            )
            _upsert_files(conn, name, mtime_ns, rec.hash)
            known[name] = Rec(rec.kind, rec.size, mtime_ns, perm, rec.hash, rec.target, t0)
            stats.changed += 1
            continue
        target, h = "", None
        if k == "d":
            sz, data = 0, None
        elif k == "l":
            try:
                target = os.readlink(path)
            except OSError:
                continue
            sz, data = -1, target.encode(errors="surrogateescape")
        else:
            try:
                with open(path, "rb") as f:
                    content = f.read()
            except OSError as exc:
                log.warning("flush: cannot read %s: %s", path, exc)
                if rec is not None:
                    known[name] = rec
                continue
            h = file_hash(content)
            if op == "check" and rec is not None and h == rec.hash and len(content) == rec.size:
                if (rec.mtime_ns, rec.perm) != (mtime_ns, perm):  # touched, not changed
                    conn.execute(
                        "UPDATE sqlar SET mode = ?, mtime = ? WHERE name = ?",
                        (st.st_mode, mtime_ns // 10**9, name),
                    )
                    _upsert_files(conn, name, mtime_ns, h)
                    stats.changed += 1
                known[name] = Rec("f", rec.size, mtime_ns, perm, h, "", t0)
                continue
            sz, data = len(content), pack(content)
        row = (st.st_mode, mtime_ns // 10**9, sz, data, name)
        if (
            conn.execute(
                "UPDATE sqlar SET mode = ?, mtime = ?, sz = ?, data = ? WHERE name = ?", row
            ).rowcount
            == 0
        ):
            conn.execute("INSERT INTO sqlar(mode, mtime, sz, data, name) VALUES (?, ?, ?, ?, ?)", row)
            stats.created += 1
        else:
            stats.changed += 1
        _upsert_files(conn, name, mtime_ns, h)
        known[name] = Rec(k, max(sz, 0), mtime_ns, perm, h, target, t0)
    return known


def flush_volume(volume: Volume, s: Session, debug: Path) -> FlushStats:
    """Write what changed in the mount folder of a mounted volume to it (module docstring); ``debug`` is
    the folder of the stop hook. iSM13639 when the mount folder is gone."""
    if not s.root.is_dir():  # the mount folder itself was removed: not a volume any more
        log.warning("flush of %s: its folder %s is gone", volume.name, s.root)
        raise CommandError(E.PATH_NOT_NORMAL)
    stats = FlushStats()
    t0 = time.time_ns()
    tree = walk(s.root)
    plan = _plan(s, tree)
    dirty: set[int] | None = set()
    if plan.ops or plan.gone:
        conn = open_db(s.db, s.size // PAGE)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(VOLUME_DDL)
                conn.execute(FILES_DDL)
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
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        s.known = known
    if dirty is not None and not dirty and not s.pending:
        return stats
    _write_pages(volume, s, dirty, stats, debug)
    log.info(
        "flush of %s: %d created, %d changed, %d deleted; %d pages in %d writes",
        volume.name,
        stats.created,
        stats.changed,
        stats.deleted,
        stats.pages,
        stats.writes,
    )
    return stats


def _stop_after(debug: Path) -> int | None:
    hook = debug / STOP_HOOK
    try:
        text = hook.read_text().strip()
    except OSError:
        return None
    hook.unlink(missing_ok=True)
    try:
        return max(0, int(text))
    except ValueError:
        log.warning("debug hook %s: %r is not a page count", hook, text)
        return None


def _write_pages(volume: Volume, s: Session, dirty: set[int] | None, stats: FlushStats, debug: Path) -> None:
    """Write the pages whose digest changed (adjacent ones in one write, page 1 last); keep the
    digests. ``dirty`` is the set the WAL named (None: compare every page)."""
    new_pages = os.path.getsize(s.db) // PAGE
    if dirty is None:
        candidates = set(range(1, new_pages + 1))
    else:
        candidates = dirty | s.pending | set(range(s.pages + 1, new_pages + 1))
    changed: dict[int, bytes] = {}
    with open(s.db, "rb") as f:
        for p in sorted(c for c in candidates if c <= new_pages):
            f.seek((p - 1) * PAGE)
            page = f.read(PAGE)
            if p == 1:
                page = volume_form(page)
            if (
                p <= s.pages
                and p not in s.pending
                and s.digests[(p - 1) * DIGEST : p * DIGEST] == digest(page)
            ):
                continue
            changed[p] = page
    if len(s.digests) < new_pages * DIGEST:
        s.digests += bytes(new_pages * DIGEST - len(s.digests))
    order = sorted(p for p in changed if p != 1) + ([1] if 1 in changed else [])
    stop = _stop_after(debug) if order else None
    runs: list[list[int]] = []
    for p in order:
        if runs and p == runs[-1][-1] + 1 and p != 1 and (len(runs[-1]) + 1) * PAGE <= WRITE_CHUNK:
            runs[-1].append(p)
        else:
            runs.append([p])
    s.pending = set(order)
    written = 0
    for run in runs:
        if stop is not None and written + len(run) > stop:
            run = run[: stop - written]
        if run:
            data = b"".join(changed[p] for p in run)
            volume.write((run[0] - 1) * PAGE, data)
            written += len(run)
            stats.pages += len(run)
            stats.writes += 1
            stats.bytes += len(data)
            for p in run:
                s.digests[(p - 1) * DIGEST : p * DIGEST] = digest(changed[p])
                s.pending.discard(p)
        if stop is not None and written >= stop and s.pending:
            log.warning(
                "flush of %s stopped after %d of %d pages (debug hook %s)",
                volume.name,
                written,
                len(order),
                STOP_HOOK,
            )
            raise CommandError(E.PATH_NOT_NORMAL)
    s.pending = set()
    s.pages = new_pages
