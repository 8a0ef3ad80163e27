"""The array daemon through gRPC from another process: SRA accounting and faults, licences, identity."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from snaplab.san.blocks import BLOCK
from snaplab.san.array_client import ArrayClient, chunk_data
from snaplab.array.process import ArrayProcess, ArrayProcessError, make_lab_certs

from snaplab.common.rpc import ClientTLS, SnapLabClientError, wait_healthy
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import array_pb2_grpc

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
DSV, AC = "DynamicSnapVolume", "AccessControl"
WWN = {"business01": "10:00:00:00:c9:00:00:01", "backup01": "10:00:00:00:c9:00:00:02"}
PRINCIPALS = [
    ("array", "array"),
    ("manager", "manager"),
    ("admin", "admin"),
    ("business01", "host"),
    ("backup01", "host"),
]
C = grpc.StatusCode


@dataclass
class Unit:
    """One BV with 3 SVs, an LV and its own pools and SRA: bv -> business01, lv -> backup01."""

    bv: str
    lv: str
    pool: str  # the dynamic pool holding SVs, LV and SRA
    svs: list[str]


@dataclass
class Lab:
    proc: ArrayProcess
    root: Path
    manager: ArrayClient
    admin: ArrayClient
    business01: ArrayClient
    backup01: ArrayClient
    _pools: Iterator[int] = field(default_factory=lambda: itertools.count(2, 2))

    def unit(self, tag: str, *, sra: int, bv_size: int = 4 * MiB) -> Unit:
        """Pools of its own keep each test's SRA accounting and pool faults apart."""
        basic = next(self._pools)
        return build_unit(self.manager, tag, basic, basic + 1, sra=sra, bv_size=bv_size)

    def sra_used(self, pool: str) -> int:
        return next(p.sra_used for p in self.manager.describe().pools if p.name == pool)

    def sra_capacity(self, pool: str) -> int:
        return next(p.sra_capacity for p in self.manager.describe().pools if p.name == pool)

    def generations(self, bv: str) -> dict[str, pb.Generation]:
        return {g.sv: g for g in self.manager.query(bv).generations}


def build_unit(c: ArrayClient, tag: str, basic: int, dynamic: int, *, sra: int, bv_size: int) -> Unit:
    c.bind_pool(basic, f"Pool{basic}", "basic", 64 * MiB)
    c.bind_pool(dynamic, f"Pool{dynamic}", "dynamic", 64 * MiB)
    c.build_sra(dynamic, sra, sdv_name=f"sdv{tag}")
    bv, lv = f"bv{tag}", f"lv{tag}"
    c.bind_ld(bv, bv_size, basic, "WN")
    svs = [ld.name for ld in c.add_generations(bv, dynamic, 3)]
    c.bind_lv(bv, lv)
    c.assign_access(bv, wwn=WWN["business01"])
    c.assign_access(lv, wwn=WWN["backup01"])
    return Unit(bv, lv, f"Pool{dynamic}", svs)


