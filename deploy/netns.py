"""A lab's network of namespaces (``network = "netns"``): every process its own Linux network namespace,
a LAN and a SAN of bridges and veth pairs, addresses from 198.18.0.0/15 only, and cables to cut.

Layout (figure 1-1 of the guide, as machines and cables):

- ``<prefix>-sw`` is the switch: it holds the bridges and the switch ends of every veth. The LAN is
  one bridge ``lan`` (198.18.0.0/16: the manager, each array's management port, each host's NIC);
  the SAN is one bridge per array port (a zone, 198.19.<k>.0/24: the array port ``.1`` and each host
  port cabled to it), so a host reaches exactly the array ports it is cabled to.
- ``<prefix>-mgr``, ``<prefix>-a<i>``, ``<prefix>-h<i>``: the manager, each array, each host, with
  ``lo``, ``lan0`` and their SAN ends ``san<j>`` (an array's j-th port; a host's j-th cabled port).

Nothing is ever made in the caller's namespace (veths are created with both ends placed at once),
and no namespace has a route beyond its own subnets. ``<prefix>`` is ``sl`` + six hex digits of the
lab folder's path, so ``lab down`` finds what a dead lab left even without ``<lab>/netns.json``,
which is written before anything is made and lists what the plan makes.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabError

if TYPE_CHECKING:
    from .folder import LabFolder
    from .spec import LabSpec

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544's range for network tests
LAN = ipaddress.ip_network("198.18.0.0/16")
SAN = ipaddress.ip_network("198.19.0.0/16")
ARRAY_PORT = 7443  # each daemon has its namespace, hence its own addresses: fixed ports suffice
MANAGER_PORT = 7444
MANAGER_ADDRESS = "198.18.0.2"
STATE_FILE = "netns.json"
CAP_NET_ADMIN = 12
_CLONE_NEWNET = 0x40000000
IP_TIMEOUT = 20.0
NO_IPV6 = "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
MAX_ZONES = 256  # 198.19.<zone>.0/24
MAX_SAN_HOSTS = 154  # .100 + host index <= .254


def lan_default(kind: str, index: int) -> str:
    """The LAN address a lab file does not give: manager .0.2, arrays .0.10+, hosts .1.1+."""
    if kind == "array":
        return str(LAN.network_address + 10 + index)
    return str(LAN.network_address + 256 + 1 + index)


def check_address(text: str) -> str:
    """A LAN address of a lab file, or ValueError saying why it is not one."""
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None
    if addr not in LAB_RANGE:
        raise ValueError(f"{text} is outside {LAB_RANGE}, the only range a lab's network uses")
    if addr not in LAN or addr in (LAN.network_address, LAN.broadcast_address):
        raise ValueError(f"{text} is not a host address of the LAN {LAN} ({SAN} is the SAN's)")
    return str(addr)


# -- the plan ---------------------------------------------------------------------------------------


@dataclass
class Link:
    """One cable: ``inner`` in namespace ``ns`` (address ``address``/``prefixlen``), ``outer`` in the switch."""

    ns: str
    inner: str
    outer: str
    bridge: str
    address: str
    prefixlen: int


@dataclass
class Machine:
    kind: str  # array, manager, host
    name: str
    ns: str
    lan: str  # LAN address
    san: dict[str, str] = field(default_factory=dict)  # port name -> SAN address (this end)
    links: list[Link] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [self.lan, *self.san.values()]


@dataclass
class Plan:
    prefix: str
    switch: str
    bridges: list[str]
    machines: list[Machine]
    ports: dict[str, str] = field(default_factory=dict)  # array port name -> its SAN address

    @property
    def namespaces(self) -> list[str]:
        return [self.switch, *(m.ns for m in self.machines)]

    def machine(self, kind: str, name: str) -> Machine:
        found = next((m for m in self.machines if m.kind == kind and m.name == name), None)
        if found is None:
            raise LabError(f"the lab's network has no {kind} {name!r}")
        return found

    def host(self, name: str) -> Machine:
        return self.machine("host", name)

    @property
    def manager(self) -> Machine:
        return self.machine("manager", "manager")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        machines = [
            Machine(**{**m, "links": [Link(**lk) for lk in m.get("links", [])]})
            for m in raw.get("machines", [])
        ]
        return cls(
            raw["prefix"], raw["switch"], list(raw.get("bridges", [])), machines, dict(raw.get("ports", {}))
        )


def prefix_of(folder: Path) -> str:
    return "sl" + hashlib.sha256(str(folder).encode()).hexdigest()[:6]


def plan(lab: LabFolder, spec: LabSpec) -> Plan:
    """Names and addresses of the lab's network, from the lab file (its ``address`` keys) and defaults."""
    prefix = prefix_of(lab.folder)
    p = Plan(prefix, f"{prefix}-sw", ["lan"], [])

    def lan_link(m: Machine, outer: str) -> None:
        m.links.append(Link(m.ns, "lan0", outer, "lan", m.lan, LAN.prefixlen))

    mgr = Machine("manager", "manager", f"{prefix}-mgr", spec.manager_address or MANAGER_ADDRESS)
    lan_link(mgr, "l-m")
    p.machines.append(mgr)
    zone = 0
    zones: dict[str, tuple[int, ipaddress.IPv4Network]] = {}
    for i, a in enumerate(spec.arrays):
        m = Machine("array", a.name, f"{prefix}-a{i}", a.address or lan_default("array", i))
        lan_link(m, f"l-a{i}")
        for j, port in enumerate(a.ports):
            if zone >= MAX_ZONES:
                raise LabError(f"a netns lab has at most {MAX_ZONES} array ports (SAN zones of {SAN})")
            net = ipaddress.ip_network(f"{SAN.network_address + zone * 256}/24")
            bridge = f"z{zone}"
            zones[port.name] = (zone, net)
            p.bridges.append(bridge)
            addr = str(net.network_address + 1)
            m.san[port.name] = addr
            p.ports[port.name] = addr
            m.links.append(Link(m.ns, f"san{j}", f"{bridge}-a", bridge, addr, net.prefixlen))
            zone += 1
        p.machines.append(m)
    for i, h in enumerate(spec.hosts):
        if h.ports and i >= MAX_SAN_HOSTS:
            raise LabError(f"a netns lab cables at most {MAX_SAN_HOSTS} hosts to the SAN")
        m = Machine("host", h.name, f"{prefix}-h{i}", h.address or lan_default("host", i))
        lan_link(m, f"l-h{i}")
        for j, port in enumerate(h.ports):
            k, net = zones[port]
            addr = str(net.network_address + 100 + i)
            m.san[port] = addr
            m.links.append(Link(m.ns, f"san{j}", f"z{k}-h{i}", f"z{k}", addr, net.prefixlen))
        p.machines.append(m)
    return p


