"""The disk array as a domain engine: configuration, snapshots, links, access control, faults, bytes.

``ArrayEngine`` keeps every rule of SPEC §3 (A1-A14). It is usable in-process; ``servicer.py`` puts
gRPC around it. One lock serialises operations; every mutating operation is one SQLite
transaction. A refusal comes before any change, so it costs only the rollback; if anything fails
after a change, the memory state is reloaded from the database. A refused or failed request leaves
nothing half-done.

This file holds the state, its transactions and persistence, and the lookups every concern shares;
the operations live in one mixin per concern: config.py, access.py, faults.py, snapshots.py,
restore.py and blockio.py.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from snaplab.common.errors import E, SnapLabError

from . import durability
from .access import AccessMixin
from .blockio import BlockIOMixin
from .blockstore import ZERO, BlockCache, BlockMap, Family
from .checkpoints import CheckpointMixin, pinned
from .config import ConfigMixin
from .faults import FaultsMixin
from .groups import GroupsMixin
from .groups import read_state as read_group_state
from .holds import HoldsMixin
from .holds import read_state as read_hold_state
from .model import LD, Gen, Host, Link, Pool, Port, Restore
from .reclaim import ReclaimMixin
from .replication import ReplicationMixin, read_pairs
from .reservations import ReservationsMixin
from .restore import RestoreMixin
from .routing_view import RoutingViewMixin
from .snapshots import SnapshotsMixin
from .sra_policy import SraPolicyMixin
from .sra_policy import read_state as read_sra_policy_state
from .storage import STORAGE_ERRORS, storage_refusal, unreadable
from .store import open_db

log = logging.getLogger("snaplab.array")


def _now() -> str:
    return datetime.now().strftime("%Y/%m/%d %H:%M:%S")


class ArrayEngine(
    ConfigMixin, AccessMixin, ReservationsMixin, FaultsMixin, SnapshotsMixin, RestoreMixin, BlockIOMixin,
    ReplicationMixin, SraPolicyMixin, HoldsMixin, GroupsMixin, CheckpointMixin, ReclaimMixin, RoutingViewMixin,
):
    """One disk array. All public methods are thread-safe; refusals raise ``SnapLabError``.

    Rules kept, each with its catalogue message (``snaplab/common/errors.py``), and where:
    A2 usage formats, A3 placement, A4 licences, A7 SV sets and LVs (config.py); A5 access control
    (access.py); cluster shared disks' reservations (reservations.py); A6 SRA full, A9 copy-on-write data (blockio.py); A8 snapshot operations, A10
    signatures, A11 partitions (snapshots.py, restore.py); A12 persistence (here); A13 faults (faults.py).
    """

    def __init__(self, state_dir: str | os.PathLike, *, name: str = "SnapLab_Array", product_id: str = "", clock: Callable[[], str] = _now,
                 restore_rate: float = 0.0):
        self.dir = Path(state_dir)
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_db(self.dir / "array.db")
        self._ckpt_create_tables(self.db)  # lab checkpoints (checkpoints.py)
        self._watch_routing_tables()  # routing_view.py
        durability.sync_dir(self.data_dir)  # the files just created, if they were, survive a power cut
        durability.sync_dir(self.dir)
        durability.committed(self)
        self._clock = clock
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._in_tx = False
        self._to_free: list[tuple[Family, int]] = []
        self._last_commit = 0.0  # time.monotonic() of the last committed transaction
        self._to_truncate: list[str] = []  # data files of LDs the transaction unbinds
        self._unsynced: dict[int, Family] = {}  # families the transaction wrote (synced before COMMIT)
        self._new_files = False  # the transaction created a data file (its folder synced before COMMIT)
        self._closed = False
        self._unloaded: BaseException | None = None  # the storage error that keeps the state unloaded
        self.families: dict[int, Family] = {}
        self._load()
        self._ckpt_start()
        if self.name is None:
            with self._tx():
                self._set_meta("name", name)
                self.name = name
        if product_id and product_id != self.product_id:
            with self._tx():
                self._set_meta("product_id", product_id)
                self.product_id = product_id
        # Copies running restores in the background (restore.py), also ones a crash interrupted,
        # at ``restore_rate`` MiB/s (0: as fast as it can).
        self.restore_rate = restore_rate
        self._worker = threading.Thread(target=self._restore_worker, name="restore", daemon=True)
        self._worker.start()
        # Copies running replications (replication.py), also ones a crash interrupted.
        self._rpl_worker = threading.Thread(target=self._replication_worker, name="replication", daemon=True)
        self._rpl_worker.start()
        # Gives the space of deleted generations back to the file system (reclaim.py).
        self._reclaimer = threading.Thread(target=self._reclaim_worker, name="reclaim", daemon=True)
        self._reclaimer.start()

    # ================================================================ persistence plumbing
    def _load(self) -> None:
        """(Re)build the memory state from the database: at start and after a failed transaction.

        All or nothing: the new state is built aside and swapped in only once complete, so a reload
        that fails (storage gone) leaves no half-empty engine; the caller then refuses requests."""
        st = self._read_state()
        for fam in self.families.values():
            fam.close()
        self.__dict__.update(st)
        self._loads = getattr(self, "_loads", 0) + 1

    @property
    def state_version(self) -> tuple[int, int, int]:
        """Differs whenever the state may have changed: every change to the memory state goes with
        its row (``_tx``), so SQLite's count of rows changed on this connection moves with it; a
        reload or a new connection (after a storage failure) changes the rest. Readable without the
        lock: an answer computed under the lock is at least as new as the version read before it."""
        return (self._loads, id(self.db.conn), self.db.conn.total_changes)

    def _read_state(self) -> dict:
        """The memory state as the database holds it (the families' files opened anew)."""
        q = self.db.execute
        st: dict = {}
        meta = dict(q("SELECT key, value FROM meta").fetchall())
        st["name"] = meta.get("name")
        st["product_id"] = meta.get("product_id", "")  # "" shows as iSMview's default model
        st["pools"] = {r[0]: Pool(*r) for r in q("SELECT number, name, kind, capacity FROM pools")}
        st["ports"] = {(r[0], r[1]): Port(*r) for r in q("SELECT director, port, name FROM ports")}
        # The same text in many rows (types, formats, states, times of one second) is one string, not
        # one per row: 65,536 SVs at scale (issue 12).
        texts: dict = {}

        def one(text):
            return texts.setdefault(text, text)

        lds: dict[int, LD] = {}
        for r in q(
            "SELECT number, name, type, format, capacity, pool, attr, bv, seq, signature, link_lost FROM lds"
        ):
            lds[r[0]] = LD(r[0], r[1], one(r[2]), one(r[3] or ""), r[4], r[5], one(r[6]), r[7], r[8] or 0, r[9],
                           bool(r[10]))
        st["lds"] = lds
        st["by_name"] = {ld.name: ld for ld in lds.values()}
        st["_ld_hint"] = 0  # config._new_ld: numbers below it are taken (searched anew after a load)
        gens = {
            r[0]: Gen(r[0], one(r[1]), r[2], r[3] and one(r[3]), r[4] and one(r[4]), bool(r[5]), r[6], r[7])
            for r in q("SELECT sv, state, epoch, state_time, create_time, guard, orig_signature, fault FROM gens")
        }
        st["gens"] = gens
        st["links"] = {r[0]: Link(*r) for r in q("SELECT lv, kind, target, mode FROM links")}
        st["hosts"] = {
            r[0]: Host(r[0], json.loads(r[1]), json.loads(r[2]), r[3], json.loads(r[4] or "[]"))
            for r in q("SELECT name, wwns, ports, platform, initiators FROM hosts")
        }
        access: dict[int, set[str]] = {}
        for path, ld in q("SELECT path, ld FROM access"):
            access.setdefault(ld, set()).add(path)
        st["access"] = access
        st["licences"] = dict(q("SELECT product, capacity FROM licences").fetchall())
        st["faults"] = {(k, t) for k, t in q("SELECT kind, target FROM faults")}
        st["reservations"] = self._read_reservations(q)
        overlays: dict[int, dict[int, int]] = {}
        for sv, lb, pb in q("SELECT sv, lblock, pblock FROM overlay"):
            overlays.setdefault(sv, {})[lb] = pb
        st["overlays"] = overlays
        svs_of: dict[int, list[LD]] = {}
        for x in lds.values():
            if x.type == "SV" and x.bv is not None:
                svs_of.setdefault(x.bv, []).append(x)
        for svs in svs_of.values():
            svs.sort(key=lambda x: x.seq)
        families: dict[int, Family] = {}
        st["_ckpt_bases"] = self._ckpt_read_bases(q)
        st["_blocks"] = cache = BlockCache(self.db.conn)  # the block maps: read on demand (blockstore.py)
        retained: dict[int, int] = {}
        try:
            for ld, cur, hw, _failed in q("SELECT ld, cur_epoch, hw, bv_failed FROM families"):
                fam = Family(ld, str(self.data_dir / f"ld_{ld:04x}.dat"), cur, hw=hw, versions=BlockMap(cache, ld))
                fam.open()
                families[ld] = fam
            # The retained versions of each family, counted in SQL: the versions of the blocks with
            # more than one (``kept``) that hold data and are not the block's newest (its head: the
            # version with the greatest epoch, whose pblock SQLite gives with MAX). No version is
            # read into Python: the snapshot index is built per family when first needed. (CROSS
            # JOIN: kept first, then each block's versions by key; the other way round scans every
            # block written, 4x slower at 64 GiB.)
            retained = dict(q(
                "SELECT family, SUM(n) FROM (SELECT k.family AS family, SUM(b.pblock <> ?) - (b.pblock <> ?) AS n,"
                " MAX(b.epoch) FROM kept k CROSS JOIN blocks b ON b.family = k.family AND b.lblock = k.lblock"
                " GROUP BY k.family, k.lblock) GROUP BY family",
                [ZERO, ZERO],
            ).fetchall())
            for fam_ld, lb, epoch in q("SELECT family, lblock, epoch FROM restored"):
                if fam_ld in families:
                    families[fam_ld].src[lb] = epoch
            restores: dict[int, Restore] = {}
            for bv, sv, total, started, sig in q("SELECT bv, sv, total, started, signature FROM restores"):
                restores[bv] = Restore(bv, sv, total, started, sig)
            for bv, lb in q("SELECT bv, lblock FROM restore_pending"):
                restores[bv].pending.add(lb)
        except BaseException:
            for fam in families.values():
                fam.close()
            raise
        for fam in families.values():
            fam.retained = retained.get(fam.ld) or 0
            for sv in svs_of.get(fam.ld, []):
                fam.retained += len(overlays.get(sv.number, {}))
            fam.free = None  # computed when first needed (_free_blocks)
            fam.free_loader = lambda fam=fam: self._free_blocks(fam)
            fam.sv_at = {
                g.epoch: sv.number for sv in svs_of.get(fam.ld, []) if (g := gens.get(sv.number)) and g.live and g.epoch
            }
            fam.live_epochs = sorted(fam.sv_at)
            fam.index_later(lambda fam=fam: self._kept_versions(fam))
        st["families"] = families
        st["restores"] = restores
        st["rpl"] = read_pairs(q, meta)
        st["_sv_index"] = svs_of
        st.update(read_sra_policy_state(q))  # SRA-full policies, consistency labels, events (sra_policy.py)
        st.update(read_hold_state(q))  # holds (holds.py), consistency groups (groups.py): issue 14
        st.update(read_group_state(q))
        return st

    def _kept_versions(self, fam: Family) -> dict[int, list[tuple[int, int]]]:
        """The version lists of a family's blocks with more than one version (``kept``): all its
        snapshot index needs (Family.ensure_index), as the database holds them."""
        kept: dict[int, list[tuple[int, int]]] = {}
        for lb, epoch, pb in self.db.execute(
            "SELECT k.lblock, b.epoch, b.pblock FROM kept k CROSS JOIN blocks b ON b.family = k.family"
            " AND b.lblock = k.lblock WHERE k.family = ? ORDER BY k.lblock, b.epoch", [fam.ld]
        ):
            vs = kept.get(lb)
            if vs is None:
                kept[lb] = [(epoch, pb)]
            else:
                vs.append((epoch, pb))
        return kept

    def _free_blocks(self, fam: Family) -> list[int]:
        """A family's free physical blocks as the state holds them (its first allocation after a load).

        Blocks written by a transaction that never committed are free again (crash recovery); blocks
        a lab checkpoint still maps are not (checkpoints.py), nor those the running transaction
        dropped (reusable once it commits: ``_tx`` adds them then)."""
        used = {pb for (pb,) in self.db.execute("SELECT pblock FROM blocks WHERE family=? AND pblock>=0", [fam.ld])}
        for sv in self._svs_of(fam.ld):
            used.update(self.overlays.get(sv.number, {}).values())
        used.update(p for f, p in self._to_free if f is fam)
        bases = self._ckpt_bases
        return sorted((p for p in range(fam.hw) if p not in used and not pinned(bases, fam.ld, p)), reverse=True)

    def _reload(self, cause: BaseException) -> None:
        """After a failed transaction: the memory state from the database again. If that fails too
        (the storage went), the engine refuses every request (iSM31163) until a reload succeeds."""
        try:
            self._load()
        except STORAGE_ERRORS as exc:
            if self._unloaded is None:
                log.error("array state cannot be reloaded from storage (%s); refusing requests until it can "
                          "(after: %s)", exc, cause)
            self._unloaded = exc
        else:
            self._unloaded = None

    def _loaded(self) -> None:
        """Under the lock, before any request touches the state: reload it if a failure left it
        unloaded, or refuse (iSM31163)."""
        if self._unloaded is not None:
            try:
                self._load()
            except STORAGE_ERRORS as exc:
                self._unloaded = exc
                raise unreadable(exc) from None
            self._unloaded = None
            log.warning("array storage is back: state reloaded, serving again")

    @contextmanager
    def _state(self) -> Iterator[None]:
        """The lock, for a request that reads the state (a loaded one: see ``_loaded``)."""
        with self._lock:
            self._loaded()
            yield

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One atomic operation: BEGIN IMMEDIATE ... COMMIT, or rollback on any failure.

        A refusal (``SnapLabError``) raised before the transaction changed a row costs only the
        rollback: every operation checks before it changes anything, and each change to the memory
        state goes with its row (the rule every mixin keeps: no memory change, then a refusal, before
        the first row). Any later failure reloads the memory state from the database (``_load``).

        A storage failure (disk full, state not writable, I/O error) is answered with its iSM
        refusal (storage.py) and logged; the memory state is then reloaded from the database."""
        with self._lock:
            if self._closed:
                raise SnapLabError(E.INTERNAL, detail="array is shutting down")
            if self._in_tx:
                yield
                return
            self._loaded()
            self._in_tx = True
            self._blocks.hold = True  # no block map evicted until the transaction ends (BlockCache)
            self._to_free = []
            self._to_truncate = []
            self._unsynced = {}
            self._new_files = False
            changes = self.db.conn.total_changes
            try:
                self.db.execute("BEGIN IMMEDIATE")
                yield
                # Acknowledged = durable across power loss: the data first, then the commit (SQLite
                # syncs its log before COMMIT returns: store.py, synchronous=FULL).
                for fam in self._unsynced.values():
                    fam.sync()
                if self._new_files:
                    durability.sync_dir(self.data_dir)
                durability.at_commit(self)
                self.db.execute("COMMIT")
                durability.committed(self)
                self._last_commit = time.monotonic()  # reclaim.py waits for a quiet array
            except BaseException as exc:
                untouched = isinstance(exc, SnapLabError) and self.db.conn.total_changes == changes
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._in_tx = False
                if untouched:  # refused before its first change: nothing to roll back in memory (O(1))
                    raise
                self._reload(exc)
                if isinstance(exc, STORAGE_ERRORS):
                    refusal = storage_refusal(exc)
                    log.error("storage failure, request refused: %s (%s: %s)", refusal, type(exc).__name__, exc)
                    raise refusal from None
                raise
            finally:
                self._in_tx = False
                self._blocks.hold = False  # (a reload made a new cache: this is the current one)
                self._blocks.trim()
            # Physical blocks dropped by the transaction are reusable only once it has committed.
            for fam, p in self._to_free:
                # a checkpoint's block stays; a free list not read yet will find it (_free_blocks)
                if fam.free_loaded and (not self._ckpt_bases or not self._ckpt_pinned(fam.ld, p)):
                    fam.free.append(p)
                    fam.unpunched.add(p)
            self._to_free = []
            # Likewise an unbound LD's data goes only once the unbind has committed (a crash before
            # leaves the LD bound with its data; one after leaves a stale file that _new_ld truncates).
            for path in self._to_truncate:
                try:
                    self._ckpt_discard(path)  # emptied, or moved aside for a lab checkpoint
                except OSError as exc:
                    log.warning("cannot truncate %s: %s", path, exc)
            self._to_truncate = []
            self._cond.notify_all()

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])

    def _save_ld(self, ld: LD) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO lds(number, name, type, format, capacity, pool, attr, bv, seq, signature, link_lost)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [ld.number, ld.name, ld.type, ld.format, ld.capacity, ld.pool, ld.attr, ld.bv, ld.seq, ld.signature,
             int(ld.link_lost)],
        )

    def _save_gen(self, g: Gen) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO gens(sv, state, epoch, state_time, create_time, guard, orig_signature, fault)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [g.sv, g.state, g.epoch, g.state_time, g.create_time, int(g.guard), g.orig_signature, g.fault],
        )

    def _save_family(self, fam: Family) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO families(ld, cur_epoch, hw, bv_failed) VALUES (?,?,?,0)",
            [fam.ld, fam.cur_epoch, fam.hw],
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout=5)
        self._rpl_worker.join(timeout=5)
        self._reclaimer.join(timeout=5)
        with self._lock:
            for fam in self.families.values():
                fam.close()
            self.db.conn.close()

    # ================================================================ lookups (shared by every concern)
    def ld(self, ref: str | int) -> LD:
        """An LD by name, by number (int) or by number text ``0010h``."""
        if isinstance(ref, int):
            found = self.lds.get(ref)
        else:
            found = self.by_name.get(ref)
            if found is None and ref.lower().endswith("h"):
                try:
                    found = self.lds.get(int(ref[:-1], 16))
                except ValueError:
                    found = None
        if found is None:
            raise SnapLabError(E.NOT_FOUND, name=ref)
        return found

    def _svs_of(self, bv: int) -> list[LD]:
        """The BV's SV set in build order (cached: it is on the write path through the SRA check)."""
        if self._sv_index is None:
            index: dict[int, list[LD]] = {}
            for x in self.lds.values():
                if x.type == "SV" and x.bv is not None:
                    index.setdefault(x.bv, []).append(x)
            for svs in index.values():
                svs.sort(key=lambda x: x.seq)
            self._sv_index = index
        return self._sv_index.get(bv, [])

    def _lvs_of(self, bv: int) -> list[LD]:
        return sorted((x for x in self.lds.values() if x.type == "LV" and x.bv == bv), key=lambda x: x.number)

    def _live_gens(self, bv: int) -> list[Gen]:
        """Live generations of a BV, newest first (relative generation -1, -2, ...)."""
        gens = [g for sv in self._svs_of(bv) if (g := self.gens[sv.number]).live]
        return sorted(gens, key=lambda g: g.epoch or 0, reverse=True)

    def figures(self) -> dict:
        """What the daemon's metrics show (array/metrics.py): pools with their SRA, live generations
        per BV (those with an SV set), faults, and the block I/O bytes served since the start."""
        with self._state():
            return {
                "pools": [
                    (p.name, p.capacity, self._pool_used(p.number), self._sra_capacity(p.number),
                     self._sra_used(p.number))
                    for p in sorted(self.pools.values(), key=lambda p: p.number)
                ],
                "generations": [
                    (x.name, len(self._live_gens(x.number)))
                    for x in sorted(self.lds.values(), key=lambda x: x.number)
                    if x.type != "SV" and self._svs_of(x.number)
                ],
                "faults": sorted(self.faults),
                "io": (self.io_read_bytes, self.io_written_bytes),
            }

    def _bv(self, ref: str | int) -> LD:
        ld = self.ld(ref)
        if ld.type != "BV":
            raise SnapLabError(E.NOT_BV, name=ld.name)
        return ld

    def resolve_sv(self, sv_ref: str, svflg: str = "ld", bv_ref: str | int | None = None) -> LD:
        """An SV addressed by name (``ld``), relative generation (``relgen``, with the BV) or ``ld.relgen``."""
        bv = self._bv(bv_ref) if bv_ref is not None else None
        if svflg == "ld":
            sv = self.ld(sv_ref)
            if sv.type != "SV" or (bv is not None and sv.bv != bv.number):
                raise SnapLabError(E.NOT_SV, name=sv.name)
            return sv
        if svflg == "relgen":
            if bv is None:
                raise SnapLabError(E.BAD_ARGUMENT, detail="relgen needs the BV")
            rel = sv_ref.removeprefix(".")
        elif svflg == "ld.relgen":
            base, dot, rel = sv_ref.rpartition(".")
            if not dot or not base:
                raise SnapLabError(E.BAD_ARGUMENT, detail=f"not BV.relgen: {sv_ref}")
            named = self._bv(base)
            if bv is not None and named.number != bv.number:
                raise SnapLabError(E.NOT_SV, name=sv_ref)
            bv = named
        else:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-svflg {svflg}")
        try:
            n = int(rel)
        except ValueError:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"relative generation {sv_ref}") from None
        live = self._live_gens(bv.number)
        if n >= 0 or -n > len(live):
            raise SnapLabError(E.GEN_NOT_FOUND, name=sv_ref)
        return self.lds[live[-n - 1].sv]

    def relgen(self, sv: LD) -> int | None:
        g = self.gens.get(sv.number)
        if g is None or not g.live or g.epoch is None:
            return None
        eps = self.families[sv.bv].live_epochs  # type: ignore[index]
        return -(len(eps) - bisect.bisect_left(eps, g.epoch))

    def _sv_pool(self, bv: int) -> int | None:
        svs = self._svs_of(bv)
        return svs[0].pool if svs else None

    def _sv_link(self, sv: int) -> Link | None:
        for lk in self.links.values():
            if lk.kind == "sv" and lk.target == sv:
                return lk
        return None

    def _bv_link(self, bv: int) -> Link | None:
        for lk in self.links.values():
            if lk.kind == "bv" and lk.target == bv:
                return lk
        return None

    # ================================================================ self-check (tests)
    def verify(self) -> None:
        """Assert the incremental accounting matches a recount, and the memory state what the database
        holds (so a refusal that skipped the reload left nothing behind: ``_tx``). Used by tests."""
        with self._lock:
            if self._closed:
                return  # the block maps are read from array.db, which is closed: a reopened engine checks
            self._verify_against_db()
            kept = set(self.db.execute("SELECT family, lblock FROM kept").fetchall())
            assert kept == set(self.db.execute(
                "SELECT family, lblock FROM blocks GROUP BY family, lblock HAVING COUNT(*) > 1").fetchall()), "kept"
            for fam in self.families.values():
                retained = sum(1 for vs in fam.versions.values() for _, pb in vs[:-1] if pb != ZERO)
                retained += sum(len(self.overlays.get(sv.number, {})) for sv in self._svs_of(fam.ld))
                assert retained == fam.retained, (fam.ld, retained, fam.retained)
                by_epoch, owns = fam.owner_index()
                assert {e: n for e, n in fam.owned.items() if n} == by_epoch, (fam.ld, fam.owned, by_epoch)
                assert {e: x for e, x in fam.last_seen.items() if x} == owns, (fam.ld, "last-seen index")
                assert sum(by_epoch.values()) + sum(
                    len(self.overlays.get(sv.number, {})) for sv in self._svs_of(fam.ld)
                ) == fam.retained
                used = [pb for vs in fam.versions.values() for _, pb in vs if pb != ZERO]
                for sv in self._svs_of(fam.ld):
                    used += list(self.overlays.get(sv.number, {}).values())
                assert len(used) == len(set(used)), "physical block shared"
                assert not set(used) & set(fam.free), "free block in use"
                assert fam.unpunched <= set(fam.free), "block to punch not free"

    def _verify_against_db(self) -> None:
        """The memory state equals the state read from the database anew."""
        fresh = self._read_state()
        try:
            for key in ("name", "pools", "ports", "lds", "gens", "links", "hosts", "licences", "faults", "restores",
                        "reservations", "rpl",
                        "sra_policies", "gen_labels", "cgroups", "cgroup_gens", "cgroup_by_gen"):  # extensions'
                assert getattr(self, key) == fresh[key], (key, getattr(self, key), fresh[key])
            for key in ("access", "overlays", "gen_holds"):  # an emptied entry is no row
                assert {k: v for k, v in getattr(self, key).items() if v} == fresh[key], key
            assert self.families.keys() == fresh["families"].keys(), "families"
            for ld, fam in self.families.items():
                other = fresh["families"][ld]
                fam.versions.check()  # what memory holds of the block map is the database's
                assert (fam.cur_epoch, fam.hw, fam.live_epochs, fam.sv_at, fam.retained, fam.src) == (
                    other.cur_epoch, other.hw, other.live_epochs, other.sv_at, other.retained, other.src
                ), ("family", ld)
                assert set(fam.free) == set(other.free), ("free blocks", ld)
        finally:
            for fam in fresh["families"].values():
                fam.close()
