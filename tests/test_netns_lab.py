"""Issue 11, parts 1 and 2: labs on network namespaces (a LAN and a SAN of bridges and veths, every
process its own namespace, addresses of 198.18.0.0/15 only) and cables cut for real (``snaplab link``).

Real processes: ``snaplab lab up --network netns`` of the reference lab, the guide's commands as
their own processes (test_e2e_procedures' steps), probes run inside the hosts' namespaces with
``ip netns exec``. Without namespaces (not root, no ``ip``) the lab tests skip, except under
``CI=true``, where that is a failure. The bad-input checks need no namespaces.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
import test_e2e_procedures as procedures
from labtools import LabRun, file_digests, lab_processes
from snaplab.deploy import netns

VOL = procedures.VOL
SMALL_LAB = """
[lab]
network = "netns"

[[arrays]]
name = "Small_Array"
ports = ["00h/00h P_BIZ", "01h/00h P_BAK"]
pools = [{ number = 0, kind = "basic", capacity = "1GiB" }]
lds = [{ number = "0030h", name = "bv001", format = "WN", capacity = "16MiB", pool = 0 }]
licences = ["AccessControl"]

[[hosts]]
name = "biz01"
role = "business"
ports = ["P_BIZ"]
address = "198.18.7.7"

[[access]]
ld = "bv001"
port = "P_BIZ"
"""


def _no_namespaces() -> str | None:
    return netns.missing_right()


def _require_namespaces() -> None:
    why = _no_namespaces()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and network namespaces are missing: {why}")
    pytest.skip(why)


def _ours(prefix: str) -> dict[str, list[str]]:
    return netns.leftovers(prefix)


def in_ns(ns: str, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` inside namespace ``ns``."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- bad input: one line naming the place, nothing started --------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('ports = ["P_BIZ"]', 'ports = ["P_NOWHERE"]'),
            "hosts[biz01].ports: no array has a port named 'P_NOWHERE' (ports: P_BAK, P_BIZ)",
        ),
        (
            ('address = "198.18.7.7"', 'address = "10.1.2.3"'),
            "hosts[biz01].address: 10.1.2.3 is outside 198.18.0.0/15, the only range a lab's network uses",
        ),
        (
            ('address = "198.18.7.7"', 'address = "198.18.0.2"'),
            "hosts[biz01].address: 198.18.0.2 is already the address of the manager",
        ),
    ],
    ids=["port that does not exist", "address outside the range", "two machines with one address"],
)
def test_bad_lab_files_start_nothing(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    run = LabRun(tmp_path)
    labfile = run.write("lab.toml", SMALL_LAB.replace(*change))
    done = run("lab", "up", str(labfile), "--network", "netns")
    assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
    assert done.stderr == f"snaplab: error: {labfile}:{expected}\n"
    assert not lab_processes(run.folder)
    if netns.ip_command():
        assert _ours(netns.prefix_of(run.folder.resolve())) == {"namespaces": [], "links": []}


def test_two_hosts_with_one_address(tmp_path: Path) -> None:
    run = LabRun(tmp_path)
    second = '\n[[hosts]]\nname = "bak01"\nrole = "backup"\nports = ["P_BAK"]\naddress = "198.18.7.7"\n'
    labfile = run.write("lab.toml", SMALL_LAB + second)
    done = run("lab", "up", str(labfile))
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr
        == f"snaplab: error: {labfile}:hosts[bak01].address: 198.18.7.7 is already the address of host biz01\n"
    )
    assert not lab_processes(run.folder)


def test_no_right_is_one_line(tmp_path: Path) -> None:
    """Without CAP_NET_ADMIN ``--network netns`` says so in one line and starts nothing.

    The command stays root (so it can read an interpreter installed under /root) but runs with
    CAP_NET_ADMIN dropped from its bounding set, so the kernel never grants it after exec.
    """
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and util-linux's setpriv to drop a capability")
    labfile = tmp_path / "lab.toml"
    labfile.write_text(SMALL_LAB)
    done = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-net_admin",
            *procedures_snaplab(),
            "--lab",
            str(tmp_path / "lab"),
            "lab",
            "up",
            str(labfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == (
        "snaplab: error: --network netns: network namespaces need root (CAP_NET_ADMIN); run as root or use "
        "the default network; nothing was started\n"
    )
    assert not (tmp_path / "lab").exists() and not lab_processes(tmp_path / "lab")


def procedures_snaplab() -> list[str]:
    from labtools import snaplab_argv

    return snaplab_argv()


# -- the reference lab on namespaces -------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[procedures.Lab]:
    _require_namespaces()
    root = tmp_path_factory.mktemp("netns")
    the_lab = procedures.Lab(LabRun(root))
    try:
        the_lab.up("--network", "netns")
        yield the_lab
    finally:
        the_lab.close()
        netns.remove(netns_folder(the_lab))


def netns_folder(lab: procedures.Lab) -> netns.LabFolder:  # type: ignore[name-defined]
    from snaplab.deploy.folder import LabFolder

    return LabFolder(lab.folder)


def plan_of(lab: procedures.Lab) -> netns.Plan:
    p = netns.saved(netns_folder(lab))
    assert p is not None
    return p


def test_each_process_in_its_own_namespace(lab: procedures.Lab) -> None:
    rt = lab.run.runtime()
    assert rt is not None and rt["network"]["mode"] == "netns"
    p = plan_of(lab)
    seen = {}
    for proc in rt["processes"]:
        ns = subprocess.run(
            ["ip", "netns", "identify", str(proc["pid"])], capture_output=True, text=True, check=True
        ).stdout.strip()
        kind = "host" if proc["kind"] == "agent" else proc["kind"]
        assert ns == p.machine(kind, proc["name"]).ns, proc
        seen[ns] = proc["name"]
    assert len(seen) == len(rt["processes"]) == 6  # array, manager, four hosts
    assert rt["manager"]["target"] == "198.18.0.2:7444"
    from cryptography import x509

    for m in p.machines:
        assert all(netns.LAB_RANGE.supernet_of(netns.ipaddress.ip_network(a)) for a in m.addresses)
        v6 = subprocess.run(["ip", "-n", m.ns, "-6", "addr", "show"], capture_output=True, text=True, check=True)
        assert v6.stdout.strip() == "", (m.ns, v6.stdout)  # no IPv6, not even link-local
        cert = x509.load_pem_x509_certificate((lab.folder / "pki" / f"{m.name}.crt").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} >= set(m.addresses), m.name


CERT_CHECK = """
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from snaplab.common.rpc import ClientTLS
from snaplab.common.rpc_tls import channel_credentials
tls = ClientTLS.from_folder(sys.argv[1], "backup01")
for target, name in ((sys.argv[2], None), (sys.argv[2], sys.argv[3])):
    opts = [("grpc.ssl_target_name_override", name)] if name else []
    ch = grpc.secure_channel(target, channel_credentials(tls), options=opts)
    try:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        print("served")
    except grpc.RpcError as exc:
        print("refused" if "Hostname Verification" in (exc.details() or "") else exc.details())
