#!/usr/bin/env python3
"""Crash harness: SIGKILL the real array daemon while another process does acknowledged I/O and operations.

Used by ``tests/test_crash.py`` (>= 20 kills) and ``bench/soak_crash.py`` (200+ kills). Three processes:

* the **parent** (``CrashHarness``) runs the daemon (``ArrayProcess``, mTLS), configures a small array
  (two BVs of a few MiB with SV sets and one LV each), keeps the **model** of what the array must hold,
  and, each cycle: checkpoints the model, starts a worker, lets it run 20-300 ms (random), kills the
  daemon with SIGKILL, rebuilds the model from the worker's journal, restarts the daemon and verifies
  every BV, every SV (live ones read as admin, the others must be Not Ready) and every LV against it,
  plus the engine's invariants (see ``check_invariants`` and ``check_db``);
* the **worker** (this file run as ``crash_harness.py worker ...``) loads the checkpoint, connects as
  ``admin`` and loops: random unaligned writes of 1 B to 3 MiB (streamed in 256 KiB-1 MiB chunks) to the
  BVs and through the LVs, named and cyclic creates, deletes (by name, relative generation, ``-auto``),
  guards, restores (+ wait), links and unlinks, plus a few operations the model says must be refused.
  Before each operation it appends an *intent* record to its journal, after the answer an *ack* record
  (each flushed and fsynced); it exits 3 at the first transport error (the daemon is gone);
* the **daemon**.

Acknowledged means: the ack record is in the journal. Every acknowledged operation must be there after
the restart. The one unacknowledged (in-flight) operation may have happened or not; a write may also have
happened for a prefix of its chunks only (the daemon commits each ``WriteChunk`` in its own transaction,
in stream order), so a write of k chunks has k + 1 allowed outcomes. The verifier reads the array and
keeps the outcome that matches, then continues the model from it.

Operations the worker sends are predicted by ``Model.expect`` (None = must succeed, else the iSM id of
the refusal): an acknowledged answer that contradicts the prediction is a failure too.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

HERE = Path(__file__).resolve()
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


def _pool() -> bytes:
    global _POOL
    if _POOL is None:  # the same random bytes in every process of every run (made in ~20 ms)
        _POOL = random.Random(0x5EED).randbytes(8 * MiB + MAX_WRITE)
    return _POOL


def payload(src: int, off: int, n: int) -> bytes:
    """The bytes of a write: ``n`` bytes at ``src`` of a fixed random pool (a write's record names
    ``src``, picked at random, so two writes almost never carry the same bytes, and a block that moved
    or came back stale shows). Byte 510 of an LD is never 0x55, so no LD ever looks partitioned
    (create, link and restore then never refuse for the layout)."""
    data = _pool()[src : src + n]
    if off <= 510 < off + n:
        b = bytearray(data)
        b[510 - off] = 0
        data = bytes(b)
    return data


def write_chunks(op: dict) -> int:
    return max(1, -(-op["len"] // op["chunk"]))


# ==================================================================== the model
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
                if self.gens[sv].live:
                    raise Refused("SV_ACTIVE")
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


# ==================================================================== the worker process
def pick_op(rng: random.Random, m: Model, refusal_rate: float = 0.12) -> dict:
    """A random operation; one the model says is refused only now and then."""
    for b in m.bvs.values():  # a restore is always followed by its wait
        if b.restoring:
            return {"op": "wait", "bv": b.name, "sv": b.restoring}
    kinds = ["write_bv", "write_lv", "create", "delete", "guard", "restore", "link", "unlink"]
    weights = [30, 12, 14, 10, 7, 5, 12, 10]
    for _ in range(100):
        kind = rng.choices(kinds, weights)[0]
        b = rng.choice(list(m.bvs.values()))
        live = m.live_gens(b.name)
        if kind in ("write_bv", "write_lv"):
            ld = b.name if kind == "write_bv" else b.lv
            r = rng.random()
            if r < 0.3:
                n = rng.randint(1, 4 * KiB)
            elif r < 0.6:
                n = rng.randint(4 * KiB, 192 * KiB)
            elif r < 0.85:
                n = rng.randint(192 * KiB, MiB)
            else:
                n = rng.randint(MiB + 1, min(MAX_WRITE, b.cap))
            chunk = MiB if n <= MiB or rng.random() < 0.6 else rng.choice([256 * KiB, 512 * KiB])
            op = {"op": "write", "ld": ld, "off": rng.randint(0, b.cap - n), "len": n,
                  "src": rng.randrange(8 * MiB), "chunk": chunk}
        elif kind == "create":
            if rng.random() < 0.5:
                op = {"op": "create", "bv": b.name, "cyclic": True}
            else:
                op = {"op": "create", "bv": b.name, "sv": rng.choice(b.svs)}
        elif kind == "delete":
            r = rng.random()
            if r < 0.7 and live:
                op = {"op": "delete", "bv": b.name, "sv": rng.choice(live)}
            elif r < 0.85:
                op = {"op": "delete", "bv": b.name, "sv": str(-rng.randint(1, len(live) + 1)), "svflg": "relgen"}
            else:
                op = {"op": "delete", "bv": b.name, "auto": True}
        elif kind == "guard":
            if rng.random() < 0.8 and live:
                op = {"op": "guard", "bv": b.name, "sv": rng.choice(live), "on": rng.random() < 0.5}
            else:
                op = {"op": "guard", "bv": b.name, "sv": str(-rng.randint(1, len(live) + 1)), "svflg": "relgen",
                      "on": rng.random() < 0.5}
        elif kind == "restore":
            sv = rng.choice(live) if live else rng.choice(b.svs)
            op = {"op": "restore", "bv": b.name, "sv": sv, "derived": "delete" if rng.random() < 0.2 else "keep"}
        elif kind == "link":
            if rng.random() < 0.85:
                op = {"op": "link", "lv": b.lv, "sv": rng.choice(live) if live and rng.random() < 0.9
                      else rng.choice(b.svs)}
            else:
                op = {"op": "link", "lv": b.lv, "bv": b.name}
        else:
            op = {"op": "unlink", "lv": b.lv}
        if m.expect(op) is None or rng.random() < refusal_rate:
            return op
    b = next(iter(m.bvs.values()))
    return {"op": "write", "ld": b.name, "off": 0, "len": 1, "src": rng.randrange(8 * MiB), "chunk": MiB}


def perform(client: Any, op: dict, data: bytes | None = None) -> Any:
    """Send one operation (a write's bytes may be given, made beforehand); returns a JSON-able result."""
    kind = op["op"]
    flg = op.get("svflg", "ld")
    if kind == "write":
        if data is None:
            data = payload(op["src"], op["off"], op["len"])
        return client.write(op["ld"], op["off"], data, chunk=op["chunk"])
    if kind == "create":
        return client.create(op["bv"], op.get("sv"), flg, cyclic=bool(op.get("cyclic"))).sv
    if kind == "delete":
        return client.delete(op["bv"], op.get("sv"), flg, auto=bool(op.get("auto")))
    if kind == "guard":
        return client.guard(op["bv"], op["sv"], flg, on=op["on"]).sv
    if kind == "restore":
        return client.restore(op["bv"], op["sv"], flg, derived=op.get("derived", "keep")).sv
    if kind == "wait":
        return client.wait(op["bv"], op["sv"], cond="active", timeout=30.0).state
    if kind == "link":
        if "sv" in op:
            return client.link(op["lv"], op["sv"], flg, mode="rw").state
        return client.link(op["lv"], bv=op["bv"], mode="rw").state
    if kind == "unlink":
        return client.unlink(op["lv"]).state
    raise ValueError(kind)


def _check_result(m: Model, op: dict, result: Any) -> str | None:
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


class Journal:
    """Append-only JSON lines, each flushed and fsynced before ``put`` returns (open for the worker's life)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the process exit

    def put(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="crash_harness.py worker")
    p.add_argument("--target", required=True)
    p.add_argument("--certs", required=True)
    p.add_argument("--model", required=True, help="checkpoint path (without suffix)")
    p.add_argument("--journal", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--seconds", type=float, default=30.0, help="stop (exit 0) after this long")
    args = p.parse_args(argv)

    from snaplab.san.array_client import ArrayClient

    from snaplab.common.rpc import ClientTLS, SnapLabClientError

    m = Model.load(Path(args.model))
    _pool()
    rng = random.Random(args.seed)
    journal = Journal(Path(args.journal))
    client = ArrayClient(args.target, ClientTLS.from_folder(args.certs, "admin"), timeout=30.0)
    deadline = time.monotonic() + args.seconds
    journal.put({"start": os.getpid()})
    n = 0
    while time.monotonic() < deadline:
        op = pick_op(rng, m)
        expected = m.expect(op)
        # A write's bytes are made before the intent record, so the op is on the wire right after it.
        data = payload(op["src"], op["off"], op["len"]) if op["op"] == "write" else None
        n += 1
        journal.put({"i": n, "op": op, "exp": expected})
        try:
            result = perform(client, op, data)
        except SnapLabClientError as exc:
            if not exc.msg_id:  # a transport failure (the daemon was killed): the op is unacknowledged
                journal.put({"gone": n, "code": exc.code.name, "details": exc.details[:200]})
                return EXIT_DAEMON_GONE
            journal.put({"a": n, "err": exc.msg_id})
            if exc.msg_id != expected:
                journal.put({"bad": n, "why": f"refused {exc.msg_id} ({exc.text}), model expected {expected}"})
                return EXIT_UNEXPECTED
            continue
        journal.put({"a": n, "ok": True, "res": result})
        if expected is not None:
            journal.put({"bad": n, "why": f"succeeded, model expected refusal {expected}"})
            return EXIT_UNEXPECTED
        why = _check_result(m, op, result)
        if why:
            journal.put({"bad": n, "why": why})
            return EXIT_UNEXPECTED
        m.apply(op)
    journal.put({"end": "deadline"})
    client.close()
    return EXIT_DEADLINE


# ==================================================================== verification
class CrashFailure(AssertionError):
    pass


def _first_diff(a: bytes | None, b: bytes | None) -> str:
    if a is None or b is None:
        return f"{'missing' if a is None else len(a)} vs {'missing' if b is None else len(b)}"
    if len(a) != len(b):
        return f"length {len(a)} vs {len(b)}"
    i = next(i for i in range(len(a)) if a[i] != b[i])
    j = i
    while j < len(a) and a[j] != b[j]:
        j += 1
    return f"first difference at byte {i} (block {i // BLOCK}, {j - i}+ bytes differ)"


@dataclass
class Observed:
    bvs: dict[str, bytes]
    gens: dict[str, dict]  # sv -> state, guard, lv, relgen, data (None if refused NOT_READY)
    links: dict[str, tuple[str, str] | None]
    lv_data: dict[str, bytes | None]
    bv_link_lv: dict[str, str]
    sra: dict[str, tuple[int, int]]  # pool -> (sra_used, sum of live data_size)


def observe(client: Any, m: Model) -> Observed:
    from snaplab.common.rpc import SnapLabClientError

    def read(ld: str, cap: int) -> bytes | None:
        try:
            return client.read(ld, 0, cap, chunk_size=4 * MiB)
        except SnapLabClientError as exc:
            if exc.msg_id == ID["NOT_READY"]:
                return None
            raise

    obs = Observed({}, {}, {}, {}, {}, {})
    for b in m.bvs.values():
        q = client.query(b.name)
        obs.bv_link_lv[b.name] = q.bv_link_lv
        for g in q.generations:
            obs.gens[g.sv] = {"state": g.state, "guard": g.guard, "lv": g.lv if g.link == "link" else "",
                              "relgen": g.relgen if g.has_relgen else None, "size": g.data_size, "data": None}
        obs.bvs[b.name] = read(b.name, b.cap)  # type: ignore[assignment]
        for sv in b.svs:
            obs.gens[sv]["data"] = read(sv, b.cap)
        info = client.linkinfo(b.lv)
        obs.links[b.lv] = (info.links[0].kind, info.links[0].target) if info.state == "link" else None
        obs.lv_data[b.lv] = read(b.lv, b.cap)
    return obs


def mismatches(m: Model, o: Observed) -> list[str]:
    """How the observed array differs from the model (empty: it matches)."""
    out = []
    for b in m.bvs.values():
        if o.bvs.get(b.name) != b.data:
            out.append(f"{b.name}: data differs: {_first_diff(o.bvs.get(b.name), b.data)}")
        want_order = m.live_gens(b.name)
        for sv in b.svs:
            g, og = m.gens[sv], o.gens.get(sv)
            if og is None:
                out.append(f"{sv}: missing from Query")
                continue
            st = m.state(sv)
            ok_states = {ACTIVE, RESTORING} if st == RESTORING else {st}
            if og["state"] not in ok_states:
                out.append(f"{sv}: state {og['state']}, model {st}")
                continue
            if g.live:
                if og["guard"] != g.guard:
                    out.append(f"{sv}: guard {og['guard']}, model {g.guard}")
                if og["data"] != g.data:
                    out.append(f"{sv}: data differs: {_first_diff(og['data'], g.data)}")
                rel = -1 - want_order.index(sv)
                if og["relgen"] != rel:
                    out.append(f"{sv}: relgen {og['relgen']}, model {rel}")
                want_lv = m.sv_link(sv) or ""
                if og["lv"] != want_lv:
                    out.append(f"{sv}: linked to {og['lv']!r}, model {want_lv!r}")
            elif og["data"] is not None:
                out.append(f"{sv}: not live but readable")
        lk = m.links[b.lv]
        if o.links.get(b.lv) != lk:
            out.append(f"{b.lv}: link {o.links.get(b.lv)}, model {lk}")
        else:
            want = None if lk is None else m.content(*lk)
            if o.lv_data.get(b.lv) != want:
                out.append(f"{b.lv}: data differs: {_first_diff(o.lv_data.get(b.lv), want)}")
        want_bv_lv = m.bv_link(b.name) or ""
        if o.bv_link_lv.get(b.name) != want_bv_lv:
            out.append(f"{b.name}: linked to LV {o.bv_link_lv.get(b.name)!r}, model {want_bv_lv!r}")
    return out


def model_from_observed(m: Model, o: Observed) -> Model:
    """Resynchronise after a failure (soak mode keeps going): the model becomes what the array holds."""
    n = m.copy()
    for b in n.bvs.values():
        b.data = o.bvs[b.name]
        b.restoring = None
        for sv in b.svs:
            og, g = o.gens[sv], n.gens[sv]
            g.live = og["state"] != DELETED
            g.data, g.guard = (og["data"], og["guard"]) if g.live else (None, False)
            if og["state"] == RESTORING:
                b.restoring = sv
        n.links[b.lv] = o.links[b.lv]
        live = sorted((sv for sv in b.svs if n.gens[sv].live), key=lambda sv: o.gens[sv]["relgen"])
        for sv in live:  # relgen -k: oldest first gets the smallest order
            n.counter += 1
            n.gens[sv].order = n.counter
    return n


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


# ==================================================================== the parent
@dataclass
class Stats:
    kills: int = 0
    ops_acked: int = 0
    refusals_acked: int = 0
    writes_acked: int = 0
    lv_writes_acked: int = 0
    bytes_acked: int = 0
    inflight_happened: int = 0
    inflight_not: int = 0
    inflight_partial: int = 0
    verifications: int = 0
    failures: list[str] = field(default_factory=list)
    by_op: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class CrashHarness:
    """The parent side. ``with CrashHarness(root, seed=...) as h: h.run(kills)``; stops every process."""

    def __init__(self, root: Path | str, *, seed: int | None = None, log: Callable[[str], None] = print,
                 stop_on_failure: bool = True, kill_window: tuple[float, float] = (0.02, 0.3)) -> None:
        from snaplab.array.process import ArrayProcess, make_lab_certs

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.seed = seed if seed is not None else random.SystemRandom().getrandbits(32)
        self.rng = random.Random(self.seed)
        self.log = log
        self.stop_on_failure = stop_on_failure
        self.kill_window = kill_window
        self.certs = make_lab_certs(self.root / "certs", [("array", "array"), ("admin", "admin")])
        self.daemon = ArrayProcess(self.root / "state", certs=self.certs, name="Crash_Array", log_level="WARNING")
        self.model = Model.initial()
        self.stats = Stats()
        self.worker: subprocess.Popen | None = None
        self.client: Any = None
        self.cycle_no = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait(10)
        if self.client is not None:
            self.client.close()
            self.client = None
        self.daemon.stop()

    def _connect(self) -> Any:
        if self.client is not None:
            self.client.close()
        self.client = self.daemon.client("admin")
        return self.client

    def setup(self) -> None:
        self.daemon.start()
        c = self._connect()
        c.set_licence(DSV, 1 << 40)
        c.bind_pool(0, BASE_POOL, "basic", 256 * MiB)
        c.bind_pool(1, SNAP_POOL, "dynamic", 2048 * MiB)
        c.build_sra(SNAP_POOL, SRA, sdv_name="CrashSDV")
        for bv, cap, nsv, lv in LAYOUT:
            c.bind_ld(bv, cap, BASE_POOL, "LX")
            made = [x.name for x in c.add_generations(bv, SNAP_POOL, nsv)]
            assert made == self.model.bvs[bv].svs, made
            c.bind_lv(bv, lv)
        self.verify([self.model.copy()], ["after setup"])

    # -- one kill cycle ----------------------------------------------------------------------------
    def cycle(self) -> None:
        self.cycle_no += 1
        k = self.cycle_no
        ckpt = self.root / f"model-{k}"
        journal = self.root / f"journal-{k}.jsonl"
        self.model.save(ckpt)
        with open(self.root / f"worker-{k}.log", "wb") as worker_log:
            self.worker = subprocess.Popen(
                [sys.executable, str(HERE), "worker", "--target", self.daemon.target, "--certs", str(self.certs),
                 "--model", str(ckpt), "--journal", str(journal), "--seed", str(self.rng.getrandbits(48))],
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=worker_log)
        deadline = time.monotonic() + 30
        while not (journal.exists() and journal.stat().st_size) and self.worker.poll() is None:
            if time.monotonic() > deadline:
                raise CrashFailure(f"cycle {k}: worker did not start")
            time.sleep(0.005)
        time.sleep(self.rng.uniform(*self.kill_window))
        self.daemon.kill(signal.SIGKILL)
        self.stats.kills += 1
        try:
            code = self.worker.wait(15)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            code = self.worker.wait(10)
            raise CrashFailure(f"cycle {k}: worker did not notice the daemon died") from None
        wlog = (self.root / f"worker-{k}.log").read_text(errors="replace")
        records = self._read_journal(journal)
        if code not in (EXIT_DEADLINE, EXIT_DAEMON_GONE, EXIT_UNEXPECTED):
            raise CrashFailure(f"cycle {k}: worker exited {code}:\n{wlog[-3000:]}")
        candidates, labels = self._replay(k, records)
        self.daemon.start()
        self._connect()
        self.verify(candidates, labels)
        for p in (ckpt.with_suffix(".json"), ckpt.with_suffix(".bin")):
            p.unlink(missing_ok=True)

    @staticmethod
    def _read_journal(path: Path) -> list[dict]:
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line: the worker died writing it
                pass
        return out

    def _fail(self, text: str) -> None:
        self.stats.failures.append(text)
        self.log(f"FAILURE: {text}")
        if self.stop_on_failure:
            raise CrashFailure(text + f"\n(seed {self.seed}; files in {self.root})")

    def _replay(self, k: int, records: list[dict]) -> tuple[list[Model], list[str]]:
        """Apply the acknowledged ops; returns the allowed states after the in-flight op (if any)."""
        m = self.model
        pending: dict | None = None
        for rec in records:
            if "i" in rec:
                if pending is not None:
                    self._fail(f"cycle {k}: op {pending['i']} has no answer but the worker went on")
                pending = rec
            elif "a" in rec:
                if pending is None or pending["i"] != rec["a"]:
                    self._fail(f"cycle {k}: answer {rec['a']} without its intent")
                    continue
                op = pending["op"]
                expected = m.expect(op)
                if "err" in rec:
                    self.stats.refusals_acked += 1
                    if rec["err"] != expected:
                        self._fail(f"cycle {k}: {op} refused {rec['err']}, model expected {expected}")
                else:
                    if expected is not None:
                        self._fail(f"cycle {k}: {op} succeeded, model expected refusal {expected}")
                    else:
                        why = _check_result(m, op, rec.get("res"))
                        if why:
                            self._fail(f"cycle {k}: {op}: {why}")
                        m.apply(op)
                        if op["op"] == "write":
                            self.stats.writes_acked += 1
                            self.stats.lv_writes_acked += op["ld"] not in m.bvs
                            self.stats.bytes_acked += op["len"]
                self.stats.ops_acked += 1
                self.stats.by_op[op["op"]] = self.stats.by_op.get(op["op"], 0) + 1
                pending = None
            elif "bad" in rec:
                self._fail(f"cycle {k}: worker: op {rec['bad']}: {rec['why']}")
        if pending is None:
            return [m.copy()], ["no op in flight"]
        op = pending["op"]
        if m.expect(op) is not None:  # a refusal changes nothing whether it happened or not
            return [m.copy()], [f"in flight (refused either way): {op['op']}"]
        before = m.copy()
        if op["op"] == "write":
            cands, labels = [before], ["in flight write: not done"]
            n = write_chunks(op)
            for c in range(1, n + 1):
                x = m.copy()
                x.apply(op, chunks=c)
                cands.append(x)
                labels.append(f"in flight write: {c}/{n} chunks done" if c < n else "in flight write: done")
            return cands, labels
        after = m.copy()
        after.apply(op)
        return [before, after], [f"in flight {op['op']}: not done", f"in flight {op['op']}: done"]

    def verify(self, candidates: list[Model], labels: list[str]) -> None:
        obs = observe(self.client, candidates[0])
        found = None
        diffs: list[tuple[str, list[str]]] = []
        for cand, label in zip(candidates, labels or ["setup"] * len(candidates)):
            d = mismatches(cand, obs)
            if not d:
                found = (cand, label)
                break
            diffs.append((label, d))
        self.stats.verifications += 1
        if found is None:
            text = "; ".join(f"[{label}] " + "; ".join(d[:6]) for label, d in diffs)
            self._fail(f"cycle {self.cycle_no}: after restart the array matches no allowed state: {text}\n"
                       f"daemon log: {self.daemon.log_tail(2000)}")
            self.model = model_from_observed(candidates[0], obs)
        else:
            self.model, label = found
            if len(candidates) > 1:
                if label.endswith("not done"):
                    self.stats.inflight_not += 1
                elif "chunks done" in label:
                    self.stats.inflight_partial += 1
                else:
                    self.stats.inflight_happened += 1
        self.last_label = found[1] if found else "MISMATCH"
        self.check_invariants()

    def check_invariants(self) -> None:
        """Admin-side: once no restore runs, each pool's sra_used equals the sum of its live generations'
        data sizes (Query) and the count of retained blocks in the metadata; and ``check_db``."""
        for b in self.model.bvs.values():
            if b.restoring:  # let it finish (Wait changes nothing), then the model knows it is done
                self.client.wait(b.name, b.restoring, cond="active", timeout=30.0)
                b.restoring = None
        problems, retained = check_db(self.daemon.state_dir / "array.db")
        sizes = 0
        for b in self.model.bvs.values():
            sizes += sum(g.data_size for g in self.client.query(b.name).generations if g.state != DELETED)
        pool = next(p for p in self.client.describe().pools if p.name == SNAP_POOL)
        if pool.sra_used != sizes:
            problems.append(f"{SNAP_POOL}: sra_used {pool.sra_used} != sum of live data sizes {sizes}")
        if pool.sra_used != retained * BLOCK:
            problems.append(f"{SNAP_POOL}: sra_used {pool.sra_used} != {retained} retained blocks in the metadata")
        if problems:
            self._fail(f"cycle {self.cycle_no}: invariants: " + "; ".join(problems[:10]))

    def run(self, kills: int, progress_every: int = 1) -> Stats:
        t0 = time.monotonic()
        self.log(f"crash harness: seed {self.seed}, {kills} kills, files in {self.root}")
        self.setup()
        for i in range(kills):
            c0 = time.monotonic()
            acked0 = self.stats.ops_acked
            self.cycle()
            if progress_every and ((i + 1) % progress_every == 0 or i + 1 == kills):
                self.log(f"kill {i + 1}/{kills}: {self.stats.ops_acked - acked0} ops acknowledged, "
                         f"{self.last_label}; verified in {time.monotonic() - c0:.2f} s cycle "
                         f"(total {self.stats.ops_acked} ops, {len(self.stats.failures)} failures)")
        # last: a graceful stop and start must keep everything too
        self.daemon.stop()
        self.daemon.start()
        self._connect()
        self.verify([self.model.copy()], ["after a graceful restart"])
        self.stats.seconds = time.monotonic() - t0
        return self.stats

    def summary(self) -> str:
        s = self.stats
        ops = ", ".join(f"{k} {v}" for k, v in sorted(s.by_op.items()))
        return (f"kills {s.kills}; operations acknowledged {s.ops_acked} ({ops}); of them refusals {s.refusals_acked}; "
                f"writes {s.writes_acked} ({s.bytes_acked / MiB:.1f} MiB, {s.lv_writes_acked} through an LV); in-flight op at the kill: done "
                f"{s.inflight_happened}, not done {s.inflight_not}, partly done (chunk prefix) {s.inflight_partial}; "
                f"verifications {s.verifications}; failures {len(s.failures)}; {s.seconds:.1f} s (seed {self.seed})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker_main(sys.argv[2:]))
    print("usage: crash_harness.py worker ... (started by CrashHarness; see bench/soak_crash.py)", file=sys.stderr)
    sys.exit(2)
