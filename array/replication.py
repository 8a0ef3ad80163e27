"""Data replication pairs (DDR) between two ordinary LDs: pair, replicate, separate, unpair; the copy runs in the background.

SPEC §7 lets replication be modest; this one is a real asynchronous copy with the states Cinder's
NEC driver polls (``Sync State``). A pair is an MV and an RV of the same size, both IVs.

- ``replicate`` starts the copy (``rpl/exec``): the blocks to copy are every block of the MV the
  first time (``-cprange full``), afterwards only the blocks either side changed since separation.
  A worker copies them in batches; an MV write meanwhile goes to both LDs. Done: ``rpl/sync``
  (MV writes still go to both). Hosts cannot reach the RV in either state.
- ``separate`` freezes the RV at the MV's bytes of that moment. Blocks still to copy make it
  ``sep/exec`` (the RV is usable at once, ``-rvuse immediate``): an RV read of such a block reads
  the MV, and an MV write to one first copies the old block over (copy before write), so the
  RV never sees a byte written after the separation. Done: ``separated``.
- While separated (also in ``sep/exec``) every block written on either side counts in the
  pair's ``Separate Diff`` and is what the next ``replicate`` copies.

Pairs live in the array's meta table (``rpl_pairs``: RV number -> MV number, state, whether the
whole LD differs, blocks of the running copy) with the blocks still to copy in ``rpl_pending``
and the changed ones in ``rpl_diff``, written in the same transaction as the bytes they describe,
so a crash resumes the copy where it stood. A ``rpl_hold`` fault on the RV pauses its copy (the
tests use it to see ``rpl/exec`` and ``sep/exec`` without timing).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.san.blocks import BLOCK

from .model import LD

log = logging.getLogger("snaplab.array")

SEPARATED, RPL_EXEC, RPL_SYNC, SEP_EXEC = "separated", "rpl/exec", "rpl/sync", "sep/exec"
COPYING = (RPL_EXEC, SEP_EXEC)
RPL_BATCH = 64  # blocks (4 MiB) copied per lock hold, so host I/O interleaves with a running copy
RPL_PACE = 0.01  # seconds between batches: the array's copy is not instant (about 400 MiB/s)


@dataclass
class RplPair:
    mv: int
    state: str
    full: bool = True  # every block differs (a new pair): the first replicate copies them all
    total: int = 0  # blocks of the running (or last) copy
    pending: set[int] = field(default_factory=set)
    diff: set[int] = field(default_factory=set)


def read_pairs(q: Callable[..., Any], meta: dict) -> dict[int, RplPair]:
    """The pairs as the database holds them (engine._read_state; ``q`` runs one query)."""
    raw = json.loads(meta.get("rpl_pairs") or "{}")
    pairs = {}
    for k, v in raw.items():
        state = {"replicated": RPL_SYNC}.get(v["state"], v["state"])  # a pair from before the async copy
        pairs[int(k)] = RplPair(v["mv"], state, v.get("full", v["state"] == SEPARATED), v.get("total", 0))
    for rv, lb in q("SELECT rv, lblock FROM rpl_pending"):
        pairs[rv].pending.add(lb)
    for rv, lb in q("SELECT rv, lblock FROM rpl_diff"):
        pairs[rv].diff.add(lb)
    return pairs


class ReplicationMixin:
    """Part of ArrayEngine: the replication pairs and their copy worker (``_replication_worker``)."""

    rpl: dict[int, RplPair]

    # -- persistence -------------------------------------------------------------------------------
    def _save_pairs(self) -> None:
        self._set_meta("rpl_pairs", json.dumps(  # type: ignore[attr-defined]
            {str(k): {"mv": p.mv, "state": p.state, "full": p.full, "total": p.total} for k, p in self.rpl.items()}))

    def _drop_rpl_pending(self, rv: int, lbs: list[int]) -> None:
        self.rpl[rv].pending.difference_update(lbs)
        self.db.conn.executemany("DELETE FROM rpl_pending WHERE rv=? AND lblock=?", [(rv, lb) for lb in lbs])  # type: ignore[attr-defined]

    def _add_rpl_diff(self, rv: int, lbs: list[int]) -> None:
        p = self.rpl[rv]
        new = [lb for lb in lbs if lb not in p.diff]
        if new and not p.full:
            p.diff.update(new)
            self.db.conn.executemany("INSERT OR IGNORE INTO rpl_diff VALUES (?,?)", [(rv, lb) for lb in new])  # type: ignore[attr-defined]

    # -- look-ups ------------------------------------------------------------------------------------
    def _plain(self, ref: str | int) -> LD:
        ld = self.ld(ref)  # type: ignore[attr-defined]
        if ld.type != "IV":
            raise SnapLabError(E.RPL_NOT_PLAIN, name=ld.name)
        return ld

    def _pair_of(self, mv_ref: str | int, rv_ref: str | int) -> tuple[LD, LD, RplPair]:
        mv, rv = self._plain(mv_ref), self._plain(rv_ref)
        p = self.rpl.get(rv.number)
        if p is None or p.mv != mv.number:
            raise SnapLabError(E.RPL_NOT_PAIRED, name=f"{mv.name}/{rv.name}")
        return mv, rv, p

    def _pair_with(self, number: int) -> tuple[int, RplPair] | None:
        """(RV number, pair) of the pair an LD is in, as MV or RV."""
        if number in self.rpl:
            return number, self.rpl[number]
        return next(((rv, p) for rv, p in self.rpl.items() if p.mv == number), None)

    def rv_blocked(self, ld: LD) -> bool:
        """Hosts cannot reach an RV being replicated or kept in sync (its bytes are the MV's to set)."""
        p = self.rpl.get(ld.number)
        return p is not None and p.state in (RPL_EXEC, RPL_SYNC)

    # -- operations ---------------------------------------------------------------------------------
    def pair_lds(self, mv_ref: str | int, rv_ref: str | int) -> None:
        """``iSMrc_pair -pair``: both IVs of the same size, neither in another pair."""
        with self._tx():  # type: ignore[attr-defined]
            mv, rv = self._plain(mv_ref), self._plain(rv_ref)
            if mv.number == rv.number or mv.capacity != rv.capacity:
                raise SnapLabError(E.RPL_MISMATCH, name=f"{mv.name}/{rv.name}")
            for ld in (rv, mv):
                if self._pair_with(ld.number) is not None:
                    raise SnapLabError(E.RPL_PAIRED, name=ld.name)
            self.rpl[rv.number] = RplPair(mv.number, SEPARATED)
            self._save_pairs()

    def unpair_lds(self, mv_ref: str | int, rv_ref: str | int, force: bool = False) -> None:
        """``iSMrc_pair -unpair``: only a separated pair (or any with ``-force all``: a copy stops where it is)."""
        with self._tx():  # type: ignore[attr-defined]
            _mv, rv, p = self._pair_of(mv_ref, rv_ref)
            if p.state != SEPARATED and not force:
                raise SnapLabError(E.RPL_NOT_SEPARATED, name=rv.name)
            self.db.execute("DELETE FROM rpl_pending WHERE rv=?", [rv.number])  # type: ignore[attr-defined]
            self.db.execute("DELETE FROM rpl_diff WHERE rv=?", [rv.number])  # type: ignore[attr-defined]
            del self.rpl[rv.number]
            self._save_pairs()

    def replicate_ld(self, mv_ref: str | int, rv_ref: str | int) -> None:
        """``iSMrc_replicate``: start copying the MV to the RV (``rpl/exec``); returns at once."""
        with self._tx():  # type: ignore[attr-defined]
            mv, rv, p = self._pair_of(mv_ref, rv_ref)
            if p.state != SEPARATED:
                raise SnapLabError(E.RPL_NOT_SEPARATED, name=rv.name)
            blocks = -(-mv.capacity // BLOCK)
            todo = set(range(blocks)) if p.full else set(p.diff)
            self.db.execute("DELETE FROM rpl_diff WHERE rv=?", [rv.number])  # type: ignore[attr-defined]
            self.db.conn.executemany("INSERT INTO rpl_pending VALUES (?,?)", [(rv.number, lb) for lb in todo])  # type: ignore[attr-defined]
            p.pending, p.diff, p.full, p.total = todo, set(), False, len(todo)
            p.state = RPL_EXEC if todo else RPL_SYNC
            self._save_pairs()  # the worker wakes at the commit (engine._tx notifies)

    def separate_ld(self, mv_ref: str | int, rv_ref: str | int) -> None:
        """``iSMrc_separate``: the RV stands alone with the MV's bytes of now (``sep/exec`` while blocks remain)."""
        with self._tx():  # type: ignore[attr-defined]
            _mv, rv, p = self._pair_of(mv_ref, rv_ref)
            if p.state not in (RPL_EXEC, RPL_SYNC):
                raise SnapLabError(E.RPL_NOT_REPLICATING, name=rv.name)
            p.state = SEP_EXEC if p.pending else SEPARATED
            self._save_pairs()

    def pair_states(self) -> dict[int, tuple[int, str]]:
        """RV number -> (MV number, state), for ``describe()``."""
        return {rv: (p.mv, p.state) for rv, p in self.rpl.items()}

    def pair_progress(self, rv: int) -> tuple[int, int]:
        """(copy progress in percent, Separate Diff in bytes) of the pair whose RV is ``rv``."""
        p = self.rpl[rv]
        done = 100 if not p.total else (p.total - len(p.pending)) * 100 // p.total
        capacity = self.lds[rv].capacity  # type: ignore[attr-defined]
        diff = capacity if p.full else min(capacity, len(p.diff) * BLOCK)
        return done, diff

    # -- the copy ------------------------------------------------------------------------------------
    def _copy_blocks(self, rv_num: int, p: RplPair, lbs: list[int]) -> None:
        """Copy blocks of the MV's head to the RV's (None: zeros) and take them off the pending set."""
        mv, rv = self.lds[p.mv], self.lds[rv_num]  # type: ignore[attr-defined]
        src, dst = self.families[mv.number], self.families[rv.number]  # type: ignore[attr-defined]
        plan = []
        for lb in lbs:
            pb = self._head_pblock(src, lb)  # type: ignore[attr-defined]
            have = self._head_pblock(dst, lb)  # type: ignore[attr-defined]
            if pb is None and have is None:
                continue  # zeros on both sides
            plan.append((lb, None if pb is None else src.read_pblock(pb)))
        if plan:
            self._commit_head_blocks(rv, dst, plan)  # type: ignore[attr-defined]
        self._drop_rpl_pending(rv_num, lbs)
        if not p.pending:
            p.state = {RPL_EXEC: RPL_SYNC, SEP_EXEC: SEPARATED}.get(p.state, p.state)
            self._save_pairs()

    def _rpl_before_write(self, ld: LD, lbs: list[int]) -> tuple[int, RplPair] | None:
        """Before a head write: an RV being replicated takes none; in ``sep/exec`` the blocks still to
        copy are copied first (the RV keeps the MV's bytes of the separation)."""
        hit = self._pair_with(ld.number) if self.rpl else None
        if hit is None:
            return None
        rv_num, p = hit
        if ld.number == rv_num and p.state in (RPL_EXEC, RPL_SYNC):
            raise SnapLabError(E.NOT_READY, name=ld.name)
        if p.state == SEP_EXEC:
            todo = [lb for lb in lbs if lb in p.pending]
            if todo:
                self._copy_blocks(rv_num, p, todo)
        return hit

    def _rpl_after_write(self, ld: LD, lbs: list[int], hit: tuple[int, RplPair]) -> None:
        """After a head write: an MV write being replicated goes to the RV too; a separated pair counts it."""
        rv_num, p = hit
        if p.state in (RPL_EXEC, RPL_SYNC) and ld.number == p.mv:
            self._copy_blocks(rv_num, p, lbs)
        elif p.state in (SEPARATED, SEP_EXEC):
            self._add_rpl_diff(rv_num, lbs)

    def _rv_read_overlay(self, ld: LD, offset: int, data: bytes) -> bytes:
        """An RV read in ``sep/exec``: blocks not copied yet read as the MV's (unchanged since the separation)."""
        p = self.rpl.get(ld.number) if self.rpl else None
        if p is None or p.state != SEP_EXEC or not p.pending:
            return data
        first, last = offset // BLOCK, (offset + len(data) - 1) // BLOCK
        todo = [lb for lb in range(first, last + 1) if lb in p.pending]
        if not todo:
            return data
        out = bytearray(data)
        mv = self.lds[p.mv]  # type: ignore[attr-defined]
        src = self.families[mv.number]  # type: ignore[attr-defined]
        for lb in todo:
            lo, hi = max(offset, lb * BLOCK), min(offset + len(data), (lb + 1) * BLOCK)
            pb = self._head_pblock(src, lb)  # type: ignore[attr-defined]
            block = bytes(BLOCK) if pb is None else src.read_pblock(pb).ljust(BLOCK, b"\0")
            out[lo - offset : hi - offset] = block[lo - lb * BLOCK : hi - lb * BLOCK]
        return bytes(out)

    def _replication_worker(self) -> None:
        while True:
            with self._lock:  # type: ignore[attr-defined]
                while not self._closed and not self._copying():  # type: ignore[attr-defined]
                    self._cond.wait(timeout=1.0)  # type: ignore[attr-defined]
                if self._closed:  # type: ignore[attr-defined]
                    return
                try:
                    for rv_num, p in list(self._copying().items()):
                        with self._tx():  # type: ignore[attr-defined]
                            self._copy_blocks(rv_num, p, sorted(p.pending)[:RPL_BATCH])
                except SnapLabError as exc:  # e.g. the pool's storage failed: the copy waits where it is
                    log.warning("replication copy stopped: %s", exc)
                    self._cond.wait(timeout=1.0)  # type: ignore[attr-defined]
                except Exception:  # never let the worker die; the transaction was rolled back
                    log.exception("replication step failed")
                    self._cond.wait(timeout=1.0)  # type: ignore[attr-defined]
            time.sleep(RPL_PACE)

    def _copying(self) -> dict[int, RplPair]:
        held = {t for k, t in self.faults if k == "rpl_hold"}  # type: ignore[attr-defined]
        return {rv: p for rv, p in self.rpl.items()
                if p.state in COPYING and p.pending and self.lds[rv].name not in held}  # type: ignore[attr-defined]
