"""Restore (SPEC A8): make a BV equal a generation, copied block by block by a background worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from snaplab.common.errors import E, SnapLabError
from snaplab.san import disklayout
from snaplab.san.blocks import BLOCK

from .blockstore import Family
from .model import LD, STATE_ACTIVE, STATE_RESTORING, Restore

log = logging.getLogger("snaplab.array")

RESTORE_BATCH = 256  # blocks (16 MiB) copied per lock hold, so host I/O interleaves with a running restore
RATE_STEPS = 10  # batches a second at a set copy rate: progress moves smoothly, not in one jump a second
MIB = 1 << 20
MAX_RESTORE_RATE = 100_000.0  # MiB/s: far beyond any disk; a unit typed wrong is refused, not run


def restore_pace(rate_mib: float) -> tuple[int, float]:
    """(blocks per batch, seconds per block) of a copy rate in MiB/s; 0 is as fast as the disk allows.

    A real array copies a restore at a rate the operator sees (guide 2.3.5: ``rst/exec`` for a
    while, its progress, an interruption to rehearse); without a rate a lab restore is over before
    any command can look."""
    if rate_mib <= 0:
        return RESTORE_BATCH, 0.0
    per_second = rate_mib * MIB / BLOCK
    return max(1, min(RESTORE_BATCH, int(per_second / RATE_STEPS))), 1.0 / per_second


class RestoreMixin:
    """``iSMsc_restore`` and ``iSMsc_wait``; the BV reads as the generation from the start of the copy.

    A mixin of ``ArrayEngine`` (engine.py), whose constructor starts ``_restore_worker``; the
    copy writes through blockio.py's ``_commit_head_blocks``.
    """

    def restore(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, derived: str = "keep",
                allow_multi: bool = False, allow_gpt: bool = False) -> dict:
        """``iSMsc_restore``: make the BV equal the generation, copying only the blocks that differ.

        Returns at once (the copy runs in the background, state ``rst/exec``); the BV already reads as
        the generation while it runs. ``derived='delete'`` deletes the generations newer than it.
        """
        if derived not in ("keep", "delete"):
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-derivsv {derived}")
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            self._check_bv_usable(bv)
            if bv.number in self.restores:
                raise SnapLabError(E.RESTORING, name=bv.name)
            if self._bv_link(bv.number) is not None:
                raise SnapLabError(E.BV_BUSY_LINK, name=bv.name)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            g = self.gens[sv.number]
            if g.live:
                self._check_gen_readable(sv, g)
            if g.state != STATE_ACTIVE:
                raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
            if self._sv_link(sv.number) is not None:
                raise SnapLabError(E.SV_LINKED, name=sv.name)
            self._check_layout(sv, lambda o, n: self._read_gen(sv, g, o, n), allow_multi, allow_gpt)
            if derived == "delete":
                newer = [x for x in self._live_gens(bv.number) if (x.epoch or 0) > (g.epoch or 0)]
                for x in newer:
                    if x.guard:
                        raise SnapLabError(E.SV_GUARDED, name=self.lds[x.sv].name)
                    self._check_unheld(self.lds[x.sv], x)  # type: ignore[attr-defined]  # holds.py
                    if self._sv_link(x.sv) is not None:
                        raise SnapLabError(E.SV_LINKED, name=self.lds[x.sv].name)
                for x in newer:
                    self._delete_gen(x)
            fam = self.families[bv.number]
            ov = self.overlays.get(sv.number, {})
            # Not DISTINCT: SQLite would then walk the family's whole map by its key (every block
            # written) instead of the epoch index (only the blocks written since); the set dedups.
            changed = self.db.execute(
                "SELECT lblock FROM blocks WHERE family=? AND epoch>?", [fam.ld, g.epoch or 0]
            )
            candidates = {lb for (lb,) in changed} | set(ov)
            fam.versions.load(candidates)  # their version lists in few queries (blockstore.BlockCache)
            pending = {lb for lb in candidates if not self._holds_gen_block(fam, g, lb)}
            signature = None
            if bv.format == "WN":
                signature = disklayout.read_signature(self._read_head(bv, fam, 0, disklayout.SECTOR))
            r = Restore(bv.number, sv.number, len(pending), self._clock(), signature, pending)
            self.db.execute("INSERT INTO restores VALUES (?,?,?,?,?)", [r.bv, r.sv, r.total, r.started, signature])
            self.db.conn.executemany("INSERT INTO restore_pending VALUES (?,?)", [(bv.number, lb) for lb in pending])
            self.restores[bv.number] = r
            g.state, g.state_time = STATE_RESTORING, self._clock()
            self._save_gen(g)
            # Block 0 first and at once: it carries the BV's pre-copy signature (A10).
            if 0 in pending:
                self._restore_blocks(bv, fam, r, [0])
            if not r.pending:
                self._finish_restore(bv, r)
            return self._gen_info(sv)

    def _holds_gen_block(self, fam: Family, g, lb: int) -> bool:
        """Whether the BV's block ``lb`` already holds the generation's bytes (no copy needed)."""
        ov = self.overlays.get(g.sv)
        if ov and lb in ov:  # an overlay block can be rewritten in place of its row: compare by identity
            return self._head_pblock(fam, lb) == ov[lb]
        return fam.same_as(lb, fam.visible(lb, g.epoch))

    def _restore_blocks(self, bv: LD, fam: Family, r: Restore, lbs: list[int]) -> None:
        sv = self.lds[r.sv]
        g = self.gens[sv.number]
        ov = self.overlays.get(sv.number, {})
        plan, src = [], {}
        for lb in lbs:
            content = self._gen_block(fam, g, lb)
            if lb == 0 and r.signature is not None and content is not None and disklayout.has_mbr(content):
                content = disklayout.with_signature(content, r.signature)
            elif content is not None and lb not in ov:
                # the copy holds that version's bytes (a non-head version never changes): a later
                # restore from a generation that sees the same version finds nothing to copy
                src[lb] = fam.visible(lb, g.epoch)[0]  # type: ignore[index]
            plan.append((lb, content))
        self._commit_head_blocks(bv, fam, plan, restoring=r, src=src)
        self._drop_pending(r, lbs)

    def _drop_pending(self, r: Restore, lbs: list[int]) -> None:
        r.pending.difference_update(lbs)
        self.db.conn.executemany("DELETE FROM restore_pending WHERE bv=? AND lblock=?", [(r.bv, lb) for lb in lbs])

    def _finish_restore(self, bv: LD, r: Restore) -> None:
        g = self.gens[r.sv]
        if g.state == STATE_RESTORING:
            g.state, g.state_time = STATE_ACTIVE, self._clock()
            self._save_gen(g)
        self.db.execute("DELETE FROM restores WHERE bv=?", [bv.number])
        self.db.execute("DELETE FROM restore_pending WHERE bv=?", [bv.number])
        del self.restores[bv.number]

    def _restore_worker(self) -> None:
        batch_size, per_block = restore_pace(self.restore_rate)
        while True:
            copied = 0
            with self._lock:
                while not self._closed and not self.restores:
                    self._cond.wait(timeout=1.0)
                if self._closed:
                    return
                try:
                    for bv_num, r in list(self.restores.items()):
                        with self._tx():
                            bv = self.lds[bv_num]
                            if r.pending:
                                batch = sorted(r.pending)[:batch_size]
                                self._restore_blocks(bv, self.families[bv_num], r, batch)
                                copied += len(batch)
                            if not r.pending:
                                self._finish_restore(bv, r)
                except SnapLabError as exc:  # e.g. the BV failed meanwhile: the restore stops where it is
                    log.warning("restore stopped: %s", exc)
                    self._cond.wait(timeout=1.0)
                except Exception:  # never let the worker die; the transaction was rolled back
                    log.exception("restore step failed")
                    self._cond.wait(timeout=1.0)
            # Let host I/O and operations take the lock between batches; at a set rate, hold it.
            time.sleep(copied * per_block)

    def wait(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, cond: str = "active",
             timeout: float | None = None) -> dict:
        """``iSMsc_wait -cond active|deleted``: block until the generation reaches the condition."""
        if cond not in ("active", "deleted"):
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-cond {cond}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state():
            bv = self._bv(bv_ref)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            while True:
                g = self.gens.get(sv.number)
                if g is None:
                    raise SnapLabError(E.NOT_FOUND, name=sv.name)
                if cond == "active" and g.state == STATE_ACTIVE:
                    return self._gen_info(sv)
                if cond == "active" and g.state != STATE_RESTORING:
                    raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
                if cond == "deleted" and not g.live:
                    return self._gen_info(sv)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise SnapLabError(E.WAIT_TIMEOUT, name=sv.name)
                if self._closed:
                    raise SnapLabError(E.INTERNAL, detail="array is shutting down")
                self._cond.wait(timeout=min(left, 1.0) if left is not None else 1.0)

    def watch_commits(self, committed: Callable[[], None], stop: Callable[[], bool]) -> None:
        """Call ``committed()`` after every committed transaction until ``stop()`` or the engine closes.

        For waits that hold no thread of their own (the gRPC service's ``Wait``): one thread runs
        this for all of them. It holds the lock whenever it is not waiting, so no commit goes unseen;
        ``committed`` runs under the lock and must be quick.
        """
        with self._lock:
            while not self._closed and not stop():
                if self._cond.wait(timeout=1.0):
                    committed()

    @contextmanager
    def lock_if_free(self) -> Iterator[bool]:
        """Hold the engine's lock if it is free now (yields True), else hold nothing (False): lets an
        event loop run a quick read-only call at once when that would not block it."""
        got = self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()
