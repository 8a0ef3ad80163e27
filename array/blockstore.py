"""Versioned, thin-provisioned block maps over one data file per data-bearing LD (its "family").

A family is an ordinary LD (IV, BV, CV) and every snapshot generation of it. Each logical block
(``BLOCK`` bytes) has a list of versions ``(epoch, pblock)`` ordered by epoch. Writes never touch a
physical block in place: they go to a fresh physical block and the map is switched in the same
SQLite transaction, so a write is atomic and survives ``kill -9`` once acknowledged.

A snapshot is just an epoch: creating one freezes ``cur_epoch`` (O(1)); the snapshot reads, for each
block, the newest version with ``epoch <= its epoch``. A version is *retained* (differential data held
in the SRA) when a live snapshot still sees it after the BV moved on. Writes into a generation (RW
links, signatures) go to that generation's private overlay.

The maps live in the ``blocks`` table; memory holds only the recently used ones (``BlockCache``, a
bounded LRU shared by all families), so the daemon's RSS does not grow with the data written and a
restart reads no block map (issue 12). Which logical blocks have more than one version (the retained
ones, all the snapshot accounting needs) is indexed in the ``kept`` table; a restart counts them in
SQL and reads a family's versions only when it first needs its snapshot index (``Family.owned``).
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import errno
import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from snaplab.san.blocks import BLOCK

from . import durability

ZERO = -1  # a version whose content is all zeros and holds no physical block
_ZEROS = bytes(BLOCK)
_PUNCH = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE (linux/falloc.h)
log = logging.getLogger("snaplab.array")


def _fallocate():
    """libc's fallocate(2), or None where there is none (space is then not given back)."""
    try:
        f = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    f.restype = ctypes.c_int
    return f


_fallocate_fn = _fallocate()


def _epoch_key(rec: tuple[int, int]) -> int:
    return rec[0]


CACHE_BLOCKS = 32768  # logical blocks' version lists kept in memory (~12 MB), all families together
_MISSING = object()


class BlockCache:
    """Recently used version lists of every family: ``(family, lblock) -> list or None`` (None: no
    version, never written), least recently used first, at most ``cap`` of them.

    Lists handed out are mutated in place by the engine, which writes the same change to ``blocks`` in
    the same transaction. So nothing is evicted while a transaction runs (``hold``): until it ends, a
    list changed in memory may not be in the database yet; after it (committed, or rolled back and
    the state reloaded with a new cache) memory and database agree and ``trim`` cuts back to ``cap``."""

    def __init__(self, conn: sqlite3.Connection, cap: int = CACHE_BLOCKS) -> None:
        self.conn, self.cap = conn, cap
        self.lru: OrderedDict[tuple[int, int], list[tuple[int, int]] | None] = OrderedDict()
        self.hold = False

    def get(self, fam: int, lb: int) -> list[tuple[int, int]] | None:
        key = (fam, lb)
        vs = self.lru.get(key, _MISSING)
        if vs is _MISSING:
            vs = self.conn.execute(
                "SELECT epoch, pblock FROM blocks WHERE family=? AND lblock=? ORDER BY epoch", key
            ).fetchall() or None
            self.put(key, vs)
        else:
            self.lru.move_to_end(key)
        return vs  # type: ignore[return-value]

    def put(self, key: tuple[int, int], vs: list[tuple[int, int]] | None) -> None:
        self.lru[key] = vs
        self.lru.move_to_end(key)
        if not self.hold and len(self.lru) > self.cap:
            self.lru.popitem(last=False)

    def load(self, fam: int, lbs: Iterable[int]) -> None:
        """Read the lists of ``lbs`` not in memory in few queries: one range query when they are close
        together (a write's or read's blocks), else lists of up to 500 (a delete's, a restore's)."""
        lru = self.lru
        missing = [lb for lb in lbs if (fam, lb) not in lru]
        if len(missing) < 2:
            return
        missing = sorted(set(missing))
        found: dict[int, list[tuple[int, int]]] = {}
        if missing[-1] - missing[0] <= 4 * len(missing):
            rows = self.conn.execute(
                "SELECT lblock, epoch, pblock FROM blocks WHERE family=? AND lblock BETWEEN ? AND ?"
                " ORDER BY lblock, epoch", (fam, missing[0], missing[-1]))
        else:
            rows = (r for i in range(0, len(missing), 500) for r in self.conn.execute(
                "SELECT lblock, epoch, pblock FROM blocks WHERE family=? AND lblock IN"
                f" ({','.join('?' * len(missing[i : i + 500]))}) ORDER BY lblock, epoch",
                (fam, *missing[i : i + 500])))
        for lb, epoch, pb in rows:
            found.setdefault(lb, []).append((epoch, pb))
        for lb in missing:  # only those not in memory: a list in memory may hold a change not yet written
            self.put((fam, lb), found.get(lb))

    def trim(self) -> None:
        while len(self.lru) > self.cap:
            self.lru.popitem(last=False)

    def drop(self, fam: int) -> None:
        """Forget a family's lists (its rows were just deleted)."""
        for key in [k for k in self.lru if k[0] == fam]:
            del self.lru[key]


