"""The array's kept Query answers (issue 12): routing queries a BV on every routed operation, so the
servicer keeps each BV's last answer while ``engine.state_version`` says nothing changed. A kept
answer must never be stale: after any step (a write, a snapshot, a delete, a restore under way, a
guard, a refusal, a reload) it equals the answer built from the state now."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snaplab.array import serde
from snaplab.array.engine import ArrayEngine
from snaplab.array.servicer import ArrayServicer
from snaplab.common.errors import SnapLabError
from snaplab.common.pki import Identity
from snaplab.v1 import array_pb2 as pb

from snaplab.san.blocks import BLOCK
sys.path.insert(0, str(Path(__file__).resolve().parent))  # small_engine: see labtools' docstring
from small_engine import SVS, small_engine

BLOCKS = 8
MANAGER = Identity("manager", "manager")


def _engine(path: Path) -> ArrayEngine:
    return small_engine(path, BLOCKS, restore_rate=1)  # restores stay under way for a while


def _kept_is_fresh(e: ArrayEngine, s: ArrayServicer) -> pb.QueryReply:
    with e._lock:  # no commit (the restore worker's included) between the two answers
        kept = s._query(pb.QueryRequest(bv="bv001"), MANAGER)
        assert kept == serde.query_msg(e.query("bv001"))
    return kept


_write = st.tuples(st.just("w"), st.integers(0, BLOCKS - 1), st.integers(1, 250))
_sv_step = st.tuples(st.sampled_from(["c", "d", "r", "g", "u"]), st.sampled_from(SVS))
_steps = st.lists(st.one_of(_write, _sv_step, st.just(("reload",))), min_size=1, max_size=14)


@pytest.mark.timeout(300)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps)
def test_a_kept_answer_is_the_answer_now(steps) -> None:
    with tempfile.TemporaryDirectory() as d:
        e = _engine(Path(d) / "array")
        s = ArrayServicer(e)
        try:
            _kept_is_fresh(e, s)
            for step in steps:
                try:
                    if step[0] == "w":
                        e.write("bv001", step[1] * BLOCK, bytes([step[2]]) * (BLOCK // 2))
                    elif step[0] == "c":
                        e.create("bv001", step[1])
                    elif step[0] == "d":
                        e.delete("bv001", step[1])
                    elif step[0] == "r":
                        e.restore("bv001", step[1])
                    elif step[0] == "g":
                        e.guard("bv001", step[1], on=True)
                    elif step[0] == "u":
                        e.guard("bv001", step[1], on=False)
                    else:
                        with e._lock:
                            e._load()
                except SnapLabError:
                    pass  # a refusal changes nothing: the kept answer must still be right
                _kept_is_fresh(e, s)
        finally:
            e.close()


@pytest.mark.timeout(60)
def test_an_unchanged_bv_is_answered_without_rebuilding(tmp_path: Path) -> None:
    e = _engine(tmp_path / "array")
    s = ArrayServicer(e)
    try:
        e.write("bv001", 0, b"\x07" * BLOCK)
        e.create("bv001", "sv01")
        first = _kept_is_fresh(e, s)
        assert _kept_is_fresh(e, s) is first
        with pytest.raises(SnapLabError):
            e.delete("bv001", "nosuchsv")  # refused before any change: still the same answer
        assert _kept_is_fresh(e, s) is first
        e.write("bv001", 0, b"\x01" * BLOCK)  # copy-on-write: sv01 now keeps the old block
        after = _kept_is_fresh(e, s)
        assert after is not first
        assert next(g.data_size for g in after.generations if g.sv == "sv01") == BLOCK
    finally:
        e.close()


@pytest.mark.timeout(60)
def test_the_kept_answers_stay_within_their_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from snaplab.array import servicer

    monkeypatch.setattr(servicer, "QUERY_ANSWERS_KEPT", 10)  # generations and BVs
    e = _engine(tmp_path / "array")
    for name in ("bv002", "bv003"):
        e.bind_ld(name, BLOCKS * BLOCK, 1, "LX")
        e.add_generations(name, 1, 3, sv_names=[f"{name}_{sv}" for sv in SVS])
    s = ArrayServicer(e)
    try:
        for bv in ("bv001", "bv002", "bv003", "bv001", "bv003"):
            with e._lock:
                assert s._query(pb.QueryRequest(bv=bv), MANAGER) == serde.query_msg(e.query(bv))
            assert s._answers_size == sum(len(r.generations) + 1 for _, r in s._answers.values()) <= 10
    finally:
        e.close()
