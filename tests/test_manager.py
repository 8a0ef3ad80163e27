"""The manager (B1-B6): routing rules as plain data, then the real daemons over mTLS in other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.manager import routing
from snaplab.manager.client import ManagerClient
from snaplab.manager.console import parse_number, parse_size, run_console
from snaplab.manager.process import ManagerProcess
from snaplab.manager.routing import ArrayView, ControlOp, LdInfo, ViaState
from snaplab.manager.state import HostRecord, ManagerState

from snaplab.common.errors import SnapLabError
from snaplab.common.pki import Identity
from snaplab.common.rpc import ClientTLS, SnapLabClientError, make_channel
from snaplab.san.array_client import ArrayClient
from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb
from snaplab.v1 import manager_pb2_grpc

pytestmark = pytest.mark.timeout(60)

C = grpc.StatusCode
MiB = 1024 * 1024
ARRAY = "Tokyo_Customer_DataBase"
WWN = {"business01": "10:00:00:00:c9:00:00:01", "backup01": "10:00:00:00:c9:00:00:02"}


# =============================================================================== routing, plain data

BIZ = Identity("business01", "host")
BAK = Identity("backup01", "host")
HOSTS = {
    "business01": HostRecord("business01", "business", wwns=(WWN["business01"],)),
    "backup01": HostRecord("backup01", "backup", wwns=(WWN["backup01"],)),
}


def _paths(host: str) -> frozenset[str]:
    return HOSTS[host].paths


def _view(faults: tuple[str, ...] = ()) -> ArrayView:
    biz, bak = _paths("business01"), _paths("backup01")
    return ArrayView.build(
        ARRAY,
        [
            LdInfo("bv001", "BV", access=biz),
            LdInfo("sv001_1", "SV", "bv001"),
            LdInfo("sv001_2", "SV", "bv001"),
            LdInfo("lv001", "LV", "bv001", access=bak),
            LdInfo("lv001b", "LV", "bv001"),  # another LV of bv001, reachable by nobody
            LdInfo("bv002", "BV", access=biz),
            LdInfo("sv002_1", "SV", "bv002"),
            LdInfo("BACKUP_CV", "CV", access=bak),
            LdInfo("SDV1", "SDV"),
            LdInfo("iv009", "IV"),
        ],
        {h: _paths(h) for h in HOSTS},
        faults,
    )


READY = ViaState(linked=True, mode="rw")


def _check(
    caller: Identity,
    op: ControlOp,
    via: str,
    *,
    state: ViaState = READY,
    view: ArrayView | None = None,
    host: HostRecord | None | str = "auto",
) -> routing.Decision:
    rec = HOSTS.get(caller.name) if host == "auto" else host
    return routing.check_route(caller, rec, view or _view(), op, via, lambda _n: state)  # type: ignore[arg-type]


def _refused(msg_id: str, *args: object, **kwargs: object) -> None:
    with pytest.raises(SnapLabError) as info:
        _check(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.msg_id == msg_id, info.value


def test_routing_through_the_volume_itself() -> None:
    create = ControlOp("create", bv="bv001", sv="sv001_1")
    assert _check(BIZ, create, "bv001").through == "volume"
    assert _check(BIZ, ControlOp("query", bv="bv001"), "bv001").through == "volume"
    # The BV a host reaches is not the operated volume: the CV rule is the only other way.
    _refused("iSM31062", BIZ, ControlOp("create", bv="bv002", sv="sv002_1"), "bv001")
    _refused("iSM31062", BIZ, ControlOp("link", lv="lv001", sv="sv001_1"), "bv001")
    # A BV linked to an LV is reachable only through the LV.
    _refused("iSM31043", BIZ, create, "bv001", state=ViaState(bv_linked_lv="lv001"))


def test_routing_through_an_lv_needs_it_ready() -> None:
    unlink = ControlOp("unlink", lv="lv001")
    assert _check(BAK, unlink, "lv001").through == "volume"
    assert _check(BAK, unlink, "lv001", state=ViaState(linked=True, mode="ro")).through == "volume"
    for state in (ViaState(), ViaState(linked=True, mode="nr"), ViaState(linked=True, mode="na")):
        _refused("iSM31063", BAK, unlink, "lv001", state=state)
    # An LV is not the BV: creating through it is not allowed.
    _refused("iSM31062", BAK, ControlOp("create", bv="bv001", sv=".-1", svflg="relgen"), "lv001")
    _refused("iSM31062", BAK, ControlOp("query", bv="bv001"), "lv001")
    assert _check(BAK, ControlOp("linkinfo", volume="lv001"), "lv001").through == "volume"


def test_routing_through_a_cv_reaches_the_pairs_of_what_the_host_reaches() -> None:
    link = ControlOp("link", lv="lv001", sv="bv001.-1", svflg="ld.relgen")
    assert link.named() == ["lv001", "bv001"]
    assert _check(BAK, link, "BACKUP_CV").through == "cv"
    # LV <-> its BV and the SVs of its BV.
    for op in (
        ControlOp("create", bv="bv001", sv="sv001_2"),
        ControlOp("delete", bv="bv001", sv=".-1", svflg="relgen"),
        ControlOp("linkinfo", volume="sv001_1"),
        ControlOp("query", bv="bv001"),
    ):
        assert _check(BAK, op, "BACKUP_CV").through == "cv", op
    # Not paired with anything backup01 reaches: another BV, its SVs, an IV, a sibling LV (not transitive).
    for op in (
        ControlOp("query", bv="bv002"),
        ControlOp("link", lv="lv001", sv="sv002_1"),
        ControlOp("link", lv="lv001", sv="bv002.-1", svflg="ld.relgen"),
        ControlOp("linkinfo", volume="iv009"),
        ControlOp("linkinfo", volume="lv001b"),
    ):
        _refused("iSM31061", BAK, op, "BACKUP_CV")
    _refused("iSM19003", BAK, ControlOp("query", bv="nosuch"), "BACKUP_CV")


def test_routing_through_a_cv_the_host_defined() -> None:
    # C3: where the array does not mark CVs, a host defines an IV or MV LD as its CV (iSMvollist -cvdef);
    # the CV rule then applies to it as to a marked CV. An RV is no candidate.
    bak = _paths("backup01")
    base = _view()
    view = ArrayView.build(
        base.name,
        [
            *base.lds.values(),
            LdInfo("BACKUP_IV", "IV", access=bak, attr="iv"),
            LdInfo("BACKUP_MV", "IV", access=bak, attr="mv"),
            LdInfo("BACKUP_RV", "IV", access=bak, attr="rv"),
        ],
        base.host_paths,
    )
    link = ControlOp("link", lv="lv001", sv="bv001.-1", svflg="ld.relgen")
    for cv in ("BACKUP_IV", "BACKUP_MV"):
        assert _check(BAK, link, cv, view=view).through == "cv"
        _refused("iSM31061", BAK, ControlOp("query", bv="bv002"), cv, view=view)
    _refused("iSM31062", BAK, link, "BACKUP_RV", view=view)
    _refused("iSM31042", BIZ, link, "BACKUP_IV", view=view)


def test_routing_refusals_come_in_rule_order() -> None:
    op = ControlOp("create", bv="bv001", sv="sv001_1")
    _refused("iSM31044", Identity("admin", "admin"), op, "bv001", host=None)
    _refused("iSM31044", Identity("manager", "manager"), op, "bv001", host=None)
    _refused("iSM31060", Identity("test01", "host"), op, "bv001", host=None)
    # A record of another host never stands for the caller.
    _refused("iSM31060", BIZ, op, "bv001", host=HOSTS["backup01"])
    _refused("iSM19063", BIZ, op, "bv001", view=_view(("path:business01",)))
    assert _check(BIZ, op, "bv001", view=_view(("path:backup01",))).through == "volume"
    _refused("iSM19001", BIZ, op, "")
    # Reachability comes before everything about the volume: SV, SDV, unknown, someone else's.
    for via in ("sv001_1", "SDV1", "nosuch", "lv001", "BACKUP_CV"):
        _refused("iSM31042", BIZ, op, via)


def test_routing_named_lds_and_acted_on() -> None:
    assert ControlOp("create", bv="bv001", sv="sv001_1").named() == ["bv001", "sv001_1"]
    assert ControlOp("create", bv="bv001", sv=".-1", svflg="relgen").named() == ["bv001"]
    assert ControlOp("link", lv="lv001", bv="bv001").named() == ["bv001", "lv001"]
    assert ControlOp("link", lv="lv001", bv="bv001").acts_on == "lv001"
    assert ControlOp("linkinfo", volume="sv001_1").acts_on == "sv001_1"
    assert ControlOp("guard", bv="bv001", sv=".-1", svflg="relgen").command == "iSMsc_svguard"
    view = _view()
    assert view.partners("lv001") == {"bv001", "sv001_1", "sv001_2"}
    assert view.partners("bv001") == {"sv001_1", "sv001_2", "lv001", "lv001b"}
    assert view.partners("BACKUP_CV") == set()
    assert not view.reaches("business01", "sv001_1") and view.reaches("business01", "bv001")


def test_state_keeps_hosts_and_events_across_reopen(tmp_path: Path) -> None:
    st = ManagerState(tmp_path)
    st.enrol("business01", "business", wwns=["10:00:00:00:C9:00:00:01"], ports=["P0"])
    st.enrol("business01", "standby", cluster="CL1", cluster_role="standby")
    first = st.log_event("business01", "INFO", "iSMsc_create", "iSM19010", "done")
    with pytest.raises(ValueError):
        st.log_event("x", "DEBUG", "op")
    got: list = []
    t = threading.Thread(target=lambda: got.extend(st.wait_events(first.seq, 5.0)))
    t.start()
    st.log_event("manager", "NOTICE", "monitor", "iSM31074", "gone")
    t.join(5)
    assert [e.text for e in got] == ["gone"]
    st.close()
    st = ManagerState(tmp_path)
    try:
        (h,) = st.hosts()
        assert (h.role, h.cluster, h.cluster_role, h.wwns) == ("standby", "CL1", "standby", ())
        assert [e.seq for e in st.events()] == [1, 2] and st.last_seq == 2
        assert st.events(after_seq=1)[0].classification == "NOTICE"
        assert st.wait_events(2, 0.05) == []
        assert st.host("business01") == h and st.host("nobody") is None
    finally:
        st.close()
    assert not (tmp_path / "manager.db-wal").exists()  # closing checkpoints the log into manager.db


def test_console_parsers() -> None:
    assert (
        parse_number("0038h", "x") == 0x38
        and parse_number("56", "x") == 56
        and parse_number("0x10", "x") == 16
    )
    assert parse_size("1GB") == 1 << 30 and parse_size("512MB") == 512 * MiB and parse_size("1.5K") == 1536
    assert parse_size("4096") == 4096


# =============================================================================== real processes


@dataclass
class Lab:
    root: Path
    lab_dir: Path
    array: ArrayProcess
    manager: ManagerProcess
    admin: ManagerClient
    business01: ManagerClient
    backup01: ManagerClient
    test01: ManagerClient  # a host certificate of this lab, never enrolled

    def console(self, *argv: str) -> tuple[str, str, int]:
        return run_console(list(argv), self.lab_dir)

    def cfg(self, *argv: str) -> str:
        out, err, code = self.console("iSMcfg", *argv)
        assert code == 0, err
        return out


def refused(code: grpc.StatusCode, msg_id: str | None, call, *args, **kwargs) -> SnapLabClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(SnapLabClientError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    if msg_id is not None:
        assert info.value.msg_id == msg_id, info.value
    return info.value


def _sv(sv: str, svflg: str = "ld") -> apb.SvRef:
    return apb.SvRef(sv=sv, svflg=svflg)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("manager")
    lab_dir = root / "lab"
    certs = make_lab_certs(
        lab_dir / "pki",
        [
            ("array", "array"),
            ("manager", "manager"),
            ("admin", "admin"),
            ("business01", "host"),
            ("backup01", "host"),
            ("test01", "host"),
        ],
    )
    make_lab_certs(root / "other_ca", [("business01", "host"), ("admin", "admin")])
    with (
        ArrayProcess(lab_dir / "arrays" / ARRAY, certs=certs, name=ARRAY) as array,
        ManagerProcess(lab_dir / "manager", certs=certs, arrays={ARRAY: array.target}) as manager,
    ):
        (lab_dir / "runtime.json").write_text(json.dumps({"manager": {"target": manager.target}}))
        clients = {n: manager.client(n) for n in ("admin", "business01", "backup01", "test01")}
        lab = Lab(root, lab_dir, array, manager, **clients)
        try:
            build(lab)
            yield lab
        finally:
            for c in clients.values():
                c.close()


def build(lab: Lab) -> None:
    """The guide's small lab: bv001 (business01) with SVs and lv001, BACKUP_CV and lv001 for backup01."""
    adm = lab.admin
    adm.configure(set_licence=apb.SetLicence(product="DynamicSnapVolume", capacity=1 << 40))
    lab.cfg("licenseadd", "-product", "AccessControl")
    lab.cfg("portadd", "-director", "00h", "-port", "00h", "-portname", "DB_PRIMARY")
    lab.cfg("portadd", "-director", "0", "-port", "1", "-portname", "DB_SECONDARY")
    lab.cfg("poolbind", "-poolnumber", "0", "-poolname", "Pool0", "-pooltype", "basic", "-capacity", "64MB")
    lab.cfg("poolbind", "-poolnumber", "1", "-poolname", "Pool1", "-pooltype", "dynamic", "-capacity", "64MB")
    lab.cfg("poolbind", "-poolnumber", "2", "-poolname", "Pool2", "-pooltype", "dynamic", "-capacity", "64MB")
    lab.cfg("srabind", "-poolnumber", "1", "-capacity", "8MB", "-sdvname", "SDV1")
    lab.cfg("srabind", "-poolnumber", "2", "-capacity", "4MB", "-sdvname", "SDV2")
    lab.cfg(
        "ldbind",
        "-poolnumber",
        "0",
        "-ldn",
        "0010h",
        "-ldname",
        "bv001",
        "-capacity",
        "4MB",
        "-ldattr",
        "iv",
        "-osformat",
        "WN",
    )
    out = lab.cfg(
        "generationadd",
        "-bvname",
        "bv001",
        "-poolnumber",
        "1",
        "-count",
        "2",
        "-svname",
        "sv001_1",
        "-svname",
        "sv001_2",
    )
    assert out.splitlines()[0] == "iSMcfg:Info: iSM04005: iSMcfg generationadd has normally terminated."
    assert "SV:sv001_1" in out and "SV:sv001_2" in out
    lab.cfg("lvbind", "-bvname", "bv001", "-lvn", "0038h", "-lvname", "lv001")
    lab.cfg("ldbind", "-poolnumber", "0", "-ldname", "BACKUP_CV", "-capacity", "1MB", "-ldattr", "cv")
    lab.cfg("ldbind", "-poolnumber", "0", "-ldname", "bv002", "-capacity", "4MB")
    lab.cfg("generationadd", "-bvname", "bv002", "-poolnumber", "2")
    for host, role in (("business01", "business"), ("backup01", "backup")):
        # The lab's configuration defines each host's HBA (B2); the host's enrolment must match it.
        lab.cfg("hostadd", "-hostname", host, "-wwn", WWN[host])
        reply = getattr(lab, host).enrol(role, wwns=[WWN[host]])
        assert [(a.name, a.target) for a in reply.arrays] == [(ARRAY, lab.array.target)]
    lab.cfg("accessadd", "-ldname", "bv001", "-wwn", WWN["business01"])
    lab.cfg("accessadd", "-ldname", "bv002", "-wwn", WWN["business01"])
    lab.cfg("accessadd", "-ldname", "lv001", "-wwn", WWN["backup01"])
    lab.cfg("accessadd", "-ldname", "BACKUP_CV", "-wwn", WWN["backup01"])


