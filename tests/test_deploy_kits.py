"""Deploy kits (issue 11, parts 3-4): ``snaplab deploy render``, ``snaplab pki``, the daemons' ``--config``.

The three-machine example of deploy/README.md runs for real: three network namespaces (storage with
the array and the manager, business with business01, backup with backup01) on a bridge in a fourth,
addresses in 198.18.0.0/15, every daemon started as ``ip netns exec NS snaplab-... --config FILE``
from the rendered config files and the certificates ``snaplab pki issue`` made, no launcher; then the
guide's P1-P3 (tests/test_e2e_procedures.py's checks) run there. A fourth machine's namespace waits
for the test server that joins later (its own certificate, ``iSMcfg hostadd``, its agent enrols).
Namespaces are made and removed by the fixture (also when a test fails); without them the tests
skip, except under ``CI=true``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
import test_e2e_procedures as procedures  # the guide's P1-P3 checks, run here on deployed machines
from labtools import Ran, bin_dir, command_env, snaplab
from snaplab.array import daemon as array_daemon
from snaplab.deploy.errors import LabFileError
from snaplab.deploy.spec import LabSpec
from snaplab.manager import daemon as manager_daemon

from snaplab.common import pki

CI = os.environ.get("CI") == "true"
ARRAY = procedures.ARRAY
# "test": the machine that joins later (deploy/README.md), its namespace made with the others
ADDRESS = {"storage": "198.18.0.1", "business": "198.18.0.2", "backup": "198.18.0.3", "test": "198.18.0.4"}
MANAGER = f"{ADDRESS['storage']}:7440"
HOST_MACHINE = {"business01": "business", "backup01": "backup", "test01": "test"}
READY_TIMEOUT = 30.0

# deploy/README.md's example: PREPARE_LAB's array and its business and backup servers, on three machines.
LAB_FILE = Path(__file__).parents[1] / "deploy" / "three_machines_lab.toml"
LAB = LAB_FILE.read_text()


def ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def refused(run: subprocess.CompletedProcess[str], code: int, *said: str) -> None:
    """One line on stderr, no traceback, the exit status ``code``, naming what is wrong."""
    assert run.returncode == code, run.stdout + run.stderr
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr
    for s in said:
        assert s in run.stderr, run.stderr


# -- the kit ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example rendered twice (systemd: ROOT/kit; compose: ROOT/compose), each machine's prefix
    ROOT/kit/<machine>, and the certificates of deploy/README.md issued into each machine's pki/."""
    root = tmp_path_factory.mktemp("kits")
    (root / "lab.toml").write_text(LAB)
    prefix = str(root / "kit" / "{machine}")
    ok(snaplab("deploy", "render", "lab.toml", "--target", "systemd", "kit", "--prefix", prefix, cwd=root))
    ok(
        snaplab(
            "deploy", "render", "lab.toml", "--target", "compose", "compose", "--prefix", prefix, cwd=root
        )
    )
    ok(snaplab("pki", "ca", "--pki", "ca", cwd=root))
    for name, role, machine, san in (
        (ARRAY, "array", "storage", ADDRESS["storage"]),
        ("manager", "manager", "storage", ADDRESS["storage"]),
        ("admin", "admin", "storage", None),
        ("business01", "host", "business", None),
        ("backup01", "host", "backup", None),
    ):
        sans = ["--san", san] if san else []
        ok(
            snaplab(
                "pki",
                "issue",
                name,
                "--role",
                role,
                *sans,
                "--pki",
                "ca",
                "--out",
                f"kit/{machine}/pki",
                cwd=root,
            )
        )
    return root


