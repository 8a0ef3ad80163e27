"""Rows of the archive's tables read from its pages as they arrive, without SQLite (a mount extracts
files while the rest of the image is still on its way); https://sqlite.org/fileformat2.html.

Only what this file system's databases hold is read: table b-trees of UTF-8 databases whose
``sqlar`` and ``snaplab_files`` are exactly the tables archive.py (or ``sqlite3 -A``) creates.
Anything else, or anything that does not parse, raises Unsupported: the caller then reads the rows
through SQLite (which also decides whether a database that does not parse is damaged). Values come
as SQLite gives them to Python (None, int, float, str, bytes), except a BLOB column the caller asks
for as pieces: the memoryviews of the pages that hold it, not copied.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from snaplab.agent.fs.archive import PAGE

SQLAR_SQL = "create table sqlar(name text primary key,mode int,mtime int,sz int,data blob)"
FILES_SQL = "create table snaplab_files(name text primary key,mtime_ns int,hash blob)"
FETCHERS = 16  # pages read out of turn at once (each a round trip to the array)
MAX_PREFETCH = 1024  # leaves of snaplab_files read out of turn, at most (64 MiB: a million and more files)
MAX_DEPTH = 20  # a b-tree of 64 KiB pages is a few levels deep; more is a loop
_INT_SIZES = (0, 1, 2, 3, 4, 6, 8)


class Unsupported(Exception):
    """Not a database this reader reads (or not one that parses): read it through SQLite."""


class Stopped(Exception):
    """The pages stopped coming (the read failed or was abandoned)."""


class Pages:
    """The pages of a database file another thread is writing in order, through a mapping of the file
    (no copy, no system call per page): ``at(n)`` waits until the writer has written page n
    (``advance``) and gives its offset in ``buf``."""

    def __init__(self, fd: int, count: int) -> None:
        os.ftruncate(fd, count * PAGE)
        self.fd = fd
        self.buf = mmap.mmap(fd, count * PAGE, prot=mmap.PROT_READ)
        self.view = memoryview(self.buf)
        self.count = count
        self.ready = 0  # bytes written from the start of the file
        self.stopped = False
        self.cond = threading.Condition()
        self.fetch: Callable[[int], bytes] | None = None  # while set: a page not there yet is read with it
        self.early: dict[int, bytes] = {}  # pages read so, ahead of the writer (it writes them again)

    def advance(self, ready: int) -> None:
        with self.cond:
            self.ready = ready
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def at(self, n: int) -> int:
        if not 1 <= n <= self.count:
            raise Unsupported(f"page {n} is outside the database")
        end = n * PAGE
        if self.ready < end and n not in self.early and self.fetch is not None:
            data = self.fetch(end - PAGE)
            if len(data) != PAGE:
                raise Unsupported(f"page {n} is short")
            os.pwrite(self.fd, data, end - PAGE)
            self.early[n] = data
        if self.ready < end and n not in self.early:
            with self.cond:
                while self.ready < end and not self.stopped:
                    self.cond.wait()
                if self.ready < end:
                    raise Stopped()
        return end - PAGE

    def prefetch(self, ns: list[int]) -> None:
        """Read the pages of ``ns`` the writer has not written yet with ``fetch``, FETCHERS at a time."""
        fetch = self.fetch
        if len(ns) > MAX_PREFETCH:  # not a table of this file system's (or a damaged page): no flood of reads
            raise Unsupported(f"{len(ns)} pages to read out of turn")
        want = sorted({n for n in ns if 1 <= n <= self.count and self.ready < n * PAGE and n not in self.early})
        if fetch is None or not want:
            return
        with ThreadPoolExecutor(FETCHERS, thread_name_prefix="mount-fetch") as pool:
            for n, data in zip(want, pool.map(lambda n: fetch((n - 1) * PAGE), want)):
                if len(data) == PAGE:
                    os.pwrite(self.fd, data, (n - 1) * PAGE)
                    self.early[n] = data

    def early_differ(self) -> bool:
        """Whether a page read ahead differs from the writer's (the volume changed in between)."""
        return any(self.buf[(n - 1) * PAGE : n * PAGE] != data for n, data in self.early.items())

    def close(self) -> None:
        """Unmap (later, by the garbage collector, while a view of a page is still held)."""
        self.view.release()
        with contextlib.suppress(BufferError):
            self.buf.close()


