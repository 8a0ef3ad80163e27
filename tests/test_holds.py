"""Named holds on generations and consistency groups (SnapLab extensions, issue 14; docs/extensions.md)
through the array daemon's gRPC from another process: holds refuse deletion, are skipped by SRA-full
auto-delete under a real fill, survive an array restart; group operations are one instant and all or
nothing; the lab file's groups are checked with the place named."""

from __future__ import annotations

from collections.abc import Iterator
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


def _setup(m: ArrayClient, n: int, *, sra_blocks: int = 64) -> list[tuple[str, list[str]]]:
    """``n`` BVs with 3 SVs each in pools 0 (basic) and 1 (dynamic, its SRA ``sra_blocks`` blocks)."""
    m.set_licence("DynamicSnapVolume", 1 << 40)
    m.set_licence("AccessControl")
    m.register_host("business01", [WWN])
    m.bind_pool(0, "Pool0", "basic", 256 * MiB)
    m.bind_pool(1, "Pool1", "dynamic", 256 * MiB)
    m.build_sra(1, sra_blocks * BLOCK, sdv_name="sdv1")
    out = []
    for i in range(n):
        bv = f"bv{i}"
        m.bind_ld(bv, 4 * MiB, 0, "WN")
        svs = [ld.name for ld in m.add_generations(bv, 1, 3)]
        m.bind_lv(bv, f"lv{i}")
        m.assign_access(bv, wwn=WWN)
        out.append((bv, svs))
    return out


@pytest.fixture
def array(tmp_path: Path) -> Iterator[tuple[ArrayProcess, Path]]:
    certs = make_lab_certs(
        tmp_path / "certs", [("array", "array"), ("manager", "manager"), ("business01", "host")]
    )
    with ArrayProcess(tmp_path / "state", certs=certs, name="Hold_Array") as proc:
        yield proc, certs


def refused(code: grpc.StatusCode, msg_id: str, call, *args, **kwargs) -> SnapLabClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(SnapLabClientError) as info:
        call(*args, **kwargs)
    assert (info.value.code, info.value.msg_id) == (code, msg_id), info.value
    return info.value


def states(m: ArrayClient, bv: str) -> dict[str, str]:
    return {g.sv: g.state for g in m.query(bv).generations}


def test_holds_refuse_deletion_count_names_and_survive_a_restart(
    array: tuple[ArrayProcess, Path], tmp_path: Path
) -> None:
    proc, certs = array
    with proc.client("manager") as m:
        ((bv, svs),) = _setup(m, 1)
        m.create(bv, svs[0])
        assert list(m.hold(bv, svs[0], name="backup").holds) == ["backup"]
        assert list(m.hold(bv, svs[0], name="replica").holds) == ["backup", "replica"]
        refused(C.ALREADY_EXISTS, "iSM31270", m.hold, bv, svs[0], name="backup")
        refused(C.INVALID_ARGUMENT, "iSM31272", m.hold, bv, svs[0], name="a/b")
        refused(C.FAILED_PRECONDITION, "iSM19024", m.hold, bv, svs[1], name="x")  # no snapshot to hold
        err = refused(C.FAILED_PRECONDITION, "iSM31269", m.delete, bv, svs[0])
        assert "backup, replica" in str(err), err
        refused(C.FAILED_PRECONDITION, "iSM31269", m.create, bv, svs[0])  # a refresh would delete it
        m.guard(bv, svs[0], on=True)
        m.guard(bv, svs[0], on=False)  # the guard is independent of the holds
        m.release(bv, svs[0], name="backup")
        refused(C.NOT_FOUND, "iSM31271", m.release, bv, svs[0], name="backup")
    proc.stop()
    with ArrayProcess(tmp_path / "state", certs=certs) as again, again.client("manager") as m:
        g = next(g for g in m.query(bv).generations if g.sv == svs[0])
        assert list(g.holds) == ["replica"]
        refused(C.FAILED_PRECONDITION, "iSM31269", m.delete, bv, svs[0])
        m.release(bv, svs[0], name="replica")
        m.delete(bv, svs[0])
        m.create(bv, svs[0])
        assert not next(g for g in m.query(bv).generations if g.sv == svs[0]).holds  # a new generation: none


