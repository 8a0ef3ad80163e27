"""CHKDSK: check a volume's archive, report in Windows' layout, and with /F rebuild it from what survives.

A volume whose pages do not agree (a snapshot taken while a flush wrote in place, writeback.py) fails the check:
``iSMrc_mount`` refuses it (iSM13639), MOUNTVOL still assigns it a mount point (an empty folder:
there is no file system to show) and ``CHKDSK X: /F`` repairs it (:func:`check`).

CHKDSK reads the volume's database (not the cache), after replaying the volume's own committed flush
journal as a mount does (a copy's is not replayed, journal.py): ``quick_check`` then ``integrity_check``, then
every page is scanned for rows the way ``.recover`` does (scavenge.py): each file row is checked
against its size, its zlib stream and the hash ``snaplab_files`` recorded. Without /F it reports the
problems; with /F it rebuilds a fresh archive of every good row (a file no index names goes to
``found.000/``) and lists the files it lost. The layout is Windows' (README, "Host file systems").
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs import journal
from snaplab.agent.fs.archive import (
    FS_NAME,
    PAGE,
    READ_CHUNK,
    Device,
    NotFormatted,
    file_hash,
    new_database,
    quick_check,
    read_header,
    read_image,
    volume_meta,
)
from snaplab.agent.fs.scavenge import Scan, scavenge

if TYPE_CHECKING:
    from snaplab.agent.fs.cache import FileSystemCache
    from snaplab.agent.host import Volume

log = logging.getLogger("snaplab.agent.filesystem")

MAX_PROBLEM_LINES = 20


def check(fs: FileSystemCache, volume: Volume, fix: bool = False) -> tuple[int, list[str]]:
    """CHKDSK: (exit status, report lines). 0 no problems; 1 problems found and fixed (/F);
    3 problems found and not fixed (no /F), or the volume is RAW or unreadable."""
    if volume.local:
        return 0, _report_head("", fix) + _stages(0, 0) + _clean_tail() + _space(volume.size, 0, 0)
    fs.settle(volume)  # this LD's committed flush journal first: what a mount would read
    try:
        n = read_header(volume)
    except NotFormatted:
        return 3, ["The type of the file system is RAW.", "CHKDSK is not available for RAW drives."]
    meta = volume_meta(volume.read(0, 2 * PAGE)) if volume.size >= 2 * PAGE else {}
    label = str(meta.get("label") or "")
    with tempfile.TemporaryDirectory(dir=fs.cache) as tmp:
        img = Path(tmp) / "chkdsk.db"
        problems: list[str] = []
        if n * PAGE > volume.size:
            problems.append(
                f"The file system says it has {n} clusters; the volume holds {volume.size // PAGE}."
            )
            n = volume.size // PAGE
            _copy_pages(volume, img, n)
        else:
            read_image(volume, img)
        problems += _sql_check(img)
        scan = scavenge(img, n, volume)
        problems += scan.problems
        files = [r for r in scan.recovered.values() if r.kind != "d"]
        used = sum(max(r.sz, 0) for r in files)
        lines = _report_head(label, fix)
        lines += _stages(scan.records, scan.index_entries)
        if not problems:
            return 0, lines + _clean_tail() + _space(volume.size, len(files), used)
        shown = problems[:MAX_PROBLEM_LINES]
        lines += [f"  {p}" for p in shown]
        if len(problems) > len(shown):
            lines.append(f"  ... and {len(problems) - len(shown)} more.")
        lines.append("")
        if not fix:
            lines += [
                "Windows has scanned the file system and found problems.",
                "Run CHKDSK with the /F (fix) option to correct these.",
            ]
            return 3, lines + [""] + _space(volume.size, len(files), used)
        lines.append("Windows has checked the file system and found problems.")
        lines.append("CHKDSK is recovering lost files.")
        had_session = volume.key in fs.sessions
        points = list(volume.mount_points)
        fs.drop(volume)  # the cache no longer matches the volume
        if had_session:
            lines.append("Volume dismounted.  All opened handles to this volume are now invalid.")
        rebuilt = Path(tmp) / "rebuilt.db"
        rebuild(rebuilt, scan, label, meta.get("serial"))
        image = rebuilt.read_bytes()
        if len(image) > volume.size:
            lines += ["Insufficient disk space to recover lost files.", "CHKDSK cannot continue."]
            return 3, lines
        journal.clear(volume)  # a record of the damaged database describes none of the new one
        volume.write(0, image)
    for name in scan.orphans:
        lines.append(f"  Recovering orphaned file {name} into found.000/{name}")
    lines.append("Windows has made corrections to the file system.")
    lines.append("No further action is required.")
    lost = scan.lost
    if lost:
        lines.append(f"{len(lost)} file{'s were' if len(lost) != 1 else ' was'} lost:")
        lines += [f"  {name}" for name in lost]
    else:
        lines.append("0 files were lost.")
    lines.append("")
    lines += _space(volume.size, len(files), used)
    for mp in points:  # show the repaired file system where the volume is mounted
        try:
            fs.mount(volume, mp)
        except CommandError as exc:
            log.warning("remount of %s at %s after CHKDSK failed: %s", volume.name, mp, exc)
    return 1, lines


def _copy_pages(dev: Device, dest: Path, n: int) -> None:
    with open(dest, "wb") as f:
        f.writelines(dev.read(off, min(READ_CHUNK, n * PAGE - off)) for off in range(0, n * PAGE, READ_CHUNK))


def _sql_check(img: Path) -> list[str]:
    """quick_check, then integrity_check, of a copy of the image: SQLite's own words for problems."""
    conn = sqlite3.connect(f"file:{img}?mode=ro", uri=True)
    try:
        problems = quick_check(conn)
        if not problems:
            try:
                rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            except sqlite3.DatabaseError as exc:
                rows = [str(exc)]
            problems = [] if rows == ["ok"] else rows
        return [f"Corruption found in the file system structure: {p}" for p in problems]
    finally:
        conn.close()


