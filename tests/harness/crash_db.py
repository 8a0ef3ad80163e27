"""Offline invariants of a crashed array's metadata (array.db): no shared, stray or leaked physical block."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from .crash_model import ACTIVE, RESTORING


def check_db(db_path: Path) -> tuple[list[str], int]:
    """Offline invariants of the metadata, read through a read-only connection in one transaction:
    SQLite's own check; no physical block used twice in a family or beyond its high water mark;
    every retained (non-head) version still seen by a live snapshot (nothing leaked); overlays and
    links only for live generations; restores and rst/exec generations agree. Returns the problems
    and the number of blocks the SRA holds by the metadata (retained versions + overlay blocks)."""
    problems: list[str] = []
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("BEGIN")
        q = conn.execute
        if (r := q("PRAGMA quick_check").fetchone()[0]) != "ok":
            problems.append(f"quick_check: {r}")
        lds = {n: (name, t, bv) for n, name, t, bv in q("SELECT number, name, type, bv FROM lds")}
        fams = {ld: (cur, hw) for ld, cur, hw in q("SELECT ld, cur_epoch, hw FROM families")}
        gens = {sv: (state, epoch) for sv, state, epoch in q("SELECT sv, state, epoch FROM gens")}
        live_states = (ACTIVE, RESTORING, "snap/fault")
        live_epochs: dict[int, list[int]] = {}
        for sv, (state, epoch) in gens.items():
            if state in live_states:
                if epoch is None:
                    problems.append(f"live generation {lds[sv][0]} has no epoch")
                    continue
                live_epochs.setdefault(lds[sv][2], []).append(epoch)
            elif epoch is not None:
                problems.append(f"unused generation {lds[sv][0]} keeps epoch {epoch}")
        used: dict[int, dict[int, str]] = {f: {} for f in fams}

        def use(fam: int, pb: int, what: str) -> None:
            if fam not in fams:
                problems.append(f"{what}: family {fam} does not exist")
                return
            if not 0 <= pb < fams[fam][1]:
                problems.append(f"{what}: physical block {pb} outside 0..hw {fams[fam][1]}")
            if pb in used[fam]:
                problems.append(f"{what}: physical block {pb} also used by {used[fam][pb]}")
            used[fam][pb] = what

        versions: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for fam, lb, epoch, pb in q("SELECT family, lblock, epoch, pblock FROM blocks ORDER BY family, lblock, epoch"):
            versions.setdefault((fam, lb), []).append((epoch, pb))
            if pb != -1:
                use(fam, pb, f"ld {fam} block {lb} epoch {epoch}")
            if fam in fams and epoch > fams[fam][0]:
                problems.append(f"ld {fam} block {lb}: epoch {epoch} > cur_epoch {fams[fam][0]}")
        for (fam, lb), vs in versions.items():
            epochs = sorted(live_epochs.get(fam, []))
            for (e, _pb), (e_next, _) in itertools.pairwise(vs):
                if not any(e <= s < e_next for s in epochs):
                    problems.append(f"ld {fam} block {lb}: version of epoch {e} retained but no live snapshot sees it")
        retained = sum(1 for vs in versions.values() for _e, pb in vs[:-1] if pb != -1)
        for sv, lb, pb in q("SELECT sv, lblock, pblock FROM overlay"):
            name, _t, bv = lds.get(sv, (str(sv), "", None))
            if gens.get(sv, ("", None))[0] not in live_states:
                problems.append(f"overlay of {name} block {lb} but the generation is not live")
            use(bv, pb, f"overlay {name} block {lb}")
            retained += 1
        for lv, kind, target in q("SELECT lv, kind, target FROM links"):
            if kind == "sv" and gens.get(target, ("", None))[0] not in live_states:
                problems.append(f"link {lds.get(lv, (lv,))[0]} -> generation that is not live")
        restores = {bv: sv for bv, sv in q("SELECT bv, sv FROM restores")}
        for bv, sv in restores.items():
            if gens.get(sv, ("", None))[0] != RESTORING:
                problems.append(f"restore of {lds[bv][0]} from {lds[sv][0]} but its state is {gens.get(sv)}")
        for sv, (state, _e) in gens.items():
            if state == RESTORING and sv not in restores.values():
                problems.append(f"{lds[sv][0]} is rst/exec with no restore")
        for (bv,) in q("SELECT DISTINCT bv FROM restore_pending"):
            if bv not in restores:
                problems.append(f"pending restore blocks of {bv} without a restore")
        q("COMMIT")
    finally:
        conn.close()
    return problems, retained