def test_sra_auto_delete_never_takes_a_held_generation(array: tuple[ArrayProcess, Path]) -> None:
    proc, _ = array
    with proc.client("manager") as m, proc.client("business01") as biz:
        ((bv, svs),) = _setup(m, 1, sra_blocks=8)
        biz.write(bv, 0, b"\x01" * (2 * MiB))
        m.create(bv, svs[0])
        m.hold(bv, svs[0], name="keep")  # the oldest: auto-delete's first choice without the hold
        biz.write(bv, 0, b"\x02" * (4 * BLOCK))
        m.create(bv, svs[1])
        m.guard(bv, svs[1], on=True)  # guarded: deleted only as the last resort; held: never
        biz.write(bv, 0, b"\x03" * (4 * BLOCK))  # 4 more blocks, the newer's own: the SRA is full (8)
        biz.write(bv, 8 * BLOCK, b"\x03" * BLOCK)  # the guarded one goes, the held one stays
        assert states(m, bv) == {svs[0]: "snap/active", svs[1]: "snap/deleted", svs[2]: "snap/deleted"}
        refused(C.RESOURCE_EXHAUSTED, "iSM19060", biz.write, bv, 9 * BLOCK, b"\x03" * (5 * BLOCK))
        assert states(m, bv)[svs[0]] == "snap/active"


def test_group_operations_are_all_or_nothing(array: tuple[ArrayProcess, Path]) -> None:
    proc, _ = array
    with proc.client("manager") as m, proc.client("business01") as biz:
        units = _setup(m, 3)
        bvs = [bv for bv, _ in units]
        m.configure(group_define=pb.GroupDefine(name="DB", bvs=bvs))
        refused(
            C.ALREADY_EXISTS, "iSM31261", m.configure, group_define=pb.GroupDefine(name="DB", bvs=bvs[:1])
        )
        refused(
            C.FAILED_PRECONDITION, "iSM31263", m.configure, group_define=pb.GroupDefine(name="X", bvs=bvs[:1])
        )
        refused(
            C.INVALID_ARGUMENT, "iSM31262", m.configure, group_define=pb.GroupDefine(name="a/b", bvs=["lv0"])
        )
        assert [(g.name, list(g.bvs)) for g in m.describe().groups] == [("DB", bvs)]
        one = m.group("DB", create=pb.GroupCreate())
        assert [x.sv for x in one.generations[0].members] == [svs[0] for _, svs in units]
        assert {x.create_time for x in one.generations[0].members} == {one.generations[0].create_time}
        assert all(x.group == "DB" for x in one.generations[0].members)
        # a member that cannot: nothing changes anywhere (the first member's create is rolled back)
        m.create(bvs[2], units[2][1][1])
        m.guard(bvs[2], units[2][1][1], on=True)
        m.create(bvs[2], units[2][1][2])
        m.guard(bvs[2], units[2][1][2], on=True)
        before = [states(m, bv) for bv in bvs]
        err = refused(C.FAILED_PRECONDITION, "iSM31265", m.group, "DB", create=pb.GroupCreate())
        assert "bv2" in str(err)
        m.group("DB", guard=pb.GroupGuard(gen=-1, set=True))
        err = refused(C.FAILED_PRECONDITION, "iSM31267", m.group, "DB", create=pb.GroupCreate(cyclic=True))
        assert "bv2" in str(err) and "iSM19026" in str(err), err
        assert [states(m, bv) for bv in bvs] == before
        m.group("DB", guard=pb.GroupGuard(gen=-1, cancel=True))
        # restore: all members, or none
        biz.write(bvs[0], 0, b"new")
        m.link("lv1", units[1][1][0], mode="ro")
        err = refused(C.FAILED_PRECONDITION, "iSM31267", m.group, "DB", restore=pb.GroupRestore(gen=-1))
        assert "bv1" in str(err) and "iSM19028" in str(err), err
        assert biz.read(bvs[0], 0, 3) == b"new" and m.query(bvs[0]).state == "normal"
        m.unlink("lv1")
        m.group("DB", restore=pb.GroupRestore(gen=-1))
        assert biz.read(bvs[0], 0, 3) == bytes(3)
        # the manager's routing checked other members: the array refuses a changed group
        refused(C.FAILED_PRECONDITION, "iSM31264", m.group, "DB", members=bvs[:2], query=pb.GroupGen())
        refused(C.NOT_FOUND, "iSM31266", m.group, "DB", delete=pb.GroupGen(gen=-5))
        refused(C.NOT_FOUND, "iSM31260", m.group, "NOPE", query=pb.GroupGen())
        # a link names one LV per member
        refused(C.INVALID_ARGUMENT, "iSM31268", m.group, "DB", link=pb.GroupLink(gen=-1, lvs=["lv0", "lv1"]))
        m.group("DB", delete=pb.GroupGen(gen=-1))
        assert [states(m, bv)[svs[0]] for bv, svs in units] == ["snap/deleted"] * 3
        m.configure(group_remove=pb.GroupRemove(name="DB"))
        assert not m.describe().groups


