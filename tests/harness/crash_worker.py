"""The crash harness's worker process: random acknowledged I/O and snapshot operations, each journalled.

Run by the harness as ``python -m harness.crash_worker ...`` (``tests/`` on ``PYTHONPATH``). Before each
operation it appends an *intent* record to its journal, after the answer an *ack* record (each
flushed and fsynced); it exits 3 at the first transport error (the daemon is gone).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from .crash_model import (
    EXIT_DAEMON_GONE,
    EXIT_DEADLINE,
    EXIT_UNEXPECTED,
    MAX_WRITE,
    KiB,
    MiB,
    Model,
    check_result,
    payload,
    payload_pool,
)


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


class Journal:
    """Append-only JSON lines, each flushed and fsynced before ``put`` returns (open for the worker's life)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the process exit

    def put(self, rec: dict) -> None:
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.crash_worker")
    p.add_argument("--target", required=True)
    p.add_argument("--certs", required=True)
    p.add_argument("--model", required=True, help="checkpoint path (without suffix)")
    p.add_argument("--journal", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--seconds", type=float, default=30.0, help="stop (exit 0) after this long")
    args = p.parse_args(argv)

    from snaplab.common.rpc import ClientTLS, SnapLabClientError
    from snaplab.san.array_client import ArrayClient

    m = Model.load(Path(args.model))
    payload_pool()
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
        why = check_result(m, op, result)
        if why:
            journal.put({"bad": n, "why": why})
            return EXIT_UNEXPECTED
        m.apply(op)
    journal.put({"end": "deadline"})
    client.close()
    return EXIT_DEADLINE


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
