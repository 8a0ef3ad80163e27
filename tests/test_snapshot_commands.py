"""The iSMsc_* commands (agent/commands/snapshot.py) run in-process against a fake host and a fake manager.

The fake manager answers ``Route`` with the manager's own routing rules (snaplab.manager.routing) and
an in-process ``ArrayEngine`` behind them, so the array's rules and the CV rule apply for real; what is
fake is only the transport. The lab is the guide's: ``bv001`` (WN) on the business server as ``disk1``
with volume G:, SVs ``sv001_1..3``, ``lv001`` on the backup server as ``disk2``; the backup server
has a control volume ``cv_bk`` (``disk1``), the business server none.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from snaplab.agent.commands import base, snapshot
from snaplab.agent.commands.base import CommandError
from snaplab.agent.vollist import VolEntry, VolumeList
from snaplab.array import serde
from snaplab.san.blocks import BLOCK
from snaplab.array.engine import ArrayEngine
from snaplab.array.model import ACCESS_CONTROL, DSV
from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity
from snaplab.manager import serde as mserde
from snaplab.manager.routing import check_route
from snaplab.manager.state import HostRecord
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import manager_pb2

ARRAY = "Tokyo_Customer_DataBase"
MiB = 1 << 20
WWN = {"business": "10:00:00:00:c9:00:00:01", "backup": "10:00:00:00:c9:00:00:02"}
PORT = {"business": "DB_PRIMARY", "backup": "BACKUP_PRIMARY"}
BV_VOLUME = "\\\\?\\Volume{61563686-b385-11d7-a349-806d6172696f}\\"
LV_VOLUME = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
TIME = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"


# ======================================================================================= fakes
class FakeManager:
    """Route and Monitor of the management server over in-process engines (one per array name)."""

    def __init__(self, engines: dict[str, ArrayEngine], hosts: dict[str, HostRecord]) -> None:
        self.engines = engines
        self.hosts = hosts
        self.calls: list[tuple[str, manager_pb2.ControlRequest]] = []
        self.monitor_ok = True

    def stub(self, host: str) -> FakeStub:
        return FakeStub(self, host)

    def engine(self, array: str) -> ArrayEngine:
        if array:
            if array not in self.engines:
                raise SnapLabError(E.ARRAY_UNKNOWN, name=array)
            return self.engines[array]
        assert len(self.engines) == 1
        return next(iter(self.engines.values()))

    def route(
        self, host: str, req: manager_pb2.ControlRequest, timeout: float | None
    ) -> manager_pb2.ControlReply:
        self.calls.append((host, req))
        eng = self.engine(req.array)
        op, _method, m = mserde.control_op(req)
        view = mserde.array_view(serde.array_state_msg(eng.describe()))
        check_route(
            Identity(host, "host"),
            self.hosts.get(host),
            view,
            op,
            req.via,
            lambda v: mserde.via_state(serde.linkinfo_msg(eng.linkinfo(v))),
        )
        kind = req.WhichOneof("op")
        if kind == "create":
            args, kw = serde.create_call(m)
            return manager_pb2.ControlReply(generation=serde.generation_msg(eng.create(*args, **kw)))
        if kind == "delete":
            args, kw = serde.delete_call(m)
            return manager_pb2.ControlReply(deleted=pb.DeleteReply(deleted_sv=eng.delete(*args, **kw) or ""))
        if kind == "restore":
            args, kw = serde.restore_call(m)
            return manager_pb2.ControlReply(generation=serde.generation_msg(eng.restore(*args, **kw)))
        if kind == "wait":
            args, kw = serde.wait_call(m, timeout)
            return manager_pb2.ControlReply(generation=serde.generation_msg(eng.wait(*args, **kw)))
        if kind == "guard":
            args, kw = serde.guard_call(m)
            sv = eng.guard(*args, **kw)
            return manager_pb2.ControlReply(generation=serde.generation_msg(eng.generation_info(m.bv, sv)))
        if kind == "link":
            args, kw = serde.link_call(m)
            return manager_pb2.ControlReply(linkinfo=serde.linkinfo_msg(eng.link(*args, **kw)))
        if kind == "unlink":
            args, kw = serde.unlink_call(m)
            return manager_pb2.ControlReply(linkinfo=serde.linkinfo_msg(eng.unlink(*args, **kw)))
        if kind == "query":
            return manager_pb2.ControlReply(query=serde.query_msg(eng.query(m.bv)))
        assert kind == "linkinfo"
        return manager_pb2.ControlReply(linkinfo=serde.linkinfo_msg(eng.linkinfo(m.name)))

    def monitor(self, req: manager_pb2.MonitorRequest) -> manager_pb2.MonitorReply:
        if not self.monitor_ok:
            raise SnapLabError(E.CONTROL_DENIED, detail="monitor")
        out = manager_pb2.MonitorReply()
        for name, eng in self.engines.items():
            if req.array and req.array != name:
                continue
            bvs = [x["name"] for x in eng.describe()["lds"] if x["type"] == "BV"]
            out.arrays.append(
                manager_pb2.ArrayMonitor(
                    state=serde.array_state_msg(eng.describe()),
                    snapshots=[serde.query_msg(eng.query(bv)) for bv in bvs],
                )
            )
        return out


class FakeStub:
    def __init__(self, mgr: FakeManager, host: str) -> None:
        self.mgr, self.host = mgr, host

    def Route(
        self, req: manager_pb2.ControlRequest, timeout: float | None = None
    ) -> manager_pb2.ControlReply:
        return self.mgr.route(self.host, req, timeout)

    def Monitor(
        self, req: manager_pb2.MonitorRequest, timeout: float | None = None
    ) -> manager_pb2.MonitorReply:
        return self.mgr.monitor(req)


class FakeHost:
    """The parts of ``snaplab.agent.host.Host`` the snapshot commands use, with the same signatures:
    ``manager`` (and ``manager_target``, which refusals name), ``vollist()``, ``resolve_ld(name, flg)`` (the disk entry), ``control_via(array,
    entry)``, ``stale_check(entry)``, ``layout_options()`` (a pair of flags), ``disk(array,
    ld_number)`` (``.volumes[].mount_points``: the live mount table), ``scan()``, ``trace(...)``."""

    def __init__(self, name: str, manager: FakeManager, entries: list[VolEntry] | None) -> None:
        self.name = name
        self.manager = manager.stub(name)
        self.manager_target = "fake-manager:0"
        now = datetime.now().strftime("%Y/%m/%d %H:%M:%S")
        self.list = VolumeList(name, now, entries) if entries is not None else None
        self.mounts: dict[int, list[str]] = {}  # disk number -> mount points now mounted
        self.stale: set[str] = set()
        self.layout = (False, False)
        self.scans = 0
        self.released_count = 0
        self.traces: list[tuple[str, str, str, str]] = []

    def vollist(self) -> VolumeList:
        if self.list is None:
            raise CommandError(E.VOLLIST_MISSING)
        return self.list

    def resolve_ld(self, name: str, flg: str) -> VolEntry:
        vl = self.vollist()
        entry = {"ld": vl.by_ld, "drv": vl.by_mount_point, "mvol": vl.by_volume}[flg](name)
        if entry is None:
            raise CommandError(E.NOT_IN_VOLLIST, name=name)
        return vl.by_ld(entry.ld_name, entry.array) or entry  # the disk's entry, as Host does

    def control_via(self, array: str, entry: VolEntry) -> str:
        cv = self.vollist().cv(array)
        return cv.ld_name if cv is not None else entry.ld_name

    def stale_check(self, entry: VolEntry) -> None:
        if entry.ld_name in self.stale:
            raise CommandError(E.VOLLIST_STALE, name=entry.ld_name)

    def layout_options(self) -> tuple[bool, bool]:
        return self.layout

    def disk(self, array: str, ld_number: str) -> SimpleNamespace | None:
        d = next((e for e in self.vollist().disks() if (e.array, e.ld_number) == (array, ld_number)), None)
        if d is None:
            return None
        points = self.mounts.get(d.disk, [])
        return SimpleNamespace(
            number=d.disk, volumes=[SimpleNamespace(mount_points=points)], failed=False, error=""
        )

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        self.released_count += 1
        yield

    def scan(self) -> list[Any]:
        self.scans += 1
        return []

    def trace(self, command: str, classification: str, msg_id: str, text: str) -> None:
        self.traces.append((command, classification, msg_id, text))


# ======================================================================================= the lab
def build_array(path: Path, name: str = ARRAY, clock: Callable[[], str] | None = None) -> ArrayEngine:
    e = ArrayEngine(path, name=name) if clock is None else ArrayEngine(path, name=name, clock=clock)
    e.set_licence(DSV, 1 << 30)
    e.set_licence(ACCESS_CONTROL)
    e.bind_pool(0, "BASIC0", "basic", 64 * MiB)
    e.bind_pool(1, "DYN1", "dynamic", 64 * MiB)
    e.build_sra(1, 16 * MiB, sdv_name="SDV1")
    e.add_port(1, 0, PORT["business"])
    e.add_port(0, 1, PORT["backup"])
    for h in ("business", "backup"):
        e.register_host(h, [WWN[h]], [PORT[h]], "windows")
    return e


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    eng = build_lab_array(tmp_path / "array")
    lab = Lab(eng)
    yield lab
    eng.close()


def build_lab_array(path: Path, clock: Callable[[], str] | None = None) -> ArrayEngine:
    """The lab's array: bv001 with three SVs and an LV, a CV for the backup server."""
    eng = build_array(path, clock=clock)
    eng.bind_ld("bv001", MiB, 0, "WN")
    eng.add_generations("bv001", 1, 3, sv_names=["sv001_1", "sv001_2", "sv001_3"])
    eng.bind_lv("bv001", "lv001")
    eng.bind_ld("cv_bk", MiB, 0, "WN", attr="cv")
    eng.assign_access("bv001", port=PORT["business"])
    eng.assign_access("lv001", wwn=WWN["backup"])
    eng.assign_access("cv_bk", wwn=WWN["backup"])
    return eng


