"""Access control end to end (issue acceptance point 2): negative tests through the real processes.

One lab of separate OS processes (`snaplab lab up`): the guide's reference lab, except that the
array does not mark `BACKUP_CV` as a control volume (it is bound as a plain IV LD), so `backup01`
starts without a CV and defines it itself (`iSMvollist -cvdef`, SPEC C3). Commands run as their
own processes through the console scripts; raw gRPC calls present the lab's certificates (or
none, or another CA's) to the array and the manager.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from snaplab.san.array_client import ArrayClient
from snaplab.deploy.lab import default_lab_file
from snaplab.manager.client import ManagerClient

from snaplab.common import pki
from snaplab.common.rpc import TEST_IDENTITY_KEY, ClientTLS, SnapLabClientError, call_error, make_channel
from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import array_pb2_grpc, manager_pb2, manager_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, run_on

pytestmark = pytest.mark.timeout(120)

ARRAY = "Tokyo_Customer_DataBase"
HOSTS = ("business01", "business02", "backup01", "test01")
# 2.2.1 step 9: the backup server links the newest generation
GUIDE_LINK = "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen"
QUERY_BV = "iSMsc_query -bv bv001 -bvflg ld"
ERROR_LINE = re.compile(r"^(?P<cmd>\w+):Error: (?P<id>iSM\d{5}): (?P<text>.*)$")
SV_LINE = re.compile(
    r"^  (?P<type>\w\w):(?P<sv>\S+)\s+\(\s*(?P<gen>-?\d+|-)\) (?P<state>\S+)\s+\[(?P<time>[^]]+)\] (?P<link>\S+)$"
)

_BACKUP_CV = (
    '{ number = "002ah", name = "BACKUP_CV", format = "WN", capacity = "64MiB", pool = 0, attr = "cv" }'
)
# The backup server's volume list is made (1.6) while lv001 is linked, so it lists lv001; the link is
# made and released by the test server through its own CV, since backup01 has no CV yet.
_SETUP_WITHOUT_BACKUP_CV = """
[[setup]]
host = "test01"
commands = ["iSMvollist -cr", "iSMsc_link -lv lv001 -lvflg ld -sv sv001_01 -svflg ld"]

[[setup]]
host = "backup01"
commands = ["iSMrc_scan", "iSMvollist -cr"]

[[setup]]
host = "test01"
commands = ["iSMsc_unlink -lv lv001 -lvflg ld"]
"""


def _lab_file_without_backup_cv(folder: Path) -> Path:
    """The reference lab with BACKUP_CV bound as an IV LD (CV attribute off), so no host registers it."""
    text = default_lab_file().read_text()
    assert _BACKUP_CV in text, "the reference lab's BACKUP_CV line changed; update this test"
    text = text.replace(_BACKUP_CV, _BACKUP_CV.replace('attr = "cv"', 'attr = "iv"'))
    first_backup_setup = text.index('[[setup]]\nhost = "backup01"')
    path = folder / "lab_without_backup_cv.toml"
    path.write_text(text[:first_backup_setup] + _SETUP_WITHOUT_BACKUP_CV)
    return path


class Lab:
    """The module's running lab: labtools' ``LabRun`` plus what ``runtime.json`` says runs where."""

    def __init__(self, run: LabRun) -> None:
        self.run = run
        self.folder = run.folder
        self.runtime = run.runtime() or {}
        self.pki = self.folder / "pki"

    def cmd(self, host: str, line: str) -> Ran:
        """One command line on ``host``, as its own process (console script, SNAPLAB_HOST/SNAPLAB_LAB)."""
        return run_on(self.folder, host, line, cwd=self.run.root)

    def status(self) -> Any:
        return self.run("lab", "status")

    def array_target(self) -> str:
        return self.runtime["arrays"][ARRAY]["target"]

    @property
    def manager_target(self) -> str:
        return self.runtime["manager"]["target"]

    def tls(self, principal: str) -> ClientTLS:
        return ClientTLS.from_folder(self.pki, principal)

    def array_client(self, principal: str) -> ArrayClient:
        return ArrayClient(self.array_target(), self.tls(principal), timeout=30)

    def manager_client(self, principal: str) -> ManagerClient:
        return ManagerClient(self.manager_target, self.tls(principal), timeout=30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    run = LabRun(tmp_path_factory.mktemp("access"))
    try:
        up = run("lab", "up", str(_lab_file_without_backup_cv(run.root)))
        assert up.returncode == 0, up.stdout + up.stderr
        yield Lab(run)
    finally:
        run.teardown()


# -- helpers ---------------------------------------------------------------------------------------


def ok(ran: Ran) -> Ran:
    assert ran.code == 0, ran
    return ran


def refused(ran: Ran, command: str, msg_id: str, name: str) -> None:
    """A refusal as the guide's scripts see it: exit status non-zero, no success line, one error line."""
    assert ran.code != 0, ran
    assert ":Info:" not in ran.stdout, ran
    match = ERROR_LINE.match(ran.stderr.strip())
    assert match, ran
    assert (match["cmd"], match["id"]) == (command, msg_id), ran
    assert match["text"].endswith(f"({name})"), ran