def test_rendered_units_pass_systemd_analyze_verify(kit: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if CI:
            pytest.fail("systemd-analyze is missing (install Debian's systemd package)")
        pytest.skip("systemd-analyze is missing (Debian's systemd package)")
    units = sorted((kit / "kit").glob("*/systemd/*.service"))
    assert [u.name for u in units] == [
        "snaplab-agent-backup01.service",
        "snaplab-agent-business01.service",
        "snaplab-array-Tokyo_Customer_DataBase.service",
        "snaplab-manager.service",
    ]
    run = subprocess.run(
        [analyze, "verify", *map(str, units)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0 and run.stderr == "", run.stdout + run.stderr
    manager = (kit / "kit" / "storage" / "systemd" / "snaplab-manager.service").read_text().splitlines()
    for line in (
        "Type=notify",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
        "ExecStop=/bin/kill -s TERM $MAINPID",
    ):
        assert line in manager
    assert "After=network-online.target snaplab-array-Tokyo_Customer_DataBase.service" in manager


def test_compose_file_meets_the_compose_specification(kit: Path) -> None:
    schema = json.loads((Path(__file__).parents[1] / "deploy" / "compose-spec.json").read_text())
    doc = json.loads((kit / "compose" / "compose.yaml").read_text())  # JSON is YAML
    jsonschema.Draft7Validator(schema).validate(doc)
    services = doc["services"]
    assert sorted(services) == [
        "agent-backup01",
        "agent-business01",
        "array-tokyo_customer_database",
        "manager",
    ]
    assert services["manager"]["network_mode"] == "service:array-tokyo_customer_database"
    assert services["agent-backup01"]["networks"] == {"lab": {"ipv4_address": ADDRESS["backup"]}}
    assert doc["networks"]["lab"]["ipam"]["config"] == [{"subnet": "198.18.0.0/29", "gateway": "198.18.0.6"}]
    bad = dict(doc, services={"x": {"image": "i", "restart": 3}})
    with pytest.raises(jsonschema.ValidationError):  # the validator does refuse what is wrong
        jsonschema.Draft7Validator(schema).validate(bad)


def test_bad_config_key_or_value_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "array.toml"
    cases = [
        ('state = "s"\ninsecure = true\nlisten_port = 7\n', "unknown key 'listen_port'"),
        ('state = "s"\ninsecure = true\ngrace = "soon"\n', "key 'grace' must be a number"),
        ('state = "s"\ninsecure = "yes"\n', "key 'insecure' must be true or false"),
        ('state = "s"\ninsecure = true\nlisten = "nowhere"\n', "--listen must be HOST:PORT"),
        ("state = \n", "not valid TOML"),
    ]
    for text, said in cases[:2]:  # as the daemon's own process says it
        cfg.write_text(text)
        argv = [str(Path(bin_dir()) / "snaplab-array"), "--config", str(cfg)]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=tmp_path, check=False)
        refused(run, 2, "snaplab-array: error: --config ", said)
    for text, said in cases[2:]:  # the same main, in this process (a process start costs a second)
        cfg.write_text(text)
        assert array_daemon.main(["--config", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("snaplab-array: error: ") and said in err and len(err.splitlines()) == 1, err
    agent = tmp_path / "agent.toml"
    agent.write_text('host = "h"\nrole = "boss"\n')
    argv = [str(Path(bin_dir()) / "snaplab-agent"), "--config", str(agent)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    refused(run, 2, "key 'role' must be one of business, backup, test, standby, not 'boss'")


def test_flags_win_over_the_config_file(kit: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "array.toml"
    cfg.write_text(
        f'state = "{tmp_path}"\ninsecure = true\nname = "A"\ngrace = 1\nlisten = "127.0.0.1:7441"\n'
    )
    got = array_daemon.parse_args(["--config", str(cfg), "--name", "B", "--listen=127.0.0.1:7999"])
    assert (got.name, got.grace, got.port) == ("B", 1.0, 7999)
    pki = kit / "kit" / "storage" / "pki"
    cfg.write_text(f'state = "{tmp_path}"\ncerts = "{pki}"\narray = ["A=h:1", "B=h:2"]\n')
    assert manager_daemon.parse_args(["--config", str(cfg)]).arrays == [("A", "h:1"), ("B", "h:2")]
    # a repeatable option given on the command line replaces the file's list
    assert manager_daemon.parse_args(["--config", str(cfg), "--array", "C=h:3"]).arrays == [("C", "h:3")]


def test_daemon_tells_systemd_ready_then_stopping(tmp_path: Path) -> None:
    """Type=notify: READY=1 once it serves, STOPPING=1 on SIGTERM (sd_notify's datagram)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(READY_TIMEOUT)
        argv = [str(Path(bin_dir()) / "snaplab-array"), "--state", str(tmp_path / "state"), "--insecure"]
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"))
        proc = subprocess.Popen(
            [*argv, "--grace", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            assert notify.recv(256).decode() == f"READY=1\nMAINPID={proc.pid}"
            proc.send_signal(signal.SIGTERM)
            assert notify.recv(256) == b"STOPPING=1"
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_pki_issue_refuses_a_bad_role_or_san(kit: Path) -> None:
    refused(
        snaplab("pki", "issue", "x01", "--role", "root", "--pki", "ca", cwd=kit),
        1,
        "--role 'root' is not a lab role",
    )
    refused(
        snaplab("pki", "issue", "x01", "--role", "array", "--san", "198.18.0.1:7441", "--pki", "ca", cwd=kit),
        1,
        "--san '198.18.0.1:7441' is neither an IP address nor a DNS name",
    )
    refused(snaplab("pki", "issue", "x01", "--role", "manager", "--pki", "ca", cwd=kit), 1, "needs --san")
    refused(
        snaplab("pki", "issue", "x01", "--role", "host", "--pki", "nowhere", cwd=kit),
        1,
        "cannot read the lab CA",
    )
    assert not (kit / "ca" / "x01.crt").exists()
    # what the kit fixture issued: CN, OU and the address the manager's clients dial as its SAN
    cert = x509.load_pem_x509_certificate((kit / "kit" / "storage" / "pki" / "manager.crt").read_bytes())
    assert pki.identity_from_pem(cert.public_bytes(serialization.Encoding.PEM)) == pki.Identity(
        "manager", "manager"
    )
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(ADDRESS["storage"])]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (
            ('address = "198.18.0.3"', 'address = "backup.example"'),
            "machines[backup].address: 'backup.example' is not an IP address",
        ),
        (
            ('address = "198.18.0.3"', 'address = "198.18.0.2"'),
            "machines: address 198.18.0.2 is given to two machines",
        ),
        (('runs = ["backup01"]', "runs = []"), "machines: backup01 runs on no machine"),
        (
            ('runs = ["backup01"]', 'runs = ["backup01", "manager"]'),
            "manager already runs on machine storage",
        ),
    ],
)
def test_bad_machines_name_the_place(change: tuple[str, str], said: str) -> None:
    with pytest.raises(LabFileError) as info:
        LabSpec.parse(LAB.replace(*change), "lab.toml")
    assert said in str(info.value)


# -- the three machines ----------------------------------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


class Machines:
    """Three namespaces on a bridge (in a fourth), the daemons started in them, the programs of P3."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = f"slkit{os.getpid() % 100000}"
        self.ns = {m: f"{self.tag}-{m}" for m in ADDRESS}
        self.lan = f"{self.tag}-lan"
        self.daemons: list[subprocess.Popen[bytes]] = []
        self.programs: list[subprocess.Popen[bytes]] = []
        self.work = root / "work"  # the operators' current folder (vollist_data.txt, the tape)
        self.work.mkdir()

    def make(self) -> None:
        for ns in [self.lan, *self.ns.values()]:
            if (r := _ip("netns", "add", ns)).returncode != 0:
                raise OSError(f"ip netns add {ns}: {r.stderr.strip()}")
        self.must("-n", self.lan, "link", "add", "br0", "type", "bridge")
        self.must("-n", self.lan, "link", "set", "br0", "up")
        for i, (machine, ns) in enumerate(self.ns.items()):
            port = f"p{i}"
            self.must(
                "link", "add", port, "netns", self.lan, "type", "veth", "peer", "name", "eth0", "netns", ns
            )
            self.must("-n", self.lan, "link", "set", port, "master", "br0", "up")
            self.must("-n", ns, "addr", "add", f"{ADDRESS[machine]}/24", "dev", "eth0")
            self.must("-n", ns, "link", "set", "eth0", "up")
            self.must("-n", ns, "link", "set", "lo", "up")

    @staticmethod
    def must(*args: str) -> None:
        r = _ip(*args)
        assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr}"

    def prefix(self, machine: str) -> Path:
        return self.root / "kit" / machine

    def start(self, machine: str, unit: str, program: str) -> None:
        """``ip netns exec NS program --config <prefix>/config/<unit>.toml``, until its ready file is
        there."""
        config = self.prefix(machine) / "config" / f"{unit}.toml"
        ready = Path(
            next(
                line.split('"')[1]
                for line in config.read_text().splitlines()
                if line.startswith("ready-file")
            )
        )
        log = open(self.root / f"{unit}.log", "wb")  # noqa: SIM115 - the daemon writes it until it ends
        argv = [
            "ip",
            "netns",
            "exec",
            self.ns[machine],
            str(Path(bin_dir()) / program),
            "--config",
            str(config),
        ]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.daemons.append(proc)
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            assert proc.poll() is None, f"{unit} ended: {(self.root / f'{unit}.log').read_text()}"
            assert time.monotonic() < deadline, f"{unit} not ready: {(self.root / f'{unit}.log').read_text()}"
            time.sleep(0.05)

    def run(self, machine: str, argv: list[str], *, env: dict[str, str], cwd: Path, stdin: str = "") -> Ran:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.ns[machine], *argv],
            env=env,
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Ran(machine, " ".join(argv), proc.stdout, proc.stderr, proc.returncode)

    # what tests/test_e2e_procedures.py's checks use of a lab
    def cmd(
        self, host: str, line: str, *, stdin: str | None = None, shell: bool = False, code: int = 0
    ) -> Ran:
        machine = HOST_MACHINE[host]
        env = command_env(SNAPLAB_LAB=str(self.prefix(machine)), SNAPLAB_HOST=host)
        ran = self.run(
            machine,
            ["bash", "-c", line] if shell else line.split(),
            env=env,
            cwd=self.work,
            stdin=stdin or "",
        )
        ran = Ran(host, line, ran.stdout, ran.stderr, ran.code)
        assert ran.code == code, str(ran)
        if code == 0:
            assert ran.stderr == "", str(ran)
        return ran

    def manager(self, *argv: str) -> list[str]:
        env = command_env(SNAPLAB_LAB=str(self.prefix("storage")), SNAPLAB_MANAGER=MANAGER)
        ran = self.run("storage", list(argv), env=env, cwd=self.work)
        assert ran.code == 0, str(ran)
        return ran.stdout.splitlines()

    def path(self, host: str, mount_point: str) -> Path:
        out = snaplab("--lab", str(self.prefix(HOST_MACHINE[host])), "path", host, mount_point, cwd=self.work)
        return Path(ok(out).strip())

    def start_program(self, host: str, mount_point: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "3600"], cwd=self.path(host, mount_point), start_new_session=True)
        self.programs.append(proc)
        return proc

    def stop_program(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.programs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for proc in reversed(self.daemons):  # agents first: they flush through the array
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        for ns in [*self.ns.values(), self.lan]:
            _ip("netns", "del", ns)


@pytest.fixture(scope="module")
def machines(kit: Path) -> Iterator[Machines]:
    """The example's machines running from the kit: storage's array and manager, the lab file's
    configuration applied through the manager (snaplab deploy configure), then the two agents."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        reason = "network namespaces need root and iproute2's ip"
        if CI:
            pytest.fail(reason)
        pytest.skip(reason)
    m = Machines(kit)
    try:
        try:
            m.make()
        except OSError as exc:
            if CI:
                pytest.fail(f"network namespaces are not allowed here: {exc}")
            pytest.skip(f"network namespaces are not allowed here: {exc}")
        m.start("storage", f"snaplab-array-{ARRAY}", "snaplab-array")
        m.start("storage", "snaplab-manager", "snaplab-manager")
        storage = m.prefix("storage")
        env = command_env()
        configure = [*_snaplab(), "--lab", str(storage), "deploy", "configure", str(storage / "lab.toml")]
        ran = m.run("storage", configure, env=env, cwd=kit)
        assert ran.code == 0, str(ran)
        m.start("business", "snaplab-agent-business01", "snaplab-agent")
        m.start("backup", "snaplab-agent-backup01", "snaplab-agent")
        yield m
    finally:
        m.close()
    assert not [ns for ns in m.ns.values() if ns in _ip("netns", "list").stdout]


def _snaplab() -> list[str]:
    return [str(Path(bin_dir()) / "snaplab")]


@pytest.mark.timeout(240)
def test_three_machines_run_p1_to_p3(machines: Machines) -> None:
    m = machines
    # The LAN joins them: the backup machine reaches the storage machine's array port and the
    # manager, and has no route beyond the lab's network.
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()"

    def reach(address: str, port: str) -> bool:
        argv = [sys.executable, "-c", probe, address, port]
        return m.run("backup", argv, env=command_env(), cwd=m.work).code == 0

    assert reach(ADDRESS["storage"], "7440") and reach(ADDRESS["storage"], "7441")
    assert not reach("192.0.2.1", "7440")

    # P1 (1.6): the volume list on each server, into its vollist_data.txt
    for host in ("business01", "backup01"):
        assert m.cmd(host, "iSMvollist -cr").stdout == procedures.VOLLIST_CREATED + "\n"
        folder = m.work / host
        folder.mkdir()
        m.cmd(host, f"cd {folder} && iSMvollist -a > vollist_data.txt", shell=True)
        rows = procedures.vollist_rows((folder / "vollist_data.txt").read_text(), host)
        if host == "business01":
            assert rows == [[ARRAY, "0030h", "bv001", "BV", "WN", "disk1", "-", "-", "-", "-"]]
        else:
            assert rows == [[ARRAY, "002ah", "BACKUP_CV", "CV", "WN", "disk1", "-", "control", "-", "-"]]
    # P2 (1.7) and P3 (2.2.1), the checks of tests/test_e2e_procedures.py word for word
    procedures.TestPrepareThenBackUp.test_p2_prepare_volumes(None, m)  # type: ignore[arg-type]
    procedures.backup_cycle(m, first=True)  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_a_machine_that_joins_later_enrols_with_its_issued_certificate(machines: Machines) -> None:
    """deploy/README.md's test server: added to the lab file, its kit rendered and copied, its
    certificate issued from the same CA, defined through the manager, its agent started."""
    m, root = machines, machines.root
    joined = LAB + JOINED
    (root / "joined.toml").write_text(joined)
    prefix = str(root / "kit" / "{machine}")
    ok(
        snaplab(
            "deploy", "render", "joined.toml", "--target", "systemd", "kit2", "--prefix", prefix, cwd=root
        )
    )
    shutil.copytree(root / "kit2" / "test", m.prefix("test"))
    ok(snaplab("pki", "issue", "test01", "--role", "host", "--pki", "ca", "--out", "kit/test/pki", cwd=root))
    assert sorted(p.name for p in (m.prefix("test") / "pki").iterdir()) == [
        "ca.crt",
        "test01.crt",
        "test01.key",
    ]
    env = command_env(SNAPLAB_LAB=str(m.prefix("storage")), SNAPLAB_MANAGER=MANAGER)
    ran = m.run(
        "storage",
        ["iSMcfg", "hostadd", "-hostname", "test01", "-portname", "BACKUP_PRIMARY"],
        env=env,
        cwd=m.work,
    )
    assert ran.code == 0, str(ran)
    m.start("test", "snaplab-agent-test01", "snaplab-agent")
    assert m.cmd("test01", "iSMvollist -cr").stdout == procedures.VOLLIST_CREATED + "\n"
    rows = procedures.vollist_rows(m.cmd("test01", "iSMvollist -a").stdout, "test01")
    assert [ARRAY, "002ah", "BACKUP_CV", "CV", "WN", "disk1", "-", "control", "-", "-"] in rows


JOINED = """
[[hosts]]
name = "test01"
role = "test"
ports = ["BACKUP_PRIMARY"]

[[machines]]
name = "test"
address = "198.18.0.4"
runs = ["test01"]
"""