class Lab:
    def __init__(self, eng: ArrayEngine) -> None:
        self.eng = eng
        num = {x["name"]: x["number"] for x in eng.describe()["lds"]}
        hosts = {
            h: HostRecord(h, "business" if h == "business" else "backup", wwns=(WWN[h],), ports=(PORT[h],))
            for h in WWN
        }
        self.manager = FakeManager({ARRAY: eng}, hosts)
        self.business = FakeHost(
            "business",
            self.manager,
            [
                VolEntry(ARRAY, num["bv001"], "bv001", "BV", "WN", 1),
                VolEntry(ARRAY, num["bv001"], "bv001", "BV", "WN", 1, 1, BV_VOLUME, ["G:"]),
            ],
        )
        self.business.mounts[1] = ["G:"]
        self.backup = FakeHost(
            "backup",
            self.manager,
            [
                VolEntry(ARRAY, num["cv_bk"], "cv_bk", "CV", "WN", 1, definition="control"),
                VolEntry(ARRAY, num["lv001"], "lv001", "LV", "WN", 2),
                VolEntry(ARRAY, num["lv001"], "lv001", "LV", "WN", 2, 1, LV_VOLUME, []),
            ],
        )

    def run(self, host: FakeHost, line: str | list[str]) -> Result:
        argv = line.split() if isinstance(line, str) else line
        return Result(*base.run(host, argv))  # type: ignore[arg-type]

    def ok(self, host: FakeHost, line: str | list[str]) -> Result:
        r = self.run(host, line)
        assert r.code == 0, r.err
        assert r.err == ""
        return r

    def refused(self, host: FakeHost, line: str | list[str], msg: Any) -> Result:
        r = self.run(host, line)
        name = (line.split() if isinstance(line, str) else line)[0]
        assert r.code == 1, r.out
        assert r.out == ""
        assert r.err.startswith(f"{name}:Error: {msg.msg_id}: "), r.err
        assert r.err.count("\n") == 1
        return r

    def last(self, op: str) -> manager_pb2.ControlRequest:
        return next(req for _h, req in reversed(self.manager.calls) if req.WhichOneof("op") == op)


