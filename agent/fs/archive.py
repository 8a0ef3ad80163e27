"""The on-volume format: an SQLite archive (``sqlar``) of 64 KiB pages in each partition.

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
``serial``, ``created``) and ``snaplab_files(name, mtime_ns, hash)`` (exact mtime in ns and a hash
of each file's content: its XXH3-64, 8 bytes, since format 2; volumes of format 1 hold BLAKE2b-128,
16 bytes, and a row's length says which: both are read, a flush writes XXH3-64 and marks the volume
format 2). The image on the volume is in rollback-journal mode (header
bytes 18-19 = 1) with a valid in-header page count, so ``sqlite3 image.db -A --list`` or Python's
``sqlite3`` open an exported partition as it is. To the Windows-flavoured commands this file
system is "NTFS" (FORMAT, DISKPART and CHKDSK print that name).
"""

from __future__ import annotations

import hashlib
import sqlite3
import stat
import struct
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

import xxhash
from isal import isal_zlib

PAGE = 64 * 1024  # SQLite page = array block
MAGIC = b"SQLite format 3\x00"
FS_NAME = "NTFS"  # what the Windows-flavoured commands call it
FORMAT_ID = "snaplab-sqlar/2"  # 2: file hashes are XXH3-64 (1: BLAKE2b-128, still read)
READ_CHUNK = 4 * 1024 * 1024
IMAGE_CHUNK = 16 * 1024 * 1024  # a mount reads the database in calls this large (fewer round trips)
WRITE_CHUNK = 4 * 1024 * 1024
DIGEST = 16
UNKNOWN = b"\xff" * DIGEST  # the digest a session keeps for a page whose content it does not know

VOLUME_DDL = "CREATE TABLE IF NOT EXISTS snaplab_volume(key TEXT PRIMARY KEY, value)"
SQLAR_DDL = "CREATE TABLE IF NOT EXISTS sqlar(name TEXT PRIMARY KEY, mode INT, mtime INT, sz INT, data BLOB)"
FILES_DDL = "CREATE TABLE IF NOT EXISTS snaplab_files(name TEXT PRIMARY KEY, mtime_ns INT, hash BLOB)"


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
    """BLAKE2b-128: the journal's digests (on the volume, journal.py)."""
    return hashlib.blake2b(page, digest_size=DIGEST).digest()


PAGE_DIGEST = "xxh3-128"  # the session's page digests (kept manifests name it, kept.py)


def page_digest(page: bytes) -> bytes:
    """What the host keeps of a page the volume holds (never on the volume): XXH3-128, ~15x BLAKE2b's
    speed, so a mount's digest of every page it reads costs little."""
    return xxhash.xxh3_128_digest(page)


def legacy_page_digest(page: bytes) -> bytes:
    """The page digest of agents before PAGE_DIGEST (kept manifests they wrote)."""
    return hashlib.blake2b(page, digest_size=DIGEST).digest()


def file_hash(data: bytes) -> bytes:
    """A file's hash as a flush records it (format 2): XXH3-64."""
    return xxhash.xxh3_64_digest(data)


FILE_HASH_SIZES = (8, DIGEST)  # XXH3-64 (format 2), BLAKE2b-128 (format 1)


def hash_matches(data: bytes, h: bytes) -> bool:
    """Whether ``data`` is the content ``h`` (a recorded hash of either format) was taken of."""
    if len(h) == DIGEST:  # format 1
        return hashlib.blake2b(data, digest_size=DIGEST).digest() == h
    return xxhash.xxh3_64_digest(data) == h


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
        for off in range(0, total, IMAGE_CHUNK):
            data = dev.read(off, min(IMAGE_CHUNK, total - off))
            mv = memoryview(data)
            for p in range(0, len(data), PAGE):
                digests += page_digest(mv[p : p + PAGE])
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
    try:  # ISA-L's inflate: the same zlib streams, ~2x zlib's speed, without the GIL
        out = isal_zlib.decompress(data)
    except isal_zlib.error as exc:
        raise ValueError(f"zlib stream: {exc}") from None
    if len(out) != sz:
        raise ValueError("size mismatch")
    return out


def safe_name(name: object) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or "\x00" in name:
        return False
    parts = name.split("/")  # list membership: a mount asks this of every entry
    return "" not in parts and "." not in parts and ".." not in parts


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """SQLite's quick_check of an open archive: [] when it is sound, else its words for each problem."""
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def entry_kind(mode: int) -> str | None:
    """The kind of an sqlar entry by its ``mode``: f (regular file), d (folder), l (symbolic link)."""
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return None


def serial_of(value: object) -> str:
    """The ``XXXX-XXXX`` text of a serial kept in snaplab_volume; 0000-0000 when there is none."""
    try:
        return serial_text(int(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "0000-0000"


def parents(name: str) -> Iterator[str]:
    """The folders an entry name sits under: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])
