"""A mount's read of the volume and extraction of its files into the mount folder.

``mount_image`` streams the database from the array into the working copy (the array reads ahead
while the host works) and, while the rest is still arriving, reads the rows of ``sqlar`` from the
pages already written (btree.py: no SQLite, no copy of the content) and hands the files to WORKERS
threads that unpack, check and write them. ``snaplab_files`` (exact mtimes, hashes) is read first:
its few pages are fetched out of turn. When the whole image is there, SQLite checks it
(quick_check) and counts the rows; only then is the mount good: a database that fails the check
fails the mount (the caller removes the folder), whatever was extracted. A database the reader does
not read (not this file system's tables, or one that does not parse), a count that disagrees, a
page fetched out of turn that the stream brought changed, or a file whose check fails in the
streamed pass is extracted again through SQLite (``extract``), which decides: so the streamed pass
never makes a mount succeed or fail that SQLite's pass would not. Every file is checked against its
recorded hash on both paths before the mount succeeds.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import xxhash
from isal import isal_zlib

from snaplab.agent.fs import btree
from snaplab.agent.fs.archive import (
    DIGEST,
    IMAGE_CHUNK,
    PAGE,
    Damaged,
    Device,
    entry_kind,
    page_digest,
    parents,
    quick_check,
    read_header,
    safe_name,
    unpack,
)
from snaplab.agent.fs.session import Rec, open_db

log = logging.getLogger("snaplab.agent.filesystem")

MMAP = 1 << 40  # the working copy is read through a mapping (no copy per page read)
WORKERS = 2  # threads that unpack, check and write files while the rows are read (ISA-L, XXH3, write release the GIL)
AHEAD = 64 * 1024 * 1024  # bytes of rows handed to them and not yet written, at most
BATCH_FILES, BATCH_BYTES = 32, 2 * 1024 * 1024  # files per worker task, at most
IOV_MAX = 1024  # pieces per writev (Linux's limit)

Data = bytes | str | list[memoryview] | None  # a row's data: as SQLite gives it, or pieces of pages (btree.py)
Row = tuple[Any, Any, Any, Any, Data]  # name, mode, mtime, sz, data


def _umask() -> int | None:
    """The process's umask (Linux: /proc/self/status; ``os.umask`` would change it for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _write_file(path: str, content: bytes | list[memoryview], perm: int, mt: int, umask: int | None) -> None:
    """Create ``path`` with ``content``, ``perm`` and mtime ``mt``: created with its mode (a read-only
    one still lets this descriptor write), chmod only when the umask would take bits off."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, perm | 0o200)
    try:
        parts = [content] if isinstance(content, bytes) else content
        for i in range(0, len(parts), IOV_MAX):  # a file's pieces in one call (each call hands the GIL on)
            group = parts[i : i + IOV_MAX]
            done = os.writev(fd, group) if len(group) > 1 else os.write(fd, group[0])
            if done < sum(len(p) for p in group):  # a short write (rare): the rest from where it stopped
                rest = memoryview(b"".join(group))[done:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
        if umask is None or perm & umask or not perm & 0o200:
            os.fchmod(fd, perm)
        os.utime(fd, ns=(mt, mt))
    finally:
        os.close(fd)


def _content(sz: int, data: Data) -> bytes | list[memoryview]:
    """A file row's content (archive.unpack; pieces of pages stay pieces when stored as they are)."""
    if not isinstance(data, list):
        return unpack(sz, data)
    n = sum(len(p) for p in data)
    if sz == -1 or n == sz:
        return data
    if n > sz:
        raise ValueError("data longer than its size")
    try:
        out = isal_zlib.decompress(data[0] if len(data) == 1 else b"".join(data), bufsize=sz)
    except isal_zlib.error as exc:
        raise ValueError(f"zlib stream: {exc}") from None
    if len(out) != sz:
        raise ValueError("size mismatch")
    return out


def _hashes(content: bytes | list[memoryview], legacy: bool) -> bytes:
    """XXH3-64 of the content (format 2), or BLAKE2b-128 (``legacy``: format 1's recorded hashes)."""
    parts = [content] if isinstance(content, bytes) else content
    if not legacy and len(parts) == 1:
        return xxhash.xxh3_64_digest(parts[0])
    h = hashlib.blake2b(digest_size=DIGEST) if legacy else xxhash.xxh3_64()
    for p in parts:
        h.update(p)
    return h.digest()