def test_business_creates_and_queries_through_its_bv(lab: Lab) -> None:
    biz = lab.business01
    gen = biz.route("bv001", create=apb.CreateRequest(bv="bv001", sv=_sv("sv001_1"))).generation
    assert (gen.sv, gen.state, gen.relgen) == ("sv001_1", "snap/active", -1)
    q = biz.route("bv001", query=apb.QueryRequest(bv="bv001")).query
    assert {g.sv: g.state for g in q.generations} == {"sv001_1": "snap/active", "sv001_2": "snap/deleted"}
    rel = _sv(".-1", "relgen")
    assert biz.route("bv001", guard=apb.GuardRequest(bv="bv001", sv=rel, on=True)).generation.guard
    assert not biz.route("bv001", guard=apb.GuardRequest(bv="bv001", sv=rel, on=False)).generation.guard
    waited = biz.route("bv001", wait=apb.WaitRequest(bv="bv001", sv=rel, cond="active", timeout_seconds=5))
    assert waited.generation.state == "snap/active"
    # Refusals of the array itself come back with their own id (a guarded SV is not refreshed).
    assert biz.route("bv001", guard=apb.GuardRequest(bv="bv001", sv=rel, on=True)).generation.guard
    refused(
        C.FAILED_PRECONDITION,
        "iSM19025",
        biz.route,
        "bv001",
        create=apb.CreateRequest(bv="bv001", sv=_sv("sv001_1")),
    )
    assert not biz.route("bv001", guard=apb.GuardRequest(bv="bv001", sv=rel, on=False)).generation.guard