def rebuild(path: Path, scan: Scan, label: str, serial: object) -> None:
    """A fresh archive of every recovered entry (orphans under found.000/)."""
    try:
        ser = int(serial)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ser = int.from_bytes(os.urandom(4), "little") or 1
    new_database(path, label or str(scan.volume.get("label") or ""), ser)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        orphans = set(scan.orphans)
        for name, c in sorted(scan.recovered.items()):
            target = f"found.000/{name}" if name in orphans else name
            conn.execute(
                "INSERT OR REPLACE INTO sqlar(name, mode, mtime, sz, data) VALUES (?, ?, ?, ?, ?)",
                (target, c.mode, c.mtime, c.sz, c.data),
            )
            mt = scan.mtimes.get(name)
            if mt is None or mt // 1_000_000_000 != c.mtime:
                mt = c.mtime * 1_000_000_000
            conn.execute(
                "INSERT OR REPLACE INTO snaplab_files(name, mtime_ns, hash) VALUES (?, ?, ?)",
                (target, mt, file_hash(c.content) if c.kind == "f" else None),
            )
        if orphans:
            conn.execute(
                "INSERT OR IGNORE INTO sqlar(name, mode, mtime, sz, data) VALUES (?, ?, ?, 0, NULL)",
                ("found.000", stat.S_IFDIR | 0o755, int(time.time())),
            )
        conn.execute("COMMIT")
    finally:
        conn.close()


# -- the report's layout (Windows' CHKDSK) ------------------------------------------------------
def _report_head(label: str, fix: bool) -> list[str]:
    lines = [f"The type of the file system is {FS_NAME}."]
    if label:
        lines.append(f"Volume label is {label}.")
    lines.append("")
    if not fix:
        lines += ["WARNING!  /F parameter not specified.", "Running CHKDSK in read-only mode.", ""]
    return lines


def _stages(records: int, index_entries: int) -> list[str]:
    return [
        "Stage 1: Examining basic file system structure ...",
        f"  {records} file records processed.",
        "File verification completed.",
        "Stage 2: Examining file name linkage ...",
        f"  {index_entries} index entries processed.",
        "Index verification completed.",
        "Stage 3: Examining security descriptors ...",
        "Security descriptor verification completed.",
        "",
    ]


def _clean_tail() -> list[str]:
    return [
        "Windows has scanned the file system and found no problems.",
        "No further action is required.",
        "",
    ]


def _space(size: int, files: int, used: int) -> list[str]:
    kb = size // 1024
    used_kb = (used + 1023) // 1024
    return [
        f"{kb:>12} KB total disk space.",
        f"{used_kb:>12} KB in {files} files.",
        f"{max(kb - used_kb, 0):>12} KB available on disk.",
        "",
        f"{PAGE:>12} bytes in each allocation unit.",
    ]
