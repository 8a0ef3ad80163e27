"""Injected faults (SPEC A13): inject, clear, fail the generations they hit, refuse what they forbid."""

from __future__ import annotations

from snaplab.common.errors import E, SnapLabError

from .model import FAULT_BV, FAULT_KINDS, FAULT_SRA, LD, PRODUCTS, STATE_ACTIVE, STATE_FAULT, Gen


class FaultsMixin:
    """Faults set at run time (SRA full or failed, BV failure, licence, path), kept in the database.

    A mixin of ``ArrayEngine`` (engine.py); snapshot operations and I/O call its ``_check_*``.
    """

    def _fault_target(self, kind: str, target: str) -> str:
        """The canonical target of a fault, refused unless it names something this array has: a pool
        with an SRA (sra_*; iSM31001, iSM31014), a BV (bv_failure; iSM19003, iSM19020), a product
        (licence; iSM19001), a registered host (path; iSM31007), another array (array_link; iSM19001)."""
        if kind not in FAULT_KINDS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"fault kind {kind}")
        if kind in ("sra_full", "sra_failure"):
            p = self._pool(target)
            if not self._sra_capacity(p.number):
                raise SnapLabError(E.SRA_NOT_BUILT, name=p.name)
            return p.name
        if kind == "bv_failure":
            bv = self.ld(target)
            if bv.number not in self.families:
                raise SnapLabError(E.NOT_BV, name=bv.name)
            return bv.name
        if kind == "rpl_hold":
            return self.ld(target).name
        if kind == "licence" and target not in PRODUCTS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"product {target}")
        if kind == "path" and target not in self.hosts:
            raise SnapLabError(E.HOST_NOT_FOUND, name=target)
        if kind == "array_link" and target == self.name:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"array_link to the array itself ({target})")
        return target

    def inject_fault(self, kind: str, target: str) -> None:
        with self._state():  # checked before the transaction: a refusal changes nothing to roll back
            target = self._fault_target(kind, target)
            self._inject(kind, target)

    def _inject(self, kind: str, target: str) -> None:
        with self._tx():
            if kind == "sra_failure":  # every snapshot sharing the SRA becomes unreadable
                p = self._pool(target)
                for sv in (x for x in self.lds.values() if x.type == "SV" and x.pool == p.number):
                    self._fail_gen(self.gens[sv.number], FAULT_SRA)
            elif kind == "bv_failure":
                for sv in self._svs_of(self.ld(target).number):
                    self._fail_gen(self.gens[sv.number], FAULT_BV)
            self.db.execute("INSERT OR IGNORE INTO faults VALUES (?,?)", [kind, target])
            self.faults.add((kind, target))

    def _fail_gen(self, g: Gen, fault: int) -> None:
        if g.live:
            g.fault = g.fault or fault
            if g.state == STATE_ACTIVE:
                g.state = STATE_FAULT
                g.state_time = self._clock()
            self._save_gen(g)

    def clear_fault(self, kind: str, target: str) -> None:
        """Clear a fault. A repaired BV comes back empty (its data was lost); failed generations stay
        failed until deleted and re-created, as the guide's recovery steps say."""
        with self._state():
            if (kind, target) not in self.faults:  # a fault set before its target went is still clearable
                target = self._fault_target(kind, target)
            if (kind, target) not in self.faults:
                raise SnapLabError(E.FAULT_NOT_SET, name=f"{kind}:{target}")
            self._clear(kind, target)

    def _clear(self, kind: str, target: str) -> None:
        with self._tx():
            if kind == "bv_failure" and target in self.by_name:
                bv = self.ld(target)
                fam = self.families[bv.number]
                self.db.execute("DELETE FROM blocks WHERE family=?", [fam.ld])
                self.db.execute("DELETE FROM kept WHERE family=?", [fam.ld])
                self.db.execute("DELETE FROM restored WHERE family=?", [fam.ld])
                fam.src.clear()
                for sv in self._svs_of(bv.number):
                    self.db.execute("DELETE FROM overlay WHERE sv=?", [sv.number])
                    self.overlays.pop(sv.number, None)
                fam.versions.clear()
                fam.retained = 0
                fam.owned = {}
                fam.last_seen = {}
                fam.free = []
                fam.unpunched = set()
                fam.hw = 0
                self._ckpt_discard(fam.path, fam)  # emptied (or set aside for a lab checkpoint)
                self._save_family(fam)
            self.db.execute("DELETE FROM faults WHERE kind=? AND target=?", [kind, target])
            self.faults.discard((kind, target))

    def _check_bv_usable(self, bv: LD) -> None:
        if ("bv_failure", bv.name) in self.faults:
            raise SnapLabError(E.BV_FAILURE, name=bv.name)

    def _check_gen_readable(self, sv: LD, g: Gen) -> None:
        if g.fault == FAULT_BV or ("bv_failure", self.lds[sv.bv].name) in self.faults:  # type: ignore[index]
            raise SnapLabError(E.BV_FAILURE, name=sv.name)
        if g.fault == FAULT_SRA or ("sra_failure", self.pools[sv.pool].name) in self.faults:
            raise SnapLabError(E.SRA_FAILURE, name=sv.name)