def test_business_cannot_link_the_backup_lv(lab: Lab) -> None:
    biz = lab.business01
    link = apb.LinkRequest(lv="lv001", sv=_sv("bv001.-1", "ld.relgen"))
    refused(C.PERMISSION_DENIED, "iSM31062", biz.route, "bv001", link=link)
    refused(C.PERMISSION_DENIED, "iSM31042", biz.route, "lv001", link=link)


def test_backup_needs_its_cv_to_reach_the_bv(lab: Lab) -> None:
    bak = lab.backup01
    lab.business01.route("bv001", create=apb.CreateRequest(bv="bv001", cyclic=True))
    # Without a CV: an unlinked LV is Not Ready, and the BV is not the LV.
    refused(C.FAILED_PRECONDITION, "iSM31063", bak.route, "lv001", unlink=apb.UnlinkRequest(lv="lv001"))
    refused(
        C.FAILED_PRECONDITION,
        "iSM31063",
        bak.route,
        "lv001",
        link=apb.LinkRequest(lv="lv001", sv=_sv("bv001.-1", "ld.relgen")),
    )
    refused(
        C.PERMISSION_DENIED,
        "iSM31062",
        bak.route,
        "lv001",
        create=apb.CreateRequest(bv="bv001", sv=_sv(".-1", "relgen")),
    )
    refused(C.PERMISSION_DENIED, "iSM31042", bak.route, "bv001", query=apb.QueryRequest(bv="bv001"))
    # Through its CV: the BV behind its LV, not a BV it has no pair with.
    info = bak.route(
        "BACKUP_CV", link=apb.LinkRequest(lv="lv001", sv=_sv("bv001.-1", "ld.relgen"), mode="ro")
    ).linkinfo
    assert info.state == "link" and info.links[0].mode == "ro"
    refused(C.PERMISSION_DENIED, "iSM31061", bak.route, "BACKUP_CV", query=apb.QueryRequest(bv="bv002"))
    # Linked, the LV is Ready and carries its own control I/O.
    assert bak.route("lv001", linkinfo=apb.VolumeRef(name="lv001")).linkinfo.state == "link"
    assert bak.route("lv001", unlink=apb.UnlinkRequest(lv="lv001")).linkinfo.links[0].lv == "lv001"
    assert bak.route("BACKUP_CV", linkinfo=apb.VolumeRef(name="lv001")).linkinfo.state == "unlink"
    refused(C.FAILED_PRECONDITION, "iSM31063", bak.route, "lv001", linkinfo=apb.VolumeRef(name="lv001"))
    q = bak.route("BACKUP_CV", query=apb.QueryRequest(bv="bv001")).query
    assert q.bv == "bv001"