def refused(
    code: grpc.StatusCode, msg_id: str | None, call: Callable[..., object], *args: object, **kwargs: object
) -> SnapLabClientError:
    with pytest.raises(SnapLabClientError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    if msg_id is not None:
        assert info.value.msg_id == msg_id, info.value
    return info.value


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("array_grpc")
    certs = make_lab_certs(root / "certs", PRINCIPALS)
    make_lab_certs(root / "other_ca", [("admin", "admin")])
    with ArrayProcess(root / "state", certs=certs, name="Tokyo_Customer_DataBase") as proc:
        clients = {name: proc.client(name) for name, role in PRINCIPALS if role != "array"}
        m = clients["manager"]
        m.set_licence(DSV, 1 << 40)
        m.set_licence(AC)
        m.add_port(0, 0, "DB_PRIMARY")
        m.add_port(0, 1, "DB_SECONDARY")
        for host, wwn in WWN.items():
            m.register_host(host, [wwn])
        build_unit(m, "001", 0, 1, sra=4 * MiB, bv_size=8 * MiB)
        try:
            yield Lab(proc, root, **clients)
        finally:
            for c in clients.values():
                c.close()


# -- SRA (A6, A9) ----------------------------------------------------------------------------


def test_sra_used_grows_by_the_differences_not_the_volume_size(lab: Lab) -> None:
    biz, m = lab.business01, lab.manager
    original = b"\x11" * (2 * MiB)
    assert biz.write("bv001", 0, original) == len(original)
    base = lab.sra_used("Pool1")

    m.create("bv001", "bv001_SV01")
    assert lab.sra_used("Pool1") == base  # a snapshot copies nothing

    # Three small writes in three distinct 64 KiB blocks that held data: three blocks of differences.
    for offset in (100, 5 * BLOCK + 7, 20 * BLOCK - 1):
        biz.write("bv001", offset, b"\x22")
    biz.write("bv001", 100, b"\x33")  # the same block again: already saved
    biz.write(
        "bv001", 4 * MiB, b"\x44" * MiB
    )  # never written before: the snapshot saw zeros, nothing to keep
    assert lab.sra_used("Pool1") == base + 3 * BLOCK
    assert lab.generations("bv001")["bv001_SV01"].data_size == 3 * BLOCK

    # The generation still reads as the BV did at creation, through backup01's LV.
    m.link("lv001", "bv001_SV01", mode="ro")
    assert lab.backup01.read("lv001", 0, 2 * MiB, chunk_size=300_000) == original
    assert lab.backup01.read("lv001", 4 * MiB, BLOCK) == bytes(BLOCK)
    m.unlink("lv001")

    assert m.delete("bv001", "bv001_SV01") == "bv001_SV01"
    assert lab.sra_used("Pool1") == base
    assert lab.generations("bv001")["bv001_SV01"].state == "snap/deleted"


def test_sra_full_deletes_the_oldest_generation_and_unlinks_its_lv(lab: Lab) -> None:
    u = lab.unit("full", sra=16 * BLOCK)
    biz, m = lab.business01, lab.manager
    sv1, sv2, _ = u.svs
    biz.write(u.bv, 0, b"\x01" * (4 * MiB))
    m.create(u.bv, sv1)
    m.link(u.lv, sv1, mode="ro")
    assert lab.backup01.read(u.lv, 0, BLOCK) == b"\x01" * BLOCK
    biz.write(u.bv, 0, b"\x02" * (10 * BLOCK))  # 10 blocks kept for sv1
    m.create(u.bv, sv2)
    biz.write(u.bv, 20 * BLOCK, b"\x02" * (6 * BLOCK))  # 6 more, seen by both: the SRA is exactly full
    assert lab.sra_used(u.pool) == lab.sra_capacity(u.pool) == 16 * BLOCK

    # No room for 6 more: the write still succeeds, the oldest generation goes and its LV is unlinked.
    assert biz.write(u.bv, 30 * BLOCK, b"\x03" * (6 * BLOCK)) == 6 * BLOCK
    gens = lab.generations(u.bv)
    assert gens[sv1].state == "snap/deleted" and gens[sv2].state == "snap/active"
    assert lab.sra_used(u.pool) == 12 * BLOCK
    info = m.linkinfo(u.lv)
    assert info.state == "unlink" and info.link_lost
    refused(C.FAILED_PRECONDITION, "iSM19066", lab.backup01.read, u.lv, 0, BLOCK)
    # The survivor still reads as the BV did when it was taken.
    assert lab.admin.read(sv2, 0, BLOCK) == b"\x02" * BLOCK
    assert lab.admin.read(sv2, 30 * BLOCK, BLOCK) == b"\x01" * BLOCK

    # An injected "SRA full" does the same to any write that needs the SRA; clearing it ends that.
    state = m.inject_fault("sra_full", u.pool)
    assert f"sra_full:{u.pool}" in state.faults
    biz.write(u.bv, 40 * BLOCK, b"\x04")
    assert all(g.state == "snap/deleted" for g in lab.generations(u.bv).values())
    assert f"sra_full:{u.pool}" not in m.clear_fault("sra_full", u.pool).faults
    m.create(u.bv, sv1)
    biz.write(u.bv, 41 * BLOCK, b"\x05")
    assert lab.generations(u.bv)[sv1].state == "snap/active"
    assert lab.sra_used(u.pool) == BLOCK
    m.link(u.lv, sv1)
    assert lab.backup01.read(u.lv, 41 * BLOCK, 1) == b"\x01"
    assert not m.linkinfo(u.lv).link_lost


def test_sra_failure_makes_snapshots_unreadable_until_deleted(lab: Lab) -> None:
    u = lab.unit("srafail", sra=MiB)
    biz, m = lab.business01, lab.manager
    sv1, sv2, _ = u.svs
    biz.write(u.bv, 0, b"\x07" * MiB)
    m.create(u.bv, sv1)
    m.link(u.lv, sv1)
    assert lab.backup01.read(u.lv, 0, 4) == b"\x07" * 4

    m.inject_fault("sra_failure", u.pool)
    refused(C.DATA_LOSS, "iSM19061", lab.backup01.read, u.lv, 0, 4)
    refused(C.DATA_LOSS, "iSM19061", m.create, u.bv, sv2)
    assert lab.generations(u.bv)[sv1].state == "snap/fault"
    assert biz.read(u.bv, 0, 4) == b"\x07" * 4  # the BV itself is fine

    m.clear_fault("sra_failure", u.pool)
    assert lab.generations(u.bv)[sv1].state == "snap/fault"  # failed generations stay failed
    refused(C.DATA_LOSS, "iSM19061", lab.backup01.read, u.lv, 0, 4)
    m.unlink(u.lv)
    m.delete(u.bv, sv1)
    assert m.create(u.bv, sv1).state == "snap/active"
    m.link(u.lv, sv1)
    assert lab.backup01.read(u.lv, 0, 4) == b"\x07" * 4


def test_bv_failure_loses_the_bv_and_every_generation(lab: Lab) -> None:
    u = lab.unit("bvfail", sra=MiB)
    biz, m, admin = lab.business01, lab.manager, lab.admin
    sv1, sv2, _ = u.svs
    biz.write(u.bv, 0, b"\x09" * MiB)
    m.create(u.bv, sv1)
    m.create(u.bv, sv2)
    m.link(u.lv, sv1)

    m.inject_fault("bv_failure", u.bv)
    refused(C.DATA_LOSS, "iSM19062", biz.read, u.bv, 0, 4)
    refused(C.DATA_LOSS, "iSM19062", biz.write, u.bv, 0, b"x")
    refused(C.DATA_LOSS, "iSM19062", lab.backup01.read, u.lv, 0, 4)
    refused(C.DATA_LOSS, "iSM19062", admin.read, sv2, 0, 4)
    q = m.query(u.bv)
    assert q.state == "failure"
    assert {g.sv: g.state for g in q.generations if g.sv in (sv1, sv2)} == {
        sv1: "snap/fault",
        sv2: "snap/fault",
    }

    m.clear_fault("bv_failure", u.bv)
    assert biz.read(u.bv, 0, MiB) == bytes(MiB)  # repaired, empty
    biz.write(u.bv, 0, b"\x0a" * 8)
    assert m.query(u.bv).state == "normal"
    assert lab.generations(u.bv)[sv2].state == "snap/fault"
    refused(C.DATA_LOSS, "iSM19062", admin.read, sv2, 0, 4)
    m.unlink(u.lv)
    m.delete(u.bv, sv1)
    m.delete(u.bv, sv2)
    assert m.create(u.bv, sv1).state == "snap/active"
    assert admin.read(sv1, 0, 16) == b"\x0a" * 8 + bytes(8)


def test_restore_then_wait(lab: Lab) -> None:
    u = lab.unit("rst", sra=MiB)
    biz, m = lab.business01, lab.manager
    sv1 = u.svs[0]
    biz.write(u.bv, 0, b"\x0b" * (4 * BLOCK))
    m.create(u.bv, sv1)
    biz.write(u.bv, 0, b"\x0c" * (4 * BLOCK))
    started = m.restore(u.bv, ".-1", "relgen")
    assert started.sv == sv1 and started.state in ("rst/exec", "snap/active")
    assert m.wait(u.bv, sv1, cond="active", timeout=10).state == "snap/active"
    assert biz.read(u.bv, 0, 4 * BLOCK) == b"\x0b" * (4 * BLOCK)
    assert m.guard(u.bv, sv1, on=True).guard
    refused(C.FAILED_PRECONDITION, "iSM19025", m.delete, u.bv, sv1)


def test_configuration_replies_name_what_was_made_and_removed(lab: Lab) -> None:
    m = lab.manager
    ld = m.bind_ld("scratch01", MiB, "Pool0", "WN", number=0x0F00)
    assert (ld.number, ld.type, ld.pool, ld.capacity) == ("0f00h", "IV", "Pool0", MiB)
    assert m.bind_ld("scratch02", MiB, 0, "WN").number != "0f00h"  # no number: the first free one
    assert m.unbind_ld("0f00h") == ["scratch01"]
    assert m.unbind_ld("scratch02") == ["scratch02"]
    u = lab.unit("cfg", sra=MiB)
    assert m.delete_generations(u.bv, 1) == [u.svs[-1]]


# -- licences (A4) ---------------------------------------------------------------------------


def test_licences(lab: Lab) -> None:
    u = lab.unit("lic", sra=MiB)
    m = lab.manager
    sv1, sv2, _ = u.svs
    physical = m.describe().physical_capacity
    try:
        m.remove_licence(DSV)
        assert m.describe().licences[DSV] == "product fault"  # A4: a missing product shows as a product fault
        refused(C.FAILED_PRECONDITION, "iSM31030", m.create, u.bv, sv1)
        m.set_licence(DSV, physical - 1)
        assert m.describe().licences[DSV] == "capacity short"
        refused(C.FAILED_PRECONDITION, "iSM31031", m.add_generations, u.bv, u.pool, 1)
        assert m.create(u.bv, sv1).state == "snap/active"  # snapshots already built keep working
        m.set_licence(DSV, 1 << 40)

        state = m.inject_fault("licence", DSV)
        assert state.licences[DSV] == "product fault"
        err = refused(C.FAILED_PRECONDITION, "iSM31030", m.create, u.bv, sv2)
        assert "product fault" in err.text
        m.clear_fault("licence", DSV)
        assert m.create(u.bv, sv2).state == "snap/active"

        m.remove_licence(AC)
        refused(C.FAILED_PRECONDITION, "iSM31030", m.assign_access, u.lv, wwn=WWN["business01"])
    finally:
        m.set_licence(DSV, 1 << 40)
        m.set_licence(AC)
        if "licence:" + DSV in m.describe().faults:
            m.clear_fault("licence", DSV)
    assert m.describe().licences[DSV] == "licensed"


# -- identity and authorisation -----------------------------------------------------------------


def test_only_manager_or_admin_may_control(lab: Lab) -> None:
    biz = lab.business01
    refused(C.PERMISSION_DENIED, "iSM31044", biz.bind_pool, 90, "Pool90", "basic", MiB)
    refused(C.PERMISSION_DENIED, "iSM31044", biz.create, "bv001", "bv001_SV02")
    refused(C.PERMISSION_DENIED, "iSM31044", biz.inject_fault, "sra_full", "Pool1")
    refused(C.PERMISSION_DENIED, "iSM31044", lab.manager.read, "bv001", 0, 1)  # the manager does no block I/O
    with lab.proc.client("array") as as_array:
        refused(C.PERMISSION_DENIED, "iSM31044", as_array.describe)
    assert biz.query("bv001").bv == "bv001"  # hosts may look
    assert lab.admin.create("bv001", "bv001_SV02").state == "snap/active"
    assert lab.manager.delete("bv001", "bv001_SV02") == "bv001_SV02"


def test_access_control_decides_what_a_host_reads(lab: Lab) -> None:
    biz, bak = lab.business01, lab.backup01
    refused(C.PERMISSION_DENIED, "iSM31042", biz.read, "lv001", 0, 1)
    refused(C.PERMISSION_DENIED, "iSM31042", biz.read, "bv001_SV01", 0, 1)
    refused(C.PERMISSION_DENIED, "iSM31042", bak.read, "bv001_SV01", 0, 1)
    refused(C.PERMISSION_DENIED, "iSM31042", bak.write, "bv001", 0, b"x")
    assert "bv001" in [ld.name for ld in biz.disks()] and "lv001" not in [ld.name for ld in biz.disks()]
    bak_disks = [ld.name for ld in bak.disks()]
    assert "lv001" in bak_disks and "bv001" not in bak_disks
    assert [ld.name for ld in lab.manager.disks("backup01")] == bak_disks
    refused(C.PERMISSION_DENIED, "iSM31044", biz.disks, "backup01")
    refused(C.NOT_FOUND, "iSM19003", lab.admin.read, "no_such_ld", 0, 1)


def test_read_heads_answers_each_ld_as_a_read_of_its_first_bytes(lab: Lab) -> None:
    """A host's disk scan reads every partition table in one call: per LD the data or Read's refusal."""
    biz = lab.business01
    biz.write("bv001", 0, b"MBR!" * 128)
    got = biz.read_heads(["bv001", "lv001", "no_such_ld"], 1024)
    assert got["bv001"] == biz.read("bv001", 0, 1024) and got["bv001"][:4] == b"MBR!"
    for ld, code, msg_id in (("lv001", C.PERMISSION_DENIED, "iSM31042"), ("no_such_ld", C.NOT_FOUND, "iSM19003")):
        err = got[ld]
        assert isinstance(err, SnapLabClientError) and (err.code, err.msg_id) == (code, msg_id), err
        refused(code, msg_id, biz.read, ld, 0, 1)
    admin = lab.admin.read_heads(["bv001", "lv001"], 512)  # an admin reads as the array: no access control
    assert admin["bv001"] == lab.admin.read("bv001", 0, 512)
    assert isinstance(admin["lv001"], SnapLabClientError) and admin["lv001"].msg_id == "iSM19064"  # unlinked LV
    refused(C.FAILED_PRECONDITION, "iSM19064", lab.admin.read, "lv001", 0, 1)
    refused(C.INVALID_ARGUMENT, "iSM19001", biz.read_heads, ["bv001"], 4097)
    refused(C.INVALID_ARGUMENT, "iSM19001", biz.read_heads, ["bv001"], -1)
    assert biz.read_heads(["bv001"], 8)["bv001"] == b"MBR!MBR!"  # the daemon kept serving
    many = biz.stub.ReadHeads(pb.ReadHeadsRequest(lds=["bv001"] * 1024, length=4), timeout=10, metadata=biz._metadata)
    assert [h.data for h in many.heads] == [b"MBR!"] * 1024  # a scan of 1,024 disks in one call
    refused(C.INVALID_ARGUMENT, "iSM19005", lambda: biz._call("ReadHeads", pb.ReadHeadsRequest(lds=["bv001"] * 1025)))


def test_read_chunks_are_views_of_the_messages_with_protobufs_answer(lab: Lab) -> None:
    """A mount's read hands each message's data on as a view of what gRPC received (chunk_data):
    the same bytes as protobuf's parse, for the array's messages and for any other encoding."""
    biz, bv = lab.business01, lab.unit("chunks", sra=MiB).bv
    data = bytes(range(256)) * (3 * MiB // 256) + b"tail"
    biz.write(bv, 0, data)
    pieces = list(biz.read_chunks(bv, 0, len(data), call=2 * MiB, chunk_size=MiB))
    assert [len(p) for p in pieces] == [MiB, MiB, MiB, 4]  # two calls, each in 1 MiB messages
    assert all(isinstance(p, memoryview) for p in pieces) and b"".join(pieces) == data
    assert biz.read(bv, 5, 2 * MiB) == data[5 : 5 + 2 * MiB]
    for msg in (pb.DataChunk(data=b""), pb.DataChunk(data=b"x"), pb.DataChunk(data=data[: 300 * 1024])):
        raw = msg.SerializeToString()
        assert bytes(chunk_data(raw)) == msg.data
    twice = pb.DataChunk(data=b"old").SerializeToString() + pb.DataChunk(data=b"new").SerializeToString()
    assert chunk_data(twice) == pb.DataChunk.FromString(twice).data == b"new"  # the last one, as protobuf
    with pytest.raises(Exception) as info:
        chunk_data(b"\x0a\x05abc")  # cut short: protobuf's own error, as before
    assert type(info.value) is type(_decode_error(b"\x0a\x05abc"))


def _decode_error(raw: bytes) -> BaseException:
    try:
        pb.DataChunk.FromString(raw)
    except Exception as exc:  # noqa: BLE001 - whatever protobuf raises
        return exc
    raise AssertionError("protobuf parsed a message cut short")


def test_callers_without_a_lab_certificate_are_refused(lab: Lab) -> None:
    certs, other = lab.root / "certs", lab.root / "other_ca"
    ca = (certs / "ca.crt").read_bytes()
    attempts = {
        "no client certificate": grpc.secure_channel(lab.proc.target, grpc.ssl_channel_credentials(ca)),
        "plaintext": grpc.insecure_channel(lab.proc.target),
    }
    for why, channel in attempts.items():
        with channel:
            stub = array_pb2_grpc.ArrayStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Describe(pb.DescribeRequest(), timeout=5)
            assert info.value.code() == C.UNAVAILABLE, why
    foreign = ClientTLS((other / "admin.crt").read_bytes(), (other / "admin.key").read_bytes(), ca)
    with ArrayClient(lab.proc.target, foreign, timeout=5) as c:
        refused(C.UNAVAILABLE, None, c.describe)


def test_bad_requests_are_refused_and_the_daemon_keeps_serving(lab: Lab) -> None:
    admin = lab.admin
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.read, "bv001", -1, 10)
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.read, "bv001", 0, -10)
    refused(C.INVALID_ARGUMENT, "iSM19002", admin.read, "bv001", 8 * MiB - 1, 2)
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.configure)  # no operation
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.bind_ld, "neg", -512, 0, "WN")
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.wait, "bv001", "bv001_SV01", timeout=-1)
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.write, "", 0, b"x")
    refused(C.INVALID_ARGUMENT, "iSM19001", admin.inject_fault, "meteor", "Pool1")
    wait_healthy(admin.channel, timeout=5)
    assert lab.proc.running
    assert admin.describe().name == "Tokyo_Customer_DataBase"


