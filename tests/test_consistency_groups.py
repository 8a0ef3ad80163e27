"""Consistency groups and holds (SnapLab extensions, issue 14; docs/extensions.md) in a real lab: the lab
file's group, ``iSMcfg cgadd/cglist/cgdel``, and every ``-cg`` command as a process of its own.

The consistency proof: writer processes (the business server's SAN I/O, its own certificate) run
dependent sequences across the five members, writing number n to B only once the write of n to A was
acknowledged, while ``iSMsc_create -cg DB -cyclic`` runs; every group generation, linked to the LVs
with ``iSMsc_link -cg`` and read by the backup server, must be a prefix-consistent cut:
A >= B >= C >= D >= E >= A - 1 for each writer's numbers. The same check on the guide's way (one
``iSMsc_create`` per BV in turn, under the same writers) sees a torn cut, so it would catch a group
create that was not one instant.
"""

from __future__ import annotations

import itertools
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, run_ok

pytestmark = pytest.mark.timeout(240)

BVS = ["DB_DATA_BV", "DB_REDO1_BV", "DB_REDO2_BV", "DB_CTL_BV", "DB_ARCHIVE_BV"]
LVS = [bv.replace("_BV", "_LV") for bv in BVS]
BLOCK = 64 * 1024
WRITERS = 2

LAB = """
    [[arrays]]
    name = "CG_Array"
    restore_rate = 1  # MiB/s: a group restore without -nowait waits for copies that take a while
    ports = ["00h/00h P_BIZ", "01h/00h P_BAK"]
    pools = [{{ number = 0, kind = "basic", capacity = "1GiB" }}, {{ number = 1, kind = "dynamic", capacity = "1GiB" }}]
    sra = [{{ pool = 1, capacity = "256MiB", name = "SDV1" }}]
    lds = [{lds}
           {{ name = "BAK_CV", capacity = "64MiB", pool = 0, attr = "cv" }},
           {{ name = "other_bv", capacity = "8MiB", pool = 0 }}]
    generations = [{gens}
                   {{ bv = "other_bv", pool = 1, count = 1 }}]
    lvs = [{lvs}]
    groups = [{{ name = "DB", bvs = {bvs} }}]
    licences = ["DynamicSnapVolume", "AccessControl"]

    [[access]]
    lds = {bvs_other}
    ports = ["P_BIZ"]

    [[access]]
    lds = {lvs_cv}
    ports = ["P_BAK"]

    [[hosts]]
    name = "business01"
    role = "business"
    wwns = ["10:00:00:00:c9:00:00:01"]
    ports = ["P_BIZ"]

    [[hosts]]
    name = "backup01"
    role = "backup"
    wwns = ["10:00:00:00:c9:00:00:02"]
    ports = ["P_BAK"]

    [[setup]]
    host = "business01"
    commands = ["iSMvollist -cr"]

    [[setup]]
    host = "backup01"
    commands = ["iSMvollist -cr"]
"""


def lab_text() -> str:
    q = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"
    return LAB.format(
        lds="\n           ".join(f'{{ name = "{bv}", capacity = "8MiB", pool = 0 }},' for bv in BVS),
        gens="\n                   ".join(f'{{ bv = "{bv}", pool = 1, count = 3 }},' for bv in BVS),
        lvs=", ".join(f'{{ bv = "{bv}", name = "{lv}" }}' for bv, lv in zip(BVS, LVS)),
        bvs=q(BVS),
        bvs_other=q([*BVS, "other_bv"]),
        lvs_cv=q([*LVS, "BAK_CV"]),
    )


# One writer: number n to each member in turn, each write only after the previous one was acknowledged.
WRITER = """import struct, sys, os
from snaplab.common.rpc import ClientTLS
from snaplab.san.array_client import ArrayClient
pki, target, k, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bvs = sys.argv[5].split(",")
n = 0
with ArrayClient(target, ClientTLS.from_folder(pki, "business01")) as c:
    while not os.path.exists(stop):
        n += 1
        for bv in bvs:
            c.write(bv, k * 65536, struct.pack("<Q", n) * 64)
print(n)
"""


