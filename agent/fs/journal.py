"""The flush's redo journal on the volume: the pages the volume's tree uses are journalled before they change.

A flush changes two kinds of pages. Pages the volume's current database does not use (its free-list
leaves and the pages past its end) are written in place first: the database on the volume still
reads as before. The pages it does use (page 1, b-tree and free-list trunk pages) are first written
to the **journal** at the top of the partition (blocks neither the old nor the new database uses),
each as the zlib stream of its XOR with what the volume holds (a b-tree page a flush changes differs
in a few cells: its delta is small), which ends with a checksummed commit record in the partition's
last bytes; only then are they written in place (page 1 last). A crash before the journal is
complete leaves the old database; after it, a mount replays it. So the volume always holds the old
or the new flush, never a mix; only the pages the old database used are written twice, the second
time as a compressed delta.

The journal is one run of blocks that ends the partition, right-aligned (zeros pad its start)::

    images (per page: zlib(old XOR new), or the new page itself when that is not larger) | entries | header
    entry  = target page | offset in the journal | length | delta? | BLAKE2b-128 of the target as
             it was | of what it becomes
    header = magic "SnapLab-journal\x02" | version | count | journal length | new page count
             | sequence | LD key (array name, LD number, partition start) | BLAKE2b-256 of the rest

Replay (:func:`replay`) writes a target whose page still holds its old content; a journal whose
targets hold neither their old nor their new content describes another state of the volume (a stale
journal: a later flush's free pages, a FORMAT, a CHKDSK rebuild) and is ignored, so a journal needs
no retiring write. It names the LD that wrote it: a copy of the volume (a snapshot generation read
through an LV, guide 2.3.5 (3)) does not replay it, and a snapshot taken while a flush wrote in place
holds the torn pages (the guide's damage case, README "Host file systems").
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from snaplab.agent.fs.archive import DIGEST, PAGE, READ_CHUNK, Device, digest

log = logging.getLogger("snaplab.agent.filesystem")

MAGIC = b"SnapLab-journal\x02"
VERSION = 2
# magic, version, count, journal length, new pages, sequence, start, array (64), LD number (32)
_HEAD = struct.Struct(">16sIIQIQQ64s32s")
_SUM = 32
HEADER = _HEAD.size + _SUM
_ENTRY = struct.Struct(f">IIIB{DIGEST}s{DIGEST}s")

Key = tuple[str, str, int]  # (array name, LD number, partition start): Volume.key


@dataclass(frozen=True)
class Entry:
    target: int
    old: bytes  # digest of the target as the volume held it
    new: bytes  # digest of what it becomes


@dataclass(frozen=True)
class Record:
    key: Key
    new_pages: int
    seq: int
    entries: tuple[Entry, ...]
    images: dict[int, tuple[bool, bytes]]  # target -> (delta?, the image: zlib delta or the new page)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def new_content(image: tuple[bool, bytes], current: bytes) -> bytes | None:
    """A target's new content from its journal image and its current (old) content; None if unsound."""
    is_delta, data = image
    if not is_delta:
        return data
    try:
        delta = zlib.decompress(data)
    except zlib.error:
        return None
    return _xor(current, delta) if len(delta) == len(current) else None


def blocks(dev: Device) -> int:
    return dev.size // PAGE


def encode(key: Key, new_pages: int, seq: int, pages: dict[int, tuple[bytes, bytes]]) -> bytes:
    """The journal of ``pages`` (target -> (the content the volume holds, the new content)), as the
    blocks that end the partition."""
    array, ld, start = key
    images, entries = [], []
    offset = 0
    for target in sorted(pages):
        old, content = pages[target]
        z = zlib.compress(_xor(old, content), 1)
        is_delta = len(z) < len(content)
        image = z if is_delta else content
        entries.append(_ENTRY.pack(target, offset, len(image), int(is_delta), digest(old), digest(content)))
        images.append(image)
        offset += len(image)
    body = b"".join(images) + b"".join(entries)
    length = len(body) + HEADER
    head = _HEAD.pack(
        MAGIC, VERSION, len(pages), length, new_pages, seq, start, array.encode()[:64], ld.encode()[:32]
    )
    total = hashlib.blake2b(body + head, digest_size=_SUM).digest()
    journal = body + head + total
    return bytes(math.ceil(length / PAGE) * PAGE - length) + journal