class BlockMap:
    """One family's map ``lblock -> [(epoch, pblock), ...]`` (oldest first) as a mapping over the
    ``blocks`` table, through the engine's ``BlockCache``. ``items``/``values`` read the whole map
    from the database (self-checks, tests): not inside a transaction."""

    __slots__ = ("cache", "ld")

    def __init__(self, cache: BlockCache, ld: int) -> None:
        self.cache, self.ld = cache, ld

    def get(self, lb: int, default=None):
        vs = self.cache.get(self.ld, lb)
        return default if vs is None else vs

    def __getitem__(self, lb: int) -> list[tuple[int, int]]:
        vs = self.cache.get(self.ld, lb)
        if vs is None:
            raise KeyError(lb)
        return vs

    def __setitem__(self, lb: int, vs: list[tuple[int, int]]) -> None:
        self.cache.put((self.ld, lb), vs)

    def __contains__(self, lb: int) -> bool:
        return self.cache.get(self.ld, lb) is not None

    def load(self, lbs: Iterable[int]) -> None:
        self.cache.load(self.ld, lbs)

    def clear(self) -> None:
        """After the family's rows were deleted: forget what memory holds of them."""
        self.cache.drop(self.ld)

    def items(self) -> Iterator[tuple[int, list[tuple[int, int]]]]:
        lb_now, vs = None, []
        for lb, epoch, pb in self.cache.conn.execute(
            "SELECT lblock, epoch, pblock FROM blocks WHERE family=? ORDER BY lblock, epoch", (self.ld,)
        ).fetchall():
            if lb != lb_now:
                if lb_now is not None:
                    yield lb_now, vs
                lb_now, vs = lb, []
            vs.append((epoch, pb))
        if lb_now is not None:
            yield lb_now, vs

    def values(self) -> Iterator[list[tuple[int, int]]]:
        return (vs for _, vs in self.items())

    def check(self) -> None:
        """Every list in memory equals the database's (self-check)."""
        for (fam, lb), vs in list(self.cache.lru.items()):
            if fam == self.ld:
                rows = self.cache.conn.execute(
                    "SELECT epoch, pblock FROM blocks WHERE family=? AND lblock=? ORDER BY epoch", (fam, lb)
                ).fetchall()
                assert (vs or []) == rows, ("block map", fam, lb, vs, rows)


