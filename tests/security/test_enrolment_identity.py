"""Issue 8 item 1: a host's WWNs and cabling are the lab's definition of it, never what it claims (SPEC B2).

The attacks of the issue, through the real daemons of the reference lab: business01 enrolling with an
extra port (BACKUP_PRIMARY, the backup server's cabling) used to be registered with it, see 14 disks
and read lv001 through BACKUP_CV; test01 claiming a WWN that access control names but no host has
enrolled used to get that WWN's access. Both are refused with iSM31069, logged (ERROR event, one
manager.log line), and change nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from snaplab.manager.client import ManagerClient
from snaplab.manager.console import run_console

from snaplab.common import pki
from snaplab.common.rpc import ClientTLS, SnapLabClientError
from snaplab.v1 import array_pb2 as apb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools: see its docstring
from labtools import RefLab

pytestmark = pytest.mark.timeout(180)

BIZ_WWNS = ["10:00:00:00:c9:2a:01:01", "10:00:00:00:c9:2a:01:02"]
BIZ_PORTS = ["DB_PRIMARY", "DB_SECONDARY"]
BIZ_DISKS = ["DB_DATA_BV", "DB_REDO1_BV", "DB_REDO2_BV", "DB_CTL_BV", "DB_ARCHIVE_BV", "bv001"]
TEST_WWNS = ["10:00:00:00:c9:2a:04:01", "10:00:00:00:c9:2a:04:02"]
FUTURE_WWN = "10:00:00:00:c9:2a:05:01"  # an HBA access control names, of a host not enrolled yet


def refused(code: grpc.StatusCode, msg_id: str, call, *args, **kwargs) -> SnapLabClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(SnapLabClientError) as info:
        call(*args, **kwargs)
    assert (info.value.code, info.value.msg_id) == (code, msg_id), info.value
    return info.value


def hosts(lab: RefLab) -> dict[str, tuple[list[str], list[str]]]:
    with lab.manager("admin") as admin:
        return {h.name: (sorted(h.wwns), sorted(h.ports)) for h in admin.monitor().hosts}


def disks(lab: RefLab, host: str) -> list[str]:
    with lab.array(host) as a:
        return [ld.name for ld in a.disks()]


def test_business01_enrolling_with_the_backup_servers_port_is_refused(ref_lab: RefLab) -> None:
    lab = ref_lab
    before = hosts(lab)
    seq = lab.last_seq()
    with lab.manager("business01") as biz:
        err = refused(
            grpc.StatusCode.PERMISSION_DENIED,
            "iSM31069",
            biz.enrol,
            "business",
            wwns=BIZ_WWNS,
            ports=[*BIZ_PORTS, "BACKUP_PRIMARY"],
            cluster="DBCLUSTER",
            cluster_role="active",
        )
        assert "business01: port BACKUP_PRIMARY is not cabled to it" in err.text
        # Its record, its registration on the array and what it sees are the lab's, as before.
        assert hosts(lab) == before and before["business01"] == (BIZ_WWNS, BIZ_PORTS)
        assert disks(lab, "business01") == BIZ_DISKS
        link = apb.LinkRequest(lv="lv001", sv=apb.SvRef(sv="bv001.-1", svflg="ld.relgen"))
        refused(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", biz.route, "BACKUP_CV", link=link)
    with lab.array("business01") as a:
        refused(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", a.read, "lv001", 0, 512)
    logged = [(e.source, e.classification, e.operation, e.msg_id) for e in lab.events_after(seq)]
    assert logged == [
        ("business01", "ERROR", "Enrol", "iSM31069"),
        ("business01", "ERROR", "iSMsc_link", "iSM31042"),
    ]
    assert "enrolment of business01 refused: iSM31069" in lab.log("manager.log").read_text()
    # The host's own agent, which claims the lab's cabling, still works.
    assert lab.cmd("business01", "iSMsc_query -bv bv001 -bvflg ld").code == 0


def test_test01_claiming_a_wwn_access_control_names_gets_nothing(ref_lab: RefLab) -> None:
    lab = ref_lab
    grant = ["iSMcfg", "accessadd", "-ldname", "DB_DATA_BV", "-wwn", FUTURE_WWN]
    _out, err, code = run_console(grant, lab.folder)
    assert code == 0, err
    try:
        seen = disks(lab, "test01")
        seq = lab.last_seq()
        with lab.manager("test01") as t:
            for claim in ([FUTURE_WWN], [*TEST_WWNS, FUTURE_WWN]):
                e = refused(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "iSM31069",
                    t.enrol,
                    "test",
                    wwns=claim,
                    ports=["TEST_PRIMARY"],
                )
                assert f"WWN {FUTURE_WWN} is not its HBA" in e.text
            q = apb.QueryRequest(bv="DB_DATA_BV")
            refused(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", t.route, "DB_DATA_BV", query=q)
        assert disks(lab, "test01") == seen and "DB_DATA_BV" not in seen
        with lab.array("test01") as a:
            refused(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", a.write, "DB_DATA_BV", 0, b"x" * 512)
        assert hosts(lab)["test01"] == (TEST_WWNS, ["TEST_PRIMARY"])
        logged = [(e.source, e.operation, e.msg_id) for e in lab.events_after(seq)]
        assert logged[:2] == [("test01", "Enrol", "iSM31069")] * 2
    finally:
        run_console(["iSMcfg", "accessdel", "-ldname", "DB_DATA_BV", "-wwn", FUTURE_WWN], lab.folder)


def test_a_host_the_lab_does_not_define_cannot_enrol(ref_lab: RefLab, tmp_path: Path) -> None:
    lab = ref_lab
    certs = tmp_path / "pki"
    certs.mkdir()
    ca = (lab.pki / "ca.crt").read_bytes()
    (certs / "ca.crt").write_bytes(ca)
    pki.write_principal(certs, "intruder01", "host", ca, (lab.pki / "ca.key").read_bytes())
    seq = lab.last_seq()
    with ManagerClient(lab.runtime["manager"]["target"], ClientTLS.from_folder(certs, "intruder01")) as who:
        for claim in ([], [FUTURE_WWN]):
            e = refused(grpc.StatusCode.PERMISSION_DENIED, "iSM31068", who.enrol, "test", wwns=claim)
            assert e.text == "Server is not defined on the management server. (intruder01)"
        refused(
            grpc.StatusCode.PERMISSION_DENIED,
            "iSM31060",
            who.route,
            "lv001",
            query=apb.QueryRequest(bv="bv001"),
        )
    assert "intruder01" not in hosts(lab)
    assert [(e.source, e.msg_id) for e in lab.events_after(seq)][:2] == [("intruder01", "iSM31068")] * 2


def test_an_agent_whose_cabling_differs_from_the_lab_does_not_start(ref_lab: RefLab, tmp_path: Path) -> None:
    lab = ref_lab
    argv = [
        str(Path(sys.executable).parent / "snaplab-agent"),
        "--host", "test01", "--state", str(tmp_path / "state"), "--certs", str(lab.pki),
        "--manager", lab.runtime["manager"]["target"], "--socket", str(tmp_path / "a.sock"),
        "--role", "test", "--wwn", *TEST_WWNS, "--port", "TEST_PRIMARY", "BACKUP_PRIMARY",
    ]  # fmt: skip
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "the manager refused enrolment: iSM31069" in p.stderr and "Traceback" not in p.stderr
    assert hosts(lab)["test01"] == (TEST_WWNS, ["TEST_PRIMARY"])


def test_hosts_are_enrolled_as_the_lab_file_defines_them(ref_lab: RefLab) -> None:
    known = hosts(ref_lab)
    assert known["business01"] == (BIZ_WWNS, BIZ_PORTS)
    assert known["backup01"] == (
        ["10:00:00:00:c9:2a:03:01", "10:00:00:00:c9:2a:03:02"],
        ["BACKUP_PRIMARY", "BACKUP_SECONDARY"],
    )
    with ref_lab.array("admin") as a:
        registered = {h.name: sorted(h.ports) for h in a.describe().hosts}
    assert registered == {h: ports for h, (_w, ports) in known.items()}
