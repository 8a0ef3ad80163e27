"""The crash harness's model of the array: what every BV, SV and LV must hold, the rules ops meet, checkpoints."""

from __future__ import annotations

import copy
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KiB, MiB = 1 << 10, 1 << 20
BLOCK = 64 * KiB  # snaplab.array.blockstore.BLOCK
DSV = "DynamicSnapVolume"
BASE_POOL, SNAP_POOL = "CrashBase", "CrashSnap"
SRA = 512 * MiB  # far more than the SV sets can ever hold: no SRA-full auto-deletion to model
# (BV name, capacity, SVs in its set, LV name)
LAYOUT = [("CrashBV0", 4 * MiB, 6, "CrashLV0"), ("CrashBV1", 2 * MiB, 4, "CrashLV1")]

ACTIVE, RESTORING, DELETED = "snap/active", "rst/exec", "snap/deleted"
# Exit codes of the worker
EXIT_DEADLINE, EXIT_DAEMON_GONE, EXIT_UNEXPECTED = 0, 3, 4


def _ids() -> dict[str, str]:
    from snaplab.common.errors import E

    names = ("SV_ACTIVE", "SV_NOT_ACTIVE", "SV_GUARDED", "NO_CYCLIC_SV", "GEN_NOT_FOUND", "SV_LINKED",
             "RESTORING", "LV_LINKED", "LV_NOT_LINKED", "BV_BUSY_LINK", "NOT_READY")
    return {n: getattr(E, n).msg_id for n in names}


ID = _ids()


MAX_WRITE = 3 * MiB
_POOL: bytes | None = None


def payload_pool() -> bytes:
    global _POOL
    if _POOL is None:  # the same random bytes in every process of every run (made in ~20 ms)
        _POOL = random.Random(0x5EED).randbytes(8 * MiB + MAX_WRITE)
    return _POOL


def payload(src: int, off: int, n: int) -> bytes:
    """The bytes of a write: ``n`` bytes at ``src`` of a fixed random pool (a write's record names
    ``src``, picked at random, so two writes almost never carry the same bytes, and a block that moved
    or came back stale shows). Byte 510 of an LD is never 0x55, so no LD ever looks partitioned
    (create, link and restore then never refuse for the layout)."""
    data = payload_pool()[src : src + n]
    if off <= 510 < off + n:
        b = bytearray(data)
        b[510 - off] = 0
        data = bytes(b)
    return data