def denied(
    code: grpc.StatusCode, msg_id: str, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> SnapLabClientError:
    """``call(*args, **kwargs)`` is refused with ``code`` and the iSM id ``msg_id``."""
    with pytest.raises(SnapLabClientError) as info:
        call(*args, **kwargs)
    assert (info.value.code, info.value.msg_id) == (code, msg_id), info.value
    return info.value


def sv_links(ran: Ran) -> dict[str, str]:
    """SV -> link status from an `iSMsc_query` summary (the last column of each SV line)."""
    return {m["sv"]: m["link"] for m in map(SV_LINE.match, ok(ran).lines) if m}


def lv001_state(lab: Lab) -> str:
    with lab.array_client("admin") as admin:
        return admin.linkinfo("lv001").state


def events_after(lab: Lab, seq: int) -> list[manager_pb2.Event]:
    """The events callers caused after ``seq`` (not the state changes the manager itself notices)."""
    with lab.manager_client("admin") as admin:
        return [e for e in admin.events(after_seq=seq) if e.source != "manager"]


def last_seq(lab: Lab) -> int:
    with lab.manager_client("admin") as admin:
        events = admin.events()
    return events[-1].seq if events else 0


def guide_link_request() -> apb.LinkRequest:
    return apb.LinkRequest(lv="lv001", sv=apb.SvRef(sv="bv001.-1", svflg="ld.relgen"))


# -- business01 cannot link lv001 -------------------------------------------------------------------


def test_business_server_cannot_link_the_backup_servers_lv(lab: Lab) -> None:
    before = lab.cmd("business01", f"{QUERY_BV} -summary")
    links = sv_links(before)
    assert links and set(links.values()) == {"unlink"}, before.stdout

    proc = lab.cmd("business01", GUIDE_LINK)
    # lv001 is not in business01's volume list (access control does not give it the LV) and business01
    # has no CV through which an unlisted LD could go: refused on the host, before any control I/O.
    refused(proc, "iSMsc_link", "iSM11703", "lv001")

    after = lab.cmd("business01", f"{QUERY_BV} -summary")
    assert after.stdout == before.stdout
    assert lv001_state(lab) == "unlink"


def test_route_with_business01_certificate_naming_lv001_is_denied(lab: Lab) -> None:
    seq = last_seq(lab)
    with lab.manager_client("business01") as biz:
        # through the BV it reaches: bv001 is not the volume a link acts on (rule 6)
        e = denied(
            grpc.StatusCode.PERMISSION_DENIED, "iSM31062", biz.route, "bv001", link=guide_link_request()
        )
        assert "bv001 for lv001" in e.text
        # through lv001 itself, or another server's CV: access control does not give it to business01
        for via in ("lv001", "BACKUP_CV"):
            e = denied(
                grpc.StatusCode.PERMISSION_DENIED, "iSM31042", biz.route, via, link=guide_link_request()
            )
            assert e.text.endswith(f"({via})")
        denied(
            grpc.StatusCode.PERMISSION_DENIED,
            "iSM31042",
            biz.route,
            "lv001",
            unlink=apb.UnlinkRequest(lv="lv001"),
        )
    assert lv001_state(lab) == "unlink"
    logged = [(e.source, e.classification, e.operation, e.msg_id) for e in events_after(lab, seq)]
    assert logged == [
        ("business01", "ERROR", "iSMsc_link", "iSM31062"),
        ("business01", "ERROR", "iSMsc_link", "iSM31042"),
        ("business01", "ERROR", "iSMsc_link", "iSM31042"),
        ("business01", "ERROR", "iSMsc_unlink", "iSM31042"),
    ]


# -- backup01 and its CV ----------------------------------------------------------------------------


def _control_definition(lab: Lab) -> list[str]:
    """The LD names `iSMvollist -a` of backup01 marks `control`."""
    shown = ok(lab.cmd("backup01", "iSMvollist -a")).lines
    header = next(i for i, line in enumerate(shown) if line.startswith("Disk Array Name"))
    return [line.split()[2] for line in shown[header + 1 :] if " control " in f" {line} "]


def test_backup_server_reaches_bv001_only_once_its_cv_is_defined(lab: Lab) -> None:
    assert _control_definition(lab) == []

    # Without a CV, on the host: bv001 is not in its volume list and there is no CV to carry an unlisted
    # name (iSM11703); the link would go through lv001 itself, which is unlinked, so Not Ready (iSM31063).
    refused(lab.cmd("backup01", QUERY_BV), "iSMsc_query", "iSM11703", "bv001")
    refused(lab.cmd("backup01", GUIDE_LINK), "iSMsc_link", "iSM31063", "lv001")
    # The manager holds the same line for backup01's certificate: its Not Ready LV carries no control
    # I/O (iSM31063), an LV is not the BV a query acts on (iSM31062), and it does not reach the BV.
    seq = last_seq(lab)
    with lab.manager_client("backup01") as bak:
        for code, msg_id, via, op in (
            (grpc.StatusCode.FAILED_PRECONDITION, "iSM31063", "lv001", {"link": guide_link_request()}),
            (grpc.StatusCode.PERMISSION_DENIED, "iSM31062", "lv001", {"query": apb.QueryRequest(bv="bv001")}),
            (grpc.StatusCode.PERMISSION_DENIED, "iSM31042", "bv001", {"query": apb.QueryRequest(bv="bv001")}),
        ):
            denied(code, msg_id, bak.route, via, **op)
    logged = [(e.source, e.classification, e.msg_id) for e in events_after(lab, seq)]
    assert logged == [("backup01", "ERROR", i) for i in ("iSM31063", "iSM31062", "iSM31042")]
    assert lv001_state(lab) == "unlink"

    # Define the CV (C3: an IV LD; the array does not mark it) and recreate the volume list (1.6).
    defined = ok(lab.cmd("backup01", "iSMvollist -cvdef BACKUP_CV"))
    assert "iSM11708" in defined.stdout and "(BACKUP_CV)" in defined.stdout
    assert (
        "iSM11701: Volume list is created successfully." in ok(lab.cmd("backup01", "iSMvollist -cr")).stdout
    )
    assert _control_definition(lab) == ["BACKUP_CV"]
    try:
        assert sv_links(lab.cmd("backup01", QUERY_BV))["sv001_01"] == "unlink"
        linked = ok(lab.cmd("backup01", GUIDE_LINK))
        assert linked.stdout.startswith("iSMsc_link:Info: iSM20020: iSMsc_link has normally terminated.\n")
        assert lv001_state(lab) == "link"
        assert sv_links(lab.cmd("backup01", QUERY_BV))["sv001_01"] == "link"
        # lv001 is Ready now, with a volume its list (made while it was Not Ready) lacks: recreate the
        # list while linked (1.7 step 8) before the unlink, which checks the LV against it.
        ok(lab.cmd("backup01", "iSMvollist -cr"))
        ok(lab.cmd("backup01", "iSMsc_unlink -lv lv001 -lvflg ld"))
        assert lv001_state(lab) == "unlink"
    finally:
        # Leave backup01 as it was: without a CV it cannot reach bv001 again.
        ok(lab.cmd("backup01", "iSMvollist -cvdel BACKUP_CV"))
        ok(lab.cmd("backup01", "iSMvollist -cr"))
    assert _control_definition(lab) == []
    refused(lab.cmd("backup01", QUERY_BV), "iSMsc_query", "iSM11703", "bv001")


# -- no host reads an SV ------------------------------------------------------------------------------


def test_no_host_reads_or_sees_an_sv(lab: Lab) -> None:
    with lab.array_client("admin") as admin:
        lds = {ld.name: ld.type for ld in admin.describe().lds}
    never = sorted(n for n, t in lds.items() if t in ("SV", "SDV"))  # A5: never assigned to a server
    assert {"sv001_01", "sv001_07", "DB_DATA_SV", "SDV1"} <= set(never)
    for host in HOSTS:
        with lab.array_client(host) as client:
            seen = {ld.name: ld.type for ld in client.disks()}
            assert seen and not {"SV", "SDV"} & set(seen.values()) and not set(never) & set(seen), (
                host,
                seen,
            )
            for name in never:
                e = denied(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", client.read, name, 0, 512)
                assert e.text.endswith(f"({name})")
                denied(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", client.write, name, 0, b"\0" * 512)
    # The certificates work: each host reads what access control gives it.
    with lab.array_client("business01") as biz:
        assert len(biz.read("bv001", 0, 512)) == 512

    # Even while lv001 is linked to sv001_01, the backup server reads the SV only through the LV.
    with lab.manager_client("admin") as admin:
        admin.snapshot(link=apb.LinkRequest(lv="lv001", sv=apb.SvRef(sv="sv001_01", svflg="ld")))
    try:
        with lab.array_client("backup01") as bak:
            assert len(bak.read("lv001", 0, 512)) == 512
            denied(grpc.StatusCode.PERMISSION_DENIED, "iSM31042", bak.read, "sv001_01", 0, 512)
            assert "sv001_01" not in {ld.name for ld in bak.disks()}
    finally:
        with lab.manager_client("admin") as admin:
            admin.snapshot(unlink=apb.UnlinkRequest(lv="lv001"))
    assert lv001_state(lab) == "unlink"


# -- the certificate, not the request, says who the host is ------------------------------------------


def raw_denied(
    code: grpc.StatusCode, msg_id: str, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """A raw stub call (with the metadata the test chooses) is refused with ``code`` and ``msg_id``."""
    with pytest.raises(grpc.RpcError) as info:
        reply = call(*args, **kwargs)
        if isinstance(reply, Iterator):  # a response stream fails when read
            list(reply)
    err = call_error(info.value)
    assert (err.code, err.msg_id) == (code, msg_id), err


def test_another_hosts_certificate_cannot_act_as_that_host(lab: Lab) -> None:
    denied_ = grpc.StatusCode.PERMISSION_DENIED
    request = manager_pb2.ControlRequest(array=ARRAY, via="BACKUP_CV", link=guide_link_request())
    as_backup = ((TEST_IDENTITY_KEY, "backup01/host"),)
    as_admin = ((TEST_IDENTITY_KEY, "admin/admin"),)
    seq = last_seq(lab)

    # The identical request with business01's certificate, with or without a header naming backup01,
    # is business01's: BACKUP_CV is not its LD. Nor does a header make it admin.
    with lab.manager_client("business01") as biz:
        for metadata in (None, as_backup):
            raw_denied(denied_, "iSM31042", biz.stub.Route, request, metadata=metadata, timeout=10)
        raw_denied(denied_, "iSM31044", biz.stub.Snapshot, request, metadata=as_admin, timeout=10)
        # nor can it enrol with backup01's paths; neither host's registration changes
        e = denied(
            grpc.StatusCode.ALREADY_EXISTS,
            "iSM19004",
            biz.enrol,
            "backup",
            wwns=["10:00:00:00:c9:2a:03:01"],
            ports=["BACKUP_PRIMARY"],
        )
        assert "backup01" in e.text
    assert lv001_state(lab) == "unlink"
    # With backup01's certificate the identical request is allowed.
    with lab.manager_client("backup01") as bak:
        reply = bak.stub.Route(request, timeout=30)
        assert (reply.linkinfo.volume, reply.linkinfo.state) == ("lv001", "link")
        assert reply.linkinfo.links[0].target == "sv001_01"
        bak.route("BACKUP_CV", unlink=apb.UnlinkRequest(lv="lv001"))
    assert lv001_state(lab) == "unlink"

    # The event log names the certificate's host for every call, whatever the header said.
    logged = [(e.source, e.operation, e.msg_id) for e in events_after(lab, seq)]
    assert logged == [
        ("business01", "iSMsc_link", "iSM31042"),
        ("business01", "iSMsc_link", "iSM31042"),
        ("business01", "iSMsc_link", "iSM31044"),
        ("business01", "Enrol", "iSM19004"),
        ("backup01", "iSMsc_link", "iSM20020"),
        ("backup01", "iSMsc_unlink", "iSM20030"),
    ]
    with lab.manager_client("admin") as admin:
        hosts = {h.name: (h.role, sorted(h.wwns), sorted(h.ports)) for h in admin.monitor().hosts}
    assert hosts["business01"] == (
        "business",
        ["10:00:00:00:c9:2a:01:01", "10:00:00:00:c9:2a:01:02"],
        ["DB_PRIMARY", "DB_SECONDARY"],
    )
    assert hosts["backup01"] == (
        "backup",
        ["10:00:00:00:c9:2a:03:01", "10:00:00:00:c9:2a:03:02"],
        ["BACKUP_PRIMARY", "BACKUP_SECONDARY"],
    )

    # The array judges block I/O by the certificate too: while lv001 is linked backup01 reads it and
    # business01 does not, header or not; the header neither widens Disks nor grants admin.
    with lab.manager_client("admin") as admin:
        admin.snapshot(link=apb.LinkRequest(lv="lv001", sv=apb.SvRef(sv="sv001_01", svflg="ld")))
    try:
        with lab.array_client("backup01") as bak:
            assert len(bak.read("lv001", 0, 512)) == 512
        with lab.array_client("business01") as biz:
            own = [ld.name for ld in biz.disks()]
            stub = biz.stub  # raw calls on business01's mTLS channel, with headers of our choosing
            read = apb.ReadRequest(ld="lv001", offset=0, length=512)
            for metadata in (None, as_backup):
                raw_denied(denied_, "iSM31042", stub.Read, read, metadata=metadata, timeout=10)
                disks = stub.Disks(apb.DisksRequest(), metadata=metadata, timeout=10)
                assert [ld.name for ld in disks.lds] == own and "lv001" not in own
            for metadata in (as_backup, as_admin):
                raw_denied(
                    denied_, "iSM31044", stub.Disks, apb.DisksRequest(host="backup01"), metadata=metadata
                )
            hijack = apb.ConfigRequest(set_array_name=apb.SetArrayName(name="Hijacked"))
            raw_denied(denied_, "iSM31044", stub.Configure, hijack, metadata=as_admin, timeout=10)
            raw_denied(
                denied_,
                "iSM31044",
                stub.InjectFault,
                apb.FaultRequest(kind="path", target="backup01"),
                metadata=as_admin,
            )
    finally:
        with lab.manager_client("admin") as admin:
            admin.snapshot(unlink=apb.UnlinkRequest(lv="lv001"))
    with lab.array_client("admin") as admin:
        state = admin.describe()
    assert state.name == ARRAY and not state.faults


# -- no certificate, or another CA's -----------------------------------------------------------------


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def test_clients_without_a_lab_certificate_are_refused(lab: Lab) -> None:
    ca_pem = (lab.pki / "ca.crt").read_bytes()
    other_ca, other_key = pki.make_ca("SnapLab Lab CA")  # same name, different key
    strangers = {
        name: ClientTLS(*pki.issue(other_ca, other_key, name, role), ca_pem)
        for name, role in (("business01", "host"), ("backup01", "host"), ("admin", "admin"))
    }
    targets = {"array": lab.array_target(), "manager": lab.manager_target}
    seq = last_seq(lab)

    for kind, target in targets.items():
        calls: dict[str, Callable[[grpc.Channel], Any]] = {
            "health": _health,
            "service": (
                (lambda ch: array_pb2_grpc.ArrayStub(ch).Describe(apb.DescribeRequest(), timeout=10))
                if kind == "array"
                else (
                    lambda ch: manager_pb2_grpc.ManagerStub(ch).Monitor(
                        manager_pb2.MonitorRequest(), timeout=10
                    )
                )
            ),
        }
        channels = {
            "no certificate": grpc.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates=ca_pem)
            ),
            "plaintext": grpc.insecure_channel(target),
            **{f"{name} of another CA": make_channel(target, tls) for name, tls in strangers.items()},
        }
        for label, channel in channels.items():
            try:
                for what, call in calls.items():
                    with pytest.raises(grpc.RpcError) as info:
                        call(channel)
                    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, (kind, label, what, info.value)
            finally:
                channel.close()

    # another CA's certificates, used by the clients the project ships
    with ArrayClient(lab.array_target(), strangers["business01"], timeout=10) as client:
        with pytest.raises(SnapLabClientError) as err:
            client.read("bv001", 0, 512)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
    with make_channel(lab.manager_target, strangers["backup01"]) as channel:
        with pytest.raises(grpc.RpcError) as info:
            manager_pb2_grpc.ManagerStub(channel).Route(
                manager_pb2.ControlRequest(via="BACKUP_CV", link=guide_link_request()), timeout=10
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert lv001_state(lab) == "unlink"
    assert events_after(lab, seq) == []  # refused at the handshake: no call reached a servicer

    # The daemons are unharmed: health SERVING with a lab certificate, the lab status healthy.
    for target in targets.values():
        with make_channel(target, lab.tls("admin")) as channel:
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    status = lab.status()
    assert status.returncode == 0, status.stdout + status.stderr
    assert (
        f"{len(lab.runtime['processes'])} of {len(lab.runtime['processes'])} processes healthy"
        in status.stdout
    )
    for log in ("manager.log", f"array-{ARRAY}.log"):
        assert "Traceback" not in (lab.folder / "run" / log).read_text(), log
