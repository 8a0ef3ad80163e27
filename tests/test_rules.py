"""SPEC §3 rules A2-A5, A8, A10, A11 on the in-process engine: each refusal with its exact message id,
and the positive counterpart where it is cheap.

The array of every test (fixture ``eng``): licences DynamicSnapVolume (1 GiB) and AccessControl; basic
pool 0 and dynamic pool 1 with the SRA (SDV1) in pool 1; the ports of the guide's table 1-2 plus two;
hosts ``business``, ``backup`` and ``testsrv`` (windows) and ``linuxsrv`` (linux); ``bv001`` (WN, pool 0,
assigned to the business server by port) with SVs ``sv001_01..03`` in pool 1 and ``lv001`` (assigned to
the backup server by WWN).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snaplab.san import disklayout
from snaplab.san.blocks import BLOCK
from snaplab.array.engine import ArrayEngine
from snaplab.array.model import ACCESS_CONTROL, DSV, STATE_ACTIVE, STATE_RESTORING, STATE_UNUSED, VERSION3
from snaplab.common.errors import SnapLabError, all_messages

CATALOGUE = {m.msg_id for m in all_messages()}
MiB = 1 << 20
LD_CAP = 1 * MiB  # 16 blocks of 64 KiB
WWN = {
    "business": "10:00:00:00:c9:00:00:01",
    "backup": "10:00:00:00:c9:00:00:02",
    "testsrv": "10:00:00:00:c9:00:00:03",
    "linuxsrv": "10:00:00:00:c9:00:00:04",
}
PORTS = {
    "business": "DB_PRIMARY",
    "backup": "BACKUP_PRIMARY",
    "testsrv": "TEST_PORT",
    "linuxsrv": "LINUX_PORT",
}
SVS = ["sv001_01", "sv001_02", "sv001_03"]


# ------------------------------------------------------------------------------------------ helpers
def refused(msg: str, fn: Callable, *args, **kwargs) -> SnapLabError:
    """Call fn and assert it is refused with message id ``msg``; returns the error."""
    assert msg in CATALOGUE, msg
    with pytest.raises(SnapLabError) as ei:
        fn(*args, **kwargs)
    assert ei.value.msg_id == msg, f"expected {msg}, got {ei.value}"
    return ei.value


def make_bv(e: ArrayEngine, name: str, fmt: str = "WN", *, pool: int = 0, svs: int = 2,
            lvs: tuple[str, ...] = (), assign_to: str | None = None) -> list[str]:
    """An LD made into a BV with ``svs`` SVs in pool 1 and the given LVs; returns the SV names."""
    e.bind_ld(name, LD_CAP, pool, fmt)
    names = [f"{name}_sv{i + 1:02d}" for i in range(svs)]
    e.add_generations(name, 1, svs, sv_names=names)
    for lv in lvs:
        e.bind_lv(name, lv)
    if assign_to:
        e.assign_access(name, port=PORTS[assign_to])
    return names


def block0(signature: bytes, partitions=((0x07, 63, 1000),), fill: int = 0xA5) -> bytes:
    """A whole first block: an MBR with the signature, then a recognisable pattern."""
    mbr = disklayout.build_mbr(list(partitions), signature=signature)
    return mbr + bytes([fill]) * (BLOCK - len(mbr))


def sig_of(data: bytes) -> bytes:
    return bytes(data[disklayout.MBR_SIGNATURE_OFFSET : disklayout.MBR_SIGNATURE_OFFSET + 4])


def without_sig(data: bytes) -> bytes:
    return data[: disklayout.MBR_SIGNATURE_OFFSET] + data[disklayout.MBR_SIGNATURE_OFFSET + 4 :]


# ------------------------------------------------------------------------------------------ fixture
@pytest.fixture
def eng(tmp_path: Path) -> Iterator[ArrayEngine]:
    e = ArrayEngine(tmp_path / "array", name="Tokyo_Customer_DataBase")
    e.set_licence(DSV, 1 << 30)
    e.set_licence(ACCESS_CONTROL)
    e.bind_pool(0, "BASIC0", "basic", 64 * MiB)
    e.bind_pool(1, "DYN1", "dynamic", 64 * MiB)
    e.build_sra(1, 16 * MiB, sdv_name="SDV1")
    for d, p, n in [(0, 0, "DB_SECONDARY"), (1, 0, "DB_PRIMARY"), (0, 1, "BACKUP_PRIMARY"),
                    (1, 1, "BACKUP_SECONDARY"), (2, 0, "TEST_PORT"), (2, 1, "LINUX_PORT")]:
        e.add_port(d, p, n)
    for host in ("business", "backup", "testsrv"):
        e.register_host(host, [WWN[host]], [PORTS[host]], "windows")
    e.register_host("linuxsrv", [WWN["linuxsrv"]], [PORTS["linuxsrv"]], "linux")
    e.bind_ld("bv001", LD_CAP, 0, "WN")
    e.add_generations("bv001", 1, 3, sv_names=SVS)
    e.bind_lv("bv001", "lv001")
    e.assign_access("bv001", port=PORTS["business"])
    e.assign_access("lv001", wwn=WWN["backup"])
    yield e
    try:
        e.verify()
    finally:
        e.close()


def test_fixture_array(eng: ArrayEngine) -> None:
    q = eng.query("bv001")
    assert q["format"] == "WN" and q["reserve_area"] == "DYN1"
    assert [g["sv"] for g in q["generations"]] == SVS
    assert all(g["state"] == STATE_UNUSED for g in q["generations"])
    assert [x["lv"] for x in q["lvs"]] == ["lv001"]


# ================================================================================= A2 usage formats
class TestA2Formats:
    def test_sdv_has_no_format(self, eng: ArrayEngine) -> None:
        assert eng.ld("SDV1").type == "SDV" and eng.ld("SDV1").format == ""
        sdv2 = eng.build_sra(1, 4 * MiB, sdv_name="SDV2", extend=True)
        assert sdv2.format == ""
        assert {x["name"]: x["format"] for x in eng.describe()["lds"]}["SDV1"] == ""
        refused("iSM31021", eng.set_format, "SDV1", "WN")

    @pytest.mark.parametrize("fmt", ["XX", "wn", "", "WINDOWS"])
    def test_invalid_format_code(self, eng: ArrayEngine, fmt: str) -> None:
        refused("iSM31020", eng.bind_ld, "iv_bad", LD_CAP, 0, fmt)
        eng.bind_ld("iv_ok", LD_CAP, 0, "WN")
        refused("iSM31020", eng.set_format, "iv_ok", fmt)
        assert eng.ld("iv_ok").format == "WN"

    @pytest.mark.parametrize("fmt", ["WN", "WG", "LX"])
    def test_sv_and_lv_take_the_bv_format(self, eng: ArrayEngine, fmt: str) -> None:
        svs = make_bv(eng, "bv_f", fmt, lvs=("lv_f",))
        assert {eng.ld(s).format for s in svs} == {fmt}
        assert eng.ld("lv_f").format == fmt
        assert eng.ld("sv001_01").format == "WN" and eng.ld("lv001").format == "WN"

    @pytest.mark.parametrize("ld", ["bv001", "sv001_01", "lv001"])
    def test_format_locked_once_generations_exist(self, eng: ArrayEngine, ld: str) -> None:
        refused("iSM31023", eng.set_format, ld, "WG")
        eng.create("bv001", "sv001_01")
        refused("iSM31023", eng.set_format, ld, "WG")
        assert eng.ld(ld).format == "WN"

    def test_format_of_an_ordinary_ld_can_change(self, eng: ArrayEngine) -> None:
        eng.bind_ld("iv1", LD_CAP, 0, "WN")
        eng.set_format("iv1", "WG")
        assert eng.ld("iv1").format == "WG"
        make_bv(eng, "iv1_bv", "WN", svs=1)  # and a BV built from it keeps its format
        refused("iSM31023", eng.set_format, "iv1_bv", "WG")

    @pytest.mark.parametrize("by", ["port", "wwn"])
    def test_format_must_match_host_platform(self, eng: ArrayEngine, by: str) -> None:
        eng.bind_ld("win_ld", LD_CAP, 0, "WN")
        eng.bind_ld("gpt_ld", LD_CAP, 0, "WG")
        eng.bind_ld("lx_ld", LD_CAP, 0, "LX")
        kw = (lambda h: {"port": PORTS[h]}) if by == "port" else (lambda h: {"wwn": WWN[h]})
        refused("iSM31022", eng.assign_access, "win_ld", **kw("linuxsrv"))
        refused("iSM31022", eng.assign_access, "gpt_ld", **kw("linuxsrv"))
        refused("iSM31022", eng.assign_access, "lx_ld", **kw("business"))
        # an LV of a WN BV is WN too
        refused("iSM31022", eng.assign_access, "lv001", **kw("linuxsrv"))
        eng.assign_access("gpt_ld", **kw("business"))
        eng.assign_access("win_ld", **kw("business"))
        eng.assign_access("lx_ld", **kw("linuxsrv"))
        assert eng.reaches("business", eng.ld("gpt_ld")) and eng.reaches("linuxsrv", eng.ld("lx_ld"))
        assert not eng.reaches("linuxsrv", eng.ld("win_ld"))


# ================================================================================= A3 placement
class TestA3Placement:
    def test_svs_only_in_a_dynamic_pool(self, eng: ArrayEngine) -> None:
        eng.bind_ld("iv1", LD_CAP, 0, "WN")
        refused("iSM31011", eng.add_generations, "iv1", 0, 1)
        assert eng.ld("iv1").type == "IV"
        eng.add_generations("iv1", 1, 1)
        assert eng.ld("iv1").type == "BV"

    def test_all_svs_of_a_bv_in_one_pool(self, eng: ArrayEngine) -> None:
        eng.bind_pool(2, "DYN2", "dynamic", 32 * MiB)
        eng.build_sra(2, 8 * MiB, sdv_name="SDV2")
        refused("iSM31012", eng.add_generations, "bv001", 2, 1)
        added = eng.add_generations("bv001", 1, 1, sv_names=["sv001_04"])
        assert added[0].pool == 1 and len(eng.query("bv001")["generations"]) == 4
        # another BV may use the other pool: BV and SV pools are independent
        eng.bind_ld("bv_b", LD_CAP, 1, "WN")
        eng.add_generations("bv_b", 2, 1)
        assert eng.query("bv_b")["reserve_area"] == "DYN2"

    def test_sra_must_be_built_before_generations(self, eng: ArrayEngine) -> None:
        eng.bind_pool(2, "DYN2", "dynamic", 32 * MiB)
        eng.bind_ld("iv1", LD_CAP, 0, "WN")
        refused("iSM31014", eng.add_generations, "iv1", 2, 1)
        eng.build_sra(2, 4 * MiB)
        eng.add_generations("iv1", 2, 1)

    def test_lv_in_the_same_pool_as_the_sv(self, eng: ArrayEngine) -> None:
        eng.bind_pool(2, "DYN2", "dynamic", 32 * MiB)
        eng.build_sra(2, 4 * MiB)
        refused("iSM31013", eng.bind_lv, "bv001", "lv_x", pool=2)
        refused("iSM31011", eng.bind_lv, "bv001", "lv_x", pool=0)
        lv = eng.bind_lv("bv001", "lv_x", pool=1)
        assert lv.pool == 1 and eng.bind_lv("bv001", "lv_y").pool == 1

    @pytest.mark.parametrize("pool", [0, 1])
    def test_bv_and_cv_in_basic_or_dynamic_pool(self, eng: ArrayEngine, pool: int) -> None:
        bv = eng.bind_ld(f"bv_p{pool}", LD_CAP, pool, "WN")
        eng.add_generations(bv.name, 1, 1)
        assert eng.ld(bv.name).type == "BV" and eng.ld(bv.name).pool == pool
        cv = eng.bind_ld(f"cv_p{pool}", 4 * 65536, pool, "WN", attr="cv")
        assert cv.type == "CV" and cv.pool == pool
        refused("iSM31018", eng.add_generations, cv.name, 1, 1)  # a CV never becomes a BV

    def test_sra_build_twice_and_extend(self, eng: ArrayEngine) -> None:
        refused("iSM31016", eng.build_sra, 1, 4 * MiB)
        before = eng.sra_info(1)["capacity"]
        assert before == 16 * MiB
        eng.build_sra(1, 8 * MiB, sdv_name="SDV_EXT", extend=True)
        assert eng.sra_info(1)["capacity"] == before + 8 * MiB
        assert eng.describe()["pools"][1]["sra_capacity"] == 24 * MiB
        eng.bind_pool(2, "DYN2", "dynamic", 32 * MiB)
        refused("iSM31014", eng.build_sra, 2, 4 * MiB, extend=True)


# ================================================================================= A4 licences
def _op(e: ArrayEngine, name: str) -> None:
    {
        "create": lambda: e.create("bv001", "sv001_02"),
        "create_cyclic": lambda: e.create("bv001", cyclic=True),
        "delete": lambda: e.delete("bv001", "sv001_01"),
        "delete_auto": lambda: e.delete("bv001", auto=True),
        "guard": lambda: e.guard("bv001", "sv001_01", on=True),
        "link": lambda: e.link("lv001", "sv001_01"),
        "unlink": lambda: e.unlink("lv001"),
        "restore": lambda: e.restore("bv001", "sv001_01"),
        "generationadd": lambda: e.add_generations("bv001", 1, 1),
        "lvbind": lambda: e.bind_lv("bv001", "lv_new"),
    }[name]()


A4_OPS = ["create", "create_cyclic", "delete", "delete_auto", "guard", "link", "unlink", "restore",
          "generationadd", "lvbind"]


class TestA4Licences:
    @pytest.mark.parametrize("op", A4_OPS)
    def test_no_dynamicsnapvolume_licence(self, eng: ArrayEngine, op: str) -> None:
        eng.create("bv001", "sv001_01")
        eng.remove_licence(DSV)
        err = refused("iSM31030", _op, eng, op)
        assert DSV in str(err)
        assert eng.licence_state()[DSV] == "product fault"  # A4: a missing product shows as a product fault
        eng.set_licence(DSV, 1 << 30)
        if op != "unlink":
            _op(eng, op)

    @pytest.mark.parametrize("op", ["create", "link", "restore", "generationadd"])
    def test_licence_fault_is_a_product_fault(self, eng: ArrayEngine, op: str) -> None:
        eng.create("bv001", "sv001_01")
        eng.inject_fault("licence", DSV)
        assert eng.licence_state()[DSV] == "product fault"
        assert "licence:" + DSV in eng.describe()["faults"]
        refused("iSM31030", _op, eng, op)
        eng.clear_fault("licence", DSV)
        assert eng.licence_state()[DSV] == "licensed"
        _op(eng, op)

    def test_capacity_below_physical_blocks_new_sv_sets_only(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.set_licence(DSV, eng.physical_capacity())
        eng.bind_ld("iv1", LD_CAP, 0, "WN")
        eng.add_generations("iv1", 1, 1)  # licence == physical capacity: still fine
        eng.bind_pool(2, "ADDED", "basic", 32 * MiB)  # physical capacity now beyond the licence
        assert eng.licence_state()[DSV] == "capacity short"
        eng.bind_ld("iv2", LD_CAP, 0, "WN")
        refused("iSM31031", eng.add_generations, "iv2", 1, 1)
        refused("iSM31031", eng.add_generations, "bv001", 1, 1)
        refused("iSM31031", eng.bind_lv, "bv001", "lv_new")
        # operations on the snapshots already built still work
        eng.create("bv001", "sv001_02")
        eng.create("bv001", cyclic=True)
        eng.delete("bv001", "sv001_01")
        eng.link("lv001", "sv001_02")
        eng.unlink("lv001")
        eng.restore("bv001", "sv001_02")
        eng.wait("bv001", "sv001_02", cond="active", timeout=10)
        eng.set_licence(DSV, eng.physical_capacity())
        eng.add_generations("iv2", 1, 1)

    def test_access_control_licence_needed(self, eng: ArrayEngine) -> None:
        eng.bind_ld("iv1", LD_CAP, 0, "WN")
        eng.remove_licence(ACCESS_CONTROL)
        err = refused("iSM31030", eng.assign_access, "iv1", port=PORTS["business"])
        assert ACCESS_CONTROL in str(err)
        eng.set_licence(ACCESS_CONTROL)
        eng.inject_fault("licence", ACCESS_CONTROL)
        assert eng.licence_state()[ACCESS_CONTROL] == "product fault"
        refused("iSM31030", eng.assign_access, "iv1", wwn=WWN["business"])
        eng.clear_fault("licence", ACCESS_CONTROL)
        eng.assign_access("iv1", wwn=WWN["business"])
        assert eng.reaches("business", eng.ld("iv1"))

    def test_rv_as_bv_needs_version3(self, eng: ArrayEngine) -> None:
        eng.bind_ld("rv1", LD_CAP, 0, "WN", attr="rv")
        refused("iSM31032", eng.add_generations, "rv1", 1, 1)
        assert eng.ld("rv1").type == "IV"
        eng.bind_ld("mv1", LD_CAP, 0, "WN", attr="mv")
        eng.add_generations("mv1", 1, 1)  # an MV needs no Version3
        eng.set_licence(VERSION3)
        eng.add_generations("rv1", 1, 1)
        assert eng.ld("rv1").type == "BV"


# ================================================================================= A5 access control
class TestA5Access:
    @pytest.mark.parametrize("ld", ["sv001_01", "SDV1"])
    @pytest.mark.parametrize("by", ["port", "wwn"])
    def test_sv_and_sdv_never_assigned(self, eng: ArrayEngine, ld: str, by: str) -> None:
        kw = {"port": PORTS["backup"]} if by == "port" else {"wwn": WWN["backup"]}
        refused("iSM31040", eng.assign_access, ld, **kw)
        eng.create("bv001", "sv001_01")
        refused("iSM31040", eng.assign_access, ld, **kw)
        assert not eng.access.get(eng.ld(ld).number)

    def test_io_to_an_unassigned_ld_is_refused(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01")
        refused("iSM31042", eng.read, "bv001", 0, 512, host="backup")
        refused("iSM31042", eng.write, "bv001", 0, b"x", host="testsrv")
        refused("iSM31042", eng.read, "lv001", 0, 512, host="business")
        refused("iSM31042", eng.read, "sv001_01", 0, 512, host="backup")  # an SV is never reachable
        refused("iSM31042", eng.read, "SDV1", 0, 512, host="backup")
        refused("iSM31042", eng.read, "bv001", 0, 512, host="nobody")
        eng.read("bv001", 0, 512, host="business")
        eng.read("lv001", 0, 512, host="backup")
        assert [x.name for x in eng.visible_lds("backup")] == ["lv001"]
        assert [x.name for x in eng.visible_lds("business")] == ["bv001"]

    @pytest.mark.parametrize("by", ["port", "wwn"])
    def test_assignment_by_port_or_wwn_grants_access(self, eng: ArrayEngine, by: str) -> None:
        eng.bind_ld("iv1", LD_CAP, 0, "WN")
        refused("iSM31042", eng.write, "iv1", 0, b"hello", host="testsrv")
        path = {"port": PORTS["testsrv"]} if by == "port" else {"wwn": WWN["testsrv"]}
        eng.assign_access("iv1", **path)
        eng.write("iv1", 0, b"hello", host="testsrv")
        assert eng.read("iv1", 0, 5, host="testsrv") == b"hello"
        refused("iSM31042", eng.read, "iv1", 0, 5, host="business")
        eng.unassign_access("iv1", **path)
        refused("iSM31042", eng.read, "iv1", 0, 5, host="testsrv")

    def test_assignment_by_iscsi_initiator_grants_access(self, eng: ArrayEngine, tmp_path: Path) -> None:
        """An iSCSI LD set (Cinder's addldsetinitiator) is a host whose paths are initiator names."""
        iqn = "iqn.1994-05.com.redhat:Node1"
        eng.register_host("inode", [], [], "linux", [iqn])
        eng.bind_ld("iv_i", LD_CAP, 0, "LX")
        refused("iSM31042", eng.read, "iv_i", 0, 5, host="inode")
        eng.assign_access("iv_i", initiator=iqn.upper())  # names compare case-insensitively
        eng.write("iv_i", 0, b"hello", host="inode")
        assert eng.access[eng.ld("iv_i").number] == {"iqn:" + iqn.lower()}
        refused("iSM31042", eng.read, "iv_i", 0, 5, host="linuxsrv")
        refused("iSM19001", eng.assign_access, "iv_i", wwn=WWN["testsrv"], initiator=iqn)  # one path at a time
        eng.close()
        again = ArrayEngine(tmp_path / "array")  # kept across a restart
        try:
            assert again.hosts["inode"].initiators == [iqn.lower()]
            assert again.read("iv_i", 0, 5, host="inode") == b"hello"
            again.unassign_access("iv_i", initiator=iqn)
            refused("iSM31042", again.read, "iv_i", 0, 5, host="inode")
        finally:
            again.close()

    def test_an_array_db_from_before_initiators_opens(self, tmp_path: Path) -> None:
        import sqlite3

        e = ArrayEngine(tmp_path / "old")
        e.close()
        db = sqlite3.connect(tmp_path / "old" / "array.db")
        db.execute("DROP TABLE hosts")
        db.execute("CREATE TABLE hosts (name TEXT PRIMARY KEY, wwns TEXT, ports TEXT, platform TEXT)")
        db.execute("INSERT INTO hosts VALUES ('h', '[\"10:00:00:00:c9:00:00:01\"]', '[]', 'windows')")
        db.commit()
        db.close()
        e = ArrayEngine(tmp_path / "old")
        try:
            assert e.hosts["h"].wwns == ["10:00:00:00:c9:00:00:01"] and e.hosts["h"].initiators == []
        finally:
            e.close()

    def test_bv_linked_to_lv_is_reachable_only_through_the_lv(self, eng: ArrayEngine) -> None:
        eng.write("bv001", 0, b"business data", host="business")
        eng.link("lv001", bv_ref="bv001")
        refused("iSM31043", eng.read, "bv001", 0, 13, host="business")
        refused("iSM31043", eng.write, "bv001", 0, b"x", host="business")
        assert eng.read("lv001", 0, 13, host="backup") == b"business data"
        eng.unlink("lv001")
        assert eng.read("bv001", 0, 13, host="business") == b"business data"

    def test_gpt_lvs_of_one_bv_go_to_different_servers(self, eng: ArrayEngine) -> None:
        make_bv(eng, "bv_g", "WG", lvs=("lv_g1", "lv_g2", "lv_g3"))
        eng.assign_access("lv_g1", port=PORTS["backup"])
        refused("iSM31041", eng.assign_access, "lv_g2", port=PORTS["backup"])
        refused("iSM31041", eng.assign_access, "lv_g2", wwn=WWN["backup"])  # same server, other path
        eng.assign_access("lv_g2", wwn=WWN["testsrv"])
        eng.assign_access("lv_g3", port=PORTS["business"])
        assert not eng.reaches("backup", eng.ld("lv_g2"))
        # WN: several LVs of one BV on one server are fine
        eng.bind_lv("bv001", "lv001b")
        eng.assign_access("lv001b", port=PORTS["backup"])
        assert eng.reaches("backup", eng.ld("lv001")) and eng.reaches("backup", eng.ld("lv001b"))

    def test_gpt_bv_and_its_lv_go_to_different_servers(self, eng: ArrayEngine) -> None:
        """Guide 3.1 on GPT disks: "BV と LV はそれぞれ異なるサーバで使用する必要があります"."""
        make_bv(eng, "bv_g", "WG", lvs=("lv_g1", "lv_g2"), assign_to="business")
        refused("iSM31041", eng.assign_access, "lv_g1", port=PORTS["business"])
        refused("iSM31041", eng.assign_access, "lv_g1", wwn=WWN["business"])
        eng.assign_access("lv_g1", port=PORTS["backup"])
        refused("iSM31041", eng.assign_access, "bv_g", wwn=WWN["backup"])
        eng.assign_access("lv_g2", port=PORTS["testsrv"])
        # WN: BV and LV on one server are allowed by the array (the guide leaves that to the operator)
        eng.assign_access("lv001", port=PORTS["business"])

    def test_path_fault(self, eng: ArrayEngine) -> None:
        eng.inject_fault("path", "business")
        refused("iSM19063", eng.read, "bv001", 0, 512, host="business")
        refused("iSM19063", eng.write, "bv001", 0, b"x", host="business")
        assert eng.visible_lds("business") == []
        eng.read("bv001", 0, 512)  # the array itself is unaffected
        eng.clear_fault("path", "business")
        eng.read("bv001", 0, 512, host="business")


# ================================================================================= A8 snapshot operations
def _states(e: ArrayEngine) -> dict[str, str]:
    return {g["sv"]: g["state"] for g in e.query("bv001")["generations"]}


def _order(e: ArrayEngine) -> list[str]:
    """Live generations, newest first."""
    return [g["sv"] for g in e.query("bv001")["generations"] if g["relgen"] is not None]


class TestA8Create:
    def test_create_into_named_sv(self, eng: ArrayEngine) -> None:
        info = eng.create("bv001", "sv001_02")
        assert info["sv"] == "sv001_02" and info["state"] == STATE_ACTIVE and info["relgen"] == -1
        assert _states(eng)["sv001_01"] == STATE_UNUSED

    def test_create_into_active_sv_refreshes_it(self, eng: ArrayEngine) -> None:
        """OpenSVC's sync driver re-creates the same SV on every update: the SV then reads as the BV now."""
        eng.write("bv001", 0, b"old!" * 16)
        eng.create("bv001", "sv001_01")
        eng.write("bv001", 0, b"new!" * 16)
        info = eng.create("bv001", "sv001_01")
        assert info["sv"] == "sv001_01" and info["state"] == STATE_ACTIVE and info["relgen"] == -1
        assert eng.read("sv001_01", 0, 64) == b"new!" * 16
        assert _order(eng) == ["sv001_01"]

    def test_refresh_of_guarded_or_linked_sv_refused(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.guard("bv001", "sv001_01", on=True)
        refused("iSM19025", eng.create, "bv001", "sv001_01")
        eng.guard("bv001", "sv001_01", on=False)
        eng.link("lv001", "sv001_01")
        refused("iSM19028", eng.create, "bv001", "sv001_01")
        assert _order(eng) == ["sv001_01"]

    def test_create_into_sv_of_another_bv_refused(self, eng: ArrayEngine) -> None:
        other = make_bv(eng, "bv002")
        refused("iSM19021", eng.create, "bv001", other[0])
        refused("iSM19020", eng.create, "lv001", "sv001_01")

    def test_cyclic_uses_unused_svs_first_then_oldest_unguarded(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_02")
        assert eng.create("bv001", cyclic=True)["sv"] == "sv001_01"
        assert eng.create("bv001", cyclic=True)["sv"] == "sv001_03"
        assert _order(eng) == ["sv001_03", "sv001_01", "sv001_02"]
        assert eng.create("bv001", cyclic=True)["sv"] == "sv001_02"  # the oldest
        eng.guard("bv001", ".-3", "relgen", on=True)  # sv001_01 is the oldest now; guard it
        assert eng.create("bv001", cyclic=True)["sv"] == "sv001_03"  # oldest unguarded
        assert _order(eng) == ["sv001_03", "sv001_02", "sv001_01"]

    def test_cyclic_with_all_guarded(self, eng: ArrayEngine) -> None:
        for sv in SVS:
            eng.create("bv001", sv)
            eng.guard("bv001", sv, on=True)
        refused("iSM19026", eng.create, "bv001", cyclic=True)
        refused("iSM19026", eng.delete, "bv001", auto=True)
        eng.guard("bv001", "bv001.-2", "ld.relgen", on=False)
        assert eng.create("bv001", cyclic=True)["sv"] == "sv001_02"

    def test_create_refused_during_restore_and_wait_active(self, eng: ArrayEngine) -> None:
        eng.write("bv001", 0, b"A" * (3 * BLOCK))
        eng.create("bv001", "sv001_01")
        eng.write("bv001", 0, b"B" * (3 * BLOCK))
        with eng._lock:  # the background copy cannot progress while we hold the array's lock
            info = eng.restore("bv001", "sv001_01")
            assert info["state"] == STATE_RESTORING and info["restore_total"] == 3
            refused("iSM19029", eng.restore, "bv001", "sv001_01")
            refused("iSM19029", eng.restore, "bv001", "sv001_01", derived="delete")
            refused("iSM19029", eng.create, "bv001", "sv001_02")
            refused("iSM19029", eng.create, "bv001", cyclic=True)
            refused("iSM19029", eng.delete, "bv001", "sv001_01")
            assert eng.query("bv001")["state"] == "restoring"
            assert eng.read("bv001", 0, 3 * BLOCK) == b"A" * (3 * BLOCK)  # reads as the generation at once
        done = eng.wait("bv001", ".-1", "relgen", cond="active", timeout=10)
        assert done["state"] == STATE_ACTIVE and done["sv"] == "sv001_01"
        assert eng.read("bv001", 0, 3 * BLOCK) == b"A" * (3 * BLOCK)
        eng.create("bv001", "sv001_02")

    def test_restore_derivsv_delete_removes_newer_generations(self, eng: ArrayEngine) -> None:
        for i, sv in enumerate(SVS):
            eng.write("bv001", 0, bytes([i + 1]) * 100)
            eng.create("bv001", sv)
        eng.restore("bv001", "sv001_03", derived="keep")
        eng.wait("bv001", "sv001_03", cond="active", timeout=10)
        eng.restore("bv001", "bv001.-3", "ld.relgen", derived="delete")
        eng.wait("bv001", "sv001_01", cond="active", timeout=10)
        assert _states(eng) == {"sv001_01": STATE_ACTIVE, "sv001_02": STATE_UNUSED, "sv001_03": STATE_UNUSED}
        assert eng.read("bv001", 0, 100) == b"\x01" * 100

    def test_restore_derivsv_delete_refused_by_a_guarded_newer_generation(self, eng: ArrayEngine) -> None:
        for sv in SVS:
            eng.create("bv001", sv)
        eng.guard("bv001", "sv001_03", on=True)
        refused("iSM19025", eng.restore, "bv001", "sv001_01", derived="delete")
        assert _order(eng) == ["sv001_03", "sv001_02", "sv001_01"]


class TestA8Delete:
    def test_delete_named(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        assert eng.delete("bv001", "sv001_01") == "sv001_01"
        assert _states(eng)["sv001_01"] == STATE_UNUSED
        refused("iSM19024", eng.delete, "bv001", "sv001_01")

    def test_delete_auto(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        assert eng.delete("bv001", auto=True) is None  # the next cyclic create would use a free SV
        assert _states(eng)["sv001_01"] == STATE_ACTIVE
        eng.create("bv001", "sv001_02")
        eng.create("bv001", "sv001_03")
        assert eng.delete("bv001", auto=True) == "sv001_01"  # the oldest
        eng.create("bv001", "sv001_01")
        eng.guard("bv001", "sv001_02", on=True)
        assert eng.delete("bv001", auto=True) == "sv001_03"  # the oldest unguarded

    def test_delete_guarded_refused(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.guard("bv001", ".-1", "relgen", on=True)
        refused("iSM19025", eng.delete, "bv001", "sv001_01")
        eng.guard("bv001", ".-1", "relgen", on=False)
        eng.delete("bv001", "sv001_01")

    def test_delete_linked_refused(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01")
        refused("iSM19028", eng.delete, "bv001", "sv001_01")
        refused("iSM19028", eng.restore, "bv001", "sv001_01")
        eng.unlink("lv001")
        eng.delete("bv001", "sv001_01")


class TestA8Link:
    def test_link_only_in_snap_active(self, eng: ArrayEngine) -> None:
        refused("iSM19024", eng.link, "lv001", "sv001_01")
        eng.create("bv001", "sv001_01")
        info = eng.link("lv001", "sv001_01")
        assert info["state"] == "link" and info["links"][0]["target"] == "sv001_01"
        assert eng.query("bv001")["generations"][0]["link"] == "link"

    def test_link_during_restore_refused(self, eng: ArrayEngine) -> None:
        eng.write("bv001", 0, b"A" * (2 * BLOCK))
        eng.create("bv001", "sv001_01")
        eng.create("bv001", "sv001_02")
        eng.write("bv001", 0, b"B" * (2 * BLOCK))
        with eng._lock:
            eng.restore("bv001", "sv001_01")
            refused("iSM19024", eng.link, "lv001", "sv001_01")  # rst/exec is not snap/active
            refused("iSM19029", eng.link, "lv001", bv_ref="bv001")
        eng.wait("bv001", "sv001_01", timeout=10)

    def test_lv_already_linked(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.create("bv001", "sv001_02")
        eng.link("lv001", "sv001_01")
        refused("iSM20021", eng.link, "lv001", "sv001_02")
        refused("iSM20021", eng.link, "lv001", bv_ref="bv001")

    def test_sv_already_linked(self, eng: ArrayEngine) -> None:
        eng.bind_lv("bv001", "lv001b")
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01")
        refused("iSM19028", eng.link, "lv001b", "sv001_01")
        eng.unlink("lv001")
        eng.link("lv001b", "sv001_01")

    def test_lv_of_another_bv(self, eng: ArrayEngine) -> None:
        make_bv(eng, "bv002", lvs=("lv002",))
        eng.create("bv001", "sv001_01")
        refused("iSM20022", eng.link, "lv002", "sv001_01")
        refused("iSM20022", eng.link, "lv002", bv_ref="bv001")
        refused("iSM19022", eng.link, "bv002", "sv001_01")  # not an LV

    @pytest.mark.parametrize("mode", ["xx", "", "readonly"])
    def test_bad_access_mode(self, eng: ArrayEngine, mode: str) -> None:
        eng.create("bv001", "sv001_01")
        refused("iSM20023", eng.link, "lv001", "sv001_01", mode=mode)
        assert eng.linkinfo("lv001")["state"] == "unlink"

    def test_ro_link(self, eng: ArrayEngine) -> None:
        eng.write("bv001", 4096, b"payload")
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01", mode="RO")
        assert eng.read("lv001", 4096, 7, host="backup") == b"payload"
        refused("iSM19065", eng.write, "lv001", 4096, b"x", host="backup")
        refused("iSM19065", eng.write, "lv001", 4096, b"x")

    @pytest.mark.parametrize("mode", ["nr", "na"])
    def test_nr_and_na_links(self, eng: ArrayEngine, mode: str) -> None:
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01", mode=mode)
        msg = "iSM19064" if mode == "nr" else "iSM31042"
        refused(msg, eng.read, "lv001", 0, 512, host="backup")
        refused(msg, eng.write, "lv001", 0, b"x", host="backup")

    def test_unlinked_lv_is_not_ready(self, eng: ArrayEngine) -> None:
        refused("iSM19064", eng.read, "lv001", 0, 512, host="backup")
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01")
        eng.read("lv001", 0, 512, host="backup")
        eng.unlink("lv001")
        refused("iSM19064", eng.read, "lv001", 0, 512, host="backup")
        refused("iSM19064", eng.write, "lv001", 0, b"x", host="backup")

    def test_rw_link_writes_change_that_generation_only(self, eng: ArrayEngine) -> None:
        eng.write("bv001", 0, b"base")
        eng.create("bv001", "sv001_01")
        eng.create("bv001", "sv001_02")
        eng.link("lv001", "sv001_01")
        eng.write("lv001", 0, b"mod!", host="backup")
        assert eng.read("lv001", 0, 4, host="backup") == b"mod!"
        assert eng.read("sv001_02", 0, 4) == b"base" and eng.read("bv001", 0, 4) == b"base"

    def test_unlink_not_linked(self, eng: ArrayEngine) -> None:
        refused("iSM20031", eng.unlink, "lv001")
        refused("iSM19022", eng.unlink, "bv001")

    def test_unlink_with_wrong_sv(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_01")
        eng.create("bv001", "sv001_02")
        eng.link("lv001", "sv001_01")
        refused("iSM20032", eng.unlink, "lv001", "sv001_02")
        refused("iSM20032", eng.unlink, "lv001", ".-1", "relgen")  # .-1 is sv001_02
        refused("iSM20032", eng.unlink, "lv001", bv_ref="bv001")  # linked to an SV, not the BV
        eng.unlink("lv001", "bv001.-2", "ld.relgen")
        assert eng.linkinfo("lv001")["state"] == "unlink"

    def test_relgen_addressing(self, eng: ArrayEngine) -> None:
        eng.create("bv001", "sv001_02")
        eng.create("bv001", "sv001_03")
        eng.create("bv001", "sv001_01")
        assert eng.resolve_sv(".-1", "relgen", "bv001").name == "sv001_01"
        assert eng.resolve_sv(".-2", "relgen", "bv001").name == "sv001_03"
        assert eng.resolve_sv("bv001.-3", "ld.relgen").name == "sv001_02"
        assert eng.resolve_sv("bv001.-1", "ld.relgen", "bv001").name == "sv001_01"
        info = eng.link("lv001", "bv001.-2", "ld.relgen")
        assert info["links"][0]["target"] == "sv001_03"
        eng.unlink("lv001")
        eng.link("lv001", ".-3", "relgen")  # relgen for an LV: the LV's BV
        assert eng.linkinfo("lv001")["links"][0]["target"] == "sv001_02"

    @pytest.mark.parametrize("ref,flg", [(".-4", "relgen"), ("bv001.-4", "ld.relgen"), (".-2", "relgen")])
    def test_missing_generation(self, eng: ArrayEngine, ref: str, flg: str) -> None:
        if ref != ".-2":
            for sv in SVS:
                eng.create("bv001", sv)
        else:
            eng.create("bv001", "sv001_01")
        refused("iSM19027", eng.resolve_sv, ref, flg, "bv001")
        refused("iSM19027", eng.link, "lv001", ref, flg, bv_ref="bv001")
        refused("iSM19027", eng.restore, "bv001", ref, flg)
        refused("iSM19027", eng.delete, "bv001", ref, flg)
        refused("iSM19027", eng.guard, "bv001", ref, flg, on=True)

    def test_link_lv_to_bv(self, eng: ArrayEngine) -> None:
        eng.write("bv001", 0, b"original", host="business")
        eng.create("bv001", "sv001_01")
        eng.link("lv001", bv_ref="bv001")
        assert eng.query("bv001")["bv_link_lv"] == "lv001"
        refused("iSM31043", eng.read, "bv001", 0, 8, host="business")
        assert eng.read("lv001", 0, 8, host="backup") == b"original"
        eng.write("lv001", 0, b"restored", host="backup")  # e.g. restore from backup media
        assert eng.read("bv001", 0, 8) == b"restored"
        assert eng.read("sv001_01", 0, 8) == b"original"  # the generation kept its data
        refused("iSM20024", eng.restore, "bv001", "sv001_01")
        eng.bind_lv("bv001", "lv001b")
        refused("iSM20024", eng.link, "lv001b", bv_ref="bv001")
        refused("iSM20032", eng.unlink, "lv001", "sv001_01")
        eng.unlink("lv001", bv_ref="bv001")
        assert eng.read("bv001", 0, 8, host="business") == b"restored"

    def test_guard_on_unused_sv(self, eng: ArrayEngine) -> None:
        refused("iSM19024", eng.guard, "bv001", "sv001_01", on=True)


# ================================================================================= A10 signatures (WN)
S = b"\x11\x22\x33\x44"
T = b"\x55\x66\x77\x88"
X = b"\x99\xaa\xbb\xcc"


class TestA10Signatures:
    def test_link_and_unlink_swap_signatures(self, eng: ArrayEngine) -> None:
        bv_block0 = block0(S)
        eng.write("bv001", 0, bv_block0, host="business")
        eng.create("bv001", "sv001_01")
        lv_sig = eng.ld("lv001").signature
        assert lv_sig is not None and len(lv_sig) == 4 and lv_sig != S
        eng.link("lv001", "sv001_01")
        seen = eng.read("lv001", 0, BLOCK, host="backup")
        assert sig_of(seen) == lv_sig != S  # the LV's managed signature, not the BV's
        assert without_sig(seen) == without_sig(bv_block0)  # the rest of block 0 is the BV's
        assert eng.gens[eng.ld("sv001_01").number].orig_signature == S  # saved inside the SV
        assert sig_of(eng.read("bv001", 0, 512, host="business")) == S  # the BV is untouched
        # the host (Windows disk management) writes a new signature on the LV
        eng.write("lv001", disklayout.MBR_SIGNATURE_OFFSET, X, host="backup")
        eng.unlink("lv001")
        assert eng.read("sv001_01", 0, BLOCK) == bv_block0  # the SV's original signature is back
        assert eng.ld("lv001").signature == X  # the LV remembers the signature the host last saw
        # relinking (to another generation) shows the host the same signature again
        eng.create("bv001", "sv001_02")
        eng.link("lv001", "sv001_02")
        again = eng.read("lv001", 0, BLOCK, host="backup")
        assert sig_of(again) == X and without_sig(again) == without_sig(bv_block0)
        eng.unlink("lv001")
        eng.link("lv001", "sv001_01")
        assert sig_of(eng.read("lv001", 0, 512, host="backup")) == X
        eng.unlink("lv001")
        assert eng.read("sv001_01", 0, BLOCK) == bv_block0
        assert eng.read("sv001_02", 0, BLOCK) == bv_block0

    def test_lv_signatures_persist_across_restart(self, eng: ArrayEngine, tmp_path: Path) -> None:
        eng.write("bv001", 0, block0(S))
        eng.create("bv001", "sv001_01")
        eng.link("lv001", "sv001_01")
        lv_sig = eng.ld("lv001").signature
        eng.close()
        again = ArrayEngine(tmp_path / "array")
        try:
            assert sig_of(again.read("lv001", 0, 512, host="backup")) == lv_sig
            again.unlink("lv001")
            assert sig_of(again.read("sv001_01", 0, 512)) == S
            assert again.ld("lv001").signature == lv_sig
        finally:
            again.close()

    def test_restore_keeps_the_pre_copy_signature(self, eng: ArrayEngine) -> None:
        gen0 = block0(T, partitions=((0x07, 63, 1000),), fill=0x01)
        gen_rest = os.urandom(3 * BLOCK)
        eng.write("bv001", 0, gen0 + gen_rest)
        eng.create("bv001", "sv001_01")
        now0 = block0(S, partitions=((0x07, 2048, 500),), fill=0x02)
        eng.write("bv001", 0, now0 + os.urandom(3 * BLOCK))
        eng.restore("bv001", "sv001_01")
        eng.wait("bv001", "sv001_01", cond="active", timeout=10)
        restored = eng.read("bv001", 0, 4 * BLOCK, host="business")
        assert sig_of(restored) == S  # the BV's pre-copy signature
        assert without_sig(restored[:BLOCK]) == without_sig(gen0)  # the rest is the generation's
        assert restored[BLOCK:] == gen_rest
        assert eng.read("sv001_01", 0, BLOCK) == gen0  # the generation itself keeps its signature

    def test_wg_volumes_get_no_signature_control(self, eng: ArrayEngine) -> None:
        svs = make_bv(eng, "bv_g", "WG", lvs=("lv_g",))
        eng.assign_access("lv_g", port=PORTS["testsrv"])
        data = block0(S)
        eng.write("bv_g", 0, data)
        eng.create("bv_g", svs[0])
        eng.link("lv_g", svs[0])
        assert eng.read("lv_g", 0, BLOCK, host="testsrv") == data


# ================================================================================= A11 partitions
def _layout(kind: str) -> list[tuple[int, bytes]]:
    """(offset, bytes) writes that put a partition table of ``kind`` on an LD."""
    sec = disklayout.SECTOR
    mbr = disklayout.build_mbr
    if kind == "one_primary":
        return [(0, mbr([(0x07, 63, 1000)]))]
    if kind == "two_primary":
        return [(0, mbr([(0x07, 63, 500), (0x07, 600, 500)]))]
    if kind in ("extended_two_logical", "extended_one_logical"):
        ext = 64
        out = [(0, mbr([(0x0F, ext, 1000)]))]
        if kind == "extended_one_logical":
            return out + [(ext * sec, mbr([(0x07, 63, 300)], signature=bytes(4)))]
        out.append((ext * sec, mbr([(0x07, 63, 300), (0x05, 400, 400)], signature=bytes(4))))
        out.append(((ext + 400) * sec, mbr([(0x07, 63, 300)], signature=bytes(4))))
        return out
    if kind == "dynamic_mbr":
        return [(0, mbr([(disklayout.DYNAMIC_DISK, 63, 1000)]))]
    gpt = {
        "gpt_basic": [disklayout.GPT_MSR, disklayout.BASIC_DATA],
        "gpt_two": [disklayout.GPT_MSR, disklayout.BASIC_DATA, disklayout.BASIC_DATA],
        "gpt_ldm": [disklayout.GPT_MSR, disklayout.GPT_LDM_METADATA, disklayout.GPT_LDM_DATA],
    }[kind]
    return disklayout.build_gpt(gpt)


BOTH = {"allow_multi": True, "allow_gpt": True}
A11_CASES = [
    # (layout, BV format, options, expected refusal or None)
    ("one_primary", "WN", {}, None),
    ("extended_one_logical", "WN", {}, None),
    ("two_primary", "WN", {}, "iSM19050"),
    ("two_primary", "WN", {"allow_gpt": True}, "iSM19050"),
    ("two_primary", "WN", {"allow_multi": True}, None),
    ("extended_two_logical", "WN", {}, "iSM19050"),
    ("extended_two_logical", "WN", {"allow_multi": True}, None),
    ("dynamic_mbr", "WN", {}, "iSM19051"),
    ("dynamic_mbr", "WN", BOTH, "iSM19051"),
    ("dynamic_mbr", "WG", BOTH, "iSM19051"),
    ("gpt_ldm", "WG", {}, "iSM19051"),
    ("gpt_ldm", "WG", BOTH, "iSM19051"),
    ("gpt_basic", "WN", {}, "iSM19052"),
    ("gpt_basic", "WN", BOTH, "iSM19052"),
    ("gpt_basic", "WG", {}, "iSM19052"),
    ("gpt_basic", "WG", {"allow_multi": True}, "iSM19052"),
    ("gpt_basic", "WG", {"allow_gpt": True}, None),  # the reserved partition (MSR) is not a volume
    ("gpt_two", "WG", {"allow_gpt": True}, "iSM19050"),
    ("gpt_two", "WG", BOTH, None),
]


def test_layout_volume_counts() -> None:
    def counted(kind: str) -> disklayout.DiskLayout:
        disk = bytearray(LD_CAP)
        for off, data in _layout(kind):
            disk[off : off + len(data)] = data
        return disklayout.analyse(lambda o, n: bytes(disk[o : o + n]))

    assert counted("one_primary") == disklayout.DiskLayout("mbr", 1)
    assert counted("two_primary") == disklayout.DiskLayout("mbr", 2)
    assert counted("extended_one_logical") == disklayout.DiskLayout("mbr", 1)
    assert counted("extended_two_logical") == disklayout.DiskLayout("mbr", 2)
    assert counted("dynamic_mbr").dynamic
    assert counted("gpt_basic") == disklayout.DiskLayout("gpt", 1)
    assert counted("gpt_two") == disklayout.DiskLayout("gpt", 2)
    assert counted("gpt_ldm").dynamic


def _case_id(v: object) -> str:
    return ("+".join(sorted(v)) or "noopt") if isinstance(v, dict) else str(v)


@pytest.mark.parametrize("op", ["create", "link", "restore"])
@pytest.mark.parametrize("kind,fmt,opts,expected", A11_CASES, ids=_case_id)
def test_a11_partitions(eng: ArrayEngine, op: str, kind: str, fmt: str, opts: dict,
                        expected: str | None) -> None:
    if fmt == "WN":
        bv, svs, lv = "bv001", SVS, "lv001"
    else:
        svs = make_bv(eng, "bv_g", "WG", lvs=("lv_g",))
        bv, lv = "bv_g", "lv_g"
    writes = _layout(kind)
    if op == "create":
        for off, data in writes:
            eng.write(bv, off, data)
        run = lambda **kw: eng.create(bv, svs[0], **kw)  # noqa: E731
    else:
        eng.write(bv, 8 * BLOCK, b"newer data")  # a restore has something to copy
        eng.create(bv, svs[0])
        for off, data in writes:  # the generation holds the layout (written by the array itself)
            eng.write(svs[0], off, data)
        eng.write(bv, 8 * BLOCK, b"later data")
        if op == "link":
            run = lambda **kw: eng.link(lv, svs[0], **kw)  # noqa: E731
        else:
            run = lambda **kw: eng.restore(bv, svs[0], **kw)  # noqa: E731
    if expected is None:
        run(**opts)
        if op == "restore":
            eng.wait(bv, svs[0], cond="active", timeout=10)
            assert eng.read(bv, 8 * BLOCK, 10) == b"newer data"
        elif op == "create":
            assert eng.gens[eng.ld(svs[0]).number].state == STATE_ACTIVE
        else:
            assert eng.linkinfo(lv)["state"] == "link"
    else:
        refused(expected, run, **opts)
        # nothing was half-done
        if op == "create":
            assert eng.gens[eng.ld(svs[0]).number].state == STATE_UNUSED
        elif op == "link":
            assert eng.linkinfo(lv)["state"] == "unlink"
            assert eng.gens[eng.ld(svs[0]).number].orig_signature is None
        else:
            assert eng.query(bv)["state"] == "normal"
            assert eng.read(bv, 8 * BLOCK, 10) == b"later data"