class Result:
    def __init__(self, out: str, err: str, code: int) -> None:
        self.out, self.err, self.code = out, err, code

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def unmount(host: FakeHost) -> None:
    host.mounts.clear()


def kv(lines: list[str]) -> dict[str, str]:
    return {k.strip(): v for k, v in (x.split(" : ", 1) for x in lines if " : " in x)}


# ======================================================================================= registry
def test_every_command_is_registered() -> None:
    for name in (
        "iSMsc_create",
        "iSMsc_delete",
        "iSMsc_restore",
        "iSMsc_wait",
        "iSMsc_svguard",
        "iSMsc_link",
        "iSMsc_unlink",
        "iSMsc_query",
        "iSMsc_linkinfo",
    ):
        assert base.COMMANDS[name.lower()].__module__ == snapshot.__name__


def test_success_ids_match_the_manager_event_log() -> None:
    messages = pytest.importorskip("snaplab.manager.messages")
    for cmd, msg in snapshot.DONE.items():
        assert (msg.msg_id, msg.text) == (messages.SC_DONE[cmd].msg_id, messages.SC_DONE[cmd].text)
    assert snapshot.DONE["iSMsc_create"].msg_id == "iSM19010"  # SPEC §8
    assert snapshot.DONE["iSMsc_link"].msg_id == "iSM20020"
    assert snapshot.DONE["iSMsc_unlink"].msg_id == "iSM20030"


