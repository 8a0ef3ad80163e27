"""Space reclaim (issue 12, array/reclaim.py): after every generation is deleted, the data file
occupies no more than the blocks the BV maps; a block a lab checkpoint pins is never given back."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snaplab.array.blockstore import ZERO
from snaplab.array.engine import ArrayEngine

from snaplab.san.blocks import BLOCK
sys.path.insert(0, str(Path(__file__).resolve().parent))  # small_engine: see labtools' docstring
from small_engine import SVS, small_engine

BLOCKS = 16


def _engine(path: Path) -> ArrayEngine:
    return small_engine(path, BLOCKS)


def _occupied(e: ArrayEngine) -> int:
    return os.stat(e.families[e.ld("bv001").number].path).st_blocks * 512


def _mapped(e: ArrayEngine) -> int:
    fam = e.families[e.ld("bv001").number]
    return sum(1 for vs in fam.versions.values() if vs[-1][1] != ZERO) * BLOCK


_write = st.tuples(st.just("w"), st.integers(0, BLOCKS - 1), st.integers(1, 4), st.integers(1, 250))
_create = st.tuples(st.just("c"), st.sampled_from(SVS))
_delete = st.tuples(st.just("d"), st.sampled_from(SVS))
_steps = st.lists(st.one_of(_write, _create, _delete), min_size=1, max_size=20)


@pytest.mark.timeout(300)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps, restart=st.booleans())
def test_space_after_deleting_every_generation(steps, restart) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "array"
        e = _engine(path)
        try:
            for step in steps:
                if step[0] == "w":
                    _, lb, n, byte = step
                    e.write("bv001", lb * BLOCK, bytes([byte]) * (min(n, BLOCKS - lb) * BLOCK))
                elif step[0] == "c":
                    e.create("bv001", step[1])
                elif any(g["sv"] == step[1] and g["relgen"] for g in e.query("bv001")["generations"]):
                    e.delete("bv001", step[1])
            if restart:  # after a restart every free block counts as not yet given back
                e.close()
                e = ArrayEngine(path, name="A")
            want = e.read("bv001", 0, BLOCKS * BLOCK)
            if not any(g["relgen"] for g in e.query("bv001")["generations"]):
                e.create("bv001", SVS[0])  # the claim is about the space after deletes: make one
            for g in e.query("bv001")["generations"]:
                if g["relgen"]:
                    e.delete("bv001", g["sv"])
            assert e.reclaim_settle(timeout=60)
            assert e.read("bv001", 0, BLOCKS * BLOCK) == want  # nothing mapped was punched
            if e.families[e.ld("bv001").number].hw:  # a file system that keeps the space is not this test's
                assert _occupied(e) <= _mapped(e) * 1.1 + 4096
            e.verify()
        finally:
            e.close()


@pytest.mark.timeout(60)
def test_blocks_a_checkpoint_pins_keep_their_bytes(tmp_path: Path) -> None:
    e = _engine(tmp_path / "array")
    try:
        e.write("bv001", 0, b"A" * (BLOCKS * BLOCK))
        e.create("bv001", "sv01")
        e.write("bv001", 0, b"B" * (BLOCKS * BLOCK))  # sv01 holds the A blocks
        e.checkpoint_take("ck")
        e.delete("bv001", "sv01")  # frees the A blocks, but the checkpoint maps them
        assert e.reclaim_settle(timeout=30)
        e.write("bv001", 0, b"C" * (BLOCKS * BLOCK))
        e.checkpoint_rollback("ck")
        assert e.read("sv01", 0, BLOCKS * BLOCK) == b"A" * (BLOCKS * BLOCK)
        assert e.read("bv001", 0, BLOCKS * BLOCK) == b"B" * (BLOCKS * BLOCK)
        e.checkpoint_delete("ck")
        e.delete("bv001", "sv01")
        assert e.reclaim_settle(timeout=30)
        assert _occupied(e) <= _mapped(e) + 4096
        e.verify()
    finally:
        e.close()