def test_a_bv_linked_to_an_lv_is_reached_only_through_the_lv(lab: Lab) -> None:
    # A routed query through its BV takes the link state from the Query reply itself (one array call,
    # not LinkInfoOf + Query): the rule must hold exactly as for the other operations.
    biz, bak = lab.business01, lab.backup01
    q = apb.QueryRequest(bv="bv001")
    assert biz.route("bv001", query=q).query.bv_link_lv == ""
    info = bak.route("BACKUP_CV", link=apb.LinkRequest(lv="lv001", bv="bv001", mode="rw")).linkinfo
    assert info.state == "link" and info.links[0].kind == "bv"
    try:
        start = lab.admin.events()[-1].seq
        create = apb.CreateRequest(bv="bv001", cyclic=True)
        refused(C.PERMISSION_DENIED, "iSM31043", biz.route, "bv001", query=q)
        refused(C.PERMISSION_DENIED, "iSM31043", biz.route, "bv001", create=create)
        assert [(e.operation, e.msg_id) for e in biz.events(after_seq=start)] == [
            ("iSMsc_query", "iSM31043"),
            ("iSMsc_create", "iSM31043"),
        ]
        # Through its CV the backup host still queries the BV behind its LV.
        assert bak.route("BACKUP_CV", query=q).query.bv_link_lv == "lv001"
    finally:
        bak.route("BACKUP_CV", unlink=apb.UnlinkRequest(lv="lv001", bv="bv001"))
    assert biz.route("bv001", query=q).query.bv_link_lv == ""
    # An LD the host does not reach is refused before anything is asked of the array.
    refused(C.PERMISSION_DENIED, "iSM31042", biz.route, "nosuch", query=apb.QueryRequest(bv="nosuch"))


def test_identity_is_the_certificate_never_the_request(lab: Lab) -> None:
    # business01's certificate cannot do what only backup01 may, whatever the request names.
    link = apb.LinkRequest(lv="lv001", sv=_sv("bv001.-1", "ld.relgen"))
    refused(C.PERMISSION_DENIED, "iSM31042", lab.business01.route, "BACKUP_CV", link=link)
    refused(C.PERMISSION_DENIED, "iSM31042", lab.business01.route, "BACKUP_CV", array=ARRAY, link=link)
    # Nor take backup01's HBA by enrolling with its WWN (business01 keeps its own record).
    refused(C.ALREADY_EXISTS, "iSM19004", lab.business01.enrol, "business", wwns=[WWN["backup01"]])
    hosts = {h.name: list(h.wwns) for h in lab.admin.monitor().hosts}
    assert hosts == {"business01": [WWN["business01"]], "backup01": [WWN["backup01"]]}
    # A host of the lab that never enrolled routes nothing; admin and manager certificates route nothing.
    refused(C.PERMISSION_DENIED, "iSM31060", lab.test01.route, "bv001", query=apb.QueryRequest(bv="bv001"))
    refused(C.PERMISSION_DENIED, "iSM31044", lab.admin.route, "bv001", query=apb.QueryRequest(bv="bv001"))
    with lab.manager.client("manager") as mgr:
        refused(C.PERMISSION_DENIED, "iSM31044", mgr.route, "bv001", query=apb.QueryRequest(bv="bv001"))


@pytest.mark.parametrize("how", ["plaintext", "tls-without-certificate", "other-ca"])
def test_tls_refuses_callers_without_a_lab_certificate(lab: Lab, how: str) -> None:
    ca = (lab.lab_dir / "pki" / "ca.crt").read_bytes()
    if how == "plaintext":
        channel = grpc.insecure_channel(lab.manager.target)
    elif how == "tls-without-certificate":
        channel = grpc.secure_channel(lab.manager.target, grpc.ssl_channel_credentials(root_certificates=ca))
    else:
        other = ClientTLS.from_folder(lab.root / "other_ca", "business01")
        channel = make_channel(lab.manager.target, ClientTLS(other.cert_pem, other.key_pem, ca))
    with channel:
        stub = manager_pb2_grpc.ManagerStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Route(mpb.ControlRequest(via="bv001", query=apb.QueryRequest(bv="bv001")), timeout=5)
        assert info.value.code() == C.UNAVAILABLE  # the handshake failed: no RPC ever ran
    assert lab.manager.running


def test_admin_only_operations(lab: Lab) -> None:
    refused(
        C.PERMISSION_DENIED,
        "iSM31044",
        lab.business01.configure,
        bind_pool=apb.BindPool(number=9, name="Pool9", kind="basic", capacity=MiB),
    )
    refused(C.PERMISSION_DENIED, "iSM31044", lab.business01.snapshot, query=apb.QueryRequest(bv="bv001"))
    refused(C.PERMISSION_DENIED, "iSM31044", lab.backup01.inject_fault, "path", "business01")
    # B4: the management server operates snapshots itself, without host checks.
    gen = lab.admin.snapshot(create=apb.CreateRequest(bv="bv001", cyclic=True)).generation
    assert gen.state == "snap/active" and gen.relgen == -1
    deleted = lab.admin.snapshot(delete=apb.DeleteRequest(bv="bv001", sv=_sv(gen.sv))).deleted
    assert deleted.deleted_sv == gen.sv