# -- the Lookup stream (the manager's routing look-ups) ----------------------------------------

CODES = {c.value[0]: c for c in grpc.StatusCode}


def _lookups(*requests: pb.LookupRequest) -> pb.LookupBatch:
    return pb.LookupBatch(requests=list(requests))


def test_lookup_stream_answers_each_request_as_its_unary_rpc(lab: Lab) -> None:
    """Batches are answered in order, a reply per request with its id; a refusal is that reply's
    status, the same as the unary RPC's, and the stream goes on."""
    m = lab.manager
    batches = [
        _lookups(
            pb.LookupRequest(id=7, query=pb.QueryRequest(bv="bv001")),
            pb.LookupRequest(id=8, linkinfo=pb.VolumeRef(name="lv001")),
        ),
        _lookups(
            pb.LookupRequest(id=9, query=pb.QueryRequest(bv="no_such_bv")),
            pb.LookupRequest(id=10, query=pb.QueryRequest()),
            pb.LookupRequest(id=11),
        ),
        _lookups(pb.LookupRequest(id=12, linkinfo=pb.VolumeRef(name="bv001"))),
    ]
    got = list(array_pb2_grpc.ArrayStub(m.channel).Lookup(iter(batches), timeout=10))
    assert [[r.id for r in b.replies] for b in got] == [[7, 8], [9, 10, 11], [12]]
    (query, lv), refusals, (bv,) = (list(b.replies) for b in got)
    assert (query.code, query.WhichOneof("reply"), query.query) == (0, "query", m.query("bv001"))
    assert (lv.code, lv.linkinfo) == (0, m.linkinfo("lv001"))
    assert (bv.code, bv.linkinfo) == (0, m.linkinfo("bv001"))
    unary = [
        refused(C.NOT_FOUND, "iSM19003", m.query, "no_such_bv"),
        refused(C.INVALID_ARGUMENT, "iSM19001", m.query, ""),
    ]
    for reply, err in zip(refusals, unary, strict=False):
        assert reply.WhichOneof("reply") is None
        assert (CODES[reply.code], reply.details, reply.msg_id) == (err.code, err.details, err.msg_id)
    assert (CODES[refusals[2].code], refusals[2].msg_id) == (C.INVALID_ARGUMENT, "iSM19001")


