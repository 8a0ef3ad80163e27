"""The file system of a host's volumes: an SQLite archive (``sqlar``) in each partition.

On the volume
-------------
A formatted partition's bytes ARE an SQLite database file (https://sqlite.org/fileformat2.html) with
page size 65536, so one SQLite page is exactly one 64 KiB block of the array (partitions start on
64 KiB or 1 MiB boundaries): a page a flush changes costs one block of copy-on-write in the SRA.
The files are the rows of the ``sqlar`` table that ``sqlite3 -A`` reads and writes
(https://sqlite.org/sqlar.html)::

    sqlar(name TEXT PRIMARY KEY, mode INT, mtime INT, sz INT, data BLOB)

``name`` is the path relative to the volume's root with ``/`` separators, ``mode`` the full
``st_mode`` (regular file, directory or symbolic link), ``mtime`` whole seconds, ``sz`` the size;
``data`` is the zlib stream of the content when that is smaller than ``sz`` (as the sqlite3 CLI
does), else the content itself; a directory has ``sz`` 0 and no data, a symbolic link ``sz`` -1 and
its target as data. Two tables the standard tool ignores keep the lab's bookkeeping:
``snaplab_volume(key, value)`` (created first, so its root is page 2: ``format``, ``label``,
``serial``, ``created``) and ``snaplab_files(name, mtime_ns, hash)`` (exact mtime in ns and the
BLAKE2b-128 of each file's content). The image on the volume is in rollback-journal mode (header
bytes 18-19 = 1) with a valid in-header page count, so ``sqlite3 image.db -A --list`` or Python's
``sqlite3`` open an exported partition as it is. To the Windows-flavoured commands this file
system is "NTFS" (FORMAT, DISKPART and CHKDSK print that name).

On the host: the file-system cache
----------------------------------
Mounting reads the database from the volume (the header's page count x 64 KiB, nothing more) into a
working copy ``<state>/fscache/<guid>.db``, keeps a BLAKE2b-128 digest of every page as the volume
holds it, checks it (``PRAGMA quick_check``, and every file's size and hash as it is extracted; a
volume that fails is not mountable: iSM13639) and extracts the files into the mount point's folder ``<state>/mnt/<G or c_mnt_bk>`` (what
``Host.mount_path`` and ``snaplab path HOST G:`` give). That folder IS the file-system cache:
programs read and write it, and nothing they write reaches the volume until a flush
(``iSMrc_flush``, ``iSMrc_umount`` without ``-force``/``-offline``):

1. walk the folder; a file is changed when its kind, size, mtime (ns) or permission bits differ
   from what the last sync recorded, or, when its mtime is within 2 s of that sync (a write in the
   same timestamp tick could hide), when its content hash differs;
2. apply the created, changed and deleted entries to the working copy in one transaction;
3. write to the array ONLY the pages whose digest changed: the working copy runs in WAL mode, so
   the committed frames name the pages the transaction touched; those (and pages past the old end)
   are compared with the digests, adjacent ones coalesced into one write, page 1 (the header) last;
4. keep the new digests.

A second mount point of a mounted volume is a symbolic link to the first one's folder; removing the
last mount point of a volume (MOUNTVOL X: /D) keeps its file system mounted, cache included, in
``<state>/fscache/<guid>.files`` until a mount point is added again, as Windows keeps a volume
without a drive letter mounted. A full dismount (``iSMrc_umount``, ``-force``, FORMAT, a deleted
partition, a disk that is Not Ready at agent start) removes the folders and the working copy. An
agent that stops gracefully flushes what it can (a server shutdown flushes its caches); an agent that
starts reads every mounted volume anew (what a crash left unflushed is lost).

Damage
------
A snapshot taken while a flush is writing its pages can hold a database whose pages do not agree
(page 1 is written last, so it still describes the old tree). Such a volume fails the check:
``iSMrc_mount`` refuses it (iSM13639), MOUNTVOL still assigns it a mount point (an empty folder:
there is no file system to show) and ``CHKDSK X: /F`` repairs it (:meth:`SqlarFileSystem.check`).
To reproduce it, a debug hook makes the next flush of a host stop after K page writes, as if the
host died there: put K in ``<state>/debug/flush_stop_after`` (read and removed by that flush, which
then fails with iSM13639 and leaves the volume torn; the cache stays, so a later flush completes it).

CHKDSK reads the volume's database (not the cache): ``quick_check`` then ``integrity_check``, then
every page is scanned for rows the way ``.recover`` does (:func:`scavenge`): each file row is checked
against its size, its zlib stream and the hash ``snaplab_files`` recorded. Without /F it reports the
problems; with /F it rebuilds a fresh archive of every good row (a file no index names goes to
``found.000/``) and lists the files it lost. The layout is Windows' (README, "Host file systems").

:func:`holders` is the host's "handle" tool: the processes of this machine that have a file open, or
their working folder, under a mount folder (``iSMrc_umount`` refuses with iSM13609 while any do).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from snaplab.agent.commands.base import CommandError

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.host import Host, Volume

log = logging.getLogger("snaplab.agent.filesystem")

PAGE = 64 * 1024  # SQLite page = array block
MAGIC = b"SQLite format 3\x00"
FS_NAME = "NTFS"  # what the Windows-flavoured commands call it
FORMAT_ID = "snaplab-sqlar/1"
READ_CHUNK = 4 * 1024 * 1024
WRITE_CHUNK = 4 * 1024 * 1024
RACY_NS = 2_000_000_000  # files modified this close to a sync are compared by content
DIGEST = 16
WAL_MAGICS = (0x377F0682, 0x377F0683)
STOP_HOOK = "flush_stop_after"  # <state>/debug/<this>: K -> the next flush stops after K page writes
MAX_PROBLEM_LINES = 20

VOLUME_DDL = "CREATE TABLE IF NOT EXISTS snaplab_volume(key TEXT PRIMARY KEY, value)"
SQLAR_DDL = "CREATE TABLE IF NOT EXISTS sqlar(name TEXT PRIMARY KEY, mode INT, mtime INT, sz INT, data BLOB)"
FILES_DDL = "CREATE TABLE IF NOT EXISTS snaplab_files(name TEXT PRIMARY KEY, mtime_ns INT, hash BLOB)"


@dataclass(frozen=True)
class BootInfo:
    """What the volume says about its file system: type, label, serial (``XXXX-XXXX``), size in bytes."""

    fs: str
    label: str
    serial: str
    size: int


class FileSystem(Protocol):
    def format_volume(self, volume: Volume, label: str = "", quick: bool = True) -> BootInfo: ...
    def is_formatted(self, volume: Volume) -> bool: ...
    def info(self, volume: Volume) -> BootInfo | None: ...
    def attach(self, volume: Volume) -> None: ...
    def mounted(self, volume: Volume) -> bool: ...
    def mount(self, volume: Volume, mount_point: str) -> Path: ...
    def flush(self, volume: Volume) -> FlushStats: ...
    def unmount(self, volume: Volume, force: bool = False, mount_point: str | None = None) -> None: ...
    def check(self, volume: Volume, fix: bool = False) -> tuple[int, list[str]]: ...


class Device(Protocol):
    """What the image functions need of a volume: its size and byte I/O (``Volume`` is one)."""

    @property
    def size(self) -> int: ...
    def read(self, offset: int, length: int) -> bytes: ...
    def write(self, offset: int, data: bytes) -> None: ...


class NotFormatted(Exception):
    """The volume holds no SQLite archive of this lab's page size (a RAW volume)."""