@dataclass
class Family:
    ld: int
    path: str
    cur_epoch: int = 1
    versions: BlockMap | dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    hw: int = 0  # physical blocks ever allocated in the file
    # free physical blocks (the ``free`` property); None until first needed after a load, then
    # computed by ``free_loader`` from the database (a restart reads no block map)
    _free: list[int] | None = field(default_factory=list)
    free_loader: Callable[[], list[int]] | None = None
    live_epochs: list[int] = field(default_factory=list)  # sorted epochs of live snapshots
    sv_at: dict[int, int] = field(default_factory=dict)  # live epoch -> its SV's LD number (the cyclic choice)
    retained: int = 0  # blocks held for snapshots (versions no longer the BV's) + overlay blocks
    # The snapshot index (the ``owned`` and ``last_seen`` properties): None until first needed after
    # a load, then built by ``index_loader`` from the family's ``kept`` rows, so a restart reads no
    # version of any family (issue 12) and a family's first delete, Query or overwrite of a frozen
    # block pays for its own. Built at the start of an operation (``ensure_index``), while memory and
    # database agree: never between a change in memory and its row.
    _owned: dict[int, int] | None = field(default_factory=dict)
    _last_seen: dict[int, set[int]] | None = field(default_factory=dict)
    index_loader: Callable[[], dict[int, list[tuple[int, int]]]] | None = None
    # logical block -> epoch of the (immutable, non-head) version whose bytes its head holds: set by a
    # restore's copy, dropped by any other write of the block, so a restore copies only what differs
    src: dict[int, int] = field(default_factory=dict)
    # free blocks whose space the file system may still hold (freed since the last reclaim, or since
    # the load): ``reclaim`` punches them out after a transaction that deleted a generation
    unpunched: set[int] = field(default_factory=set)
    reclaim_due: bool = False  # a generation delete committed: the reclaimer punches ``unpunched``
    fd: int = -1

    @property
    def free(self) -> list[int]:
        if self._free is None:
            self._free = self.free_loader()  # type: ignore[misc]
            self.unpunched.update(self._free)  # whether their space went back before is not known
        return self._free

    @free.setter
    def free(self, blocks: list[int]) -> None:
        self._free = blocks

    @property
    def free_loaded(self) -> bool:
        return self._free is not None

    # live epoch -> retained versions charged to it (the oldest live snapshot that sees them)
    @property
    def owned(self) -> dict[int, int]:
        if self._owned is None:
            self.ensure_index()
        return self._owned  # type: ignore[return-value]

    @owned.setter
    def owned(self, counts: dict[int, int]) -> None:
        self._owned = counts

    # live epoch -> logical blocks whose retained version it is the newest live snapshot to see (ZERO
    # versions included): all that deleting that generation has to look at (snapshots._delete_gen).
    # Deleting the oldest frees exactly these; a version's newest viewer is known when it is kept.
    @property
    def last_seen(self) -> dict[int, set[int]]:
        if self._last_seen is None:
            self.ensure_index()
        return self._last_seen  # type: ignore[return-value]

    @last_seen.setter
    def last_seen(self, index: dict[int, set[int]]) -> None:
        self._last_seen = index

    @property
    def indexed(self) -> bool:
        return self._owned is not None

    def index_later(self, loader: Callable[[], dict[int, list[tuple[int, int]]]]) -> None:
        """After a load: the snapshot index is built from ``loader`` when first needed."""
        self._owned = self._last_seen = None
        self.index_loader = loader

    def ensure_index(self) -> None:
        """Build ``owned`` and ``last_seen`` if a load left them unbuilt (from ``index_loader``: the
        version lists of the family's blocks with more than one version, with ``live_epochs``)."""
        if self._owned is None:
            self._owned, self._last_seen = self.owner_index(self.index_loader())  # type: ignore[misc]

    def open(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def sync(self) -> None:
        """Make what was written durable (power loss): before the transaction that maps it commits."""
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise self._failed(exc) from exc
        durability.synced_file(self.path)

    def _failed(self, exc: OSError) -> OSError:
        """The error naming this family's file (pread/pwrite give none): the refusal names it."""
        return OSError(exc.errno, exc.strerror, self.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def max_live(self) -> int:
        return self.live_epochs[-1] if self.live_epochs else 0

    # -- physical blocks ---------------------------------------------------------------------------
    def alloc(self, n: int) -> list[int]:
        """n physical blocks; contiguous from the end of the file when nothing was freed."""
        out = []
        while self.free and len(out) < n:
            out.append(self.free.pop())
        if self.unpunched:
            self.unpunched.difference_update(out)
        k = n - len(out)
        if k:
            out.extend(range(self.hw, self.hw + k))
            self.hw += k
        return out

    def trim(self) -> None:
        """Cut the file back to the high-water mark (what a crashed transaction or a rolled-back
        checkpoint wrote past it; nothing maps it). Under the engine's lock (reclaim.py)."""
        if self.fd >= 0 and os.fstat(self.fd).st_size > self.hw * BLOCK:
            os.ftruncate(self.fd, self.hw * BLOCK)

    def punch(self, start: int, n: int) -> bool:
        """Give the space of free blocks ``start`` .. ``start + n - 1`` back to the file system (a
        punched hole: the file's size stays, what it occupies shrinks; a hole reads as zeros). Only
        for blocks of the free list, under the engine's lock (reclaim.py). False: not possible here."""
        self.unpunched.difference_update(range(start, start + n))
        if _fallocate_fn is None or self.fd < 0:
            return False
        if _fallocate_fn(self.fd, _PUNCH, start * BLOCK, n * BLOCK) != 0:
            err = ctypes.get_errno()  # e.g. EOPNOTSUPP: a file system without holes keeps the space
            log.debug("cannot punch %s blocks %d+%d: %s", self.path, start, n, os.strerror(err))
            return False
        return True

    def read_pblock(self, pblock: int | None) -> bytes:
        if pblock is None or pblock == ZERO:
            return _ZEROS
        try:
            data = os.pread(self.fd, BLOCK, pblock * BLOCK)
        except OSError as exc:
            raise self._failed(exc) from exc
        return data if len(data) == BLOCK else data.ljust(BLOCK, b"\0")

    def write_pblocks(self, items: list[tuple[int, bytes]]) -> None:
        """Write (pblock, data) pairs, coalescing runs of consecutive physical blocks."""
        items.sort(key=lambda x: x[0])
        i = 0
        while i < len(items):
            j = i + 1
            while j < len(items) and items[j][0] == items[j - 1][0] + 1:
                j += 1
            start = items[i][0]
            run = [d for _, d in items[i:j]]
            try:
                done = os.pwrite(self.fd, run[0], start * BLOCK) if len(run) == 1 else os.pwritev(
                    self.fd, run, start * BLOCK)
            except OSError as exc:
                raise self._failed(exc) from exc
            if done != sum(len(d) for d in run):  # a file system that filled up mid-write says so this way
                raise self._failed(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            i = j

    # -- views ---------------------------------------------------------------------------------------
    def head(self, lb: int) -> tuple[int, int] | None:
        vs = self.versions.get(lb)
        return vs[-1] if vs else None

    def visible(self, lb: int, epoch: int | None) -> tuple[int, int] | None:
        """The version a reader at ``epoch`` sees (None = the BV itself)."""
        vs = self.versions.get(lb)
        if not vs:
            return None
        if epoch is None:
            return vs[-1]
        i = bisect.bisect_right(vs, epoch, key=_epoch_key) - 1
        return vs[i] if i >= 0 else None

    def same_as(self, lb: int, rec: tuple[int, int] | None) -> bool:
        """Whether the head of ``lb`` holds the bytes of version ``rec`` (None: never written): the
        same physical block, or a restore's copy of it (``src``)."""
        h = self.head(lb)
        hp = None if h is None or h[1] == ZERO else h[1]
        rp = None if rec is None or rec[1] == ZERO else rec[1]
        if hp == rp:
            return True
        return rec is not None and rp is not None and h is not None and self.src.get(lb) == rec[0]

    def frozen(self, rec: tuple[int, int]) -> bool:
        """A head version is frozen when some live snapshot sees it: the next write must keep it."""
        return self.max_live >= rec[0]

    def owner_epoch(self, rec_epoch: int) -> int | None:
        """The live snapshot a retained version is charged to: the oldest one that sees it."""
        i = bisect.bisect_left(self.live_epochs, rec_epoch)
        return self.live_epochs[i] if i < len(self.live_epochs) else None

    def retained_by_epoch(self) -> dict[int, int]:
        """Retained blocks per live snapshot epoch (versions only; overlays are counted by the caller)."""
        return self.owner_index()[0]

    def owner_index(self, kept: dict[int, list[tuple[int, int]]] | None = None
                    ) -> tuple[dict[int, int], dict[int, set[int]]]:
        """Recounted ``owned`` and ``last_seen`` (at load, from ``kept``: the blocks with more than one
        version, the only ones that count; and to verify the incremental ones, from the whole map)."""
        out: dict[int, int] = {}
        last: dict[int, set[int]] = {}
        eps = self.live_epochs
        for lb, vs in (self.versions if kept is None else kept).items():
            for k, rec in enumerate(vs[:-1]):
                owner = self.owner_epoch(rec[0])
                if owner is None:
                    continue
                if rec[1] != ZERO:
                    out[owner] = out.get(owner, 0) + 1
                i = bisect.bisect_left(eps, vs[k + 1][0]) - 1  # the newest live epoch before the next version
                if i >= 0 and eps[i] >= rec[0]:
                    last.setdefault(eps[i], set()).add(lb)
        return out, last

    def charge(self, lb: int, rec: tuple[int, int]) -> None:
        """The frozen head ``rec`` of ``lb`` was just superseded and is kept: charged to the oldest
        live snapshot that sees it (``owned``), indexed under the newest (``last_seen``: the newest
        live snapshot now, as every later one sees the new head)."""
        self.last_seen.setdefault(self.max_live, set()).add(lb)
        if rec[1] != ZERO:
            owner = self.owner_epoch(rec[0])
            self.owned[owner] = self.owned.get(owner, 0) + 1  # type: ignore[index]


def split_range(offset: int, length: int) -> list[tuple[int, int, int]]:
    """(logical block, offset in block, length) segments covering a byte range."""
    out = []
    end = offset + length
    pos = offset
    while pos < end:
        lb, inner = divmod(pos, BLOCK)
        n = min(BLOCK - inner, end - pos)
        out.append((lb, inner, n))
        pos += n
    return out
