"""SRA-full policies per pool (SnapLab extension, issue 14; docs/extensions-sra-quiesce.md) through the array
daemon's gRPC from another process: each policy under a real fill (a host's writes that fill a small SRA),
warning thresholds crossed once, the array's events, and the injected sra_full fault following the policy."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.common.rpc import SnapLabClientError
from snaplab.san.array_client import ArrayClient
from snaplab.san.blocks import BLOCK
from snaplab.v1 import array_pb2 as pb

pytestmark = pytest.mark.timeout(60)

MiB = 1 << 20
WWN = "10:00:00:00:c9:00:00:01"
C = grpc.StatusCode


@dataclass
class Lab:
    manager: ArrayClient
    business01: ArrayClient
    pools: Iterator[int]

    def unit(self, policy: str, *, sra_blocks: int = 8, warn: tuple[int, ...] = (), queue_timeout: float = 0.0,
             ) -> tuple[str, str, list[str]]:
        """A BV with 3 SVs in pools of its own, the SRA ``sra_blocks`` blocks, 2 MiB of data written."""
        m = self.manager
        basic = next(self.pools)
        dyn = basic + 1
        m.bind_pool(basic, f"Pool{basic}", "basic", 64 * MiB)
        m.bind_pool(dyn, f"Pool{dyn}", "dynamic", 64 * MiB)
        m.build_sra(dyn, sra_blocks * BLOCK, sdv_name=f"sdv{dyn}")
        bv = f"bv{basic}"
        m.bind_ld(bv, 4 * MiB, basic, "WN")
        svs = [ld.name for ld in m.add_generations(bv, dyn, 3)]
        m.assign_access(bv, wwn=WWN)
        m.configure(set_sra_policy=pb.SetSraPolicy(
            pool=f"Pool{dyn}", policy=policy, warn_percents=list(warn), set_warn=bool(warn),
            queue_timeout_seconds=queue_timeout))
        self.business01.write(bv, 0, b"\x01" * (2 * MiB))
        return bv, f"Pool{dyn}", svs

    def fill(self, bv: str, svs: list[str]) -> None:
        """Two generations (the older guarded) and writes until the SRA is exactly full (8 blocks)."""
        self.manager.create(bv, svs[0])
        self.manager.guard(bv, svs[0], on=True)
        self.business01.write(bv, 0, b"\x02" * (4 * BLOCK))
        self.manager.create(bv, svs[1])
        self.business01.write(bv, 4 * BLOCK, b"\x02" * (4 * BLOCK))

    def states(self, bv: str) -> dict[str, str]:
        return {g.sv: g.state for g in self.manager.query(bv).generations}

    def pool(self, name: str) -> pb.Pool:
        return next(p for p in self.manager.describe().pools if p.name == name)

    def events(self) -> list[pb.ArrayEvent]:
        return list(self.manager.describe().events)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("sra_policies")
    certs = make_lab_certs(root / "certs", [("array", "array"), ("manager", "manager"), ("business01", "host")])
    with ArrayProcess(root / "state", certs=certs, name="Policy_Array") as proc:
        m, biz = proc.client("manager"), proc.client("business01")
        m.set_licence("DynamicSnapVolume", 1 << 40)
        m.set_licence("AccessControl")
        m.register_host("business01", [WWN])
        try:
            yield Lab(m, biz, itertools.count(2, 2))
        finally:
            m.close()
            biz.close()


def refused(code: grpc.StatusCode, msg_id: str, call, *args) -> SnapLabClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(SnapLabClientError) as info:
        call(*args)
    assert (info.value.code, info.value.msg_id) == (code, msg_id), info.value
    return info.value


def test_auto_delete_takes_the_oldest_unguarded_first_and_logs_each_deletion(lab: Lab) -> None:
    bv, pool, svs = lab.unit("", warn=(50, 90))  # "" keeps the default: the guide's behaviour
    assert lab.pool(pool).sra_policy == "auto-delete"
    seen = len(lab.events())
    lab.fill(bv, svs)
    assert lab.pool(pool).sra_used == 8 * BLOCK
    # Two thresholds crossed: one event each, however many writes followed.
    lab.business01.write(bv, 4 * BLOCK, b"\x03" * BLOCK)
    new = lab.events()[seen:]
    assert [(e.msg_id, pool in e.text) for e in new] == [("iSM31280", True), ("iSM31280", True)], new
    # No room for 1 more block: the newer, unguarded generation goes first; that frees nothing the
    # write needs (the guarded one still sees the block), so the guarded one goes too, each an event.
    lab.business01.write(bv, 8 * BLOCK, b"\x03" * BLOCK)
    assert lab.states(bv) == {svs[0]: "snap/deleted", svs[1]: "snap/deleted", svs[2]: "snap/deleted"}
    gone = [e for e in lab.events()[seen:] if e.msg_id == "iSM31281"]
    assert [svs[1] in gone[0].text, svs[0] in gone[1].text, "(guarded)" in gone[1].text] == [True, True, True], gone


def test_auto_delete_stops_once_the_write_fits(lab: Lab) -> None:
    bv, pool, svs = lab.unit("auto-delete")
    lab.manager.create(bv, svs[0])
    lab.business01.write(bv, 0, b"\x02" * (6 * BLOCK))  # 6 blocks kept for the oldest
    lab.manager.create(bv, svs[1])
    lab.business01.write(bv, 6 * BLOCK, b"\x02" * (2 * BLOCK))  # 2 for both: full
    lab.business01.write(bv, 10 * BLOCK, b"\x03" * BLOCK)  # the oldest (unguarded) goes, freeing 6
    assert lab.states(bv)[svs[0]] == "snap/deleted" and lab.states(bv)[svs[1]] == "snap/active"


def test_injected_sra_full_deletes_only_what_the_write_needs(lab: Lab) -> None:
    """Before: the first write under an injected sra_full deleted every generation, guarded ones too."""
    bv, pool, svs = lab.unit("auto-delete", sra_blocks=64)
    lab.manager.create(bv, svs[0])
    lab.manager.guard(bv, svs[0], on=True)
    lab.business01.write(bv, 40 * BLOCK, b"\x02" * (2 * BLOCK))  # zeros for the first: nothing kept
    lab.manager.create(bv, svs[1])
    lab.business01.write(bv, 40 * BLOCK, b"\x03" * (2 * BLOCK))  # 2 blocks kept, seen by the second only
    lab.manager.inject_fault("sra_full", pool)
    try:
        lab.business01.write(bv, 40 * BLOCK, b"\x04" * BLOCK)  # needs nothing new: both generations stay
        assert lab.states(bv)[svs[0]] == lab.states(bv)[svs[1]] == "snap/active"
        lab.business01.write(bv, 4 * BLOCK, b"\x04" * BLOCK)  # needs 1: the unguarded one frees 2
        assert lab.states(bv)[svs[0]] == "snap/active" and lab.states(bv)[svs[1]] == "snap/deleted"
    finally:
        lab.manager.clear_fault("sra_full", pool)


def test_fail_writes_refuses_the_write_and_keeps_every_snapshot(lab: Lab) -> None:
    bv, pool, svs = lab.unit("fail-writes")
    lab.fill(bv, svs)
    refused(C.RESOURCE_EXHAUSTED, "iSM31275", lab.business01.write, bv, 8 * BLOCK, b"\x03" * BLOCK)
    assert lab.states(bv)[svs[0]] == lab.states(bv)[svs[1]] == "snap/active"
    assert lab.business01.write(bv, 4 * BLOCK, b"\x05" * BLOCK) == BLOCK  # a block already kept needs no room
    lab.manager.guard(bv, svs[0], on=False)
    lab.manager.delete(bv, svs[0])  # the operator frees space: writes go through again
    assert lab.business01.write(bv, 8 * BLOCK, b"\x03" * BLOCK) == BLOCK


def test_invalidate_all_makes_every_snapshot_of_the_sra_unreadable(lab: Lab) -> None:
    bv, pool, svs = lab.unit("invalidate-all")
    lab.fill(bv, svs)
    assert lab.business01.write(bv, 8 * BLOCK, b"\x03" * BLOCK) == BLOCK
    gens = {g.sv: g for g in lab.manager.query(bv).generations}
    assert gens[svs[0]].state == gens[svs[1]].state == "snap/fault" and gens[svs[0]].guard
    assert lab.pool(pool).sra_used == 0
    assert any(e.msg_id == "iSM31279" and pool in e.text for e in lab.events())
    lab.manager.create(bv, svs[2])  # the SRA works again for new snapshots
    assert lab.states(bv)[svs[2]] == "snap/active"
    lab.manager.guard(bv, svs[0], on=False)  # the invalidated ones go as failed generations do
    lab.manager.delete(bv, svs[0])
    lab.manager.delete(bv, svs[1])
    assert lab.states(bv) == {svs[0]: "snap/deleted", svs[1]: "snap/deleted", svs[2]: "snap/active"}


def test_queue_waits_for_space_then_fails_holding_no_engine_thread(lab: Lab) -> None:
    bv, pool, svs = lab.unit("queue", queue_timeout=1.0)
    lab.fill(bv, svs)
    t0 = time.monotonic()
    refused(C.RESOURCE_EXHAUSTED, "iSM31276", lab.business01.write, bv, 8 * BLOCK, b"\x03" * BLOCK)
    assert 0.9 <= time.monotonic() - t0 < 5
    assert lab.states(bv)[svs[0]] == "snap/active"

    # Space freed while writes wait: they go through. Meanwhile more writes than the caller's engine
    # slots (2) are queued, and the same host's write to another BV is not held up by them.
    other, _, _ = lab.unit("auto-delete")
    lab.manager.configure(set_sra_policy=pb.SetSraPolicy(pool=pool, queue_timeout_seconds=20))
    results: list[object] = []
    waiting = [threading.Thread(target=lambda i=i: results.append(
        lab.business01.write(bv, (8 + i) * BLOCK, b"\x06" * BLOCK))) for i in range(4)]
    for t in waiting:
        t.start()
    time.sleep(0.5)
    t1 = time.monotonic()
    assert lab.business01.write(other, 0, b"\x07" * BLOCK) == BLOCK
    assert time.monotonic() - t1 < 2
    assert not results  # still queued
    lab.manager.guard(bv, svs[0], on=False)
    lab.manager.delete(bv, svs[0])
    lab.manager.delete(bv, svs[1])
    for t in waiting:
        t.join(10)
    assert results == [BLOCK] * 4


def test_bad_policy_settings_are_refused(lab: Lab) -> None:
    for m, msg_id in (
        (pb.SetSraPolicy(pool="Pool1", policy="purge"), "iSM31001"),  # no such pool comes first
        (pb.SetSraPolicy(pool="Pool3", policy="purge"), "iSM31278"),
        (pb.SetSraPolicy(pool="Pool3", warn_percents=[0], set_warn=True), "iSM31278"),
        (pb.SetSraPolicy(pool="Pool3", queue_timeout_seconds=-1), "iSM31278"),
    ):
        with pytest.raises(SnapLabClientError) as info:
            lab.manager.configure(set_sra_policy=m)
        assert info.value.msg_id in (msg_id, "iSM19001"), info.value


# -- the lab file (in process: parsing only) ---------------------------------------------------------
POOL = '{ number = 1, name = "Pool0001", kind = "dynamic", capacity = "256GiB" },'


@pytest.mark.parametrize(("setting", "ok"), [
    ('sra_policy = "queue", sra_warn = [90, 70], sra_queue_timeout = 5', True),
    ('sra_policy = "purge"', False),
    ("sra_warn = [0]", False),
    ("sra_warn = [70, true]", False),
    ("sra_queue_timeout = 0", False),
])
def test_lab_file_pool_policy(setting: str, ok: bool) -> None:
    from snaplab.deploy.errors import LabFileError
    from snaplab.deploy.folder import default_lab_file
    from snaplab.deploy.spec import LabSpec

    base = default_lab_file().read_text(encoding="utf-8")
    assert base.count(POOL) == 1
    text = base.replace(POOL, POOL[:-2] + ", " + setting + " },")
    if not ok:
        with pytest.raises(LabFileError) as info:
            LabSpec.parse(text)
        assert "pools[1]" in str(info.value), info.value
        return
    pool = LabSpec.parse(text).arrays[0].pools[1]
    assert (pool.sra_policy, pool.sra_warn, pool.sra_queue_timeout) == ("queue", (70, 90), 5.0)
    assert not LabSpec.parse(base).arrays[0].pools[1].sra_policy_set  # the guide's lab sets nothing