def read_record(dev: Device) -> Record | None:
    """The journal that ends the volume; None when there is none, or it is incomplete or unsound."""
    n_blocks = blocks(dev)
    if n_blocks < 2:
        return None
    last = dev.read((n_blocks - 1) * PAGE, PAGE)
    head, total = last[-HEADER:-_SUM], last[-_SUM:]
    if head[:16] != MAGIC:
        return None
    _magic, version, count, length, new_pages, seq, start, array, ld = _HEAD.unpack(head)
    span = math.ceil(length / PAGE)
    if version != VERSION or length < HEADER + count * _ENTRY.size or span >= n_blocks:
        return None
    raw = last if span == 1 else dev.read((n_blocks - span) * PAGE, span * PAGE)
    journal = raw[len(raw) - length :]
    body = journal[:-HEADER]
    if hashlib.blake2b(body + head, digest_size=_SUM).digest() != total:
        return None  # torn: the flush that wrote it had not committed
    at = len(body) - count * _ENTRY.size
    entries, images = [], {}
    try:
        for i in range(count):
            target, offset, size, is_delta, old, new = _ENTRY.unpack_from(body, at + i * _ENTRY.size)
            if offset + size > at or (
                not is_delta and (size != PAGE or digest(body[offset : offset + size]) != new)
            ):
                return None
            entries.append(Entry(target, old, new))
            images[target] = (bool(is_delta), body[offset : offset + size])
    except struct.error:
        return None
    key = (array.rstrip(b"\0").decode(errors="replace"), ld.rstrip(b"\0").decode(errors="replace"), start)
    return Record(key, new_pages, seq, tuple(entries), images)


def runs(pages: Iterable[int], limit: int = READ_CHUNK // PAGE) -> list[list[int]]:
    """Adjacent page numbers grouped (at most ``limit`` a group), in ascending order."""
    out: list[list[int]] = []
    for p in sorted(set(pages)):
        if out and p == out[-1][-1] + 1 and len(out[-1]) < limit:
            out[-1].append(p)
        else:
            out.append([p])
    return out


def read_pages(dev: Device, pages: Iterable[int]) -> dict[int, bytes]:
    """Pages of the volume (1-based), adjacent ones read together."""
    out: dict[int, bytes] = {}
    for run in runs(pages):
        data = dev.read((run[0] - 1) * PAGE, len(run) * PAGE)
        for i, p in enumerate(run):
            out[p] = data[i * PAGE : (i + 1) * PAGE]
    return out


@dataclass
class Replay:
    """What a mount found: ``state`` none (no record), foreign (another LD's: a copy), stale (the
    record describes another state of the volume), clean (already in place), replayed; ``pages``
    the targets it wrote (or, for :func:`pending`, would write)."""

    state: str
    pages: dict[int, bytes]
    record: Record | None = None


def pending(dev: Device, key: Key) -> Replay:
    """What replaying the volume's journal would write, without writing it."""
    rec = read_record(dev)
    if rec is None:
        return Replay("none", {})
    if rec.key != key:
        return Replay("foreign", {}, rec)
    if any(e.target < 1 or e.target > blocks(dev) for e in rec.entries):
        return Replay("stale", {}, rec)
    current = read_pages(dev, [e.target for e in rec.entries])
    todo = {}
    for e in rec.entries:
        d = digest(current[e.target])
        if d == e.new:
            continue
        page = new_content(rec.images[e.target], current[e.target]) if d == e.old else None
        if page is None or digest(page) != e.new:
            return Replay("stale", {}, rec)
        todo[e.target] = page
    return Replay("replayed" if todo else "clean", todo, rec)


def replay(dev: Device, key: Key, name: str = "") -> Replay:
    """Replay the volume's committed journal if it is this LD's and not yet in place (page 1 last)."""
    r = pending(dev, key)
    if r.state == "replayed":
        write_pages(dev.write, r.pages)
        log.info("%s: journal replayed, %d pages written in place", name or "volume", len(r.pages))
    elif r.state in ("foreign", "stale"):
        log.info("%s: journal not replayed (%s)", name or "volume", r.state)
    return r


def write_pages(write: Callable[[int, bytes], None], pages: dict[int, bytes]) -> None:
    """Write pages in place, adjacent ones together, page 1 last."""
    for run in runs(p for p in pages if p != 1):
        write((run[0] - 1) * PAGE, b"".join(pages[p] for p in run))
    if 1 in pages:
        write(0, pages[1])


def clear(dev: Device) -> None:
    """Forget the journal (FORMAT, a CHKDSK rebuild): the volume's last block zeroed."""
    n = blocks(dev)
    if n >= 2:
        dev.write((n - 1) * PAGE, bytes(PAGE))


def free_leaves(read: Callable[[int], bytes], page1: bytes, pages: int) -> tuple[set[int], set[int]]:
    """(trunk pages, leaf pages) of a database's free list (https://sqlite.org/fileformat2.html#freelist);
    ``read(p)`` gives page p. A list that points outside the database ends there."""
    trunk = struct.unpack_from(">I", page1, 32)[0]
    remaining = struct.unpack_from(">I", page1, 36)[0]
    trunks: set[int] = set()
    leaves: set[int] = set()
    while 1 < trunk <= pages and trunk not in trunks and remaining > 0:
        trunks.add(trunk)
        data = read(trunk)
        nxt, count = struct.unpack_from(">II", data, 0)
        count = min(count, (PAGE - 8) // 4, remaining - 1)
        for i in range(count):
            leaf = struct.unpack_from(">I", data, 8 + 4 * i)[0]
            if 1 < leaf <= pages:
                leaves.add(leaf)
        remaining -= 1 + count
        trunk = nxt
    return trunks, leaves - trunks