Job = tuple[str, str, int, Data, "bytes | None", int, int]  # name, path, sz, data, recorded hash, perm, mtime


def _unpack_files(jobs: list[Job], umask: int | None) -> list[tuple[int, bytes]]:
    return [_unpack_file(*job, umask) for job in jobs]


def _unpack_file(
    name: str, path: str, sz: int, data: Data, h: bytes | None, perm: int, mt: int, umask: int | None
) -> tuple[int, bytes]:
    """One file row: its content checked (size, zlib stream, recorded hash) and written; returns
    (size, its hash as a flush compares it). Damaged when the row is not what was written for it."""
    try:
        content = _content(sz, data)
    except (ValueError, zlib.error) as exc:
        raise Damaged(f"entry {name}: {exc}") from None
    legacy = h is not None and len(h) == DIGEST
    if h is not None and _hashes(content, legacy) != h:
        raise Damaged(f"entry {name}: content does not match its hash")
    _write_file(path, content, perm, mt, umask)
    size = len(content) if isinstance(content, bytes) else sum(len(p) for p in content)
    return size, h if h is not None and not legacy else _hashes(content, False)


_gc_lock = threading.Lock()
_gc_paused = 0  # extractions running with the cyclic collector paused by them


@contextlib.contextmanager
def _gc_paused_while() -> Iterator[None]:
    """The cyclic garbage collector paused while a volume's files are read and extracted: a mount
    allocates ~100,000 containers (rows, jobs, records) that stay alive or die by reference count,
    and each of the ~80 collections they set off held the GIL the workers wait for (20-100 ms a
    mount, a full one 40-50 ms). Enabled again when the last extraction running ends, unless
    something else had it disabled."""
    global _gc_paused
    with _gc_lock:
        if _gc_paused == 0 and not gc.isenabled():
            owner = False
        else:
            owner = True
            _gc_paused += 1
            gc.disable()
    try:
        yield
    finally:
        if owner:
            with _gc_lock:
                _gc_paused -= 1
                if _gc_paused == 0:
                    gc.enable()


def extract(conn: sqlite3.Connection, root: Path, has_files: bool, t0: int) -> dict[str, Rec]:
    """Write every entry of the archive under ``root`` (mode, exact mtime) through SQLite; returns
    the records. Damaged when an entry's data does not match its size or its recorded hash. Rows are
    read in their table's order (the file's order, no index lookups)."""
    with _gc_paused_while():
        return _extract(conn, root, has_files, t0)


def _extract(conn: sqlite3.Connection, root: Path, has_files: bool, t0: int) -> dict[str, Rec]:
    conn.execute(f"PRAGMA mmap_size={MMAP}")
    files: dict[str, tuple[int | None, bytes | None]] = {}
    if has_files:
        for name, mtime_ns, h in conn.execute("SELECT name, mtime_ns, hash FROM snaplab_files"):
            files[name] = (mtime_ns, None if h is None else bytes(h))
    rows = conn.execute("SELECT name, mode, mtime, sz, data FROM sqlar")
    return write_entries(rows, lambda name: files.get(name, (None, None)), root, t0)


