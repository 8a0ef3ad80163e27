"""The array's hidden checkpoints (array/checkpoints.py), in process: random operations, rollbacks and
restarts; after each rollback the whole array (query, describe, every LD's bytes) is as it was taken.

The lab-level tests through real processes are tests/test_checkpoints.py; this one reaches the
corners the engine has (unbind and rebind of an LD, a cleared BV failure, SRA-full deletions, a
running restore, a daemon restart with checkpoints kept) quickly."""

from __future__ import annotations

import hashlib
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from snaplab.array.engine import ArrayEngine

from snaplab.common.errors import E, SnapLabError

KIB = 1024
BLOCK = 64 * KIB
BVS = [("CBV0", 640 * KIB), ("CBV1", 384 * KIB)]
N_SV = 3


def build(eng: ArrayEngine) -> None:
    eng.set_licence("DynamicSnapVolume", 2 << 30)
    eng.set_licence("AccessControl")
    eng.bind_pool(0, "CBASIC", "basic", 1 << 30)
    eng.bind_pool(1, "CDYN", "dynamic", 1 << 30)
    eng.build_sra("CDYN", 1 << 20)  # 16 blocks: small enough that writes fill it (SRA-full deletions)
    for name, cap in BVS:
        eng.bind_ld(name, cap, "CBASIC", "LX")
        eng.add_generations(name, "CDYN", N_SV)
        eng.bind_lv(name, f"{name}_LV")
    eng.bind_ld("CIV", 256 * KIB, "CBASIC", "LX")


def _digest(eng: ArrayEngine, name: str) -> str:
    ld = eng.ld(name)
    try:
        return hashlib.sha256(eng.read(ld.name, 0, ld.capacity)).hexdigest()
    except SnapLabError as exc:  # a generation a BV failure invalidated: its refusal is its picture
        return exc.msg_id


def picture(eng: ArrayEngine) -> dict:
    """Everything the array shows: query of each BV, describe, and a digest of every LD's bytes
    (BVs, IVs, live SVs) as an administrator reads them."""
    out: dict = {"describe": eng.describe()}
    for name, _ in BVS:
        q = eng.query(name)
        out[f"query {name}"] = q
        for g in q["generations"]:
            if g["state"] not in ("snap/deleted",):
                out[f"bytes {g['sv']}"] = _digest(eng, g["sv"])
    for ld in list(eng.lds.values()):
        if ld.type in ("BV", "IV"):
            out[f"bytes {ld.name}"] = _digest(eng, ld.name)
    return out


class CheckpointMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="snaplab-ckpt-")
        self.eng = ArrayEngine(self.tmp, name="Ckpt_Array")
        build(self.eng)
        self.points: dict[str, dict] = {}
        self.order: list[str] = []
        self.iv_bound = True

    def teardown(self) -> None:
        self.eng.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _try(self, fn, *args, **kw) -> None:
        try:
            fn(*args, **kw)
        except SnapLabError:
            pass  # a refusal changes nothing; the picture after rollback says whether that held

    @rule(
        b=st.integers(0, len(BVS) - 1), block=st.integers(0, 9), n=st.integers(1, 3), seed=st.integers(0, 255)
    )
    def write(self, b, block, n, seed):
        name, cap = BVS[b]
        off = min(block * BLOCK + seed, cap - 1)
        data = bytes([seed]) * min(n * BLOCK, cap - off)
        self._try(self.eng.write, name, off, data)

    @rule(seed=st.integers(0, 255))
    def write_iv(self, seed):
        if self.iv_bound:
            self.eng.write("CIV", seed * 512, bytes([seed]) * 4096)

    @rule(b=st.integers(0, len(BVS) - 1))
    def create(self, b):
        self._try(self.eng.create, BVS[b][0], cyclic=True)

    @rule(b=st.integers(0, len(BVS) - 1))
    def delete(self, b):
        self._try(self.eng.delete, BVS[b][0], auto=True)

    @rule(b=st.integers(0, len(BVS) - 1), rel=st.integers(1, N_SV))
    def link_write_unlink(self, b, rel):
        name = BVS[b][0]
        try:
            self.eng.link(f"{name}_LV", f"-{rel}", "relgen", bv_ref=name, mode="rw")
        except SnapLabError:
            return
        self._try(self.eng.write, f"{name}_LV", 0, b"L" * 5000)
        self.eng.unlink(f"{name}_LV")

    @rule(b=st.integers(0, len(BVS) - 1))
    def restore(self, b):
        self._try(self.eng.restore, BVS[b][0], "-1", "relgen")

    @rule()
    def rebind_iv(self):
        if self.iv_bound:
            self.eng.unbind_ld("CIV")
        self.eng.bind_ld("CIV", 256 * KIB, "CBASIC", "LX")
        self.iv_bound = True

    @rule(b=st.integers(0, len(BVS) - 1))
    def bv_failure_cleared(self, b):
        self.eng.inject_fault("bv_failure", BVS[b][0])
        self.eng.clear_fault("bv_failure", BVS[b][0])

    @rule()
    def restart(self):
        self.eng.close()
        self.eng = ArrayEngine(self.tmp, name="Ckpt_Array")

    @precondition(lambda self: len(self.points) < 3)
    @rule()
    def take(self):
        self._wait_restores()
        name = f"cp{len(self.order)}"
        self.eng.checkpoint_take(name)
        self.points[name] = picture(self.eng)
        self.order.append(name)

    @precondition(lambda self: bool(self.points))
    @rule(pick=st.integers(0, 2))
    def rollback(self, pick):
        live = [n for n in self.order if n in self.points]
        name = live[pick % len(live)]
        self._wait_restores()
        self.eng.checkpoint_rollback(name)
        self._wait_restores()
        assert picture(self.eng) == self.points[name]
        # checkpoints taken after it are gone
        for later in live[live.index(name) + 1 :]:
            del self.points[later]
        assert [c["name"] for c in self.eng.checkpoints()] == [n for n in self.order if n in self.points]

    @precondition(lambda self: bool(self.points))
    @rule(pick=st.integers(0, 2))
    def forget(self, pick):
        live = [n for n in self.order if n in self.points]
        name = live[pick % len(live)]
        self.eng.checkpoint_delete(name)
        del self.points[name]

    def _wait_restores(self) -> None:
        for name, _ in BVS:
            for g in self.eng.query(name)["generations"]:
                if g["state"] == "rst/exec":
                    self.eng.wait(name, g["sv"], cond="active", timeout=30)

    @invariant()
    def accounting(self):
        self.eng.verify()


CheckpointMachine.TestCase.settings = settings(
    max_examples=12, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
)
test_checkpoint_machine = CheckpointMachine.TestCase


def test_rollback_undoes_only_what_changed(tmp_path):
    """Rollback replays the row changes since the checkpoint, not the array: after one block
    written to a BV that holds many, the undo is a handful of rows."""
    eng = ArrayEngine(tmp_path, name="Ckpt_Array")
    try:
        build(eng)
        eng.write("CBV0", 0, b"x" * 640 * KIB)
        eng.checkpoint_take("base")
        before = picture(eng)
        eng.write("CBV0", 0, b"y" * BLOCK)
        done = eng.checkpoint_rollback("base")
        assert done["changes"] <= 4, done
        assert picture(eng) == before
        eng.verify()
    finally:
        eng.close()


def test_unknown_and_taken_names(tmp_path):
    eng = ArrayEngine(tmp_path, name="Ckpt_Array")
    try:
        eng.checkpoint_take("a")
        with pytest.raises(SnapLabError) as err:
            eng.checkpoint_take("a")
        assert err.value.message is E.CHECKPOINT_EXISTS
        for op in (eng.checkpoint_rollback, eng.checkpoint_delete):
            with pytest.raises(SnapLabError) as err:
                op("nope")
            assert err.value.message is E.CHECKPOINT_NOT_FOUND
        eng.checkpoint_delete("a")
        assert eng.checkpoints() == []
        names = {r[0] for r in eng.db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        assert not any(n.startswith("ckpt_") for n in names)
    finally:
        eng.close()


def test_positions_only_grow_after_a_delete(tmp_path):
    """Deleting the oldest checkpoint trims the log before the next one; positions taken later must
    still come after it (a rollback to the older one undoes what the newer one saw happen)."""
    eng = ArrayEngine(tmp_path, name="Ckpt_Array")
    try:
        build(eng)
        eng.checkpoint_take("a")
        eng.write("CBV0", 0, b"1" * BLOCK)
        eng.checkpoint_take("b")
        want = picture(eng)
        eng.checkpoint_delete("a")  # the log up to b goes
        eng.checkpoint_take("c")
        eng.write("CBV0", 0, b"2" * BLOCK)
        eng.create("CBV0", cyclic=True)
        eng.checkpoint_rollback("b")
        assert picture(eng) == want
        assert [c["name"] for c in eng.checkpoints()] == ["b"]
        eng.verify()
    finally:
        eng.close()
