"""Restore idempotence (issue 12): two restores of one generation are one.

The second restore of the same generation finds the BV already holding the generation's bytes
(array/restore.py chooses the blocks to copy by content, ``Family.src``): it copies nothing, and
the BV reads the same bytes after it as after the first; also across an array restart.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snaplab.array.engine import ArrayEngine

from snaplab.san.blocks import BLOCK
sys.path.insert(0, str(Path(__file__).resolve().parent))  # small_engine: see labtools' docstring
from small_engine import SVS, small_engine

BLOCKS = 8  # a BV of 8 blocks: small enough that hypothesis covers overlaps, restores, overwrites


def _engine(path: Path) -> ArrayEngine:
    return small_engine(path, BLOCKS)


def _restore(e: ArrayEngine, sv: str) -> int:
    total = e.restore("bv001", sv)["restore_total"]
    e.wait("bv001", sv, cond="active", timeout=30)
    return total


# one step: write a byte pattern to some blocks (whole or partial), or snapshot into an SV, or restore
_write = st.tuples(st.just("w"), st.integers(0, BLOCKS - 1), st.integers(1, 3), st.booleans(), st.integers(1, 250))
_create = st.tuples(st.just("c"), st.sampled_from(SVS))
_restore_step = st.tuples(st.just("r"), st.sampled_from(SVS))
_steps = st.lists(st.one_of(_write, _create, _restore_step), min_size=1, max_size=12)


@pytest.mark.timeout(300)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_steps, target=st.sampled_from(SVS), restart=st.booleans())
def test_second_restore_copies_nothing_and_changes_nothing(steps, target, restart) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "array"
        e = _engine(path)
        try:
            e.create("bv001", target)  # the generation restored at the end exists
            for step in steps:
                if step[0] == "w":
                    _, lb, n, partial, byte = step
                    n = min(n, BLOCKS - lb)
                    data = bytes([byte]) * (n * BLOCK - (BLOCK // 2 if partial else 0))
                    e.write("bv001", lb * BLOCK, data)
                elif step[0] == "c":
                    e.create("bv001", step[1])
                elif any(g["sv"] == step[1] and g["relgen"] for g in e.query("bv001")["generations"]):
                    _restore(e, step[1])
            if not any(g["sv"] == target and g["relgen"] for g in e.query("bv001")["generations"]):
                e.create("bv001", target)
            want = e.read(target, 0, BLOCKS * BLOCK)
            _restore(e, target)
            first = e.read("bv001", 0, BLOCKS * BLOCK)
            assert first == want
            if restart:  # what the first restore recorded is durable
                e.close()
                e = _engine_reopen(path)
            assert _restore(e, target) == 0
            assert e.read("bv001", 0, BLOCKS * BLOCK) == first
            e.verify()
        finally:
            e.close()


def _engine_reopen(path: Path) -> ArrayEngine:
    return ArrayEngine(path, name="A")