def test_path_fault_stops_the_hosts_control_io(lab: Lab) -> None:
    q = apb.QueryRequest(bv="bv001")
    state = lab.admin.inject_fault("path", "business01")
    assert "path:business01" in state.faults
    try:
        refused(C.UNAVAILABLE, "iSM19063", lab.business01.route, "bv001", query=q)
        assert lab.backup01.route("BACKUP_CV", query=q).query.bv == "bv001"
    finally:
        lab.admin.clear_fault("path", "business01")
    assert lab.business01.route("bv001", query=q).query.bv == "bv001"


def _until(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_routing_follows_access_changed_at_the_array_itself(lab: Lab) -> None:
    """The manager's routing view is reread with its version (issue 12): a change made at the array
    behind the manager's back still reaches routing within the view's second."""
    from snaplab.manager.arrays import DESCRIBE_TTL

    q = apb.QueryRequest(bv="bv002")

    def allowed() -> bool:
        try:
            return lab.business01.route("bv002", query=q).query.bv == "bv002"
        except SnapLabClientError as exc:
            assert exc.msg_id == "iSM31042", exc
            return False

    assert allowed()
    with lab.array.client("admin") as direct:
        direct.unassign_access("bv002", wwn=WWN["business01"])
        try:
            assert _until(lambda: not allowed(), DESCRIBE_TTL + 2.0)
        finally:
            direct.assign_access("bv002", wwn=WWN["business01"])
    assert _until(allowed, DESCRIBE_TTL + 2.0)


def test_events_log_every_operation_and_watch_streams_them_live(lab: Lab) -> None:
    start = lab.admin.events()[-1].seq
    lab.business01.route("bv001", query=apb.QueryRequest(bv="bv001"))
    refused(
        C.PERMISSION_DENIED, "iSM31062", lab.business01.route, "bv001", unlink=apb.UnlinkRequest(lv="lv001")
    )
    events = lab.business01.events(after_seq=start)
    assert [(e.source, e.classification, e.operation, e.msg_id) for e in events] == [
        ("business01", "INFO", "iSMsc_query", "iSM19015"),
        ("business01", "ERROR", "iSMsc_unlink", "iSM31062"),
    ]
    assert f"via {ARRAY}:bv001" in events[1].text and events[1].time.count("/") == 2
    # The lab's configuration and enrolments are there too, with their sources.
    seen_ops = {(e.source, e.operation, e.msg_id) for e in lab.admin.events(limit=10_000)}
    assert {
        ("admin", "Configure", "iSM31071"),
        ("business01", "Enrol", "iSM31070"),
        ("backup01", "Enrol", "iSM31070"),
        ("manager", "start", "iSM31078"),
    } <= seen_ops

    # Watch: history after a sequence number, then a live event as it happens.
    last = lab.admin.events()[-1].seq
    stream = lab.backup01.watch(after_seq=last - 1)
    seen: list[mpb.Event] = []
    got_live = threading.Event()

    def read() -> None:
        for ev in stream:
            seen.append(ev)
            if ev.seq > last:
                got_live.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen and seen[0].seq == last  # the history part
        lab.business01.route("bv001", query=apb.QueryRequest(bv="bv001"))
        assert got_live.wait(5), "the live event did not arrive"
        assert seen[-1].operation == "iSMsc_query" and seen[-1].source == "business01"
    finally:
        stream.cancel()
        reader.join(5)
    assert not reader.is_alive()


def test_delete_auto_with_a_free_sv_is_logged_as_the_hosts_notice(lab: Lab) -> None:
    """-auto that finds its SV already free prints a Notice on the host; the event log says the same."""
    q = lab.business01.route("bv001", query=apb.QueryRequest(bv="bv001")).query
    if all(g.state != "snap/deleted" for g in q.generations):  # make one SV of the set free
        oldest = [g for g in q.generations if g.has_relgen][-1]
        lab.business01.route("bv001", delete=apb.DeleteRequest(bv="bv001", sv=apb.SvRef(sv=oldest.sv, svflg="ld")))
    start = lab.admin.events()[-1].seq
    reply = lab.business01.route("bv001", delete=apb.DeleteRequest(bv="bv001", auto=True))
    assert reply.deleted.deleted_sv == ""
    events = lab.business01.events(after_seq=start)
    assert [(e.classification, e.operation, e.msg_id) for e in events] == [("NOTICE", "iSMsc_delete", "iSM19030")]


def test_monitor_notices_snapshots_the_array_deleted(lab: Lab) -> None:
    """SRA full (A6): the array deletes a generation as part of a host write; the manager logs it."""
    lab.business01.route("bv002", create=apb.CreateRequest(bv="bv002", cyclic=True))
    with ArrayClient(lab.array.target, ClientTLS.from_folder(lab.lab_dir / "pki", "business01")) as disk:
        disk.write("bv002", 0, b"\x01" * 65536)
        lab.business01.route("bv002", create=apb.CreateRequest(bv="bv002", cyclic=True))
        mon = lab.admin.monitor()  # the baseline: one live generation of bv002
        (snaps,) = [q for q in mon.arrays[0].snapshots if q.bv == "bv002"]
        assert [g.state for g in snaps.generations] == ["snap/active"]
        start = lab.admin.events()[-1].seq
        lab.admin.inject_fault("sra_full", "Pool2")
        try:
            disk.write("bv002", 0, b"\x02" * 65536)  # needs the SRA: the generation goes
        finally:
            lab.admin.clear_fault("sra_full", "Pool2")
    mon = lab.admin.monitor(ARRAY)
    assert mon.arrays[0].monitoring == "running" and mon.arrays[0].resource_state == "ready"
    events = lab.admin.events(after_seq=start)
    assert [e.operation for e in events][:2] == ["InjectFault", "ClearFault"]
    # The array's own event says it (iSM31281); the manager does not say it again (iSM31074).
    gone = [e for e in events if e.msg_id in ("iSM31074", "iSM31281")]
    assert len(gone) == 1 and "bv002" in gone[0].text and gone[0].msg_id == "iSM31281"


def _deletion_events(events: list, sv: str) -> list:
    return [e for e in events if e.msg_id in ("iSM31074", "iSM31281") and sv in e.text]


@pytest.mark.parametrize("op_before", [False, True], ids=["after-monitor", "after-create"])
def test_an_sra_full_deletion_is_logged_exactly_once(lab: Lab, op_before: bool) -> None:
    """SRA full (A6) deletes a generation: one event says so (the array's iSM31281), whether the
    manager last looked at the BV or last created a snapshot on it. Before the fix: twice after a
    look (the array's event and the manager's own iSM31074)."""
    biz = lab.business01
    with ArrayClient(lab.array.target, ClientTLS.from_folder(lab.lab_dir / "pki", "business01")) as disk:
        biz.route("bv002", create=apb.CreateRequest(bv="bv002", cyclic=True))
        disk.write("bv002", 0, b"\x01" * 65536)
        if op_before:
            lab.admin.monitor()  # the baseline, then the manager's own operation on the BV
        sv = biz.route("bv002", create=apb.CreateRequest(bv="bv002", cyclic=True)).generation.sv
        if not op_before:
            lab.admin.monitor()
        start = lab.admin.events()[-1].seq
        lab.admin.inject_fault("sra_full", "Pool2")
        try:
            disk.write("bv002", 0, b"\x02" * 65536)  # needs the SRA: the generation goes
        finally:
            lab.admin.clear_fault("sra_full", "Pool2")
    biz.route("bv002", query=apb.QueryRequest(bv="bv002"))  # a routed look sees it gone first
    lab.admin.monitor(ARRAY)
    lab.admin.monitor(ARRAY)  # a second look adds nothing
    events = lab.admin.events(after_seq=start)
    gone = _deletion_events(events, sv)
    assert len(gone) == 1, [(e.msg_id, e.text) for e in events]
    assert "bv002" in gone[0].text and ARRAY in gone[0].text


def test_a_deletion_at_the_array_just_before_a_manager_operation_is_logged(lab: Lab) -> None:
    """A generation deleted at the array itself (not through the manager), then a snapshot created
    through the manager on the same BV: the deletion is still noticed, once. Before the fix the
    manager's create dropped its baseline of the BV (forget()) and the deletion was never logged."""
    biz = lab.business01
    for _ in range(2):  # both SVs of bv001 hold a generation
        biz.route("bv001", create=apb.CreateRequest(bv="bv001", cyclic=True))
    lab.admin.monitor(ARRAY)  # the baseline
    q = biz.route("bv001", query=apb.QueryRequest(bv="bv001")).query
    newest, oldest = [g.sv for g in q.generations if g.state == "snap/active"]
    with ArrayClient(lab.array.target, ClientTLS.from_folder(lab.lab_dir / "pki", "admin")) as direct:
        direct.delete("bv001", newest)
    start = lab.admin.events()[-1].seq
    biz.route("bv001", create=apb.CreateRequest(bv="bv001", sv=_sv(oldest)))  # refreshes the other SV
    lab.admin.monitor(ARRAY)
    lab.admin.monitor(ARRAY)
    events = lab.admin.events(after_seq=start)
    gone = [e for e in events if e.msg_id == "iSM31074"]
    assert len(gone) == 1 and newest in gone[0].text, [(e.msg_id, e.text) for e in events]


def test_daemon_survives_bad_requests(lab: Lab) -> None:
    biz = lab.business01
    refused(C.INVALID_ARGUMENT, "iSM19001", biz.route, "bv001")  # names no operation
    refused(C.INVALID_ARGUMENT, "iSM19001", biz.route, "", query=apb.QueryRequest(bv="bv001"))
    refused(C.NOT_FOUND, "iSM31064", biz.route, "bv001", array="nosuch", query=apb.QueryRequest(bv="bv001"))
    refused(C.INVALID_ARGUMENT, "iSM19001", biz.enrol, "janitor")
    refused(C.INVALID_ARGUMENT, None, lab.admin.configure)  # empty ConfigRequest
    refused(
        C.NOT_FOUND,
        "iSM31006",
        lab.admin.configure,
        assign_access=apb.AssignAccess(ld="bv001", port="NO_SUCH_PORT"),
    )
    refused(C.INVALID_ARGUMENT, "iSM19001", lab.admin.inject_fault, "meteor", "bv001")
    # Bytes that are no ControlRequest at all.
    raw = biz.channel.unary_unary("/snaplab.v1.Manager/Route")
    with pytest.raises(grpc.RpcError):
        raw(b"\xff\xff\xff\xff", timeout=5)
    with make_channel(lab.manager.target, ClientTLS.from_folder(lab.lab_dir / "pki", "admin")) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert lab.manager.running and biz.route("bv001", query=apb.QueryRequest(bv="bv001")).query.bv == "bv001"


def test_console_views_and_errors(lab: Lab) -> None:
    out, err, code = lab.console("iSMview", "-d")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "--- Disk Array List ---"
    assert lines[1] == "Product ID        Disk Array Name                   Resource State  Monitoring"
    assert lines[2].split() == ["D1-10", ARRAY, "ready", "running"]
    assert lines[2].index(ARRAY) == 18 and lines[2].index("ready") == 52

    out, _, code = lab.console("iSMview", "-all", ARRAY)
    assert code == 0
    assert "--- Pool List ---" in out and "--- Logical Disk List ---" in out and "--- License List ---" in out
    assert any(line.split()[:4] == ["0038h", "lv001", "LV", "WN"] for line in out.splitlines())
    assert any(line.split()[:3] == ["0001h", "Pool1", "dynamic"] for line in out.splitlines())

    out, _, code = lab.console("iSMview", "-event", "-limit", "3")
    assert code == 0 and len(out.splitlines()) == 3 and " : iSM31078 : " in out.splitlines()[0]

    out, err, code = lab.console(
        "iSMcfg",
        "poolbind",
        "-poolnumber",
        "1",
        "-poolname",
        "Pool1",
        "-pooltype",
        "dynamic",
        "-capacity",
        "1GB",
    )
    assert (out, code) == ("", 1) and err.startswith("iSMcfg:Error: iSM19004: ")
    out, err, code = lab.console("iSMcfg", "lvunbind", "-ldname", "bv001")
    assert code == 1 and err.startswith("iSMcfg:Error: iSM19022: ")
    out, err, code = lab.console("iSMcfg", "generationadd", "-bvname")
    assert code == 1 and err.startswith("iSMcfg:Error: iSM11100: ")
    out, err, code = lab.console("iSMview", "-all", "NoSuchArray")
    assert code == 1 and err.startswith("iSMview:Error: iSM31064: ")
    out, err, code = run_console(["iSMview", "-d"], lab.root / "nolab")
    assert code == 1 and err.startswith("iSMview:Error: iSM31067: ")

    # The installed console script, with the lab from SNAPLAB_LAB.
    script = Path(sys.executable).with_name("iSMview")
    argv = (
        [str(script)]
        if script.exists()
        else [
            sys.executable,
            "-c",
            "import sys; from snaplab.manager.console import main_view; sys.exit(main_view())",
        ]
    )
    done = subprocess.run(
        [*argv, "-d"],
        check=False,
        env={**os.environ, "SNAPLAB_LAB": str(lab.lab_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=lab.root,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split()[1] == ARRAY


def test_manager_stops_gracefully_with_a_watch_open(tmp_path: Path, lab: Lab) -> None:
    """SIGTERM ends open Watch streams and exits 0 quickly; the event log survives the restart."""
    certs = lab.lab_dir / "pki"
    with ManagerProcess(tmp_path / "m2", certs=certs, arrays={ARRAY: lab.array.target}) as m2:
        admin = m2.client("admin")
        stream = admin.watch()
        first = next(iter(stream))
        assert first.msg_id == "iSM31078"
        t0 = time.monotonic()
        assert m2.stop() == 0
        assert time.monotonic() - t0 < 4
        stream.cancel()
        admin.close()
        m2.start()
        with m2.client("admin") as admin:
            ops = [e.operation for e in admin.events()]
        assert ops[:3] == ["start", "stop", "start"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_array_that_does_not_answer(tmp_path: Path, lab: Lab) -> None:
    """Several arrays, one of them down: monitoring says so, routing still finds the LD's array."""
    ghost = f"127.0.0.1:{_free_port()}"
    certs = lab.lab_dir / "pki"
    with (
        ManagerProcess(tmp_path / "m3", certs=certs, arrays={ARRAY: lab.array.target, "Ghost": ghost}) as m3,
        m3.client("admin") as adm,
        m3.client("business01") as biz,
    ):
        mon = adm.monitor()
        assert [(a.state.name, a.monitoring) for a in mon.arrays] == [
            (ARRAY, "running"),
            ("Ghost", "stopped"),
        ]
        assert [a.resource_state for a in mon.arrays] == ["ready", "unknown"]
        reply = biz.enrol("business", wwns=[WWN["business01"]])  # the array that answers registers it
        assert [a.name for a in reply.arrays] == [ARRAY, "Ghost"]
        q = apb.QueryRequest(bv="bv001")
        assert biz.route("bv001", query=q).query.bv == "bv001"  # no array named: the one that has bv001
        assert biz.route("bv001", array=ARRAY, query=q).query.bv == "bv001"
        refused(C.UNAVAILABLE, "iSM31065", biz.route, "bv001", array="Ghost", query=q)
        refused(
            C.UNAVAILABLE, "iSM31065", adm.configure, "Ghost", set_licence=apb.SetLicence(product="Version3")
        )
        events = adm.events()
        assert any(
            e.msg_id == "iSM31065" and e.classification == "WARNING" and e.operation == "monitor"
            for e in events
        )
        out, _, code = run_console(["iSMview", "-d"], lab.lab_dir, target=m3.target)
        assert code == 0 and out.splitlines()[3].split() == ["D1-10", "Ghost", "unknown", "stopped"]


def test_routing_look_ups_survive_the_array_restarting(tmp_path: Path, lab: Lab) -> None:
    """Query and LinkInfoOf go over one Array.Lookup stream: the array stopping ends it at once,
    the manager answers iSM31065 while the array is away and reopens the stream when it is back."""
    certs = lab.lab_dir / "pki"
    port = _free_port()
    array = ArrayProcess(tmp_path / "a", certs=certs, name="Kobe", listen=f"127.0.0.1:{port}").start()
    try:
        with array.client("admin") as a:
            a.set_licence("DynamicSnapVolume", 1 << 40)
            a.set_licence("AccessControl")
            a.add_port(0, 0, "P0")
            a.bind_pool(0, "Pool0", "basic", 64 * MiB)
            a.bind_pool(1, "Pool1", "dynamic", 64 * MiB)
            a.build_sra(1, 4 * MiB, sdv_name="SDVK")
            a.bind_ld("bvk", 4 * MiB, 0, "WN")
            a.add_generations("bvk", 1, 1)
            a.assign_access("bvk", wwn=WWN["business01"])
            a.register_host("business01", wwns=[WWN["business01"]])  # the admin's definition of the host
        with (
            ManagerProcess(tmp_path / "m4", certs=certs, arrays={"Kobe": array.target}) as m4,
            m4.client("business01") as biz,
        ):
            biz.enrol("business", wwns=[WWN["business01"]])
            q = apb.QueryRequest(bv="bvk")
            assert biz.route("bvk", query=q).query.bv == "bvk"
            assert biz.route("bvk", linkinfo=apb.VolumeRef(name="bvk")).linkinfo.state == "unlink"
            t0 = time.monotonic()
            assert array.stop() == 0
            assert time.monotonic() - t0 < 3  # the manager's open Lookup stream does not hold the drain
            refused(C.UNAVAILABLE, "iSM31065", biz.route, "bvk", query=q)
            array.start()
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert biz.route("bvk", query=q).query.bv == "bvk"
                    break
                except SnapLabClientError as exc:
                    assert exc.msg_id == "iSM31065" and time.monotonic() < deadline, exc
                    time.sleep(0.2)
            for _ in range(5):  # once back, every look-up is answered
                assert biz.route("bvk", query=q).query.bv == "bvk"
    finally:
        array.stop()


def test_look_ups_fall_back_to_the_unary_rpcs(tmp_path: Path) -> None:
    """An array without Array.Lookup (or whose stream broke) still answers: over Query / LinkInfoOf,
    with their refusals relayed as they come."""
    import asyncio

    from snaplab.manager.arrays import ArrayLink

    from snaplab.common.errors import E
    from snaplab.common.rpc import abort_with_aio
    from snaplab.v1 import array_pb2_grpc

    class OldArray(array_pb2_grpc.ArrayServicer):  # Lookup left UNIMPLEMENTED
        def __init__(self) -> None:
            self.calls: list[str] = []

        async def Query(self, request: apb.QueryRequest, context: grpc.aio.ServicerContext) -> apb.QueryReply:
            self.calls.append(f"Query {request.bv}")
            if request.bv != "bv1":
                await abort_with_aio(context, SnapLabError(E.NOT_FOUND, name=request.bv))
            return apb.QueryReply(bv="bv1")

        async def LinkInfoOf(self, request: apb.VolumeRef, context: grpc.aio.ServicerContext) -> apb.LinkInfo:
            self.calls.append(f"LinkInfoOf {request.name}")
            return apb.LinkInfo(volume=request.name, state="unlink")

    async def scenario() -> list[str]:
        old = OldArray()
        server = grpc.aio.server()
        array_pb2_grpc.add_ArrayServicer_to_server(old, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        link = ArrayLink("Old", f"127.0.0.1:{port}", None)
        try:
            assert (await link.call("Query", apb.QueryRequest(bv="bv1"), 5)).bv == "bv1"
            assert (await link.call("LinkInfoOf", apb.VolumeRef(name="lv1"), 5)).state == "unlink"
            with pytest.raises(SnapLabClientError) as info:
                await link.call("Query", apb.QueryRequest(bv="bv9"), 5)
            assert (info.value.code, info.value.msg_id) == (C.NOT_FOUND, "iSM19003")
            return old.calls
        finally:
            await link.close()
            await server.stop(0)

    assert asyncio.run(scenario()) == ["Query bv1", "LinkInfoOf lv1", "Query bv9"]


def test_a_changing_operation_outlives_its_caller_and_is_logged(tmp_path: Path) -> None:
    """A caller going away cancels its call, not an operation that changes something: that one ends
    and is logged as before. A look-up or wait (finish=False) is cancelled with its caller."""
    import asyncio

    from snaplab.manager.arrays import ArrayRegistry
    from snaplab.manager.servicer import ManagerServicer

    async def scenario(finish: bool) -> tuple[list[str], bool]:
        state = ManagerState(tmp_path / str(finish))
        servicer = ManagerServicer(state, ArrayRegistry([]))
        release, ran_to_end = asyncio.Event(), []

        async def body() -> str:
            await release.wait()
            ran_to_end.append(True)
            return "made"

        caller = asyncio.ensure_future(
            servicer._logged(
                "admin", "Configure", "x", body, lambda r: ("INFO", "iSM31071", r), finish=finish
            )
        )
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        await asyncio.sleep(0.05)
        try:
            return [f"{e.operation} {e.msg_id} {e.text}" for e in state.events()], bool(ran_to_end)
        finally:
            state.close()

    assert asyncio.run(scenario(True)) == (["Configure iSM31071 made [x]"], True)
    assert asyncio.run(scenario(False)) == ([], False)


def test_definitions_keep_the_configured_cluster_also_in_a_state_from_before(tmp_path: Path) -> None:
    """A host's cluster membership is its definition's (Configure), kept across a restart; a
    manager.db made before definitions had a cluster opens and takes them."""
    import sqlite3

    from snaplab.manager.witness import Witness

    old = sqlite3.connect(tmp_path / "manager.db")
    old.execute("CREATE TABLE host_definitions (array TEXT, name TEXT, wwns TEXT, ports TEXT, platform TEXT,"
                " PRIMARY KEY (array, name))")
    old.execute("INSERT INTO host_definitions VALUES ('A', 'backup01', '[]', '[]', 'windows')")
    old.commit()
    old.close()
    st = ManagerState(tmp_path)
    try:
        assert [(d.name, d.cluster) for d in st.definitions()] == [("backup01", "")]
        st.define_host("A", "business01", wwns=["10:00:00:00:c9:2a:01:01"], ports=["P0"], cluster="DBCLUSTER")
    finally:
        st.close()
    st = ManagerState(tmp_path)
    try:
        assert {d.name: d.cluster for d in st.definitions()} == {"backup01": "", "business01": "DBCLUSTER"}
    finally:
        st.close()
    now = [100.0]
    w = Witness(clock=lambda: now[0])
    assert w.age("DBCLUSTER", "business01") is None  # never heard
    w.beat("DBCLUSTER", "business01")
    now[0] += 2.5
    assert w.age("DBCLUSTER", "business01") == 2.5


def _ld(lab: Lab, name: str) -> apb.Ld:
    """The LD as the array shows it now (not the manager's description, which may be seconds old)."""
    with ArrayClient(lab.array.target, ClientTLS.from_folder(lab.lab_dir / "pki", "admin")) as direct:
        return next(x for x in direct.describe().lds if x.name == name)


def test_rebuilt_lv_keeps_its_access_and_rebuilt_svs_their_numbers(lab: Lab) -> None:
    """The guide's recovery rebuilds an LV (lvunbind + lvbind) and SVs (generationdel +
    generationadd) under their names: each comes back with its LD number, the LV with its access
    control (before: the lowest free number, and no access)."""
    lab.cfg("lvbind", "-bvname", "bv001", "-lvn", "0200h", "-lvname", "lv_rb")
    lab.cfg("accessadd", "-ldname", "lv_rb", "-wwn", WWN["backup01"])
    before = _ld(lab, "lv_rb")
    assert before.number == "0200h" and before.access
    lab.cfg("lvunbind", "-ldname", "lv_rb")
    lab.cfg("lvbind", "-bvname", "bv001", "-lvname", "lv_rb")
    after = _ld(lab, "lv_rb")
    assert (after.number, list(after.access)) == (before.number, list(before.access))

    with ArrayClient(lab.array.target, ClientTLS.from_folder(lab.lab_dir / "pki", "admin")) as direct:
        direct.add_generations("bv001", 1, 1, sv_names=["sv001_rb"], numbers=[0x210])
    assert _ld(lab, "sv001_rb").number == "0210h"
    lab.cfg("generationdel", "-bvname", "bv001", "-count", "1")
    lab.cfg("generationadd", "-bvname", "bv001", "-poolnumber", "1", "-svname", "sv001_rb")
    assert _ld(lab, "sv001_rb").number == "0210h"
    lab.cfg("generationdel", "-bvname", "bv001", "-count", "1")
    lab.cfg("lvunbind", "-ldname", "lv_rb")
