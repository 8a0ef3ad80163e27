"""Issue 8 item 2: a host asking the array directly sees only what access control gives it.

The attack: a host certificate calls the array's ``Query``, ``LinkInfoOf`` and ``Lookup`` for LDs
it is not given, and ``Describe`` for every host's WWNs and ports. Each answer must be the one the
manager's routing (B3) would give the same host: allowed exactly when some volume the host could
route through allows it, with the same reply.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness package: see labtools' docstring
from harness import security_lab as sl

from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import array_pb2_grpc

pytestmark = pytest.mark.timeout(120)
CODES = {c.value[0]: c.name for c in grpc.StatusCode}
# The refusals routing gives: path broken, unknown, access, BV reachable only through its LV, LV Not Ready.
ROUTING_REFUSALS = {"iSM19063", "iSM19003", "iSM31042", "iSM31043", "iSM31063"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sl.SecurityLab]:
    with sl.running(tmp_path_factory.mktemp("lookups")) as lab:
        yield lab


def test_a_host_cannot_look_up_what_it_is_not_given(lab: sl.SecurityLab) -> None:
    test01 = lab.array_client("test01")
    for call, ld in ((test01.query, "bv001"), (test01.linkinfo, "lv001"), (test01.linkinfo, "sv001_1"),
                     (test01.query, "BACKUP_CV"), (test01.linkinfo, "SDV1")):
        kind, result = sl.outcome(lambda call=call, ld=ld: call(ld))
        assert (kind, result) == ("refused", ("PERMISSION_DENIED", "iSM31042")), (call.__name__, ld, result)
    # the same through a Lookup stream
    ask = pb.LookupBatch(requests=[pb.LookupRequest(id=1, query=pb.QueryRequest(bv="bv001")),
                                   pb.LookupRequest(id=2, linkinfo=pb.VolumeRef(name="lv001")),
                                   pb.LookupRequest(id=3, query=pb.QueryRequest(bv="bv002"))])
    (replies,) = list(array_pb2_grpc.ArrayStub(test01.channel).Lookup(iter([ask]), timeout=10))
    got = {r.id: (CODES[r.code], r.msg_id) for r in replies.replies}
    assert got == {1: ("PERMISSION_DENIED", "iSM31042"), 2: ("PERMISSION_DENIED", "iSM31042"), 3: ("OK", "")}
    # what it is given it may look up
    assert test01.query("bv002").bv == "bv002"


def test_describe_shows_a_host_only_its_own_part(lab: sl.SecurityLab) -> None:
    state = lab.array_client("test01").describe()
    assert [h.name for h in state.hosts] == ["test01"]
    assert [h.wwns for h in state.hosts] == [[sl.WWN["test01"]]]
    assert sorted(ld.name for ld in state.lds) == ["bv002", "lv002"]
    assert all(list(ld.access) == [f"wwn:{sl.WWN['test01']}"] for ld in state.lds)
    wire = state.SerializeToString()
    for other in ("business01", "backup01"):
        assert other.encode() not in wire and sl.WWN[other].encode() not in wire
    for hidden in ("bv001", "lv001", "BACKUP_CV", "iv003", "SDV1"):
        assert hidden.encode() not in wire
    # admin and manager still see everything
    full = lab.array_client("admin").describe()
    assert sorted(h.name for h in full.hosts) == sorted(sl.WWN)
    assert {"bv001", "BACKUP_CV", "SDV1"} <= {ld.name for ld in full.lds}


def _direct(lab: sl.SecurityLab, host: str, op: str, ld: str) -> tuple[str, object]:
    client = lab.array_client(host)
    return sl.outcome(lambda: client.query(ld) if op == "query" else client.linkinfo(ld))


def _routed(lab: sl.SecurityLab, host: str, op: str, ld: str, vias: list[str]) -> tuple[str, object]:
    """The manager's answer through the first volume that allows it (any LD name may be tried)."""
    client = lab.manager_client(host)
    request = {"query": pb.QueryRequest(bv=ld)} if op == "query" else {"linkinfo": pb.VolumeRef(name=ld)}
    refusals = []
    for via in vias:
        kind, result = sl.outcome(lambda via=via: client.route(via, **request))
        if kind == "ok":
            return "ok", getattr(result, op)
        refusals.append(result)
    return "refused", refusals


def test_direct_answers_are_the_routed_answers(lab: sl.SecurityLab) -> None:
    """Every host, every LD (and a name that does not exist), query and linkinfo: the array answers a
    host directly exactly when the manager would route it, with the same reply; else with one of
    routing's refusals."""
    names = [*lab.ld_names(), "no_such_ld"]
    checked = allowed = 0
    for host in sl.WWN:
        for op in ("query", "linkinfo"):
            for ld in names:
                direct = _direct(lab, host, op, ld)
                routed = _routed(lab, host, op, ld, [ld, *(n for n in names if n != ld)])
                checked += 1
                if routed[0] == "ok":
                    allowed += 1
                    assert direct == routed, (host, op, ld, direct)
                    continue
                assert direct[0] == "refused", (host, op, ld, direct, routed)
                _code, msg_id = direct[1]  # type: ignore[misc]
                if msg_id not in ("iSM19020",):  # the array's own "not a BV" once routing let it through
                    assert msg_id in ROUTING_REFUSALS, (host, op, ld, direct)
    assert allowed >= 10 and checked - allowed >= 10, (checked, allowed)


def test_a_path_fault_hides_everything(lab: sl.SecurityLab) -> None:
    admin = lab.array_client("admin")
    admin.inject_fault("path", "business01")
    try:
        biz = lab.array_client("business01")
        assert sl.outcome(lambda: biz.query("bv001")) == ("refused", ("UNAVAILABLE", "iSM19063"))
        assert list(biz.describe().lds) == []
    finally:
        admin.clear_fault("path", "business01")
    assert lab.array_client("business01").query("bv001").bv == "bv001"
