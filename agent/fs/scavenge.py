"""What survives of a damaged archive: every row still readable, page by page, as ``.recover`` does."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from snaplab.agent.fs.archive import (
    FILE_HASH_SIZES,
    PAGE,
    Device,
    entry_kind,
    hash_matches,
    parents,
    safe_name,
    unpack,
)


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
        return entry_kind(self.mode) or "f"


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
                    if isinstance(values[2], bytes) and len(values[2]) in FILE_HASH_SIZES:
                        hashes.setdefault(values[0], set()).add(values[2])
                    scan.mtimes.setdefault(values[0], values[1])
                elif (
                    len(values) == 5
                    and isinstance(values[0], str)
                    and all(isinstance(v, int) for v in values[1:4])
                    and (values[4] is None or isinstance(values[4], (bytes, str)))
                    and entry_kind(int(values[1])) is not None  # type: ignore[arg-type]
                ):
                    name, mode, mtime, sz, data = values
                    scan.records += 1
                    if not safe_name(name):
                        continue
                    try:
                        content = b"" if entry_kind(int(mode)) == "d" else unpack(int(sz), data)  # type: ignore[arg-type]
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
                c
                for c in cs
                if c.kind != "f"
                or name not in hashes
                or any(hash_matches(c.content, h) for h in hashes[name])
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
        folders = {q for n2 in named | broken | set(scan.recovered) for q in parents(n2)}
        scan.lost = sorted(missing - folders)  # a lost name that other names sit under is a folder
        scan.orphans = sorted(
            n2 for n2, c in scan.recovered.items() if named and n2 not in named and c.kind != "d"
        )
        for name in scan.orphans:
            scan.problems.append(f"File record for {name} is not in any index (orphan).")
    finally:
        pages.close()
    return scan