def write_chunks(op: dict) -> int:
    return max(1, -(-op["len"] // op["chunk"]))


class Refused(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.msg_id = ID[name]


@dataclass
class GenM:
    bv: str
    live: bool = False
    data: bytes | None = None
    guard: bool = False
    order: int = 0  # creation order (the engine's epoch order within a BV)


@dataclass
class BvM:
    name: str
    cap: int
    svs: list[str]  # the SV set, in build order
    lv: str
    data: bytes
    restoring: str | None = None  # SV of a restore not yet seen finished (no wait acknowledged since)


@dataclass
class Model:
    """What the array must hold. Contents are immutable ``bytes`` (a write makes a new object), so
    ``copy.deepcopy`` shares them and costs nothing."""

    bvs: dict[str, BvM] = field(default_factory=dict)
    gens: dict[str, GenM] = field(default_factory=dict)
    links: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # lv -> (kind, target) | None
    counter: int = 0

    @classmethod
    def initial(cls) -> Model:
        m = cls()
        for bv, cap, nsv, lv in LAYOUT:
            svs = [f"{bv}_SV{i + 1:02d}" for i in range(nsv)]
            m.bvs[bv] = BvM(bv, cap, svs, lv, bytes(cap))
            for sv in svs:
                m.gens[sv] = GenM(bv)
            m.links[lv] = None
        return m

    def copy(self) -> Model:
        return copy.deepcopy(self)

    # -- lookups ---------------------------------------------------------------------------------
    def live_gens(self, bv: str) -> list[str]:
        """Live SVs of a BV, newest first (relative generation -1, -2, ...)."""
        live = [sv for sv in self.bvs[bv].svs if self.gens[sv].live]
        return sorted(live, key=lambda sv: self.gens[sv].order, reverse=True)

    def sv_link(self, sv: str) -> str | None:
        return next((lv for lv, lk in self.links.items() if lk == ("sv", sv)), None)

    def bv_link(self, bv: str) -> str | None:
        return next((lv for lv, lk in self.links.items() if lk == ("bv", bv)), None)

    def lv_bv(self, lv: str) -> str:
        return next(b.name for b in self.bvs.values() if b.lv == lv)

    def resolve(self, bv: str, sv: str, svflg: str) -> str:
        if svflg == "ld":
            return sv
        live = self.live_gens(bv)
        n = int(sv)
        if n >= 0 or -n > len(live):
            raise Refused("GEN_NOT_FOUND")
        return live[-n - 1]

    def cyclic_choice(self, bv: str) -> str | None:
        for sv in self.bvs[bv].svs:
            if not self.gens[sv].live:
                return sv
        for sv in reversed(self.live_gens(bv)):
            if not self.gens[sv].guard and self.bvs[bv].restoring != sv:
                return sv
        return None

    def state(self, sv: str) -> str:
        g = self.gens[sv]
        if not g.live:
            return DELETED
        return RESTORING if self.bvs[g.bv].restoring == sv else ACTIVE

    def write_target(self, ld: str) -> tuple[str, str]:
        """("bv", name) or ("sv", name): where a write to ``ld`` (BV or LV) lands."""
        if ld in self.bvs:
            return ("bv", ld)
        lk = self.links[ld]
        if lk is None:
            raise Refused("NOT_READY")
        return lk

    def content(self, kind: str, name: str) -> bytes:
        return self.bvs[name].data if kind == "bv" else self.gens[name].data  # type: ignore[return-value]

    # -- the rules the worker's operations meet (a subset of engine.py's, in its order) -----------
    def expect(self, op: dict) -> str | None:
        """None when ``op`` must succeed, else the iSM message id of its refusal."""
        try:
            self._check(op)
        except Refused as r:
            return r.msg_id
        return None

    def _check(self, op: dict) -> None:
        kind = op["op"]
        if kind == "write":
            self.write_target(op["ld"])
        elif kind == "create":
            bv = op["bv"]
            if self.bvs[bv].restoring:
                raise Refused("RESTORING")
            if op.get("cyclic"):
                sv = self.cyclic_choice(bv)
                if sv is None:
                    raise Refused("NO_CYCLIC_SV")
            else:
                sv = self.resolve(bv, op["sv"], op.get("svflg", "ld"))
                if self.gens[sv].live and self.gens[sv].guard:
                    raise Refused("SV_GUARDED")
            if self.gens[sv].live and self.sv_link(sv):
                raise Refused("SV_LINKED")
        elif kind == "delete":
            bv = op["bv"]
            if op.get("auto"):
                sv = self.cyclic_choice(bv)
                if sv is None:
                    raise Refused("NO_CYCLIC_SV")
                if not self.gens[sv].live:
                    return
            else:
                sv = self.resolve(bv, op["sv"], op.get("svflg", "ld"))
            if not self.gens[sv].live:
                raise Refused("SV_NOT_ACTIVE")
            if self.gens[sv].guard:
                raise Refused("SV_GUARDED")
            if self.state(sv) == RESTORING:
                raise Refused("RESTORING")
            if self.sv_link(sv):
                raise Refused("SV_LINKED")
        elif kind == "guard":
            sv = self.resolve(op["bv"], op["sv"], op.get("svflg", "ld"))
            if not self.gens[sv].live:
                raise Refused("SV_NOT_ACTIVE")
        elif kind == "restore":
            bv = op["bv"]
            if self.bvs[bv].restoring:
                raise Refused("RESTORING")
            if self.bv_link(bv):
                raise Refused("BV_BUSY_LINK")
            sv = self.resolve(bv, op["sv"], op.get("svflg", "ld"))
            if self.state(sv) != ACTIVE:
                raise Refused("SV_NOT_ACTIVE")
            if self.sv_link(sv):
                raise Refused("SV_LINKED")
            if op.get("derived") == "delete":
                newer = [x for x in self.live_gens(bv) if self.gens[x].order > self.gens[sv].order]
                for x in newer:
                    if self.gens[x].guard:
                        raise Refused("SV_GUARDED")
                    if self.sv_link(x):
                        raise Refused("SV_LINKED")
        elif kind == "wait":
            if not self.gens[op["sv"]].live:
                raise Refused("SV_NOT_ACTIVE")
        elif kind == "link":
            lv = op["lv"]
            if self.links[lv] is not None:
                raise Refused("LV_LINKED")
            if "sv" in op:
                sv = self.resolve(self.lv_bv(lv), op["sv"], op.get("svflg", "ld"))
                if self.state(sv) != ACTIVE:
                    raise Refused("SV_NOT_ACTIVE")
                if self.sv_link(sv):
                    raise Refused("SV_LINKED")
            else:
                if self.bv_link(op["bv"]):
                    raise Refused("BV_BUSY_LINK")
                if self.bvs[op["bv"]].restoring:
                    raise Refused("RESTORING")
        elif kind == "unlink":
            if self.links[op["lv"]] is None:
                raise Refused("LV_NOT_LINKED")
        else:
            raise ValueError(f"unknown op {kind}")

    def _drop(self, sv: str) -> None:
        g = self.gens[sv]
        g.live, g.data, g.guard = False, None, False

    def apply(self, op: dict, chunks: int | None = None) -> str | None:
        """Apply a successful ``op`` (for a write, only its first ``chunks`` chunks when given).
        Returns the SV a create or delete acted on."""
        kind = op["op"]
        if kind == "write":
            n = op["len"] if chunks is None else min(op["len"], chunks * op["chunk"])
            if n <= 0:
                return None
            data = payload(op["src"], op["off"], op["len"])[:n]
            tkind, target = self.write_target(op["ld"])
            old = self.content(tkind, target)
            new = old[: op["off"]] + data + old[op["off"] + n :]
            if tkind == "bv":
                self.bvs[target].data = new
            else:
                self.gens[target].data = new
            return None
        if kind == "create":
            bv = op["bv"]
            sv = self.cyclic_choice(bv) if op.get("cyclic") else self.resolve(bv, op["sv"], op.get("svflg", "ld"))
            assert sv is not None
            self._drop(sv)
            self.counter += 1
            g = self.gens[sv]
            g.live, g.data, g.guard, g.order = True, self.bvs[bv].data, False, self.counter
            return sv
        if kind == "delete":
            bv = op["bv"]
            sv = self.cyclic_choice(bv) if op.get("auto") else self.resolve(bv, op["sv"], op.get("svflg", "ld"))
            if sv is None or not self.gens[sv].live:
                return None
            self._drop(sv)
            return sv
        if kind == "guard":
            self.gens[self.resolve(op["bv"], op["sv"], op.get("svflg", "ld"))].guard = bool(op["on"])
        elif kind == "restore":
            bv = op["bv"]
            sv = self.resolve(bv, op["sv"], op.get("svflg", "ld"))
            if op.get("derived") == "delete":
                for x in self.live_gens(bv):
                    if self.gens[x].order > self.gens[sv].order:
                        self._drop(x)
            self.bvs[bv].data = self.gens[sv].data  # type: ignore[assignment]
            self.bvs[bv].restoring = sv
        elif kind == "wait":
            b = self.bvs[op["bv"]]
            if b.restoring == op["sv"]:
                b.restoring = None
        elif kind == "link":
            lv = op["lv"]
            if "sv" in op:
                self.links[lv] = ("sv", self.resolve(self.lv_bv(lv), op["sv"], op.get("svflg", "ld")))
            else:
                self.links[lv] = ("bv", op["bv"])
        elif kind == "unlink":
            self.links[op["lv"]] = None
        return None

    # -- checkpoint files (JSON + one binary file; shared contents stored once) -------------------
    def save(self, path: Path) -> None:
        blobs: dict[int, tuple[int, int]] = {}
        parts: list[bytes] = []
        pos = 0

        def ref(b: bytes | None) -> list[int] | None:
            nonlocal pos
            if b is None:
                return None
            if id(b) not in blobs:
                blobs[id(b)] = (pos, len(b))
                parts.append(b)
                pos += len(b)
            return list(blobs[id(b)])

        meta = {
            "counter": self.counter,
            "bvs": {k: {"cap": b.cap, "svs": b.svs, "lv": b.lv, "data": ref(b.data), "restoring": b.restoring}
                    for k, b in self.bvs.items()},
            "gens": {k: {"bv": g.bv, "live": g.live, "data": ref(g.data), "guard": g.guard, "order": g.order}
                     for k, g in self.gens.items()},
            "links": {k: list(v) if v else None for k, v in self.links.items()},
        }
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.writelines(parts)
        os.replace(tmp, path.with_suffix(".bin"))
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, path.with_suffix(".json"))

    @classmethod
    def load(cls, path: Path) -> Model:
        meta = json.loads(path.with_suffix(".json").read_text())
        blob = path.with_suffix(".bin").read_bytes()
        cache: dict[tuple[int, int], bytes] = {}

        def get(r: list[int] | None) -> bytes | None:
            if r is None:
                return None
            key = (r[0], r[1])
            if key not in cache:
                cache[key] = blob[r[0] : r[0] + r[1]]
            return cache[key]

        m = cls(counter=meta["counter"])
        for k, b in meta["bvs"].items():
            m.bvs[k] = BvM(k, b["cap"], b["svs"], b["lv"], get(b["data"]), b["restoring"])  # type: ignore[arg-type]
        for k, g in meta["gens"].items():
            m.gens[k] = GenM(g["bv"], g["live"], get(g["data"]), g["guard"], g["order"])
        m.links = {k: tuple(v) if v else None for k, v in meta["links"].items()}  # type: ignore[misc]
        return m


def check_result(m: Model, op: dict, result: Any) -> str | None:
    """Why an acknowledged success does not fit the model (None if it does); call before apply."""
    if op["op"] == "write" and result != op["len"]:
        return f"write acknowledged {result} of {op['len']} bytes"
    if op["op"] == "create":
        want = m.cyclic_choice(op["bv"]) if op.get("cyclic") else m.resolve(op["bv"], op["sv"], op.get("svflg", "ld"))
        if result != want:
            return f"create used {result}, model expected {want}"
    if op["op"] == "delete":
        want = m.cyclic_choice(op["bv"]) if op.get("auto") else m.resolve(op["bv"], op["sv"], op.get("svflg", "ld"))
        if op.get("auto") and want is not None and not m.gens[want].live:
            want = None
        if (result or None) != want:
            return f"delete removed {result}, model expected {want}"
    return None