def write_entries(
    rows: Iterable[Row], recorded: Callable[[str], tuple[Any, bytes | None]], root: Path, t0: int
) -> dict[str, Rec]:
    """The entries of ``rows`` written under ``root``; ``recorded(name)`` is the file's snaplab_files
    row (exact mtime, hash) or (None, None). Folders are made as entries need them; files are
    unpacked, checked and written by WORKERS threads in the meantime."""
    known: dict[str, Rec] = {}
    dirs: list[tuple[str, int, int]] = []
    links: list[tuple[str, str, int]] = []
    made: set[str] = {""}
    base = str(root) + "/"
    umask = _umask()
    # files go to the workers in batches (one future per batch, not per file: that bookkeeping holds the GIL)
    queue: collections.deque[tuple[list[Job], int, Future[list[tuple[int, bytes]]]]] = collections.deque()
    batch: list[Job] = []
    batch_bytes = ahead = 0

    def folder(name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent not in made:
            os.makedirs(base + parent, exist_ok=True)
            made.update(parents(name))

    def settle() -> int:
        jobs, size, fut = queue.popleft()
        for job, (n, digest_) in zip(jobs, fut.result()):
            known[job[0]] = Rec("f", n, job[6], job[5], digest_, synced=t0)
        return size

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="mount") as pool:

        def send() -> None:
            nonlocal batch, batch_bytes, ahead
            queue.append((batch, batch_bytes, pool.submit(_unpack_files, batch, umask)))
            ahead += batch_bytes
            batch, batch_bytes = [], 0
            while ahead > AHEAD and queue:
                ahead -= settle()

        try:
            for name, mode, mtime, sz, data in rows:
                if not safe_name(name):
                    log.warning("archive entry %r skipped: not a relative path", name)
                    continue
                mode = int(mode or 0)
                k = entry_kind(mode) or "f"
                mtime_ns, h = recorded(name)
                mt = int(mtime_ns) if mtime_ns is not None else int(mtime or 0) * 1_000_000_000
                sz = int(sz if sz is not None else 0)
                if k == "d":
                    os.makedirs(base + name, exist_ok=True)
                    made.add(name)
                    made.update(parents(name))
                    dirs.append((name, stat.S_IMODE(mode), mt))
                    continue
                if k == "l":
                    try:
                        target = unpack(sz, b"".join(data) if isinstance(data, list) else data)
                    except (ValueError, zlib.error) as exc:
                        raise Damaged(f"entry {name}: {exc}") from None
                    links.append((name, target.decode(errors="surrogateescape"), mt))
                    continue
                folder(name)
                batch.append((name, base + name, sz, data, h, stat.S_IMODE(mode) or 0o644, mt))
                batch_bytes += max(sz, 0)
                if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                    send()
            if batch:
                send()
            while queue:
                settle()
        except BaseException:
            for *_, fut in queue:
                fut.cancel()
            raise
    for name, target, mt in links:
        path = root / name
        if any(n in known and known[n].kind == "l" for n in parents(name)) or os.path.lexists(path):
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


def _stream_rows(pages: btree.Pages, dev: Device, count: list[int]) -> tuple[Iterator[Row], dict[Any, Any]]:
    """sqlar's rows as their pages arrive, and snaplab_files read first: a flush leaves its few
    pages anywhere (often near the end), so they are read from the volume at once, out of turn."""
    tree, sqlar_root, files_root = btree.open_tables(pages)
    files: dict[Any, tuple[Any, bytes | None]] = {}
    if files_root is not None:
        pages.fetch = lambda offset: dev.read(offset, PAGE)
        try:
            pages.prefetch(tree.leaves(files_root))
            for cell in tree.rows(files_root):
                name, mtime_ns, h = tree.record(cell, 3)
                files[name] = (mtime_ns, None if h is None else bytes(h))  # type: ignore[arg-type]
        finally:
            pages.fetch = None

    def sqlar() -> Iterator[Row]:
        for cell in tree.rows(sqlar_root):
            count[0] += 1
            yield tuple(tree.record(cell, 5, blob=4))  # type: ignore[misc]

    return sqlar(), files


def _chunks(dev: Device, total: int) -> Iterator[bytes | memoryview]:
    """The first ``total`` bytes of the device as they arrive (a Volume streams them; others are read
    in IMAGE_CHUNK calls)."""
    stream = getattr(dev, "read_chunks", None)
    if stream is not None:
        yield from stream(0, total)
        return
    for off in range(0, total, IMAGE_CHUNK):
        yield dev.read(off, min(IMAGE_CHUNK, total - off))


