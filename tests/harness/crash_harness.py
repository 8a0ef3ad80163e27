"""Crash harness: SIGKILL the real array daemon while another process does acknowledged I/O and operations.

Used by ``tests/test_crash.py`` (>= 20 kills) and ``bench/soak_crash.py`` (200+ kills). Three processes:

* the **parent** (``CrashHarness``) runs the daemon (``ArrayProcess``, mTLS), configures a small array
  (two BVs of a few MiB with SV sets and one LV each), keeps the **model** of what the array must hold,
  and, each cycle: checkpoints the model, starts a worker, lets it run 20-300 ms (random), kills the
  daemon with SIGKILL, rebuilds the model from the worker's journal, restarts the daemon and verifies
  every BV, every SV (live ones read as admin, the others must be Not Ready) and every LV against it,
  plus the engine's invariants (see ``check_invariants`` and ``crash_db.check_db``);
* the **worker** (``crash_worker.py``, run as ``python -m harness.crash_worker``) loads the checkpoint,
  connects as ``admin`` and loops: random unaligned writes of 1 B to 3 MiB (streamed in 256 KiB-1 MiB
  chunks) to the BVs and through the LVs, named and cyclic creates, deletes (by name, relative
  generation, ``-auto``), guards, restores (+ wait), links and unlinks, plus a few operations the model
  says must be refused.
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

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from .crash_db import check_db
from .crash_model import (
    BASE_POOL,
    BLOCK,
    DELETED,
    DSV,
    EXIT_DAEMON_GONE,
    EXIT_DEADLINE,
    EXIT_UNEXPECTED,
    LAYOUT,
    SNAP_POOL,
    SRA,
    MiB,
    Model,
    check_result,
    write_chunks,
)
from .crash_verify import CrashFailure, mismatches, model_from_observed, observe

# The worker runs as ``python -m harness.crash_worker`` with the folder holding this package on its path.
TESTS = Path(__file__).resolve().parent.parent

__all__ = ["CrashFailure", "CrashHarness", "Stats"]


def _worker_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), path] if path else [str(TESTS)])}


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
    commit_kills: int = 0  # kills that landed inside a commit window (placed by the commit-pause hook)
    failures: list[str] = field(default_factory=list)
    by_op: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class CrashHarness:
    """The parent side. ``with CrashHarness(root, seed=...) as h: h.run(kills)``; stops every process."""

    def __init__(self, root: Path | str, *, seed: int | None = None, log: Callable[[str], None] = print,
                 stop_on_failure: bool = True, kill_window: tuple[float, float] = (0.02, 0.3),
                 commit_share: float = 0.5) -> None:
        from snaplab.array.process import ArrayProcess, make_lab_certs

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.seed = seed if seed is not None else random.SystemRandom().getrandbits(32)
        self.rng = random.Random(self.seed)
        self.log = log
        self.stop_on_failure = stop_on_failure
        self.kill_window = kill_window
        self.commit_share = commit_share
        self.placed = 0  # kills placed at a commit so far
        self.certs = make_lab_certs(self.root / "certs", [("array", "array"), ("admin", "admin")])
        # The commit-pause hook (array/durability.py): a kill placed where a transaction's data is
        # synced and its COMMIT not yet done. Random kills land there only now and then (3 of 40).
        self.pause_dir = self.root / "commit-pause"
        self.pause_dir.mkdir(exist_ok=True)
        self.daemon = ArrayProcess(self.root / "state", certs=self.certs, name="Crash_Array", log_level="WARNING",
                                   env={"SNAPLAB_DEBUG_COMMIT_PAUSE": str(self.pause_dir)})
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
                [sys.executable, "-m", "harness.crash_worker", "--target", self.daemon.target,
                 "--certs", str(self.certs), "--model", str(ckpt), "--journal", str(journal),
                 "--seed", str(self.rng.getrandbits(48))],
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=worker_log, env=_worker_env())
        deadline = time.monotonic() + 30
        while not (journal.exists() and journal.stat().st_size) and self.worker.poll() is None:
            if time.monotonic() > deadline:
                raise CrashFailure(f"cycle {k}: worker did not start")
            time.sleep(0.005)
        time.sleep(self.rng.uniform(*self.kill_window))
        if self.placed < self.commit_share * k:  # every other kill (by default), not a coin: a share held
            self.placed += 1
            if self._paused_at_commit():
                self.stats.commit_kills += 1  # killed in the next commit after the random delay
        self.daemon.kill(signal.SIGKILL)
        self.stats.kills += 1
        for name in ("arm", "paused"):
            (self.pause_dir / name).unlink(missing_ok=True)
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

    def _paused_at_commit(self, timeout: float = 3.0) -> bool:
        """Arm the commit-pause hook and wait until the daemon pauses in its next commit."""
        arm, paused = self.pause_dir / "arm", self.pause_dir / "paused"
        arm.touch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if paused.exists():
                return True
            if self.worker is not None and self.worker.poll() is not None:
                break
            time.sleep(0.002)
        arm.unlink(missing_ok=True)  # no commit came (the worker was between operations): a plain kill
        return paused.exists()

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
                        why = check_result(m, op, rec.get("res"))
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
                f"kills inside the commit window {s.commit_kills} of {s.kills} "
                f"({100 * s.commit_kills / max(1, s.kills):.0f}%); "
                f"verifications {s.verifications}; failures {len(s.failures)}; {s.seconds:.1f} s (seed {self.seed})")