def test_lookup_stream_authorises_each_request_by_the_streams_certificate(lab: Lab) -> None:
    ask = [_lookups(pb.LookupRequest(id=1, query=pb.QueryRequest(bv="bv001")))]
    with lab.proc.client("array") as as_array:
        (denied,) = list(array_pb2_grpc.ArrayStub(as_array.channel).Lookup(iter(ask), timeout=10))
    assert (CODES[denied.replies[0].code], denied.replies[0].msg_id) == (C.PERMISSION_DENIED, "iSM31044")
    (host,) = list(array_pb2_grpc.ArrayStub(lab.business01.channel).Lookup(iter(ask), timeout=10))
    assert host.replies[0].query.bv == "bv001"  # hosts may look, as with Query


def test_sigterm_ends_open_lookup_streams_at_once(tmp_path: Path) -> None:
    """A Lookup stream never ends by itself: stopping the daemon ends it instead of waiting out the grace."""
    certs = make_lab_certs(tmp_path / "certs", [("array", "array"), ("manager", "manager")])
    with ArrayProcess(tmp_path / "state", certs=certs, name="Nagoya") as proc, proc.client("manager") as m:
        sent: queue.Queue[pb.LookupBatch | None] = queue.Queue()
        stream = array_pb2_grpc.ArrayStub(m.channel).Lookup(iter(sent.get, None), timeout=30)
        sent.put(_lookups(pb.LookupRequest(id=1, query=pb.QueryRequest(bv="nothing"))))
        assert next(stream).replies[0].msg_id == "iSM19003"
        t0 = time.monotonic()
        assert proc.stop() == 0
        assert time.monotonic() - t0 < 3  # the grace is 5 s
        with pytest.raises(grpc.RpcError):
            next(stream)
        sent.put(None)