# -- the lab file (in process: parsing only) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ('[{ name = "DB", bvs = ["DB_DATA_BV", "DB_CTL_BV"] }]', ""),
        ('[{ name = "DB", bvs = ["DB_DATA_BV", "nosuch"] }]', "groups[0].bvs"),
        ('[{ name = "DB", bvs = ["DB_DATA_BV", "DB_DATA_BV"] }]', "groups[0].bvs"),
        ('[{ name = "D B", bvs = ["DB_DATA_BV"] }]', "groups[0].name"),
        ('[{ name = "DB", bvs = [] }]', "groups[0].bvs"),
        ('[{ name = "A", bvs = ["DB_DATA_BV"] }, { name = "B", bvs = ["DB_DATA_BV"] }]', "groups[1].bvs"),
        ('[{ name = "DB", bvs = ["DB_DATA_BV"], extra = 1 }]', "groups[0]"),
    ],
)
def test_lab_file_groups(groups: str, problem: str) -> None:
    from snaplab.deploy.configure import config_ops
    from snaplab.deploy.errors import LabFileError
    from snaplab.deploy.folder import default_lab_file
    from snaplab.deploy.spec import LabSpec

    base = default_lab_file().read_text(encoding="utf-8")
    anchor = "licences = [\n"
    assert base.count(anchor) == 1
    text = base.replace(anchor, f"groups = {groups}\n{anchor}")
    if problem:
        with pytest.raises(LabFileError) as info:
            LabSpec.parse(text)
        assert problem in str(info.value) and "Tokyo_Customer_DataBase" in str(info.value), info.value
        return
    spec = LabSpec.parse(text)
    ops = config_ops(spec, spec.arrays[0])
    assert [w for w, r in ops if r.WhichOneof("op") == "group_define"] == [
        "arrays[Tokyo_Customer_DataBase].groups[DB]"
    ]
    assert not LabSpec.parse(base).arrays[0].groups  # the guide's lab defines none


def test_guard_and_hold_answers_are_the_generation_a_query_shows(array: tuple[ArrayProcess, Path]) -> None:
    """The reply of a guard or a hold is built for its generation alone (its cost does not grow with
    the BV's generations); it must be exactly what a query shows for that generation."""
    proc, _ = array
    with proc.client("manager") as m, proc.client("business01") as host:
        ((bv, svs),) = _setup(m, 1)
        for i, sv in enumerate(svs):
            host.write(bv, i * BLOCK, bytes([i + 1]) * (2 * BLOCK))  # each generation holds some data
            m.create(bv, sv)
        host.write(bv, 0, b"\xff" * (3 * BLOCK))
        for sv in svs:
            for call in (lambda: m.guard(bv, sv, on=True), lambda: m.hold(bv, sv, name="keep"),
                         lambda: m.release(bv, sv, name="keep"),
                         lambda: m.guard(bv, f"{bv}.-1", "ld.relgen", on=False)):
                reply = call()
                shown = {g.sv: g for g in m.query(bv).generations}
                assert reply == shown[reply.sv], (sv, reply)
        assert any(g.data_size for g in m.query(bv).generations)
        refused(C.NOT_FOUND, "iSM19003", m.guard, bv, "nosuch", on=True)


def test_the_engine_self_check_covers_holds_and_groups(tmp_path: Path) -> None:
    """``ArrayEngine.verify`` (what the model-based and crash tests call) compares the holds and the
    groups in memory with array.db too: a hold or group generation only memory had is caught."""
    from snaplab.array.engine import ArrayEngine
    from snaplab.array.model import DSV

    e = ArrayEngine(tmp_path / "a", name="A")
    try:
        e.set_licence(DSV, 1 << 40)
        e.bind_pool(1, "P", "dynamic", 256 * MiB)
        e.build_sra(1, 64 * MiB, sdv_name="sdv1")
        for bv in ("bv1", "bv2"):
            e.bind_ld(bv, 4 * MiB, 1, "WN")
            e.add_generations(bv, 1, 2)
        e.group_define("DB", ["bv1", "bv2"])
        e.group_create("DB", cyclic=True)
        sv = e.query("bv1")["generations"][0]["sv"]
        e.hold("bv1", sv, name="backup")
        e.verify()
        e.gen_holds[e.ld(sv).number]["ghost"] = 0  # memory only
        with pytest.raises(AssertionError, match="gen_holds"):
            e.verify()
        del e.gen_holds[e.ld(sv).number]["ghost"]
        e.cgroup_by_gen[(0, 0)] = "DB"
        with pytest.raises(AssertionError, match="cgroup_by_gen"):
            e.verify()
        del e.cgroup_by_gen[(0, 0)]
        e.verify()
    finally:
        e.close()