# -- may we? -------------------------------------------------------------------------------------


def ip_command() -> str | None:
    return shutil.which("ip") or next(
        (c for c in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(c, os.X_OK)), None
    )


def missing_right() -> str | None:
    """Why this process cannot make network namespaces (None: it can)."""
    try:
        status = Path("/proc/self/status").read_text()
        caps = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        caps = 0
    if not caps & (1 << CAP_NET_ADMIN):
        return "network namespaces need root (CAP_NET_ADMIN); run as root or use the default network"
    if ip_command() is None:
        return "network namespaces need the 'ip' command (apt-get install iproute2)"
    return None


# -- making and removing -------------------------------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ip_command()
    if cmd is None:
        raise LabError("the 'ip' command is missing (apt-get install iproute2)")
    done = subprocess.run([cmd, *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit status {done.returncode}'}")
    return done


def _batch(lines: list[str], ns: str | None = None) -> None:
    """Many ``ip`` commands in one process (``ip [-n NS] -batch``), in namespace ``ns``."""
    cmd = ip_command()
    if cmd is None:
        raise LabError("the 'ip' command is missing (apt-get install iproute2)")
    where = ["-n", ns] if ns else []
    done = subprocess.run(
        [cmd, *where, "-batch", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[0] if done.stderr.strip() else f"exit status {done.returncode}"
        raise LabError(f"making the lab's network failed{f' in {ns}' if ns else ''}: {why}")


def state_path(lab: LabFolder) -> Path:
    return lab.folder / STATE_FILE


def saved(lab: LabFolder) -> Plan | None:
    """The plan of the network made for this lab (None: the lab uses the loopback network)."""
    try:
        return Plan.from_json(json.loads(state_path(lab).read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(f"cannot read {state_path(lab)}: {exc}") from None


def create(lab: LabFolder, p: Plan) -> None:
    """Make the namespaces, bridges and cables of ``p`` (recorded in netns.json first)."""
    remove(lab, p.prefix)  # what a dead lab of this folder left
    tmp = state_path(lab).with_suffix(".tmp")
    tmp.write_text(json.dumps(p.as_json(), indent=1) + "\n")
    os.replace(tmp, state_path(lab))
    _batch([f"netns add {ns}" for ns in p.namespaces])
    # IPv4 of 198.18.0.0/15 only: no IPv6 (not even link-local addresses) in the lab's namespaces.
    _batch([f"netns exec {ns} sysctl -q -w {NO_IPV6}" for ns in p.namespaces])
    switch = ["link set lo up"]
    for br in p.bridges:
        switch += [f"link add {br} type bridge", f"link set {br} up"]
    for m in p.machines:
        for lk in m.links:
            switch += [
                f"link add {lk.outer} type veth peer name {lk.inner} netns {m.ns}",
                f"link set {lk.outer} master {lk.bridge}",
                f"link set {lk.outer} up",
            ]
    _batch(switch, p.switch)
    for m in p.machines:
        inside = ["link set lo up"]
        for lk in m.links:
            inside += [f"addr add {lk.address}/{lk.prefixlen} dev {lk.inner}", f"link set {lk.inner} up"]
        _batch(inside, m.ns)


def leftovers(prefix: str) -> dict[str, list[str]]:
    """Namespaces and links (in this namespace) whose names start with ``prefix``."""
    if ip_command() is None:
        return {"namespaces": [], "links": []}
    out = _ip("netns", "list", check=False).stdout
    spaces = [
        ln.split()[0] for ln in out.splitlines() if ln.split() and ln.split()[0].startswith(prefix + "-")
    ]
    links = []
    for ln in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = ln.split(":")
        if len(parts) > 1 and (name := parts[1].strip().split("@")[0]).startswith(prefix + "-"):
            links.append(name)
    return {"namespaces": spaces, "links": links}


def remove(lab: LabFolder, prefix: str | None = None) -> list[str]:
    """Remove every namespace and link of this lab's network: whatever is named with the lab's prefix
    (netns.json's and a dead lab's alike), then netns.json. Returns the namespaces removed."""
    if prefix is None:
        p = saved(lab)
        prefix = p.prefix if p else prefix_of(lab.folder)
    found = leftovers(prefix)
    for name in found["links"]:
        _ip("link", "del", name, check=False)
    for ns in found["namespaces"]:
        _ip("netns", "del", ns, check=False)
    still = leftovers(prefix)
    if still["namespaces"] or still["links"]:
        raise LabError(
            f"could not remove the lab's network: {', '.join(still['namespaces'] + still['links'])}"
        )
    state_path(lab).unlink(missing_ok=True)
    return found["namespaces"]


# -- running in a namespace ----------------------------------------------------------------------


def exec_prefix(ns: str) -> list[str]:
    """What runs a program in namespace ``ns`` (``ip netns exec`` execs it: the pid stays the program's)."""
    cmd = ip_command()
    if cmd is None:
        raise LabError("the 'ip' command is missing (apt-get install iproute2)")
    return [cmd, "netns", "exec", ns]


def enter(ns: str) -> None:
    """Move this process (its calling thread and every thread it starts later) into namespace ``ns``.
    Call it before any gRPC channel exists: gRPC's threads must be born inside."""
    try:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    except OSError as exc:
        raise LabError(
            f"the lab's network namespace {ns} is gone ({exc.strerror}); restart the lab"
        ) from None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise LabError(f"cannot enter the lab's network namespace {ns}: {os.strerror(err)} (run as root)")
    finally:
        os.close(fd)


def enter_lab(lab: LabFolder, kind: str = "manager", name: str = "manager") -> bool:
    """Enter the namespace of a machine of the lab in ``lab`` if it runs on namespaces; whether it does."""
    p = saved(lab)
    if p is None:
        return False
    enter(p.machine(kind, name).ns)
    return True


# -- cables --------------------------------------------------------------------------------------


def set_links(lab: LabFolder, host: str, *, up: bool, lan: bool, ports: list[str]) -> list[str]:
    """Cut (``up=False``) or restore the host's LAN cable and/or the SAN cables of ``ports`` (both ends,
    ``ip link set … down``); a cut also ends the host's TCP connections over it at once, as an HBA
    or NIC that loses its link fails what is in flight. Returns what changed, for the report."""
    p = saved(lab)
    if p is None:
        raise LabError(f"the lab in {lab.folder} does not run on network namespaces (lab up --network netns)")
    m = p.host(host)
    chosen: list[Link] = []
    if lan:
        chosen += [lk for lk in m.links if lk.inner == "lan0"]
    for port in ports:
        if port not in m.san:
            raise LabError(
                f"host {host} is not cabled to a port {port!r} (ports: {', '.join(m.san) or 'none'})"
            )
        chosen += [lk for lk in m.links if lk.address == m.san[port]]
    if not chosen:
        chosen = list(m.links)
    state = "up" if up else "down"
    _batch([f"link set {lk.outer} {state}" for lk in chosen], p.switch)
    _batch([f"link set {lk.inner} {state}" for lk in chosen], m.ns)
    if not up:
        for lk in chosen:
            net = ipaddress.ip_network(f"{lk.address}/{lk.prefixlen}", strict=False)
            subprocess.run(
                [*exec_prefix(m.ns), "ss", "-K", "dst", str(net)],
                capture_output=True,
                timeout=IP_TIMEOUT,
                check=False,
            )
    names = {v: k for k, v in m.san.items()}
    return [("LAN" if lk.inner == "lan0" else f"SAN {names.get(lk.address, lk.inner)}") for lk in chosen]