def _varint(b: Any, i: int) -> tuple[int, int]:
    v = 0
    for k in range(8):
        c = b[i + k]
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, i + k + 1
    return (v << 8) | b[i + 8], i + 9


Cell = tuple[int, int, list[memoryview], int]  # payload offset in buf, bytes there, overflow pieces, size


class Tree:
    """The rows of table b-trees: ``rows(root)`` yields each row's payload in rowid order (SQLite's
    order for a SELECT without ORDER BY); ``record`` decodes one."""

    def __init__(self, pages: Pages, usable: int) -> None:
        self.pages = pages
        self.buf = pages.buf
        self.u = usable
        self.x = usable - 35  # the most payload a leaf cell holds on its page
        self.m = (usable - 12) * 32 // 255 - 23  # the least, when it spills
        self.seen: set[int] = set()

    def rows(self, root: int) -> Iterator[Cell]:
        try:
            yield from self._walk(root, 0)
        except (IndexError, struct.error) as exc:  # a pointer or a size past the page
            raise Unsupported(f"b-tree: {exc}") from None

    def _walk(self, n: int, depth: int) -> Iterator[Cell]:
        if depth > MAX_DEPTH or n in self.seen:
            raise Unsupported(f"b-tree page {n} seen twice")
        self.seen.add(n)
        buf = self.buf
        base = self.pages.at(n)
        h = base + (100 if n == 1 else 0)
        kind = buf[h]
        ncell = struct.unpack_from(">H", buf, h + 3)[0]
        if kind == 0x05:  # interior: left children in order, then the right-most one
            ptrs = struct.unpack_from(f">{ncell}H", buf, h + 12)
            children = [struct.unpack_from(">I", buf, base + p)[0] for p in ptrs]
            children.append(struct.unpack_from(">I", buf, h + 8)[0])
            for c in children:
                yield from self._walk(c, depth + 1)
            return
        if kind != 0x0D:
            raise Unsupported(f"page {n} is not a table b-tree page (type {kind})")
        u, x, end = self.u, self.x, base + self.u
        view = self.pages.view
        for p in struct.unpack_from(f">{ncell}H", buf, h + 8):
            size, i = _varint(buf, base + p)
            j = i + 8
            while buf[i] >= 0x80 and i < j:  # the rowid: not needed
                i += 1
            i += 1
            if size <= x:
                if i + size > end:
                    raise Unsupported(f"page {n}: a cell runs past the page")
                yield i, size, [], size
                continue
            k = self.m + (size - self.m) % (u - 4)
            local = k if k <= x else self.m
            if i + local + 4 > end:
                raise Unsupported(f"page {n}: a cell runs past the page")
            rest = []
            ov = struct.unpack_from(">I", buf, i + local)[0]
            left = size - local
            while left > 0:
                if ov in self.seen:
                    raise Unsupported(f"overflow page {ov} seen twice")
                self.seen.add(ov)
                ob = self.pages.at(ov)
                take = min(left, u - 4)
                rest.append(view[ob + 4 : ob + 4 + take])
                left -= take
                ov = struct.unpack_from(">I", buf, ob)[0]
            yield i, local, rest, size

    def leaves(self, root: int) -> list[int]:
        """The leaf pages of the tree under ``root``, reading only its interior pages and the first
        leaf (a b-tree's leaves are all at one depth: the first child tells what its siblings are)."""
        try:
            return self._leaves(root, 0)
        except (IndexError, struct.error) as exc:
            raise Unsupported(f"b-tree: {exc}") from None

    def _leaves(self, n: int, depth: int) -> list[int]:
        if depth > MAX_DEPTH:
            raise Unsupported("a b-tree deeper than any of this file system's")
        buf = self.buf
        base = self.pages.at(n)
        h = base + (100 if n == 1 else 0)
        if buf[h] == 0x0D:
            return [n]
        if buf[h] != 0x05:
            raise Unsupported(f"page {n} is not a table b-tree page (type {buf[h]})")
        ncell = struct.unpack_from(">H", buf, h + 3)[0]
        ptrs = struct.unpack_from(f">{ncell}H", buf, h + 12)
        children = [struct.unpack_from(">I", buf, base + p)[0] for p in ptrs]
        children.append(struct.unpack_from(">I", buf, h + 8)[0])
        first = self._leaves(children[0], depth + 1)
        if first == [children[0]]:
            return children
        return first + [leaf for c in children[1:] for leaf in self._leaves(c, depth + 1)]

    def record(self, cell: Cell, columns: int, blob: int = -1) -> list[object]:
        """The ``columns`` values of a record (Unsupported when it has another number of columns), as
        SQLite gives them to Python; column ``blob``, when it is a BLOB, as a list of pieces."""
        try:
            return self._record(cell, columns, blob)
        except (IndexError, struct.error):
            raise Unsupported("a record that does not parse") from None

    def _record(self, cell: Cell, columns: int, blob: int) -> list[object]:
        s, local, rest, size = cell
        buf = self.buf
        here = s + local  # the end of what the page holds; the rest is in ``rest``
        hsize, i = _varint(buf, s)
        hend = s + hsize
        if hend > here:
            raise Unsupported("a record header past its page")
        out: list[object] = []
        pos = hend
        col = 0
        while i < hend:  # each serial type, then its value
            t = buf[i]
            if t < 0x80:  # most serial types are one byte
                i += 1
            else:
                t, i = _varint(buf, i)
            if t >= 12:
                n = (t - 12) >> 1
                if pos + n <= here:
                    if t & 1:
                        out.append(_text(buf[pos : pos + n]))
                    elif col == blob:
                        out.append([self.pages.view[pos : pos + n]])
                    else:
                        out.append(buf[pos : pos + n])
                else:  # only the last column runs on into the overflow pages
                    if col != columns - 1 or (size - (pos - s)) != n:
                        raise Unsupported("a record that spills before its last column")
                    pieces = [self.pages.view[pos:here], *rest]
                    if t & 1:
                        out.append(_text(b"".join(pieces)))
                    else:
                        out.append(pieces if col == blob else b"".join(pieces))
                pos += n
            elif t == 0:
                out.append(None)
            elif t <= 6:
                n = _INT_SIZES[t]
                if pos + n > here:
                    raise Unsupported("a record that spills before its last column")
                out.append(int.from_bytes(buf[pos : pos + n], "big", signed=True))
                pos += n
            elif t == 7:
                if pos + 8 > here:
                    raise Unsupported("a record that spills before its last column")
                out.append(struct.unpack_from(">d", buf, pos)[0])
                pos += 8
            elif t in (8, 9):
                out.append(t - 8)
            else:
                raise Unsupported(f"serial type {t}")
            col += 1
        if col != columns or i != hend:
            raise Unsupported(f"a record of {col} columns, {columns} expected")
        if pos - s != size:
            raise Unsupported("a record whose columns do not fill its payload")
        return out


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise Unsupported("text that is not UTF-8") from None