# -- the daemon process ----------------------------------------------------------------------


def test_sigterm_stops_gracefully_and_restart_keeps_config_and_data(tmp_path: Path) -> None:
    certs = make_lab_certs(tmp_path / "certs", [("array", "array"), ("admin", "admin")])
    with ArrayProcess(tmp_path / "state", certs=certs, name="Osaka") as proc:
        metrics_port = proc.ready["metrics_port"]  # its Prometheus metrics (issue 10), on a free port
        assert proc.ready == {"port": proc.port, "pid": proc.pid, "name": "Osaka", "metrics_port": metrics_port}
        assert metrics_port > 0 and metrics_port != proc.port
        assert json.loads(proc.ready_file.read_text())["port"] == proc.port
        assert f"snaplab-array: Osaka listening on {proc.target} (state {proc.state_dir})" in proc.log_tail()
        with proc.client("admin") as c:
            c.set_licence(DSV, 1 << 40)
            c.set_licence(AC)
            c.register_host("business01", [WWN["business01"]])
            build_unit(c, "p", 0, 1, sra=MiB, bv_size=MiB)
            c.write("bvp", 0, b"persist" * 100)
            c.create("bvp", "bvp_SV01")
            c.write("bvp", 0, b"changed")
        # One daemon per state folder.
        with pytest.raises(ArrayProcessError, match="in use"):
            ArrayProcess(tmp_path / "state", certs=certs, log_path=tmp_path / "second.log").start()

        assert proc.stop() == 0
        assert not proc.ready_file.exists()
        proc.restart()
        with proc.client("admin") as c:
            assert c.describe().name == "Osaka"
            assert c.read("bvp", 0, 7) == b"changed"
            assert c.read("bvp_SV01", 0, 7) == b"persist"
            assert {g.sv: g.state for g in c.query("bvp").generations}["bvp_SV01"] == "snap/active"
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--state", "s"],  # neither --certs nor --insecure
        ["--state", "s", "--insecure", "--listen", "nowhere"],
        ["--state", "s", "--certs", "missing"],
        ["--insecure"],
    ],
)
def test_bad_command_line_exits_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "snaplab.array.daemon", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("snaplab-array: error: "), done.stderr