# ======================================================================================= P2: guide 1.7
def test_p2_create_link_unlink_verbatim(lab: Lab) -> None:
    r = lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    assert r.lines[0] == "iSMsc_create:Info: iSM19010: iSMsc_create has normally terminated."
    assert r.lines[1:4] == [
        "   BV:bv001               WN",
        "      Special File : disk1",
        "   SV:sv001_1             WN",
    ]
    assert r.lines[4] == "      Generation : -1"
    assert re.fullmatch(rf"      Status     : snap/active \[{TIME}\]", r.lines[5])
    assert len(r.lines) == 6
    req = lab.last("create")
    assert (req.via, req.array, req.create.bv, req.create.sv.sv, req.create.sv.svflg) == (
        "bv001",
        ARRAY,
        "bv001",
        "sv001_1",
        "ld",
    )  # no CV on the business server: through the BV itself
    assert (
        "iSMsc_create",
        "INFO",
        "iSM19010",
        "iSMsc_create has normally terminated.",
    ) in lab.business.traces

    r = lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
    assert r.lines[0] == "iSMsc_link:Info: iSM20020: iSMsc_link has normally terminated."
    assert r.lines[1:8] == [
        "   LV:lv001               WN",
        "      Special File : disk2",
        "      State        : link   (sv001_1)",
        "      Mode         : rw",
        "   SV:sv001_1             WN",
        "      Generation : -1",
        r.lines[7],
    ]
    assert re.fullmatch(rf"      Status     : snap/active \[{TIME}\]", r.lines[7])
    assert lab.last("link").via == "cv_bk" and lab.last("link").link.mode == "rw"
    assert lab.backup.scans == 1
    assert lab.eng.linkinfo("lv001")["state"] == "link"

    r = lab.ok(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
    assert r.lines[0] == "iSMsc_unlink:Info: iSM20030: iSMsc_unlink has normally terminated."
    assert r.lines[3:6] == [
        "      State        : unlink",
        "      Mode         : nr",
        "   SV:sv001_1             WN",
    ]
    assert lab.backup.scans == 2
    assert lab.eng.linkinfo("lv001")["state"] == "unlink"


# ======================================================================================= P3: guide 2.2.1
def test_p3_backup_operation_verbatim(lab: Lab) -> None:
    r = lab.ok(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -auto")  # the next cyclic SV is still free
    assert r.lines == ["iSMsc_delete:Notice: iSM19030: There is no snapshot to delete. (bv001)"]
    assert (
        "iSMsc_delete",
        "NOTICE",
        "iSM19030",
        "There is no snapshot to delete. (bv001)",
    ) in lab.business.traces

    r = lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    assert r.lines[3] == "   SV:sv001_1             WN"
    # The guide prints these with en dashes; pasted as they are, they must work.
    r = lab.ok(lab.business, "iSMsc_svguard –bv bv001 –bvflg ld –sv .-1 –svflg relgen –mode set")
    assert r.lines[0] == "iSMsc_svguard:Info: iSM19014: iSMsc_svguard has normally terminated."
    assert kv(r.lines)["SV Guard"] == "on" and kv(r.lines)["Generation"] == "-1"

    r = lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen")
    assert "      State        : link   (sv001_1)" in r.lines
    assert lab.last("link").link.sv.svflg == "ld.relgen"
    lab.ok(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld")
    r = lab.ok(lab.backup, "iSMsc_svguard –bv bv001 –bvflg ld –sv .-1 –svflg relgen –mode cancel")
    assert kv(r.lines)["SV Guard"] == "off"
    assert lab.last("guard").via == "cv_bk"  # bv001 is not on the backup server: through its CV

    # Three more days of the cycle: -auto deletes what -cyclic will reuse.
    for _ in range(2):
        lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    r = lab.ok(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -auto")
    assert r.lines[0] == "iSMsc_delete:Info: iSM19011: iSMsc_delete has normally terminated."
    assert r.lines[3] == "   SV:sv001_1             WN"  # the oldest generation
    assert kv(r.lines)["Generation"] == "-"
    assert kv(r.lines)["Status"].startswith("snap/deleted [")


def test_guard_protects_from_delete_and_auto_skips_it(lab: Lab) -> None:
    for _ in range(3):
        lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    lab.ok(lab.business, "iSMsc_svguard -bv bv001 -bvflg ld -sv .-3 -svflg relgen -mode set")
    lab.refused(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -sv sv001_1 -svflg ld", E.SV_GUARDED)
    r = lab.ok(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -auto")
    assert r.lines[3] == "   SV:sv001_2             WN"


# ======================================================================================= P4: guide 2.2.2.2
def diverge(lab: Lab) -> None:
    """Snapshot bv001, then change a few blocks of it (a logical failure)."""
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    for i in range(3, 12):
        lab.eng.write("bv001", i * BLOCK, b"\xee" * BLOCK)


def test_p4_restore_refused_while_mounted_then_nowait_and_wait(lab: Lab) -> None:
    diverge(lab)
    r = lab.refused(
        lab.business, "iSMsc_restore -bv bv001 -bvflg ld -sv .-1 -svflg relgen -nowait", E.BV_MOUNTED
    )
    assert "bv001 G:" in r.err
    assert lab.eng.query("bv001")["state"] == "normal"
    unmount(lab.business)  # iSMrc_flush -drv G: ; iSMrc_umount -drv G:
    r = lab.ok(lab.business, "iSMsc_restore -bv bv001 -bvflg ld -sv .-1 -svflg relgen -nowait")
    assert r.lines[0] == "iSMsc_restore:Info: iSM19012: iSMsc_restore has normally terminated."
    assert re.fullmatch(rf"(rst/exec|snap/active) \[{TIME}\]", kv(r.lines)["Status"])
    assert lab.last("restore").restore.derivsv == "keep"
    r = lab.ok(lab.business, "iSMsc_wait –cond active -bv bv001 -bvflg ld -sv .-1 -svflg relgen")
    assert r.lines[0] == "iSMsc_wait:Info: iSM19013: iSMsc_wait has normally terminated."
    assert kv(r.lines)["Status"].startswith("snap/active [")
    assert lab.eng.read("bv001", 3 * BLOCK, BLOCK) == bytes(BLOCK)


def test_restore_without_nowait_returns_when_done(lab: Lab) -> None:
    diverge(lab)
    unmount(lab.business)
    r = lab.ok(lab.business, "iSMsc_restore -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -derivsv keep")
    assert kv(r.lines)["Status"].startswith("snap/active [")
    assert lab.eng.query("bv001")["state"] == "normal"
    assert lab.last("wait").wait.cond == "active" and lab.last("wait").wait.sv.sv == "sv001_1"
    assert lab.business.released_count >= 1  # the host is not held while the restore runs


def test_restore_cinder_form_and_derivsv_delete(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_2 -svflg ld")
    unmount(lab.business)
    r = lab.ok(
        lab.business, "iSMsc_restore -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -derivsv delete -nowait"
    )
    assert lab.last("restore").restore.derivsv == "delete"
    lab.ok(lab.business, "iSMsc_wait -cond active -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -limit 30")
    assert [g["state"] for g in lab.eng.query("bv001")["generations"]][:2] == ["snap/active", "snap/deleted"]
    assert r.lines[3] == "   SV:sv001_1             WN"


# ======================================================================================= P5: guide 2.2.2.3
def test_p5_link_lv_to_bv_and_back(lab: Lab) -> None:
    r = lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -bv bv001 -bvflg ld")
    assert r.lines[1:] == [
        "   LV:lv001               WN",
        "      Special File : disk2",
        "      State        : link   (bv001)",
        "      Mode         : rw",
        "   BV:bv001               WN",
        "      Special File : -",
        "      State        : normal",
    ]
    assert lab.last("link").link.bv == "bv001" and not lab.last("link").link.HasField("sv")
    # The BV is now reachable only through the LV: the business server's own control I/O is refused.
    lab.refused(lab.business, "iSMsc_query -bv bv001 -bvflg ld", E.AC_BV_LINKED)
    r = lab.ok(lab.backup, "iSMsc_linkinfo -vol lv001 -volflg ld")
    assert r.lines[4:6] == ["   State        : link   (bv001)", "   Mode         : rw"]
    assert r.lines[-1].split() == ["LV:lv001", "WN", "link", "(bv001)", "rw"]
    r = lab.ok(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld")
    assert r.lines[1:] == [
        "   LV:lv001               WN",
        "      Special File : disk2",
        "      State        : unlink",
        "      Mode         : nr",
        "   BV:bv001               WN",
        "      Special File : -",
        "      State        : normal",
    ]


def test_link_to_bv_refused_while_the_bv_is_mounted_here(lab: Lab) -> None:
    """A host that sees both (its own LV of the BV) must unmount the BV before an LV-BV link."""
    num = lab.eng.ld("lv001").number_text
    lab.business.list.entries.append(VolEntry(ARRAY, num, "lv001", "LV", "WN", 2))  # type: ignore[union-attr]
    lab.refused(lab.business, "iSMsc_link -lv lv001 -lvflg ld -bv G: -bvflg drv", E.BV_MOUNTED)


# ======================================================================================= link details
def test_link_access_modes_and_layout_options(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.backup.layout = (True, True)  # iSMrpl.ini [SNAPSHOT] MULTI_PARTITION=ON, GPT=ON
    r = lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld -lvacc ro")
    assert kv(r.lines)["Mode"] == "ro"
    assert lab.last("link").link.options.allow_multi_partition and lab.last("link").link.options.allow_gpt
    lab.ok(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld")
    r = lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv .-1 -svflg relgen -lvacc NR")
    assert kv(r.lines)["Mode"] == "nr"


def test_link_and_unlink_refused_while_the_lv_is_mounted(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
    lab.backup.mounts[2] = ["H:"]  # iSMrc_mount -mvol \\?\Volume{37d84cca-…}\ -drv H:
    r = lab.refused(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld", E.LV_MOUNTED)
    assert r.err.rstrip().endswith("(lv001 H:)")
    assert lab.eng.linkinfo("lv001")["state"] == "link"
    lab.refused(lab.backup, ["iSMsc_unlink", "-lv", LV_VOLUME, "-lvflg", "mvol"], E.LV_MOUNTED)
    unmount(lab.backup)
    lab.ok(lab.backup, ["iSMsc_unlink", "-lv", LV_VOLUME, "-lvflg", "mvol"])
    lab.backup.mounts[2] = ["H:"]  # a stale mount (e.g. after a server down) with the cache not discarded
    lab.refused(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld", E.LV_MOUNTED)


def test_link_without_a_cv_needs_a_ready_lv(lab: Lab) -> None:
    """Without a CV, control I/O goes through the LV itself, which is Not Ready until linked."""
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.backup.list.entries = [e for e in lab.backup.list.entries if e.definition != "control"]  # type: ignore[union-attr]
    lab.refused(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld", E.VIA_NOT_READY)


def test_link_output_when_state_monitoring_is_not_available(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.manager.monitor_ok = False
    r = lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
    assert r.lines[-1] == "   SV:sv001_1             WN"  # the link is done; only the SV's state is unknown
    r = lab.ok(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen")
    assert r.lines[-2:] == ["      Generation : -1", r.lines[-1]]  # the BV is known: a routed query tells


# ======================================================================================= query
def test_query_forms(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_2 -svflg ld")
    lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")

    summary = lab.ok(lab.business, "iSMsc_query -bv bv001 -bvflg ld").lines
    assert summary == lab.ok(lab.business, "iSMsc_query -bv bv001 -bvflg ld -summary").lines
    assert summary[:8] == [
        "BV Information",
        "    LD Name      : bv001",
        "    Type         : WN",
        "    Special File : disk1",
        "    State        : normal",
        "    Reserve Area : DYN1",
        "",
        "SV Information",
    ]
    assert [x[:35] for x in summary[8:]] == [
        "  WN:sv001_2                 ( -1) ",
        "  WN:sv001_1                 ( -2) ",
        "  WN:sv001_3                 (  -) ",
    ]
    assert summary[8].endswith("] unlink") and summary[9].endswith("] link")

    # Cinder: -bv -sv -summary, state after ") "; get_bvname: -sv alone, LD Name line [15:39].
    out = lab.ok(lab.business, "iSMsc_query -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -summary").out
    line = next(x.strip() for x in out.splitlines() if "sv001_1" in x)
    assert line[line.find(") ") + 2 :].split(" ")[0] == "snap/active"
    out = lab.ok(lab.backup, "iSMsc_query -sv sv001_1 -svflg ld -summary").out
    assert next(x.strip() for x in out.splitlines() if "LD Name" in x)[15:39].strip() == "bv001"
    # OpenSVC: iSMsc_query -sv SV -svflg ld (through the backup server's CV; bv001 is not seen there).
    r = lab.ok(lab.backup, "iSMsc_query -sv sv001_1 -svflg ld")
    assert r.lines[3] == "    Special File : -"
    assert len(r.lines) == 9 and r.lines[8].startswith("  WN:sv001_1                 ( -2) snap/active   [")
    assert lab.last("query").via == "cv_bk"
    assert lab.ok(lab.backup, "iSMsc_query -sv bv001.-2 -svflg ld.relgen").lines == r.lines
    assert (
        lab.ok(lab.business, "iSMsc_query -bv bv001 -bvflg ld -sv .-2 -svflg relgen").lines[8]
        == lab.ok(lab.business, "iSMsc_query -bv G: -bvflg drv -sv sv001_1 -svflg ld").lines[8]
    )

    detail = lab.ok(lab.business, "iSMsc_query -bv bv001 -bvflg ld -detail").lines
    assert detail[7] == "Pair Information"
    blocks = [i for i, x in enumerate(detail) if x.startswith("    SV:LD Name")]
    assert len(blocks) == 3
    sv1 = detail[blocks[1] : blocks[2]]
    assert sv1[:3] == [
        "    SV:LD Name              : sv001_1",
        "       Type                 : WN",
        "       Generation(Attribute): -2(normal)",
    ]
    assert sv1[5:] == [
        "       Processing Data Size : -",
        "       Snapshot Data Size   : 0.0MB",
        "       SV Guard             : off",
        "       LV Link Status       : link",
        "    LV:LD Name              : lv001",
        "       Type                 : WN",
        "       LV Access            : rw",
    ]  # lv001 is not on the business server
    r = lab.ok(lab.backup, "iSMsc_query -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -detail")
    assert "       Special File         : disk2" in r.lines and len(r.lines) == 21


class TickingClock:
    """The array's clock for a test: one second later at every reading, from a date no real clock shows."""

    def __init__(self) -> None:
        self.t = datetime(2031, 1, 2, 3, 4, 5)
        self.issued: list[str] = []

    def __call__(self) -> str:
        self.t += timedelta(seconds=1)
        self.issued.append(self.t.strftime("%Y/%m/%d %H:%M:%S"))
        return self.issued[-1]


def detail_times(lab: Lab, sv: str) -> tuple[str, str]:
    """(Snap State time, Create Start Time) of one SV in iSMsc_query -detail."""
    lines = lab.ok(lab.business, f"iSMsc_query -bv bv001 -bvflg ld -sv {sv} -svflg ld -detail").lines
    state = next(x for x in lines if "Snap State" in x)
    create = next(x for x in lines if "Create   Start Time" in x)
    m = re.search(rf"\[({TIME})\]", state)
    assert m, state
    return m.group(1), create.split(" : ", 1)[1].strip()


def test_snapshot_times_are_the_array_clocks(tmp_path: Path) -> None:
    """Creation and state times come from the array's clock at that operation (not a fixed or cached
    value): each iSMsc_create shows the clock's reading of that moment, iSMsc_query keeps it, and a
    later create of another SV gets a later time."""
    clock = TickingClock()
    eng = build_lab_array(tmp_path / "array", clock=clock)
    try:
        lab = Lab(eng)
        r = lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
        t1 = clock.issued[-1]
        assert r.lines[5] == f"      Status     : snap/active [{t1}]"
        r = lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_2 -svflg ld")
        t2 = clock.issued[-1]
        assert t2 > t1 and r.lines[5] == f"      Status     : snap/active [{t2}]"
        assert detail_times(lab, "sv001_1") == (t1, t1)
        assert detail_times(lab, "sv001_2") == (t2, t2)
        # Deleting and re-creating sv001_1 takes a new reading; sv001_2 keeps its own.
        lab.ok(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
        lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
        t3 = clock.issued[-1]
        assert t3 > t2 and detail_times(lab, "sv001_1") == (t3, t3)
        assert detail_times(lab, "sv001_2") == (t2, t2)
    finally:
        eng.close()


def test_snapshot_create_time_is_now_by_default(lab: Lab) -> None:
    """Without clock=, the array reads the wall clock: the create time lies between the moments before
    and after the command (to the second)."""
    fmt = "%Y/%m/%d %H:%M:%S"
    before = datetime.now().replace(microsecond=0)
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    after = datetime.now()
    _, created = detail_times(lab, "sv001_1")
    assert before <= datetime.strptime(created, fmt) <= after


def test_restore_counts_are_zero_while_no_restore_runs(lab: Lab) -> None:
    """The Query reply's restore progress (restore_total / restore_done, blocks) is 0 for every
    generation while no restore runs: a client computing the remaining size must not see phantom work."""
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    gens = lab.eng.query("bv001")["generations"]
    assert {g["sv"] for g in gens} == {"sv001_1", "sv001_2", "sv001_3"}
    assert [(g["restore_total"], g["restore_done"]) for g in gens] == [(0, 0)] * 3


def test_query_by_drive_and_volume_name_shows_that_volume(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    for argv in (
        ["iSMsc_query", "-bv", "G:", "-bvflg", "drv"],
        ["iSMsc_query", "-bv", "g", "-bvflg", "drv"],
        ["iSMsc_query", "-bv", BV_VOLUME, "-bvflg", "mvol"],
    ):
        r = lab.ok(lab.business, argv)
        assert r.lines[3] == f"    Special File : {BV_VOLUME}"
        assert lab.last("query").query.bv == "bv001"
    r = lab.ok(
        lab.business, ["iSMsc_create", "-bv", BV_VOLUME, "-bvflg", "mvol", "-sv", "sv001_2", "-svflg", "ld"]
    )
    assert r.lines[2] == f"      Special File : {BV_VOLUME}"


def test_query_refusals(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.refused(lab.business, "iSMsc_query -bv bv001 -bvflg ld -sv .-2 -svflg relgen", E.GEN_NOT_FOUND)
    lab.refused(lab.business, "iSMsc_query -bv bv001 -bvflg ld -sv cv_bk -svflg ld", E.NOT_SV)
    lab.refused(lab.backup, "iSMsc_query -sv nosuch -svflg ld", E.NOT_FOUND)
    lab.manager.monitor_ok = False  # the BV of an SV named alone comes from state monitoring
    lab.refused(lab.backup, "iSMsc_query -sv sv001_1 -svflg ld", E.CONTROL_DENIED)
    lab.refused(lab.business, "iSMsc_query -bv bv001 -bvflg ld -summary -detail", E.USAGE)
    lab.refused(lab.business, "iSMsc_query -sv .-1 -svflg relgen", E.USAGE)
    lab.refused(lab.business, "iSMsc_query", E.USAGE)


# ======================================================================================= linkinfo
def test_linkinfo_of_an_sv_through_the_cv(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
    r = lab.ok(lab.backup, "iSMsc_linkinfo -vol sv001_1 -volflg ld -lcl")
    assert r.lines == [
        "Specified Volume Information",
        "SV:LD Name      : sv001_1",
        "   Type         : WN",
        "   Special File : -",
        "   State        : link   (lv001)",
        "   Mode         : nr",
        "",
        "Destination Volume Information",
        "    LV:lv001" + " " * 20 + "WN link   (sv001_1)" + " " * 17 + "rw",
    ]
    assert lab.last("linkinfo").via == "cv_bk"
    r = lab.ok(lab.backup, ["iSMsc_linkinfo", "-vol", LV_VOLUME, "-volflg", "mvol"])
    assert r.lines[1:6] == [
        "LV:LD Name      : lv001",
        "   Type         : WN",
        f"   Special File : {LV_VOLUME}",
        "   State        : link   (sv001_1)",
        "   Mode         : rw",
    ]
    r = lab.ok(lab.business, "iSMsc_linkinfo -vol bv001 -volflg ld")
    assert r.lines[4:6] == ["   State        : unlink", "   Mode         : rw"]
    assert r.lines[-1].split() == ["LV:lv001", "WN", "link", "(sv001_1)", "rw"]


# ======================================================================================= wait
def test_wait_limit_and_conditions(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    t0 = time.monotonic()
    r = lab.refused(
        lab.business,
        "iSMsc_wait -cond deleted -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -limit 0.3",
        E.WAIT_TIMEOUT,
    )
    assert time.monotonic() - t0 < 10
    assert "sv001_1" in r.err
    r = lab.ok(lab.business, "iSMsc_wait -cond active -bv bv001 -bvflg ld -sv .-1 -svflg relgen -limit 5")
    assert kv(r.lines)["Generation"] == "-1"
    assert lab.last("wait").wait.sv.svflg == "ld"  # pinned by name before waiting
    lab.ok(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    r = lab.ok(lab.business, "iSMsc_wait -cond deleted -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    assert kv(r.lines)["Status"].startswith("snap/deleted [")
    lab.refused(
        lab.business, "iSMsc_wait -cond active -bv bv001 -bvflg ld -sv sv001_1 -svflg ld", E.SV_NOT_ACTIVE
    )
    for bad in ("-limit x", "-limit -1", "-limit nan"):
        lab.refused(
            lab.business, f"iSMsc_wait -cond active -bv bv001 -bvflg ld -sv sv001_1 -svflg ld {bad}", E.USAGE
        )


# ======================================================================================= refusals
@pytest.mark.parametrize(
    "line",
    [
        "iSMsc_create -bv bv001 -bvflg ld",
        "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -cyclic",
        "iSMsc_create -bvflg ld -cyclic",
        "iSMsc_create -bv bv001 -bvflg xx -cyclic",
        "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg drv",
        "iSMsc_create -bv bv001 -bvflg ld -cyclic -cyclic",
        "iSMsc_create -bv bv001 -bvflg ld -cyclic -foo",
        "iSMsc_create -bv bv001 -bvflg ld -svflg ld -cyclic",
        "iSMsc_create -bv",
        "iSMsc_delete -bv bv001 -bvflg ld",
        "iSMsc_delete -bv bv001 -bvflg ld -auto -sv sv001_1 -svflg ld",
        "iSMsc_restore -bv bv001 -bvflg ld",
        "iSMsc_restore -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -derivsv maybe",
        "iSMsc_wait -bv bv001 -bvflg ld -sv sv001_1 -svflg ld",
        "iSMsc_wait -cond gone -bv bv001 -bvflg ld -sv sv001_1 -svflg ld",
        "iSMsc_svguard -bv bv001 -bvflg ld -sv sv001_1 -svflg ld",
        "iSMsc_svguard -bv bv001 -bvflg ld -sv sv001_1 -svflg ld -mode on",
        "iSMsc_link -lv lv001 -lvflg ld",
        "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld -lvacc wr",
        "iSMsc_link -lvflg ld -sv sv001_1 -svflg ld",
        "iSMsc_unlink -lvflg ld",
        "iSMsc_linkinfo -volflg ld",
        "iSMsc_linkinfo -vol bv001 -volflg relgen",
    ],
)
def test_syntax_errors(lab: Lab, line: str) -> None:
    r = lab.refused(lab.business, line, E.USAGE)
    assert "Command syntax is incorrect." in r.err
    assert lab.manager.calls == []


def test_volume_list_refusals(lab: Lab) -> None:
    lab.refused(lab.business, "iSMsc_create -bv bv002 -bvflg ld -cyclic", E.NOT_IN_VOLLIST)  # no CV here
    # A drive or volume name is never sent through the CV: only this host knows what it names.
    lab.refused(lab.backup, "iSMsc_link -lv H: -lvflg drv -sv sv001_1 -svflg ld", E.NOT_IN_VOLLIST)
    lab.business.stale.add("bv001")
    lab.refused(lab.business, "iSMsc_create -bv bv001 -bvflg ld -cyclic", E.VOLLIST_STALE)
    lab.business.list = None
    lab.refused(lab.business, "iSMsc_create -bv bv001 -bvflg ld -cyclic", E.VOLLIST_MISSING)
    assert lab.manager.calls == []
    lab.refused(
        lab.backup, "iSMsc_create -bv bv002 -bvflg ld -cyclic", E.NOT_FOUND
    )  # through the CV: the array says


def test_array_refusals_pass_through(lab: Lab) -> None:
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
    lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")  # a refresh
    lab.refused(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv .-5 -svflg relgen", E.GEN_NOT_FOUND)
    lab.refused(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_2 -svflg ld", E.SV_NOT_ACTIVE)
    lab.refused(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld", E.LV_NOT_LINKED)
    lab.ok(lab.backup, "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
    lab.refused(lab.backup, "iSMsc_unlink -lv lv001 -lvflg ld -bv bv001 -bvflg ld", E.LINK_MISMATCH)
    lab.refused(lab.business, "iSMsc_delete -bv bv001 -bvflg ld -sv sv001_1 -svflg ld", E.SV_LINKED)
    unmount(lab.business)
    lab.refused(lab.business, "iSMsc_restore -bv bv001 -bvflg ld -sv sv001_1 -svflg ld", E.SV_LINKED)


def test_cv_rule_applies(lab: Lab) -> None:
    """The backup server's CV reaches bv001 only as the BV of its LV; an unrelated BV is refused."""
    lab.eng.bind_ld("bv002", MiB, 0, "WN")
    lab.eng.add_generations("bv002", 1, 1, sv_names=["sv002_1"])
    lab.refused(lab.backup, "iSMsc_create -bv bv002 -bvflg ld -cyclic", E.CV_RULE)


def test_command_names_are_case_insensitive(lab: Lab) -> None:
    r = lab.ok(lab.business, "ismsc_create.exe -BV bv001 -BVFLG LD -SV sv001_1 -SVFLG LD")
    assert r.lines[0].endswith("iSM19010: iSMsc_create has normally terminated.")


# ======================================================================================= several arrays
def test_through_cvs_of_two_arrays_the_one_with_the_ld_answers(lab: Lab, tmp_path: Path) -> None:
    other = build_array(tmp_path / "other", "Osaka_Backup")
    other.bind_ld("cv_bk2", MiB, 0, "WN", attr="cv")
    other.assign_access("cv_bk2", wwn=WWN["backup"])
    lab.manager.engines = {"Osaka_Backup": other, ARRAY: lab.eng}
    lab.backup.list.entries.insert(
        0,
        VolEntry(
            "Osaka_Backup",
            "0000h",
            "cv_bk2",
            "CV",
            "WN",
            3,  # type: ignore[union-attr]
            definition="control",
        ),
    )
    try:
        lab.ok(lab.business, "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
        r = lab.ok(lab.backup, "iSMsc_query -bv bv001 -bvflg ld")
        assert r.lines[1] == "    LD Name      : bv001"
        tried = [(req.array, req.via) for h, req in lab.manager.calls if h == "backup"]
        assert tried == [("Osaka_Backup", "cv_bk2"), (ARRAY, "cv_bk")]
    finally:
        other.close()