def _normal_sql(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", "", sql).lower()
    sql = re.sub(r"\s+", " ", sql).strip().rstrip(";").strip()
    return re.sub(r"\s*([(),])\s*", r"\1", sql)


def open_tables(pages: Pages) -> tuple[Tree, int, int | None]:
    """(tree reader, root page of sqlar, of snaplab_files or None) from page 1: Unsupported unless
    the database is UTF-8 and both tables are the ones this file system makes."""
    p1 = pages.at(1)
    if struct.unpack_from(">I", pages.buf, p1 + 56)[0] != 1:
        raise Unsupported("not a UTF-8 database")
    tree = Tree(pages, PAGE - pages.buf[p1 + 20])  # less the bytes reserved at each page's end
    roots: dict[str, int] = {}
    for cell in tree.rows(1):
        kind, name, _tbl, root, sql = tree.record(cell, 5)
        if kind != "table" or name not in ("sqlar", "snaplab_files"):
            continue
        want = SQLAR_SQL if name == "sqlar" else FILES_SQL
        if not isinstance(sql, str) or _normal_sql(sql) != want or not isinstance(root, int):
            raise Unsupported(f"table {name} is not the archive's")
        roots[str(name)] = root
    if "sqlar" not in roots:
        raise Unsupported("no sqlar table")
    return tree, roots["sqlar"], roots.get("snaplab_files")