class Damaged(Exception):
    """The volume's database fails its header or integrity check."""


# ============================================================================ the image on the volume
def header_pages(header: bytes) -> int | None:
    """The page count of a database header of this file system (64 KiB pages, valid in-header size)."""
    if len(header) < 100 or header[:16] != MAGIC:
        return None
    size = struct.unpack_from(">H", header, 16)[0]
    if (65536 if size == 1 else size) != PAGE:
        return None
    counter, pages, valid_for = (
        struct.unpack_from(">I", header, 24)[0],
        struct.unpack_from(">I", header, 28)[0],
        struct.unpack_from(">I", header, 92)[0],
    )
    if pages == 0 or counter != valid_for:
        return None
    return pages


def volume_form(page1: bytes) -> bytes:
    """Page 1 as the volume keeps it: rollback-journal mode (the working copy runs in WAL mode)."""
    if page1[18:20] == b"\x01\x01":
        return page1
    b = bytearray(page1)
    b[18] = b[19] = 1
    return bytes(b)


def digest(page: bytes) -> bytes:
    return hashlib.blake2b(page, digest_size=DIGEST).digest()


def file_hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST).digest()


def read_header(dev: Device) -> int:
    """The page count of the volume's database; NotFormatted when there is none."""
    if dev.size < PAGE:
        raise NotFormatted()
    n = header_pages(dev.read(0, 100))
    if n is None:
        raise NotFormatted()
    return n


def read_image(dev: Device, dest: Path) -> tuple[int, bytearray]:
    """Copy the database from the volume into ``dest``; returns (pages, digests of the pages as read).
    Damaged when the header's page count does not fit the volume."""
    n = read_header(dev)
    if n * PAGE > dev.size:
        raise Damaged(f"the header says {n} pages, the volume holds {dev.size // PAGE}")
    digests = bytearray()
    total = n * PAGE
    with open(dest, "wb") as f:
        for off in range(0, total, READ_CHUNK):
            data = dev.read(off, min(READ_CHUNK, total - off))
            mv = memoryview(data)
            for p in range(0, len(data), PAGE):
                digests += digest(mv[p : p + PAGE])
            f.write(data)
    return n, digests