@dataclass
class Lab:
    run: LabRun
    target: str

    def cmd(self, host: str, line: str, code: int = 0) -> Ran:
        return run_ok(self.run, host, line, code)

    def manager(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "manager", "--", *args)

    def client(self, principal: str):  # type: ignore[no-untyped-def]
        from snaplab.common.rpc import ClientTLS
        from snaplab.san.array_client import ArrayClient

        return ArrayClient(self.target, ClientTLS.from_folder(self.run.folder / "pki", principal))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("groups")
    run = LabRun(root)
    try:
        up = run("lab", "up", str(run.write("groups.toml", lab_text())), timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        rt = run.runtime()
        assert rt is not None
        yield Lab(run, rt["arrays"]["CG_Array"]["target"])
    finally:
        run.teardown()


def counters(lab: Lab) -> list[list[int]]:
    """Per writer, the numbers the LVs (linked to one group generation) hold, in member order."""
    with lab.client("backup01") as c:
        return [[struct.unpack("<Q", c.read(lv, k * BLOCK, 8))[0] for lv in LVS] for k in range(WRITERS)]


def prefix_consistent(cut: list[list[int]]) -> bool:
    """Each writer's numbers, in member order: A >= B >= ... >= E >= A - 1."""
    return all(all(x >= y for x, y in itertools.pairwise(nums)) and nums[-1] >= nums[0] - 1 for nums in cut)


def test_every_group_generation_is_a_prefix_consistent_cut(lab: Lab, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(lab.run.folder / "pki"),
                lab.target,
                str(k),
                str(stop),
                ",".join(BVS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(WRITERS)
    ]
    cuts: list[list[list[int]]] = []
    try:
        with lab.client("business01") as biz:  # until every writer went round the members once
            deadline = time.monotonic() + 30
            while any(biz.read(BVS[-1], k * BLOCK, 8) == bytes(8) for k in range(WRITERS)):
                assert time.monotonic() < deadline and all(w.poll() is None for w in writers)
                time.sleep(0.05)
        for _ in range(6):
            ran = lab.cmd("business01", "iSMsc_create -cg DB -cyclic")
            assert "iSM19010" in ran.stdout and "CG:DB" in ran.stdout, ran
            assert all(f"BV:{bv}" in ran.stdout for bv in BVS), ran
            lab.cmd("backup01", f"iSMsc_link -cg DB -sv -1 -svflg relgen -lvlist {','.join(LVS)} -lvacc ro")
            cuts.append(counters(lab))
            lab.cmd("backup01", f"iSMsc_unlink -cg DB -lvlist {','.join(LVS)}")
        # The control: the guide's way, one iSMsc_create per BV in turn, gives a torn cut the check sees.
        for bv in BVS:
            lab.cmd("business01", f"iSMsc_create -bv {bv} -bvflg ld -cyclic")
        for bv, lv in zip(BVS, LVS):
            lab.cmd("backup01", f"iSMsc_link -lv {lv} -lvflg ld -sv {bv}.-1 -svflg ld.relgen -lvacc ro")
        torn = counters(lab)
        for lv in LVS:
            lab.cmd("backup01", f"iSMsc_unlink -lv {lv} -lvflg ld")
    finally:
        stop.touch()
        done = [int((w.communicate(timeout=30)[0] or "0").strip() or 0) for w in writers]
    assert all(w.returncode == 0 for w in writers), done
    assert all(prefix_consistent(cut) for cut in cuts), cuts
    assert not prefix_consistent(torn), torn
    firsts = [cut[0][0] for cut in cuts]
    assert firsts == sorted(firsts) and firsts[-1] > firsts[0] > 0, cuts  # the writers wrote meanwhile
    assert min(done) > firsts[-1]


def test_group_query_holds_and_delete(lab: Lab) -> None:
    q = lab.cmd("business01", "iSMsc_query -cg DB").stdout
    assert "(SnapLab extension)" in q and "CG Name                 : DB" in q, q
    lab.cmd("business01", "iSMsc_create -cg DB -cyclic")  # each member's newest generation is the group's
    # a named hold on every member's newest generation: the group's and each member's delete refuse
    ran = lab.cmd("business01", "iSMsc_svguard -cg DB -sv -1 -svflg relgen -hold nightly")
    assert "Holds      : nightly (1)" in ran.stdout, ran
    ran = lab.cmd("business01", "iSMsc_delete -cg DB -sv -1 -svflg relgen", code=1)
    assert "iSM31267" in ran.stderr and "iSM31269" in ran.stderr and "nightly" in ran.stderr, ran
    detail = lab.cmd("business01", "iSMsc_query -bv DB_DATA_BV -bvflg ld -detail").stdout
    assert "Holds                : nightly (1)" in detail and "Consistency Group    : DB" in detail, detail
    ran = lab.cmd("business01", "iSMsc_delete -bv DB_DATA_BV -bvflg ld -sv .-1 -svflg relgen", code=1)
    assert "iSM31269" in ran.stderr and "nightly" in ran.stderr, ran
    # a second hold on one member; holds are counted, each name once
    lab.cmd("business01", "iSMsc_svguard -bv DB_CTL_BV -bvflg ld -sv .-1 -svflg relgen -hold replica")
    ran = lab.cmd(
        "business01", "iSMsc_svguard -bv DB_CTL_BV -bvflg ld -sv .-1 -svflg relgen -hold replica", code=1
    )
    assert "iSM31270" in ran.stderr, ran
    detail = lab.cmd("business01", "iSMsc_query -bv DB_CTL_BV -bvflg ld -detail").stdout
    assert "Holds                : nightly, replica (2)" in detail, detail
    # a cyclic create never takes a held generation: three SVs, the newest held, two creates reuse the others
    held = {bv: _newest_sv(lab, bv) for bv in BVS}
    lab.cmd("business01", "iSMsc_create -cg DB -cyclic")
    lab.cmd("business01", "iSMsc_create -cg DB -cyclic")
    for bv in BVS:
        assert _state_of(lab, bv, held[bv]) == "snap/active"
    lab.cmd("business01", "iSMsc_svguard -cg DB -sv -3 -svflg relgen -release nightly")
    ran = lab.cmd(
        "business01", "iSMsc_delete -cg DB -sv -3 -svflg relgen", code=1
    )  # replica still on DB_CTL_BV
    assert "iSM31269" in ran.stderr and "replica" in ran.stderr, ran
    assert _state_of(lab, "DB_DATA_BV", held["DB_DATA_BV"]) == "snap/active"  # all or nothing
    lab.cmd("business01", "iSMsc_svguard -bv DB_CTL_BV -bvflg ld -sv .-3 -svflg relgen -release replica")
    ran = lab.cmd(
        "business01", "iSMsc_svguard -bv DB_CTL_BV -bvflg ld -sv .-3 -svflg relgen -release replica", code=1
    )
    assert "iSM31271" in ran.stderr, ran
    lab.cmd("business01", "iSMsc_delete -cg DB -sv -3 -svflg relgen")
    for bv in BVS:
        assert _state_of(lab, bv, held[bv]) == "snap/deleted"
    # without holds the guide's layout: no Holds line
    detail = lab.cmd("business01", "iSMsc_query -bv DB_CTL_BV -bvflg ld -detail").stdout
    assert "Holds" not in detail, detail


def test_group_restore_is_all_or_nothing(lab: Lab) -> None:
    with lab.client("business01") as biz:
        for bv in BVS:
            biz.write(bv, 0, b"old" + bytes(509))
            biz.write(bv, 4 * BLOCK, b"\x01" * (4 * BLOCK))
        lab.cmd("business01", "iSMsc_create -cg DB -cyclic")
        for bv in BVS:
            biz.write(bv, 0, b"new" + bytes(509))
            biz.write(bv, 4 * BLOCK, b"\x02" * (4 * BLOCK))  # 256 KiB each to copy back: 1/4 s at 1 MiB/s
        # one member's generation is linked: that member cannot restore, so none does
        sv = _newest_sv(lab, "DB_REDO2_BV")
        lab.cmd("backup01", f"iSMsc_link -lv DB_REDO2_LV -lvflg ld -sv {sv} -svflg ld -lvacc ro")
        ran = lab.cmd("business01", "iSMsc_restore -cg DB -sv -1 -svflg relgen", code=1)
        assert "iSM31267" in ran.stderr and "DB_REDO2_BV" in ran.stderr and "iSM19028" in ran.stderr, ran
        assert [biz.read(bv, 0, 3) for bv in BVS] == [b"new"] * 5
        q = lab.cmd("business01", "iSMsc_query -bv DB_DATA_BV -bvflg ld").stdout
        assert "rst/exec" not in q, q
        lab.cmd("backup01", f"iSMsc_unlink -lv DB_REDO2_LV -lvflg ld -sv {sv} -svflg ld")
        t0 = time.monotonic()
        ran = lab.cmd("business01", "iSMsc_restore -cg DB -sv -1 -svflg relgen")
        assert "iSM19012" in ran.stdout and ran.stdout.count("snap/active") == 5, ran
        assert time.monotonic() - t0 >= 0.25  # it waited for the copies (5 x 1/4 s, run together)
        assert [biz.read(bv, 0, 3) + biz.read(bv, 5 * BLOCK, 1) for bv in BVS] == [b"old\x01"] * 5
        q = lab.cmd("business01", "iSMsc_query -bv DB_ARCHIVE_BV -bvflg ld").stdout
        assert "rst/exec" not in q, q


def test_iSMcfg_groups_and_refusals(lab: Lab) -> None:
    listed = lab.manager("iSMcfg", "cglist")
    assert listed.returncode == 0 and "CG:DB" in listed.stdout and "DB_ARCHIVE_BV" in listed.stdout, listed
    assert "(SnapLab extension)" in lab.manager("iSMcfg", "-h").stdout + lab.manager("iSMcfg", "-h").stderr
    bad = lab.manager("iSMcfg", "cgadd", "-cgname", "X", "-ldname", "DB_DATA_BV")
    assert bad.returncode != 0 and "iSM31263" in bad.stderr, bad  # already in DB
    ok = lab.manager("iSMcfg", "cgadd", "-cgname", "ONE", "-ldname", "other_bv")
    assert ok.returncode == 0 and "iSM31273" in ok.stdout, ok
    ran = lab.cmd("business01", "iSMsc_create -cg ONE")
    assert "BV:other_bv" in ran.stdout, ran
    ran = lab.cmd(
        "business01", "iSMsc_create -cg ONE", code=1
    )  # its only SV is in use: -cyclic would reuse it
    assert "iSM31265" in ran.stderr, ran
    # the backup server reaches no member BV except through its CV: other hosts' routes are checked
    ran = lab.cmd("business01", "iSMsc_query -cg NOSUCH", code=1)
    assert "iSM31260" in ran.stderr, ran
    ran = lab.cmd("business01", "iSMsc_create -cg ONE -sv -1", code=1)
    assert "iSM11100" in ran.stderr, ran
    gone = lab.manager("iSMcfg", "cgdel", "-cgname", "ONE")
    assert gone.returncode == 0 and "iSM31274" in gone.stdout, gone
    ran = lab.cmd("business01", "iSMsc_query -bv other_bv -bvflg ld")
    assert "snap/active" in ran.stdout, ran  # its generation stays, an ordinary one
    events = lab.manager("iSMview", "-event").stdout
    assert "-cg DB" in events, events


def _query(lab: Lab, bv: str):  # type: ignore[no-untyped-def]
    with lab.client("manager") as m:
        return m.query(bv)


def _newest_sv(lab: Lab, bv: str) -> str:
    return next(g.sv for g in _query(lab, bv).generations if g.has_relgen and g.relgen == -1)


def _state_of(lab: Lab, bv: str, sv: str) -> str:
    return next(g.state for g in _query(lab, bv).generations if g.sv == sv)


# -- routing of a group's operation (manager/routing.py, plain data: no processes) ----------------------
def test_routing_checks_every_member() -> None:
    from snaplab.manager.routing import ArrayView, ControlOp, LdInfo, ViaState, check_route
    from snaplab.manager.state import HostRecord

    from snaplab.common.errors import SnapLabError
    from snaplab.common.pki import Identity

    biz = HostRecord("business01", "business", wwns=("10:00:00:00:c9:00:00:01",))
    bak = HostRecord("backup01", "backup", wwns=("10:00:00:00:c9:00:00:02",))
    view = ArrayView.build(
        "A",
        [
            LdInfo("bv1", "BV", access=biz.paths),
            LdInfo("bv2", "BV", access=biz.paths),
            LdInfo("bv3", "BV"),
            LdInfo("lv1", "LV", "bv1", access=bak.paths),
            LdInfo("lv2", "LV", "bv2", access=bak.paths),
            LdInfo("CV", "CV", access=bak.paths),
        ],
        {"business01": biz.paths, "backup01": bak.paths},
        groups={"G": ("bv1", "bv2"), "H": ("bv1", "bv3")},
    )

    def check(host: HostRecord, members: tuple[str, ...], via: str, lvs: tuple[str, ...] = ()) -> str:
        op = ControlOp("group", group="G", group_op="link" if lvs else "create", members=members, lvs=lvs)
        try:
            return check_route(
                Identity(host.name, "host"), host, view, op, via, lambda _n: ViaState()
            ).through
        except SnapLabError as exc:
            return exc.msg_id

    assert check(biz, ("bv1", "bv2"), "bv2") == "volume"  # through a member it reaches
    assert check(biz, ("bv1", "bv3"), "bv1") == "iSM31042"  # bv3 it does not reach
    assert check(biz, ("bv1", "bv2"), "lv1") == "iSM31042"  # not its LD at all
    assert check(bak, ("bv1", "bv2"), "CV", ("lv1", "lv2")) == "cv"  # its CV: each member paired with its LVs
    assert check(bak, ("bv1", "bv3"), "CV") == "iSM31061"  # bv3 has no LV of the backup server
    assert (
        check(bak, ("bv1", "bv2"), "lv1", ("lv1", "lv2")) == "iSM31042"
    )  # without its CV: it reaches no member