class _Reader(threading.Thread):
    """Streams the image into the working copy, keeps the page digests, tells ``pages`` how far it got;
    then opens the working copy and runs quick_check (while the workers still write files)."""

    def __init__(self, dev: Device, db: Path, fd: int, total: int, pages: btree.Pages) -> None:
        super().__init__(name="mount-read", daemon=True)
        self.dev, self.db, self.fd, self.total, self.pages = dev, db, fd, total, pages
        self.digests = bytearray()
        self.error: BaseException | None = None
        self.conn: sqlite3.Connection | None = None
        self.problems: list[str] = []

    def run(self) -> None:
        pos = 0
        tail = b""  # the start of a page split between two messages
        try:
            for chunk in _chunks(self.dev, self.total):
                view = memoryview(chunk)
                if pos + len(view) > self.total:
                    raise Damaged("the volume sent more than was asked")
                while view:
                    view = view[os.pwrite(self.fd, view, pos + len(chunk) - len(view)) :]
                mv = memoryview(tail + chunk) if tail else memoryview(chunk)
                whole = len(mv) - len(mv) % PAGE
                for p in range(0, whole, PAGE):
                    self.digests += page_digest(mv[p : p + PAGE])
                tail = bytes(mv[whole:])
                pos += len(chunk)
                self.pages.advance(pos)
            if pos != self.total:
                raise Damaged(f"the volume sent {pos} of {self.total} bytes")
        except BaseException as exc:  # noqa: BLE001 - handed to the mount's thread
            self.error = exc
            return
        finally:
            self.pages.stop()
        try:
            self.conn = open_db(self.db, self.dev.size // PAGE)
            # through a mapping: quick_check reads every page, and pread would copy each one (extract's setting)
            self.conn.execute(f"PRAGMA mmap_size={MMAP}")
            self.problems = quick_check(self.conn)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc


def archive_tables(conn: sqlite3.Connection, problems: list[str]) -> set[str]:
    """The tables of a working copy whose quick_check found ``problems``: Damaged if it found any, or
    if the database is no archive (no sqlar)."""
    if problems:
        raise Damaged("; ".join(problems[:3]))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    if "sqlar" not in tables:
        raise Damaged("no sqlar table")
    return tables


def mount_image(dev: Device, db: Path, root: Path, t0: int) -> tuple[int, bytearray, dict[str, Rec], sqlite3.Connection]:
    """Read the volume's database into ``db`` and extract its files under ``root`` (module docstring).
    Returns (pages, page digests as read, records, the working copy open and checked: quick_check
    passed). Damaged when the header's page count does not fit the volume, the database fails its
    check or an entry its size or hash."""
    with _gc_paused_while():
        return _mount_image(dev, db, root, t0)


def _mount_image(dev: Device, db: Path, root: Path, t0: int) -> tuple[int, bytearray, dict[str, Rec], sqlite3.Connection]:
    n = read_header(dev)
    if n * PAGE > dev.size:
        raise Damaged(f"the header says {n} pages, the volume holds {dev.size // PAGE}")
    fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        pages = btree.Pages(fd, n)
    except BaseException:
        os.close(fd)
        raise
    reader = _Reader(dev, db, fd, n * PAGE, pages)
    count = [0]
    streamed: dict[str, Rec] | None = None
    reader.start()
    try:
        try:
            rows, files = _stream_rows(pages, dev, count)
            streamed = write_entries(rows, lambda name: files.get(name, (None, None)), root, t0)
        except (btree.Unsupported, Damaged) as exc:
            log.info("%s: files extracted through SQLite (%s)", db.name, exc)
        except btree.Stopped:
            pass  # the reader's error says why
        finally:
            reader.join()
        if streamed is not None and reader.error is None and pages.early_differ():
            log.warning("%s: the volume changed while it was read: extracted again", db.name)
            streamed = None
    except BaseException:
        if reader.conn is not None:
            reader.conn.close()
        raise
    finally:
        pages.close()
        os.close(fd)
    conn = reader.conn
    if reader.error is not None or conn is None:
        if conn is not None:
            conn.close()
        raise reader.error or Damaged("the working copy was not opened")
    try:
        tables = archive_tables(conn, reader.problems)
        if streamed is not None and conn.execute("SELECT count(*) FROM sqlar").fetchone()[0] != count[0]:
            log.warning("%s: the streamed rows disagree with SQLite's count: extracted again", db.name)
            streamed = None
        if streamed is None:
            _empty(root)
            streamed = extract(conn, root, "snaplab_files" in tables, t0)
    except BaseException:
        conn.close()
        raise
    return n, reader.digests, streamed, conn


def rmtree(path: Path) -> None:
    """shutil.rmtree that also removes what read-only folders (a file's mode from the volume) hold."""

    def retry(func: Callable[..., object], name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            func(name)

    shutil.rmtree(path, onerror=retry)


def _empty(root: Path) -> None:
    """What a streamed pass left in ``root`` goes (the folder stays)."""
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            rmtree(Path(entry.path))
        else:
            os.unlink(entry.path)
