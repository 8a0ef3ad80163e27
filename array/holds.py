"""SnapLab extension (issue 14): named holds on a generation (``iSMsc_svguard … -hold NAME``), as ZFS's.

A hold is a tag on one generation (an SV's snapshot of one epoch); the generation's reference count is
the number of its holds, each name at most once (ZFS: ``zfs hold`` of a tag already there fails). A
generation with a hold is never deleted: not by ``iSMsc_delete`` (iSM31269 naming the holds), not by a
create that would refresh it, not by a cyclic create's choice, ``-derivsv delete`` or SRA-full
auto-delete (held generations are skipped entirely, unlike guarded ones which go as a last resort).
``invalidate-all`` does invalidate them: the pool failed and nothing can keep their data, so the hold
goes with the data. Holds live in array.db keyed by (SV, epoch): a generation deleted or re-created
has none. docs/extensions.md.
"""

from __future__ import annotations

import re
from typing import Any

from snaplab.common.errors import E, SnapLabError

from .model import LD, Gen

HOLD_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_HOLDS = 64  # per generation


def create_tables(db: Any) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS gen_holds (sv INTEGER, name TEXT, epoch INTEGER, time TEXT,"
        " PRIMARY KEY (sv, name))"
    )


def read_state(q: Any) -> dict:
    holds: dict[int, dict[str, int]] = {}
    for sv, name, epoch in q("SELECT sv, name, epoch FROM gen_holds"):
        holds.setdefault(sv, {})[name] = epoch
    return {"gen_holds": holds}


def check_name(name: str) -> str:
    if not HOLD_NAME.fullmatch(name):
        raise SnapLabError(E.HOLD_BAD, detail=f"{name!r}: 1-64 letters, digits and _ . : -")
    return name


class HoldsMixin:
    """A mixin of ``ArrayEngine`` (engine.py); snapshots.py, restore.py and blockio.py ask it whether a
    generation is held."""

    def _holds(self, g: Gen) -> list[str]:
        """The names of the generation's holds as it is now (sorted)."""
        if not g.live or g.epoch is None:
            return []
        return sorted(n for n, e in self.gen_holds.get(g.sv, {}).items() if e == g.epoch)

    def _check_unheld(self, sv: LD, g: Gen) -> None:
        held = self._holds(g)
        if held:
            raise SnapLabError(E.GEN_HELD, name=f"{sv.name}: {', '.join(held)}")

    def hold(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, name: str) -> str:
        """Place hold ``name`` on a live generation (iSM31270 if it has it already)."""
        check_name(name)
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            self._hold_gen(sv, name)
            return sv.name

    def _hold_gen(self, sv: LD, name: str) -> None:
        g = self.gens[sv.number]
        if not g.live or g.epoch is None:
            raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
        held = self._holds(g)
        if name in held:
            raise SnapLabError(E.HOLD_EXISTS, name=f"{sv.name}: {name}")
        if len(held) >= MAX_HOLDS:
            raise SnapLabError(E.HOLD_BAD, detail=f"{sv.name}: at most {MAX_HOLDS} holds")
        # rows of an older generation of this SV are stale: they go now
        self.db.execute("DELETE FROM gen_holds WHERE sv=? AND epoch IS NOT ?", [sv.number, g.epoch])
        self.db.execute(
            "INSERT OR REPLACE INTO gen_holds VALUES (?,?,?,?)", [sv.number, name, g.epoch, self._clock()]
        )
        mine = {n: e for n, e in self.gen_holds.get(sv.number, {}).items() if e == g.epoch}
        mine[name] = g.epoch
        self.gen_holds[sv.number] = mine

    def release(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, name: str) -> str:
        """Release hold ``name`` of a generation (iSM31271 if it has no such hold)."""
        check_name(name)
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            self._release_gen(sv, name)
            return sv.name

    def _release_gen(self, sv: LD, name: str) -> None:
        g = self.gens[sv.number]
        if name not in self._holds(g):
            raise SnapLabError(E.HOLD_NOT_FOUND, name=f"{sv.name}: {name}")
        self.db.execute("DELETE FROM gen_holds WHERE sv=? AND name=?", [sv.number, name])
        self.gen_holds[sv.number].pop(name)
