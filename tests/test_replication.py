"""Data replication pairs in the array engine (array/replication.py): the copy runs in the background.

The ``rpl_hold`` fault pauses a pair's copy, so the in-between states (``rpl/exec``, ``sep/exec``)
are examined without timing; releasing it lets the worker finish, awaited with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from snaplab.array.engine import ArrayEngine
from snaplab.array.model import ACCESS_CONTROL

from snaplab.common.errors import SnapLabError
from snaplab.san.blocks import BLOCK

MiB = 1 << 20
CAP = 2 * MiB  # 32 blocks of 64 KiB


def refused(msg: str, fn: Callable, *args, **kwargs) -> None:
    with pytest.raises(SnapLabError) as ei:
        fn(*args, **kwargs)
    assert ei.value.msg_id == msg, str(ei.value)


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[ArrayEngine]:
    e = ArrayEngine(tmp_path / "array", name="A")
    e.set_licence(ACCESS_CONTROL)
    e.bind_pool(0, "P0", "basic", 64 * MiB)
    e.add_port(0, 0, "PORT0")
    e.register_host("node", ["10:00:00:00:c9:00:00:01"], [], "linux")
    e.bind_ld("mv", CAP, 0, "LX")
    e.bind_ld("rv", CAP, 0, "LX")
    e.assign_access("rv", wwn="10:00:00:00:c9:00:00:01")
    try:
        yield e
    finally:
        e.close()


def state(e: ArrayEngine, name: str = "rv") -> dict:
    return next(x for x in e.describe()["lds"] if x["name"] == name)


def settle(e: ArrayEngine, want: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while state(e)["sync_state"] != want:
        assert time.monotonic() < deadline, state(e)
        time.sleep(0.01)


def test_replicate_and_separate_go_through_exec_states(eng: ArrayEngine) -> None:
    old = b"A" * BLOCK
    eng.write("mv", 0, old + b"B" * BLOCK)
    eng.write("rv", 5 * BLOCK, b"stale")  # the RV is the MV's after the copy, not what it held
    eng.pair_lds("mv", "rv")
    assert state(eng)["rpl_diff"] == CAP  # a new pair differs everywhere
    eng.inject_fault("rpl_hold", "rv")
    eng.replicate_ld("mv", "rv")
    s = state(eng)
    assert (s["sync_state"], s["rpl_progress"]) == ("rpl/exec", 0)
    refused("iSM19064", eng.read, "rv", 0, 1, host="node")  # hosts cannot reach an RV being copied
    refused("iSM19064", eng.write, "rv", 0, b"x")
    refused("iSM31235", eng.replicate_ld, "mv", "rv")
    refused("iSM31234", eng.expand_ld, "mv", 2 * CAP)
    eng.write("mv", 2 * BLOCK, b"C" * 10)  # during rpl/exec an MV write goes to both
    assert eng.read("rv", 2 * BLOCK, 10) == b"C" * 10
    assert 0 < state(eng)["rpl_progress"] < 100
    eng.separate_ld("mv", "rv")
    assert state(eng)["sync_state"] == "sep/exec"
    assert eng.read("rv", 0, 2 * BLOCK, host="node") == old + b"B" * BLOCK  # usable at once: reads the MV
    eng.write("mv", 0, b"N" * BLOCK)  # after the separation: the RV keeps the old block (copy before write)
    eng.write("rv", 20 * BLOCK + 7, b"rv's own", host="node")
    assert eng.read("rv", 0, BLOCK) == old
    assert eng.read("rv", 20 * BLOCK + 7, 8) == b"rv's own"
    eng.clear_fault("rpl_hold", "rv")
    settle(eng, "separated")
    assert eng.read("rv", 0, 3 * BLOCK) == old + b"B" * BLOCK + b"C" * 10 + bytes(BLOCK - 10)
    assert eng.read("rv", 5 * BLOCK, 5) == bytes(5)
    assert eng.read("rv", 20 * BLOCK + 7, 8) == b"rv's own"
    assert state(eng)["rpl_diff"] == 2 * BLOCK  # block 0 of the MV, block 20 of the RV
    assert state(eng, "mv")["sync_state"] == "separated"
    refused("iSM31242", eng.separate_ld, "mv", "rv")
    # the next replicate copies only what changed: the RV's block 20 becomes the MV's again
    eng.replicate_ld("mv", "rv")
    settle(eng, "rpl/sync")
    assert eng.read("rv", 0, BLOCK) == b"N" * BLOCK and eng.read("rv", 20 * BLOCK, BLOCK) == bytes(BLOCK)
    eng.write("mv", 30 * BLOCK, b"in sync")  # rpl/sync: MV writes still go to both
    assert eng.read("rv", 30 * BLOCK, 7) == b"in sync"
    eng.separate_ld("mv", "rv")
    assert state(eng)["sync_state"] == "separated" and state(eng)["rpl_diff"] == 0
    eng.unpair_lds("mv", "rv")
    assert "sync_state" not in state(eng)


def test_a_copy_interrupted_by_a_restart_resumes(eng: ArrayEngine, tmp_path: Path) -> None:
    eng.write("mv", 9 * BLOCK, b"payload")
    eng.pair_lds("mv", "rv")
    eng.inject_fault("rpl_hold", "rv")
    eng.replicate_ld("mv", "rv")
    eng.separate_ld("mv", "rv")
    eng.write("mv", 9 * BLOCK, b"changed")
    eng.close()
    again = ArrayEngine(tmp_path / "array")
    try:
        assert state(again)["sync_state"] == "sep/exec"
        assert again.read("rv", 9 * BLOCK, 7) == b"payload"
        again.clear_fault("rpl_hold", "rv")
        settle(again, "separated")
        assert again.read("rv", 9 * BLOCK, 7) == b"payload"
        again.unpair_lds("mv", "rv")
    finally:
        again.close()  # (the fixture closes ``eng`` once more: closing twice is harmless)