"""


def test_certificates_are_checked(lab: procedures.Lab) -> None:
    """From backup01's namespace the array's SAN port is served under its own address; a client that
    expects another machine there (the manager's address) refuses the array's certificate."""
    p = plan_of(lab)
    target = f"{p.ports['BACKUP_PRIMARY']}:{netns.ARRAY_PORT}"
    ran = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            p.host("backup01").ns,
            sys.executable,
            "-c",
            CERT_CHECK,
            str(lab.folder / "pki"),
            target,
            p.manager.lan,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.stdout.split() == ["served", "refused"], ran.stdout + ran.stderr


@pytest.mark.timeout(240)
def test_p3_and_p4_verbatim_with_digests(lab: procedures.Lab) -> None:
    """2.2.1 (P3) then 2.2.2.2 (P4), the guide's commands as their own processes: the tape holds G:'s
    files as they were at the snapshot, and the restore brings them back after a logical failure."""
    g = lab.path("business01", "G:")
    for i in range(3):
        (g / f"customer{i}.dat").write_bytes(os.urandom(200_000 + i))
    expected = file_digests(g)
    procedures.backup_cycle(lab, first=True)
    tape = lab.work / "tape.tar"
    out = lab.work / "from-tape"
    with tarfile.open(tape) as t:
        t.extractall(out, filter="data")
    assert file_digests(out) == expected
    # a logical failure of the business data, then 2.2.2.2 brings the snapshot's files back
    (g / "customer0.dat").write_bytes(b"garbage")
    (g / "customer1.dat").unlink()
    procedures.TestOperateTheReferenceLab.test_p4_restore_after_logical_failure(None, lab)  # type: ignore[arg-type]
    assert file_digests(lab.path("business01", "G:")) == expected


PROBE = """
import socket, sys
def reach(addr, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((addr, port)); return "open"
    except ConnectionRefusedError: return "refused"
    except OSError as e: return e.strerror or type(e).__name__
    finally: s.close()
"""

SWEEP = """
import selectors, socket, errno
def sweep(addr):
    opened, sel = [], selectors.DefaultSelector()
    for start in range(1, 65536, 2000):
        socks = []
        for port in range(start, min(start + 2000, 65536)):
            s = socket.socket(); s.setblocking(False)
            s.connect_ex((addr, port)); sel.register(s, selectors.EVENT_WRITE, port); socks.append(s)
        pending = len(socks)
        while pending:
            events = sel.select(5)
            if not events: raise SystemExit("no answer from " + addr)
            for key, _ in events:
                s = key.fileobj
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0: opened.append(key.data)
                sel.unregister(s); s.close(); pending -= 1
    return opened
"""


def test_isolation(lab: procedures.Lab) -> None:
    """backup01 reaches its own array ports only, and nothing of business01 on the LAN."""
    p = plan_of(lab)
    backup, business = p.host("backup01"), p.host("business01")
    probes = {port: addr for port, addr in p.ports.items()}
    code = PROBE + "".join(
        f"print({port!r}, reach({addr!r}, {netns.ARRAY_PORT}))\n" for port, addr in probes.items()
    )
    code += f"print('manager', reach({p.manager.lan!r}, {netns.MANAGER_PORT}))\n"
    ran = in_ns(backup.ns, code)
    assert ran.returncode == 0, ran.stderr
    got = dict(line.split(" ", 1) for line in ran.stdout.splitlines())
    assert got.pop("manager") == "open"
    for port, result in got.items():
        assert result == (
            "open" if port in ("BACKUP_PRIMARY", "BACKUP_SECONDARY") else "Network is unreachable"
        ), (port, result)
    ran = in_ns(backup.ns, SWEEP + f"print(sweep({business.lan!r}))\n")
    assert ran.returncode == 0 and ran.stdout.strip() == "[]", ran.stdout + ran.stderr
    listening = subprocess.run(
        ["ip", "netns", "exec", business.ns, "ss", "-Htuln"], capture_output=True, text=True, check=True
    ).stdout
    # The agent serves its Unix socket, and its metrics on the namespace's own loopback only.
    assert [line.split()[4].rsplit(":", 1)[0] for line in listening.splitlines()] in ([], ["127.0.0.1"]), listening


@pytest.mark.timeout(300)
def test_san_cut_during_a_backup_read(lab: procedures.Lab) -> None:
    """backup01's SAN cables are cut while it reads the LV for the backup: one cut, its I/O goes on over
    the other path (multipath); both cut, the LV's reads fail (iSM31065) and the array's disks are Not
    Ready; the cables back and iSMrc_scan, the backup completes with the right data. Then the same
    with H: mounted and being read: the flush that ends the backup fails while the cables are cut and
    succeeds after they are back, nothing lost."""
    link, lv_mount, lv_flush, lv_umount, unlink, _unguard = procedures.BACKUP_P3
    expected = file_digests(lab.path("business01", "G:"))
    lab.cmd("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    lab.cmd("backup01", link)
    ports = ("BACKUP_PRIMARY", "BACKUP_SECONDARY")
    cut = lab.run("link", "down", "backup01", "--san", ports[0])
    assert cut.returncode == 0 and cut.stdout == f"backup01: SAN {ports[0]} cut\n", cut.stdout + cut.stderr
    try:
        assert "lv001" in lab.cmd("backup01", "iSMrc_scan").stdout  # the other path carries the I/O
        cut = lab.run("link", "down", "backup01", "--san", ports[1])
        assert cut.returncode == 0, cut.stderr
        ran = lab.cmd("backup01", lv_mount, code=1)  # the mount reads the LV's file system: it fails
        assert "iSM31065: Disk array does not respond. (Tokyo_Customer_DataBase)" in ran.stderr, str(ran)
        assert_not_ready(lab)
        # control I/O through the manager still works while the SAN is cut (the LAN is whole)
        ran = lab.cmd("backup01", "iSMsc_query -bv bv001 -bvflg ld -summary")
        assert ran.lines[0] == "BV Information", str(ran)
    finally:
        restore_san(lab, ports)
    lab.cmd("backup01", lv_mount)
    tape = lab.work / "tape2.tar"
    lab.cmd("backup01", f'tar -cf {tape} -C "$(snaplab path backup01 H:)" .', shell=True)
    (lab.path("backup01", "H:") / "backup.log").write_text("read for tape2\n")  # the backup's own note
    cut = lab.run("link", "down", "backup01", "--san", ports[0], "--san", ports[1])
    assert cut.returncode == 0, cut.stderr
    try:
        ran = lab.cmd("backup01", lv_flush, code=1)  # the note cannot reach the LV
        assert "iSM31065" in ran.stderr or "iSM13639" in ran.stderr, str(ran)
        assert_not_ready(lab)
    finally:
        restore_san(lab, ports)
    lab.cmd("backup01", lv_flush)
    lab.cmd("backup01", lv_umount)
    lab.cmd("backup01", lv_mount)  # read back from the LV: the note was flushed, nothing lost
    assert (lab.path("backup01", "H:") / "backup.log").read_text() == "read for tape2\n"
    lab.cmd("backup01", lv_umount)
    lab.cmd("backup01", unlink)
    out = lab.work / "from-tape2"
    with tarfile.open(tape) as t:
        t.extractall(out, filter="data")
    assert file_digests(out) == expected


def assert_not_ready(lab: procedures.Lab) -> None:
    """Every disk backup01 sees on the array is still listed, Not Ready; its system disk is Online."""
    states = procedures.disks(lab, "backup01")
    assert states.pop("disk0") == "Online" and states and set(states.values()) == {"Not Ready"}, states


def restore_san(lab: procedures.Lab, ports: tuple[str, str]) -> None:
    back = lab.run("link", "up", "backup01", "--san", ports[0], "--san", ports[1])
    assert back.returncode == 0 and back.stdout == f"backup01: SAN {ports[0]}, SAN {ports[1]} restored\n"
    # The agent's channel redials within a second (rpc_client.RECONNECT_OPTIONS), later on a loaded
    # machine: until then the array's disks are listed but Not Ready, so wait for one to be Online.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lab.cmd("backup01", "iSMrc_scan")
        states = procedures.disks(lab, "backup01")
        if any(state != "Not Ready" for disk, state in states.items() if disk != "disk0"):
            return
        time.sleep(0.3)
    raise AssertionError(f"backup01's disks are still Not Ready 30 s after link up: {states}")


@pytest.mark.timeout(240)
def test_lab_down_removes_the_network_also_after_sigkill(lab: procedures.Lab) -> None:
    """``lab down`` leaves no namespace, bridge or veth of the lab (listed before and after); after a
    SIGKILL of every process of the lab (restarted from its state), so does a second ``lab down``."""
    prefix = plan_of(lab).prefix
    before = _ours(prefix)
    assert len(before["namespaces"]) == 7 and not before["links"]  # switch, manager, array, four hosts
    assert _links(before["namespaces"][0]) and all(n.startswith(prefix) for n in before["namespaces"])
    down = lab.run("lab", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removed the lab's network: 7 namespaces with their bridges and veths" in down.stdout
    assert _ours(prefix) == {"namespaces": [], "links": []} and not lab_processes(lab.folder)

    lab.up()  # the same lab again, from its state, on a network made anew
    assert len(_ours(prefix)["namespaces"]) == 7
    for pid in lab_processes(lab.folder):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while lab_processes(lab.folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ours(prefix)["namespaces"], "a killed lab leaves its namespaces"
    down = lab.run("lab", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert _ours(prefix) == {"namespaces": [], "links": []}
    assert not (lab.folder / "netns.json").exists()


def _links(ns: str) -> list[str]:
    """The bridges and veths in namespace ``ns``."""
    out = subprocess.run(
        ["ip", "-n", ns, "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines() if "lo:" not in ln]
