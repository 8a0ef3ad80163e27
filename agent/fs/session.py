"""What the host keeps of a mounted volume: its working copy, the page digests, the last sync's records."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path


def open_db(path: Path, max_pages: int | None = None) -> sqlite3.Connection:
    """Open a working copy in WAL mode: a flush reads from the WAL which pages its transaction changed."""
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


@dataclass(frozen=True)
class Base:
    """The database the volume holds while a flush is not committed: its page count and the pages
    it does not use (free-list leaves): those a flush may write before its commit record."""

    pages: int
    free: frozenset[int]


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
    dirty: set[int] | None = field(default_factory=set)  # pages the working copy changed since (None: any)
    base: Base | None = None  # the volume's database while a flush is not committed (writeback.py)
    committed: bool = False  # the pending pages' journal is committed on the volume
    seq: int = 0  # flushes written (the commit record's sequence)
    unsynced: dict[str, str] = field(
        default_factory=dict
    )  # entries in the working copy, not yet on the volume
    ld_name: str = ""  # the LD and mount points as they were when mounted (reports of what was not flushed)