def new_database(path: Path, label: str, serial: int) -> None:
    """An empty archive: snaplab_volume (page 2), sqlar, snaplab_files; rollback-journal mode."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA page_size={PAGE}")
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("BEGIN")
        conn.execute(VOLUME_DDL)
        conn.execute(SQLAR_DDL)
        conn.execute(FILES_DDL)
        conn.executemany(
            "INSERT INTO snaplab_volume(key, value) VALUES (?, ?)",
            [
                ("format", FORMAT_ID),
                ("label", label),
                ("serial", serial),
                ("created", datetime.now().strftime("%Y/%m/%d %H:%M:%S")),
            ],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def serial_text(serial: int) -> str:
    serial &= 0xFFFFFFFF
    return f"{serial >> 16:04X}-{serial & 0xFFFF:04X}"


def volume_meta(head: bytes) -> dict[str, object]:
    """snaplab_volume of a database from its first two pages only (the table's root is page 2)."""
    if len(head) < 2 * PAGE or header_pages(head) is None:
        return {}
    img = bytearray(head[: 2 * PAGE])
    img[18] = img[19] = 1
    struct.pack_into(">I", img, 28, 2)
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(bytes(img))
        conn.execute("PRAGMA writable_schema=ON")  # the other tables' root pages are past this image
        return {str(k): v for k, v in conn.execute("SELECT key, value FROM snaplab_volume")}
    except sqlite3.Error:
        return {}
    finally:
        conn.close()


PROBE = 16 * 1024


def pack(data: bytes) -> bytes:
    """sqlar's data column: the zlib stream when smaller than the content (sqlite3 -A's rule).
    Content whose first 16 KiB do not compress (random or already compressed data) is stored as it is
    without compressing it all first."""
    if len(data) > 4096 and len(zlib.compress(data[:PROBE], 1)) > min(len(data), PROBE) * 0.97:
        return data
    z = zlib.compress(data)
    return z if len(z) < len(data) else data


def unpack(sz: int, data: bytes | str | None) -> bytes:
    """The content of an sqlar row (ValueError when data and size disagree)."""
    if isinstance(data, str):
        data = data.encode()
    if data is None:
        if sz not in (0, -1):
            raise ValueError("no data")
        return b""
    if sz == -1 or len(data) == sz:
        return bytes(data)
    if len(data) > sz:
        raise ValueError("data longer than its size")
    out = zlib.decompress(data)
    if len(out) != sz:
        raise ValueError("size mismatch")
    return out


def safe_name(name: object) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


# ============================================================================ the working copy
def open_db(path: Path, max_pages: int | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA synchronous=OFF")  # the working copy is a cache: the volume is the truth
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute(
        "PRAGMA secure_delete=OFF"
    )  # a deleted file's blocks are freed, not rewritten (Debian's default is ON)
    conn.execute("PRAGMA auto_vacuum=NONE")
    if max_pages:
        conn.execute(f"PRAGMA max_page_count={max_pages}")
    return conn


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


@dataclass
class Rec:
    """What the last sync recorded of one entry of the mount folder."""

    kind: str  # f, d, l
    size: int
    mtime_ns: int
    perm: int
    hash: bytes | None = None
    target: str = ""
    synced: int = 0  # time.time_ns() of the sync that recorded it


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return None


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
                k = _kind(st.st_mode)
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
class Session:
    """A volume whose file system is mounted on this host."""

    key: tuple[str, str, int]
    guid: str
    db: Path
    root: Path  # the folder holding the files: the first mount point's, or the parked one
    parked: Path
    pages: int  # pages of the database on the volume
    digests: bytearray
    size: int
    label: str = ""
    serial: str = ""
    known: dict[str, Rec] = field(default_factory=dict)
    points: list[str] = field(default_factory=list)  # presented mount points; points[0] owns root
    pending: set[int] = field(default_factory=set)  # changed pages an interrupted flush did not write


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
        k = _kind(st.st_mode)
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
        k = _kind(st.st_mode) or "f"
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


# ============================================================================ the file system
class SqlarFileSystem:
    """The file system of one host's volumes (module docstring)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.cache = host.state / "fscache"
        self.debug = host.state / "debug"
        if self.cache.is_dir():
            _rmtree(self.cache)  # a new agent reads every volume anew
        self.cache.mkdir(parents=True, exist_ok=True)
        self.sessions: dict[tuple[str, str, int], Session] = {}

    # -- formatting and identification -----------------------------------------------------------
    def format_volume(self, volume: Volume, label: str = "", quick: bool = True) -> BootInfo:
        if volume.local:
            raise PermissionError("the system volume cannot be formatted")
        self._drop(volume)
        serial = int.from_bytes(os.urandom(4), "little") or 1
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            path = Path(tmp) / "new.db"
            new_database(path, label, serial)
            image = path.read_bytes()
        if len(image) > volume.size:
            raise CommandError(E.DISK_OPERATION, detail="the volume is too small for a file system")
        if not quick:  # a full format also clears what the old file system left behind
            try:
                old = read_header(volume)
            except (NotFormatted, CommandError):
                old = 0
            end = min(max(old * PAGE, 2 * PAGE), volume.size)
            for off in range(len(image), end, WRITE_CHUNK):
                volume.write(off, bytes(min(WRITE_CHUNK, end - off)))
        volume.write(0, image)
        return BootInfo(FS_NAME, label, serial_text(serial), volume.size)

    def info(self, volume: Volume) -> BootInfo | None:
        if volume.local:
            return BootInfo(FS_NAME, "", "0000-0001", volume.size)
        s = self.sessions.get(volume.key)
        if s is not None:
            return BootInfo(FS_NAME, s.label, s.serial, volume.size)
        try:
            if volume.size < 2 * PAGE:
                return None
            head = volume.read(0, 2 * PAGE)
        except Exception:  # noqa: BLE001 - an unreadable volume (any failure) is not a formatted one
            return None
        if header_pages(head) is None:
            return None
        meta = volume_meta(head)
        return BootInfo(FS_NAME, str(meta.get("label") or ""), _serial(meta.get("serial")), volume.size)

    def is_formatted(self, volume: Volume) -> bool:
        if volume.local or volume.key in self.sessions:
            return True
        try:
            read_header(volume)
            return True
        except Exception:  # noqa: BLE001
            return False

    # -- mounting --------------------------------------------------------------------------------
    def mounted(self, volume: Volume) -> bool:
        return volume.key in self.sessions

    def attach(self, volume: Volume) -> None:
        """Mount the volume's file system (read it into the cache); iSM13639 when it is not normal."""
        if volume.key in self.sessions:
            return
        if volume.local or not volume.disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        try:
            self._load(volume)
        except (NotFormatted, Damaged) as exc:
            log.info("%s is not mountable: %s", volume.name, exc or type(exc).__name__)
            raise CommandError(E.PATH_NOT_NORMAL) from None

    def _files(self, guid: str) -> tuple[Path, Path]:
        return self.cache / f"{guid}.db", self.cache / f"{guid}.files"

    def _load(self, volume: Volume) -> Session:
        db, parked = self._files(volume.guid)
        _remove_db(db)
        _clear(parked)
        try:
            pages, digests = read_image(volume, db)
            conn = open_db(db, volume.size // PAGE)
            try:
                problems = _quick_check(conn)
                if problems:
                    raise Damaged("; ".join(problems[:3]))
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
                if "sqlar" not in tables:
                    raise Damaged("no sqlar table")
                meta = (
                    dict(conn.execute("SELECT key, value FROM snaplab_volume"))
                    if "snaplab_volume" in tables
                    else {}
                )
                t0 = time.time_ns()
                parked.mkdir(parents=True)
                known = extract(conn, parked, "snaplab_files" in tables, t0)
            finally:
                conn.close()
        except BaseException:
            _remove_db(db)
            _clear(parked)
            raise
        s = Session(
            volume.key,
            volume.guid,
            db,
            parked,
            parked,
            pages,
            digests,
            volume.size,
            label=str(meta.get("label") or ""),
            serial=_serial(meta.get("serial")),
            known=known,
        )
        self.sessions[volume.key] = s
        log.info("%s mounted: %d pages, %d entries", volume.name, pages, len(known))
        return s

    def mount(self, volume: Volume, mount_point: str) -> Path:
        """Show the volume's files at ``mount_point`` (mounting its file system first if needed). A
        volume whose file system is not normal gets an empty folder: no files to show (iSM13639 on
        flush; CHKDSK /F repairs it)."""
        path = self.host.mount_path(mount_point)
        s = self.sessions.get(volume.key)
        if s is None:
            try:
                self.attach(volume)
            except CommandError:
                _clear(path)
                path.mkdir(parents=True, exist_ok=True)
                return path
            s = self.sessions[volume.key]
        self._present(s, mount_point)
        return path

    def _present(self, s: Session, mp: str) -> None:
        path = self.host.mount_path(mp)
        if any(self.host.mount_path(p) == path for p in s.points):
            if not os.path.lexists(path):  # someone removed it: show it again
                if s.root == path:
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    os.symlink(s.root, path)
            return
        if path == s.root:
            s.points.insert(0, mp)
            return
        _clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not s.points:
            os.rename(s.root, path)
            s.root = path
            s.points = [mp]
        else:
            os.symlink(s.root, path)
            s.points.append(mp)

    def _withdraw(self, s: Session, mp: str) -> None:
        path = self.host.mount_path(mp)
        match = next((p for p in s.points if self.host.mount_path(p) == path), None)
        if match is None:
            _clear(path)
            return
        s.points.remove(match)
        if path != s.root:
            _clear(path)
            return
        if s.points:
            new = self.host.mount_path(s.points[0])
            _clear(new)
            os.rename(s.root, new)
            s.root = new
            for other in s.points[1:]:
                link = self.host.mount_path(other)
                _clear(link)
                os.symlink(new, link)
        else:
            _clear(s.parked)
            os.rename(s.root, s.parked)
            s.root = s.parked

    def unmount(self, volume: Volume, force: bool = False, mount_point: str | None = None) -> None:
        """With ``mount_point``: remove that mount point only (the file system stays mounted). Without:
        dismount — flush first unless ``force`` (the cache is then discarded), remove every folder."""
        s = self.sessions.get(volume.key)
        if mount_point is not None:
            if s is not None:
                self._withdraw(s, mount_point)
            else:
                _clear(self.host.mount_path(mount_point))
            return
        if s is not None and not force:
            self.flush(volume)
        for mp in list(volume.mount_points) + (list(s.points) if s else []):
            _clear(self.host.mount_path(mp))
        self._drop(volume)

    def _drop(self, volume: Volume) -> None:
        s = self.sessions.pop(volume.key, None)
        db, parked = self._files(volume.guid)
        if s is not None:
            for mp in s.points:
                _clear(self.host.mount_path(mp))
            _clear(s.root)
            db = s.db
            parked = s.parked
        _remove_db(db)
        _clear(parked)

    # -- flushing ----------------------------------------------------------------------------------
    def flush(self, volume: Volume) -> FlushStats:
        """Write what changed in the mount folder to the volume (module docstring). iSM13639 when the
        file system is not mounted (not normal) or the disk is not Ready."""
        s = self.sessions.get(volume.key)
        if s is None or volume.local or not volume.disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
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
        self._write_pages(volume, s, dirty, stats)
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

    def _stop_after(self) -> int | None:
        hook = self.debug / STOP_HOOK
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

    def _write_pages(self, volume: Volume, s: Session, dirty: set[int] | None, stats: FlushStats) -> None:
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
        stop = self._stop_after() if order else None
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

    # -- CHKDSK ------------------------------------------------------------------------------------
    def check(self, volume: Volume, fix: bool = False) -> tuple[int, list[str]]:
        """CHKDSK: (exit status, report lines). 0 no problems; 1 problems found and fixed (/F);
        3 problems found and not fixed (no /F), or the volume is RAW or unreadable."""
        if volume.local:
            return 0, _report_head("", fix) + _stages(0, 0) + _clean_tail() + _space(volume.size, 0, 0)
        try:
            n = read_header(volume)
        except NotFormatted:
            return 3, ["The type of the file system is RAW.", "CHKDSK is not available for RAW drives."]
        meta = volume_meta(volume.read(0, 2 * PAGE)) if volume.size >= 2 * PAGE else {}
        label = str(meta.get("label") or "")
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
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
            had_session = volume.key in self.sessions
            points = list(volume.mount_points)
            self._drop(volume)  # the cache no longer matches the volume
            if had_session:
                lines.append("Volume dismounted.  All opened handles to this volume are now invalid.")
            rebuilt = Path(tmp) / "rebuilt.db"
            rebuild(rebuilt, scan, label, meta.get("serial"))
            image = rebuilt.read_bytes()
            if len(image) > volume.size:
                lines += ["Insufficient disk space to recover lost files.", "CHKDSK cannot continue."]
                return 3, lines
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
                self.mount(volume, mp)
            except CommandError as exc:
                log.warning("remount of %s at %s after CHKDSK failed: %s", volume.name, mp, exc)
        return 1, lines


def _serial(value: object) -> str:
    try:
        return serial_text(int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "0000-0000"


def _remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def _rmtree(path: Path) -> None:
    """shutil.rmtree that also removes what read-only folders (a file's mode from the volume) hold."""

    def retry(func: Callable[..., object], name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            func(name)

    shutil.rmtree(path, onerror=retry)


def _clear(path: Path) -> None:
    """Remove a mount folder, a symbolic link to one, or nothing."""
    if os.path.islink(path):
        os.unlink(path)
    elif path.is_dir():
        _rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_pages(dev: Device, dest: Path, n: int) -> None:
    with open(dest, "wb") as f:
        f.writelines(dev.read(off, min(READ_CHUNK, n * PAGE - off)) for off in range(0, n * PAGE, READ_CHUNK))


def _quick_check(conn: sqlite3.Connection) -> list[str]:
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def _sql_check(img: Path) -> list[str]:
    """quick_check, then integrity_check, of a copy of the image: SQLite's own words for problems."""
    conn = sqlite3.connect(f"file:{img}?mode=ro", uri=True)
    try:
        problems = _quick_check(conn)
        if not problems:
            try:
                rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
            except sqlite3.DatabaseError as exc:
                rows = [str(exc)]
            problems = [] if rows == ["ok"] else rows
        return [f"Corruption found in the file system structure: {p}" for p in problems]
    finally:
        conn.close()


# ============================================================================ extraction
def _write_file(path: str, content: bytes, perm: int, mt: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, perm)
        os.utime(fd, ns=(mt, mt))
    finally:
        os.close(fd)


def extract(conn: sqlite3.Connection, root: Path, has_files: bool, t0: int) -> dict[str, Rec]:
    """Write every entry of the archive under ``root`` (mode, exact mtime); returns the records.
    Damaged when an entry's data does not match its size or its recorded hash."""
    q = (
        "SELECT s.name, s.mode, s.mtime, s.sz, s.data, f.mtime_ns, f.hash FROM sqlar s "
        "LEFT JOIN snaplab_files f ON f.name = s.name ORDER BY s.name"
        if has_files
        else "SELECT name, mode, mtime, sz, data, NULL, NULL FROM sqlar ORDER BY name"
    )
    known: dict[str, Rec] = {}
    dirs: list[tuple[str, int, int]] = []
    links: list[tuple[str, str, int]] = []
    made: set[str] = {""}

    def folder(name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent not in made:
            (root / parent).mkdir(parents=True, exist_ok=True)
            made.update(_parents(name))

    for name, mode, mtime, sz, data, mtime_ns, h in conn.execute(q):
        if not safe_name(name):
            log.warning("archive entry %r skipped: not a relative path", name)
            continue
        mode = int(mode or 0)
        k = _kind(mode) or "f"
        mt = int(mtime_ns) if mtime_ns is not None else int(mtime or 0) * 1_000_000_000
        if k == "d":
            (root / name).mkdir(parents=True, exist_ok=True)
            made.add(name)
            made.update(_parents(name))
            dirs.append((name, stat.S_IMODE(mode), mt))
            continue
        try:
            content = unpack(int(sz if sz is not None else 0), data)
        except (ValueError, zlib.error) as exc:
            raise Damaged(f"entry {name}: {exc}") from None
        if k == "l":
            links.append((name, content.decode(errors="surrogateescape"), mt))
            continue
        digest_ = file_hash(content)
        if h is not None and bytes(h) != digest_:  # the row's data is not what was written for it
            raise Damaged(f"entry {name}: content does not match its hash")
        folder(name)
        perm = stat.S_IMODE(mode) or 0o644
        _write_file(str(root / name), content, perm, mt)
        known[name] = Rec("f", len(content), mt, perm, digest_, synced=t0)
    for name, target, mt in links:
        path = root / name
        if any(n in known and known[n].kind == "l" for n in _parents(name)) or os.path.lexists(path):
            continue
        folder(name)
        os.symlink(target, path)
        with contextlib.suppress(OSError):
            os.utime(path, ns=(mt, mt), follow_symlinks=False)
        known[name] = Rec("l", 0, mt, 0o777, target=target, synced=t0)
    for name, perm, mt in sorted(dirs, key=lambda d: -d[0].count("/")):
        path = root / name
        with contextlib.suppress(OSError):
            os.chmod(path, perm or 0o755)
            os.utime(path, ns=(mt, mt))
        st = os.lstat(path)
        known[name] = Rec("d", 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), synced=t0)
    # folders without a row of their own (a foreign archive) are new entries for the next flush
    return known


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


# ============================================================================ CHKDSK: scavenging
def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = 0
    for k in range(8):
        c = b[i + k]
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, i + k + 1
    return (v << 8) | b[i + 8], i + 9


def _record(payload: bytes) -> list[object]:
    """The values of an SQLite record (https://sqlite.org/fileformat2.html#record_format)."""
    hsize, i = _varint(payload, 0)
    types = []
    while i < hsize:
        t, i = _varint(payload, i)
        types.append(t)
    pos, out = hsize, []
    sizes = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 7: 8, 8: 0, 9: 0}
    for t in types:
        if t in (0,):
            out.append(None)
        elif 1 <= t <= 6:
            n = sizes[t]
            out.append(int.from_bytes(payload[pos : pos + n], "big", signed=True))
            pos += n
        elif t == 7:
            out.append(struct.unpack(">d", payload[pos : pos + 8])[0])
            pos += 8
        elif t in (8, 9):
            out.append(t - 8)
        elif t >= 12:
            n = (t - 12) // 2
            raw = payload[pos : pos + n]
            if len(raw) != n:
                raise ValueError("record truncated")
            out.append(bytes(raw) if t % 2 == 0 else raw.decode("utf-8", errors="replace"))
            pos += n
        else:
            raise ValueError("reserved serial type")
    if pos > len(payload):
        raise ValueError("record truncated")
    return out


@dataclass
class Candidate:
    name: str
    mode: int
    mtime: int
    sz: int
    data: bytes | None
    content: bytes
    page: int

    @property
    def kind(self) -> str:
        return _kind(self.mode) or "f"


@dataclass
class Scan:
    records: int = 0
    index_entries: int = 0
    problems: list[str] = field(default_factory=list)
    recovered: dict[str, Candidate] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    mtimes: dict[str, int] = field(default_factory=dict)
    volume: dict[str, object] = field(default_factory=dict)


class _Pages:
    """Pages of an image file, and beyond its end the volume's (overflow chains of a torn flush)."""

    def __init__(self, img: Path, n: int, dev: Device | None) -> None:
        self.f = open(img, "rb")  # noqa: SIM115 - closed by close()
        self.n = n
        self.dev = dev
        self.limit = (dev.size // PAGE) if dev is not None else n
        self.extra: dict[int, bytes] = {}

    def get(self, p: int) -> bytes | None:
        if p < 1 or p > self.limit:
            return None
        if p <= self.n:
            self.f.seek((p - 1) * PAGE)
            return self.f.read(PAGE)
        if p not in self.extra:
            try:
                self.extra[p] = self.dev.read((p - 1) * PAGE, PAGE)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - an unreadable page is a lost one
                return None
        return self.extra[p]

    def close(self) -> None:
        self.f.close()


def _freelist(pages: _Pages) -> set[int]:
    p1 = pages.get(1)
    if p1 is None:
        return set()
    trunk = struct.unpack_from(">I", p1, 32)[0]
    free: set[int] = set()
    seen = 0
    while trunk and seen < pages.n and trunk not in free:
        page = pages.get(trunk)
        if page is None:
            break
        free.add(trunk)
        nxt, leaves = struct.unpack_from(">II", page, 0)
        if leaves > (PAGE // 4) - 2:
            break
        for k in range(leaves):
            free.add(struct.unpack_from(">I", page, 8 + 4 * k)[0])
        trunk = nxt
        seen += 1
    return free  # the header's count is not trusted: a torn flush can leave it stale


def _payload(pages: _Pages, page: bytes, off: int, index: bool) -> tuple[bytes, int]:
    """(payload, rowid or -1) of the cell at ``off`` of a leaf page, overflow chain followed."""
    size, i = _varint(page, off)
    rowid = -1
    if not index:
        rowid, i = _varint(page, i)
    u = PAGE
    x = u - 35 if not index else ((u - 12) * 64 // 255) - 23
    if size <= x:
        local = size
    else:
        m = ((u - 12) * 32 // 255) - 23
        k = m + ((size - m) % (u - 4))
        local = k if k <= x else m
    data = bytearray(page[i : i + local])
    if len(data) != local:
        raise ValueError("cell runs past its page")
    if local < size:
        nxt = struct.unpack_from(">I", page, i + local)[0]
        seen: set[int] = set()
        while len(data) < size:
            if nxt in seen:
                raise ValueError("overflow chain loops")
            seen.add(nxt)
            ov = pages.get(nxt)
            if ov is None:
                raise ValueError(f"overflow page {nxt} is outside the volume")
            nxt = struct.unpack_from(">I", ov, 0)[0]
            data += ov[4 : 4 + min(u - 4, size - len(data))]
    return bytes(data), rowid


def _cells(page: bytes, p: int) -> tuple[int, list[int]]:
    base = 100 if p == 1 else 0
    kind = page[base]
    if kind not in (0x0D, 0x0A):
        return kind, []
    count = struct.unpack_from(">H", page, base + 3)[0]
    ptrs = []
    for k in range(count):
        at = base + 8 + 2 * k
        if at + 2 > len(page):
            break
        o = struct.unpack_from(">H", page, at)[0]
        if 0 < o < len(page):
            ptrs.append(o)
    return kind, ptrs


def _volume_table_pages(pages: _Pages) -> set[int]:
    """Root pages of snaplab_volume and its index (one page each: the table holds a few rows), from
    the schema on page 1; pages 2 and 3 (where ``new_database`` puts them) when it cannot be read."""
    found: set[int] = set()
    page = pages.get(1)
    if page is not None:
        kind, ptrs = _cells(page, 1)
        for off in ptrs if kind == 0x0D else []:
            try:
                values = _record(_payload(pages, page, off, False)[0])
            except (ValueError, IndexError, struct.error):
                continue
            if len(values) == 5 and values[2] == "snaplab_volume" and isinstance(values[3], int):
                found.add(values[3])
    return found or {2, 3}


def scavenge(img: Path, n: int, dev: Device | None = None) -> Scan:
    """Every row still readable in the image, page by page (what ``.recover`` does): sqlar rows
    (checked against their size and, when known, their content hash), snaplab_files rows, the names
    the indexes still hold. Decides what is recovered, what is an orphan (a file no index names:
    recovered under found.000/) and what is lost (named by an index or by a readable-but-broken row,
    with no good copy)."""
    scan = Scan()
    pages = _Pages(img, n, dev)
    try:
        free = _freelist(pages)
        vol_pages = _volume_table_pages(pages)
        cands: dict[str, list[Candidate]] = {}
        hashes: dict[str, set[bytes]] = {}
        broken: set[str] = set()
        named: set[str] = set()
        for p in range(1, n + 1):
            if p in free:
                continue
            page = pages.get(p)
            if page is None:
                continue
            kind, ptrs = _cells(page, p)
            for off in ptrs:
                try:
                    payload, _rowid = _payload(pages, page, off, kind == 0x0A)
                    values = _record(payload)
                except (ValueError, IndexError, struct.error, UnicodeDecodeError):
                    continue
                if kind == 0x0A:
                    if p in vol_pages:
                        continue
                    if len(values) == 2 and isinstance(values[0], str) and isinstance(values[1], int):
                        named.add(values[0])
                        scan.index_entries += 1
                    continue
                if len(values) == 2 and isinstance(values[0], str) and p in vol_pages:
                    scan.volume[values[0]] = values[1]
                elif len(values) == 3 and isinstance(values[0], str) and isinstance(values[1], int):
                    if isinstance(values[2], bytes) and len(values[2]) == DIGEST:
                        hashes.setdefault(values[0], set()).add(values[2])
                    scan.mtimes.setdefault(values[0], values[1])
                elif (
                    len(values) == 5
                    and isinstance(values[0], str)
                    and all(isinstance(v, int) for v in values[1:4])
                    and (values[4] is None or isinstance(values[4], (bytes, str)))
                    and _kind(int(values[1])) is not None  # type: ignore[arg-type]
                ):
                    name, mode, mtime, sz, data = values
                    scan.records += 1
                    if not safe_name(name):
                        continue
                    try:
                        content = b"" if _kind(int(mode)) == "d" else unpack(int(sz), data)  # type: ignore[arg-type]
                    except (ValueError, zlib.error):
                        broken.add(name)  # type: ignore[arg-type]
                        continue
                    raw = data.encode() if isinstance(data, str) else data
                    cands.setdefault(name, []).append(  # type: ignore[arg-type]
                        Candidate(name, int(mode), int(mtime), int(sz), raw, content, p)  # type: ignore[arg-type]
                    )
        # the file records: pick a good copy of every name
        for name, cs in cands.items():
            good = [
                c for c in cs if c.kind != "f" or name not in hashes or file_hash(c.content) in hashes[name]
            ]
            if not good:
                broken.add(name)
                continue
            best = max(good, key=lambda c: (c.mtime, c.page))
            scan.recovered[name] = best
        for name in sorted(broken - set(scan.recovered)):
            scan.problems.append(f"File record for {name} is corrupt.")
        for name in sorted(named - set(scan.recovered) - broken):
            scan.problems.append(f"Index entry {name} points to a missing file record.")
        missing = (named | broken) - set(scan.recovered)
        folders = {q for n2 in named | broken | set(scan.recovered) for q in _parents(n2)}
        scan.lost = sorted(missing - folders)  # a lost name that other names sit under is a folder
        scan.orphans = sorted(
            n2 for n2, c in scan.recovered.items() if named and n2 not in named and c.kind != "d"
        )
        for name in scan.orphans:
            scan.problems.append(f"File record for {name} is not in any index (orphan).")
    finally:
        pages.close()
    return scan


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


# ============================================================================ CHKDSK layout
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


# ============================================================================ export
def export_partition(
    read: Callable[[int, int], bytes], capacity: int, partition: int, dest: Path, *, whole: bool = False
) -> int:
    """Write partition ``partition`` (DISKPART's number) of a disk read through ``read(offset, length)``
    to ``dest``: its database (the header's page count), or every byte with ``whole``. Returns the size.
    ValueError when there is no such partition or it holds no file system (and not ``whole``)."""
    from snaplab.agent import partitions as pt

    layout = pt.read_layout(read, capacity)
    part = next((p for p in layout.volumes() if p.number == partition), None)
    if part is None:
        raise ValueError(
            f"no partition {partition} with a volume (partitions: {[p.number for p in layout.volumes()]})"
        )
    start, size = part.start * pt.SECTOR, part.sectors * pt.SECTOR
    if not whole:
        n = header_pages(read(start, 100)) if size >= 100 else None
        if n is None:
            raise ValueError(f"partition {partition} holds no file system (RAW); --whole exports its bytes")
        size = min(size, n * PAGE)
    with open(dest, "wb") as f:
        f.writelines(read(start + off, min(READ_CHUNK, size - off)) for off in range(0, size, READ_CHUNK))
    return size


# ============================================================================ holders
def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def holders(paths: list[Path]) -> list[tuple[int, str]]:
    """(pid, command name) of every process of this machine with its working folder or an open file
    under one of ``paths``; the calling process itself is not counted."""
    roots = [os.path.realpath(p) for p in paths]
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        base = f"/proc/{entry}"
        hit = False
        try:
            hit = _under(os.readlink(f"{base}/cwd"), roots)
        except OSError:
            pass
        if not hit:
            try:
                fds = os.listdir(f"{base}/fd")
            except OSError:
                fds = []
            for fd in fds:
                try:
                    if _under(os.readlink(f"{base}/fd/{fd}"), roots):
                        hit = True
                        break
                except OSError:
                    continue
        if hit:
            try:
                comm = Path(f"{base}/comm").read_text().strip()
            except OSError:
                comm = "?"
            out.append((int(entry), comm))
    return out
