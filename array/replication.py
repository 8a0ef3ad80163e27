"""Data replication pairs (DDR) between two ordinary LDs: pair, replicate (a real copy), separate, unpair.

SPEC §7 lets replication be modest: a pair is an MV and an RV of the same size; ``replicate``
copies every byte of the MV to the RV in one transaction (only the blocks either holds data in,
the rest reads as zeros on both) and leaves the pair ``replicated``; ``separate`` makes the RV
usable on its own (``separated``), holding the MV's bytes as of the copy. States are the ones
Cinder's NEC driver polls (``Sync State``: ``separated``, ``replicated``). Pairs live in the
array's meta table (``rpl_pairs``: RV number -> MV number and state).
"""

from __future__ import annotations

import json

from snaplab.common.errors import E, SnapLabError
from snaplab.san.blocks import BLOCK

from .model import LD

SEPARATED, REPLICATED = "separated", "replicated"


class ReplicationMixin:
    """Part of ArrayEngine: the replication pairs."""

    def _pairs(self) -> dict[int, dict]:
        raw = dict(self.db.execute("SELECT key, value FROM meta").fetchall()).get("rpl_pairs")  # type: ignore[attr-defined]
        return {int(k): v for k, v in json.loads(raw).items()} if raw else {}

    def _save_pairs(self, pairs: dict[int, dict]) -> None:
        self._set_meta("rpl_pairs", json.dumps({str(k): v for k, v in pairs.items()}))  # type: ignore[attr-defined]

    def _plain(self, ref: str | int) -> LD:
        ld = self.ld(ref)  # type: ignore[attr-defined]
        if ld.type != "IV":
            raise SnapLabError(E.RPL_NOT_PLAIN, name=ld.name)
        return ld

    def _pair_of(self, mv_ref: str | int, rv_ref: str | int) -> tuple[LD, LD, dict[int, dict]]:
        mv, rv = self._plain(mv_ref), self._plain(rv_ref)
        pairs = self._pairs()
        p = pairs.get(rv.number)
        if p is None or p["mv"] != mv.number:
            raise SnapLabError(E.RPL_NOT_PAIRED, name=f"{mv.name}/{rv.name}")
        return mv, rv, pairs

    def pair_lds(self, mv_ref: str | int, rv_ref: str | int) -> None:
        """``iSMrc_pair -pair``: both IVs of the same size, neither in another pair."""
        with self._tx():  # type: ignore[attr-defined]
            mv, rv = self._plain(mv_ref), self._plain(rv_ref)
            if mv.number == rv.number or mv.capacity != rv.capacity:
                raise SnapLabError(E.RPL_MISMATCH, name=f"{mv.name}/{rv.name}")
            pairs = self._pairs()
            busy = {n for n in pairs} | {p["mv"] for p in pairs.values()}
            if rv.number in busy or any(p["mv"] == rv.number for p in pairs.values()) or mv.number in pairs:
                raise SnapLabError(E.RPL_PAIRED, name=rv.name if rv.number in busy else mv.name)
            pairs[rv.number] = {"mv": mv.number, "state": SEPARATED}
            self._save_pairs(pairs)

    def unpair_lds(self, mv_ref: str | int, rv_ref: str | int, force: bool = False) -> None:
        """``iSMrc_pair -unpair``: only a separated pair (or any with ``-force all``)."""
        with self._tx():  # type: ignore[attr-defined]
            _mv, rv, pairs = self._pair_of(mv_ref, rv_ref)
            if pairs[rv.number]["state"] != SEPARATED and not force:
                raise SnapLabError(E.RPL_NOT_SEPARATED, name=rv.name)
            del pairs[rv.number]
            self._save_pairs(pairs)

    def replicate_ld(self, mv_ref: str | int, rv_ref: str | int) -> None:
        """``iSMrc_replicate``: the RV becomes a byte copy of the MV (one transaction)."""
        with self._tx():  # type: ignore[attr-defined]
            mv, rv, pairs = self._pair_of(mv_ref, rv_ref)
            src, dst = self.families[mv.number], self.families[rv.number]  # type: ignore[attr-defined]
            for lb in sorted(set(src.versions) | set(dst.versions)):
                data = self._read_head(mv, src, lb * BLOCK, min(BLOCK, mv.capacity - lb * BLOCK))  # type: ignore[attr-defined]
                self._write_head(rv, dst, lb * BLOCK, data)  # type: ignore[attr-defined]
            pairs[rv.number]["state"] = REPLICATED
            self._save_pairs(pairs)

    def separate_ld(self, mv_ref: str | int, rv_ref: str | int) -> None:
        """``iSMrc_separate``: the RV stands alone again, holding the MV's bytes as of the copy."""
        with self._tx():  # type: ignore[attr-defined]
            _mv, rv, pairs = self._pair_of(mv_ref, rv_ref)
            pairs[rv.number]["state"] = SEPARATED
            self._save_pairs(pairs)

    def pair_states(self) -> dict[int, tuple[int, str]]:
        """RV number -> (MV number, state), for ``describe()``."""
        return {rv: (p["mv"], p["state"]) for rv, p in self._pairs().items()}
