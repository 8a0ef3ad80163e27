"""Injected faults (SPEC A13): inject, clear, fail the generations they hit, refuse what they forbid."""

from __future__ import annotations

import os

from snaplab.common.errors import E, SnapLabError

from .model import FAULT_BV, FAULT_KINDS, FAULT_SRA, LD, PRODUCTS, STATE_ACTIVE, STATE_FAULT, Gen


class FaultsMixin:
    """Faults set at run time (SRA full or failed, BV failure, licence, path), kept in the database.

    A mixin of ``ArrayEngine`` (engine.py); snapshot operations and I/O call its ``_check_*``.
    """

    def inject_fault(self, kind: str, target: str) -> None:
        if kind not in FAULT_KINDS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"fault kind {kind}")
        with self._tx():
            if kind in ("sra_full", "sra_failure"):
                p = self._pool(target)
                target = p.name
                if kind == "sra_failure":  # every snapshot sharing the SRA becomes unreadable
                    for sv in (x for x in self.lds.values() if x.type == "SV" and x.pool == p.number):
                        self._fail_gen(self.gens[sv.number], FAULT_SRA)
            elif kind == "bv_failure":
                bv = self.ld(target)
                if bv.number not in self.families:
                    raise SnapLabError(E.NOT_BV, name=bv.name)
                target = bv.name
                for sv in self._svs_of(bv.number):
                    self._fail_gen(self.gens[sv.number], FAULT_BV)
            elif kind == "licence" and target not in PRODUCTS:
                raise SnapLabError(E.BAD_ARGUMENT, detail=f"product {target}")
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
        with self._tx():
            if kind in ("sra_full", "sra_failure"):
                target = self._pool(target).name
            if (kind, target) not in self.faults:
                raise SnapLabError(E.NOT_FOUND, name=f"{kind} {target}")
            if kind == "bv_failure":
                bv = self.ld(target)
                fam = self.families[bv.number]
                self.db.execute("DELETE FROM blocks WHERE family=?", [fam.ld])
                for sv in self._svs_of(bv.number):
                    self.db.execute("DELETE FROM overlay WHERE sv=?", [sv.number])
                    self.overlays.pop(sv.number, None)
                fam.versions.clear()
                fam.retained = 0
                fam.owned = {}
                fam.free = []
                fam.hw = 0
                os.truncate(fam.path, 0)
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
