"""Deploy kits: what runs a lab file's arrays, manager and hosts on real machines (``snaplab deploy``).

``render`` writes, for each machine of the lab file (``[[machines]]``, deploy/spec_machines.py), a
folder laid out as a lab folder is (docs/architecture.md "Lab folder"), to be copied to the
machine's prefix (default /var/lib/snaplab): ``config/<unit>.toml`` (each daemon's ``--config``
file), ``hosts/<host>/etc/`` (what an agent reads at its first start), ``machine.json`` (what the
machine runs) and, with ``--target systemd``, ``systemd/<unit>.service``; ``--target compose``
writes one ``compose.yaml`` beside the machines' folders instead. ``configure`` applies the lab
file's configuration through the running manager as the lab's ``admin``. deploy/README.md shows a
three-machine example.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .configure import PINNED_VOLUMES, configure
from .errors import LabError
from .failover import cluster_pins
from .folder import LabFolder, Report
from .spec import LabSpec, MachineSpec
from .spec_machines import MANAGER

MANAGER_PORT = 7440  # the manager of a kit listens on its machine's address at this port
ARRAY_PORT = 7441  # the lab file's first array; the next ones count up from here
DEFAULT_PREFIX = "/var/lib/snaplab"
DEFAULT_IMAGE = "snaplab:latest"  # an image with the snaplab package installed (deploy/README.md)
STOP_TIMEOUT = 30  # seconds a daemon has to drain and flush after SIGTERM before it is killed
ENROL_TIMEOUT = 120  # an agent waits this long for a manager of another machine to answer
TARGETS = ("systemd", "compose")
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")  # vendored: compose-spec.NOTICE


@dataclass
class Daemon:
    """One daemon of a machine's kit: its unit name, program, config file content, what it waits for."""

    kind: str  # array, manager, agent
    name: str  # array name, "manager", host name
    program: str  # snaplab-array, snaplab-manager, snaplab-agent
    config: dict[str, Any]
    after: list[str] = field(default_factory=list)  # units of the same machine started before it

    @property
    def unit(self) -> str:
        return "snaplab-manager" if self.kind == "manager" else f"snaplab-{self.kind}-{self.name}"


@dataclass
class MachineKit:
    machine: MachineSpec
    prefix: Path
    daemons: list[Daemon]

    def config_path(self, d: Daemon) -> Path:
        return self.prefix / "config" / f"{d.unit}.toml"


def target(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def array_targets(spec: LabSpec) -> dict[str, str]:
    return {
        a.name: target(spec.machine_of(a.name).address, ARRAY_PORT + i) for i, a in enumerate(spec.arrays)
    }


def manager_target(spec: LabSpec) -> str:
    return target(spec.machine_of(MANAGER).address, MANAGER_PORT)


def prefix_of(template: str, machine: str) -> Path:
    """``--prefix``: an absolute folder, ``{machine}`` standing for the machine's name."""
    try:
        text = template.format(machine=machine)
    except (KeyError, IndexError, ValueError):
        raise LabError(f"--prefix {template!r}: only {{machine}} may stand in it") from None
    if not os.path.isabs(text):
        raise LabError(f"--prefix {template!r} must be an absolute folder (it is the path on the machine)")
    return Path(text)


def plan(spec: LabSpec, prefix: str) -> list[MachineKit]:
    """Each machine's daemons with their config files, in start order (arrays, manager, agents)."""
    if spec.clusters:
        raise LabError(f"{spec.source}: deploy kits for labs with [[clusters]] are not made yet")
    arrays, manager = array_targets(spec), manager_target(spec)
    kits = []
    for m in spec.machines:
        root = prefix_of(prefix, m.name)
        pki, run = str(root / "pki"), root / "run"
        daemons: list[Daemon] = []
        for a in spec.arrays:
            if a.name in m.runs:
                cfg = {
                    "state": str(root / "arrays" / a.name),
                    "certs": pki,
                    "cert-name": a.name,
                    "name": a.name,
                }
                cfg |= {"product-id": a.product_id} if a.product_id else {}
                cfg |= {"listen": arrays[a.name], "ready-file": str(run / f"array-{a.name}.ready")}
                daemons.append(Daemon("array", a.name, "snaplab-array", cfg))
        local_arrays = [d.unit for d in daemons]
        if MANAGER in m.runs:
            cfg = {"state": str(root / "manager"), "certs": pki, "cert-name": "manager", "listen": manager}
            cfg |= {
                "array": [f"{n}={t}" for n, t in arrays.items()],
                "ready-file": str(run / "manager.ready"),
            }
            daemons.append(Daemon("manager", MANAGER, "snaplab-manager", cfg, local_arrays))
        local_manager = ["snaplab-manager"] if MANAGER in m.runs else []
        for h in spec.hosts:
            if h.name in m.runs:
                cfg = {
                    "host": h.name,
                    "state": str(root / "hosts" / h.name),
                    "certs": pki,
                    "manager": manager,
                }
                cfg |= {
                    "socket": str(run / f"agent-{h.name}.sock"),
                    "ready-file": str(run / f"agent-{h.name}.ready"),
                }
                cfg |= {"role": h.role, "platform": h.platform, "wwn": h.wwns, "port": h.ports}
                cfg |= {"enrol-timeout": ENROL_TIMEOUT}
                daemons.append(Daemon("agent", h.name, "snaplab-agent", cfg, local_manager))
        kits.append(MachineKit(m, root, daemons))
    return kits


# -- the files -------------------------------------------------------------------------------------


def toml_text(cfg: dict[str, Any], title: str) -> str:
    """The config file: strings, numbers and lists of strings, as the daemons read them."""
    lines = [
        f"# {title}",
        '# written by snaplab deploy render; keys: docs/architecture.md "Daemon command lines"',
    ]
    for key, value in cfg.items():
        lines.append(f"{key} = {json.dumps(value)}")  # JSON strings, numbers and lists are TOML ones too
    return "\n".join(lines) + "\n"


def write_machine(kit: MachineKit, spec: LabSpec, folder: Path) -> None:
    """The machine's folder: config files, each host's first-start files, machine.json."""
    (folder / "config").mkdir(parents=True, exist_ok=True)
    for d in kit.daemons:
        title = f"{d.program} of {d.name} on machine {kit.machine.name} (lab file {spec.source})"
        (folder / "config" / f"{d.unit}.toml").write_text(toml_text(d.config, title))
    for h in spec.hosts:
        if h.name in kit.machine.runs:  # the volume names the host's mount manager gives (as lab up does)
            pins = [v.as_json() for v in h.volumes] + cluster_pins(spec, h.name)
            etc = folder / "hosts" / h.name / "etc"
            etc.mkdir(parents=True, exist_ok=True)
            (etc / PINNED_VOLUMES).write_text(json.dumps(pins, indent=1) + "\n")
    if MANAGER in kit.machine.runs:  # `snaplab deploy configure` is run where the manager runs
        (folder / "lab.toml").write_text(spec.text)
    info = {
        "machine": kit.machine.name,
        "address": kit.machine.address,
        "prefix": str(kit.prefix),
        "runs": kit.machine.runs,
        "hosts": [h.name for h in spec.hosts if h.name in kit.machine.runs],
        "manager": manager_target(spec),
        "units": [d.unit for d in kit.daemons],
    }
    (folder / "machine.json").write_text(json.dumps(info, indent=1) + "\n")


def unit_text(kit: MachineKit, d: Daemon, bin_dir: Path) -> str:
    """A systemd service: Type=notify (the daemons send READY=1 once they serve), SIGTERM to stop
    (a drain, and the agents' flush), restarted if it fails."""
    what = "manager" if d.kind == "manager" else f"{d.kind} {d.name}"
    after = " ".join(["network-online.target", *(f"{u}.service" for u in d.after)])
    wants = " ".join(["network-online.target", *(f"{u}.service" for u in d.after)])
    return "\n".join(
        [
            "[Unit]",
            f"Description=SnapLab {what} (machine {kit.machine.name})",
            f"After={after}",
            f"Wants={wants}",
            "",
            "[Service]",
            "Type=notify",
            "NotifyAccess=main",
            f"ExecStart={bin_dir / d.program} --config {kit.config_path(d)}",
            "ExecStop=/bin/kill -s TERM $MAINPID",
            "KillSignal=SIGTERM",
            f"TimeoutStartSec={ENROL_TIMEOUT + 30}",  # an agent waits up to enrol-timeout for its manager
            f"TimeoutStopSec={STOP_TIMEOUT}",
            "Restart=on-failure",
            # 5 s: under systemd's default start limit (5 starts in 10 s), an agent refused until
            # `snaplab deploy configure` defines its host keeps being restarted rather than given up.
            "RestartSec=5",
            "UMask=0077",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def lab_network(spec: LabSpec) -> dict[str, str]:
    """The compose network's ``subnet`` (the smallest holding every machine's address as a host
    address) and its ``gateway`` (the last host address no machine has: docker takes it for itself)."""
    addresses = [ipaddress.ip_address(m.address) for m in spec.machines]
    if len({a.version for a in addresses}) > 1:
        raise LabError(
            f"{spec.source}: machines' addresses mix IPv4 and IPv6; a compose network has one subnet"
        )
    first = addresses[0]
    for bits in range(first.max_prefixlen - 2, first.max_prefixlen - 25, -1):  # /30 .. /8 (IPv4)
        net = ipaddress.ip_network(f"{first}/{bits}", strict=False)
        inside = all(a in net and a not in (net.network_address, net.broadcast_address) for a in addresses)
        free = net.broadcast_address - 1
        while inside and free in addresses and free > net.network_address:
            free -= 1
        if inside and free > net.network_address:
            return {"subnet": str(net), "gateway": str(free)}
    raise LabError(f"{spec.source}: machines' addresses are too far apart for one compose network")


def compose_file(spec: LabSpec, kits: list[MachineKit], image: str) -> dict[str, Any]:
    """One service per daemon; the daemons of one machine share its network namespace (the first one's),
    which has the machine's address on the lab network. Loopback addresses: the host's network."""
    services: dict[str, Any] = {}
    loopback = all(ipaddress.ip_address(m.address).is_loopback for m in spec.machines)
    for kit in kits:
        first = ""
        for d in kit.daemons:
            svc = d.unit.removeprefix("snaplab-").lower()
            s: dict[str, Any] = {
                "image": image,
                "command": [d.program, "--config", str(kit.config_path(d))],
                "volumes": [f"./{kit.machine.name}:{kit.prefix}"],
                "restart": "on-failure",
                "stop_signal": "SIGTERM",
                "stop_grace_period": f"{STOP_TIMEOUT}s",
                "healthcheck": {
                    "test": ["CMD", "test", "-e", d.config["ready-file"]],
                    "interval": "2s",
                    "retries": 60,
                },
                "labels": {"snaplab.machine": kit.machine.name, "snaplab.daemon": d.name},
            }
            if loopback:
                s["network_mode"] = "host"
            elif not first:
                s["networks"] = {
                    "lab": {
                        f"ipv{ipaddress.ip_address(kit.machine.address).version}_address": kit.machine.address
                    }
                }
            else:
                s["network_mode"] = f"service:{first}"
            first = first or svc
            deps = [u.removeprefix("snaplab-").lower() for u in d.after]
            if d.kind == "agent" and not deps:  # the manager of another machine
                deps = ["manager"]
            if first != svc and first not in deps:
                deps.append(first)
            if deps:
                s["depends_on"] = {dep: {"condition": "service_healthy"} for dep in deps}
            services[svc] = s
    doc: dict[str, Any] = {"name": "snaplab", "services": services}
    if not loopback:
        doc["networks"] = {"lab": {"ipam": {"config": [lab_network(spec)]}}}
    return doc


def check_compose(doc: dict[str, Any]) -> None:
    """The compose file against the compose specification's schema: a render never writes a bad one."""
    import jsonschema  # here: only --target compose needs it

    schema = json.loads(COMPOSE_SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.path)) or "(top)"
        raise LabError(f"the compose file does not meet the compose specification at {where}: {e.message}")


def render(
    spec: LabSpec,
    target_kind: str,
    out: Path,
    *,
    prefix: str = DEFAULT_PREFIX,
    bin_dir: Path | None = None,
    image: str = DEFAULT_IMAGE,
    report: Report = lambda _line: None,
) -> list[MachineKit]:
    if target_kind not in TARGETS:
        raise LabError(f"--target {target_kind!r}: give systemd or compose")
    kits = plan(spec, prefix)
    bin_dir = bin_dir or Path(sys.executable).parent  # the console scripts beside this interpreter
    doc = compose_file(spec, kits, image) if target_kind == "compose" else None
    if doc is not None:
        check_compose(doc)
    try:
        for kit in kits:
            folder = out / kit.machine.name
            write_machine(kit, spec, folder)
            if target_kind == "systemd":
                units = folder / "systemd"
                units.mkdir(exist_ok=True)
                for d in kit.daemons:
                    (units / f"{d.unit}.service").write_text(unit_text(kit, d, bin_dir))
            report(
                f"machine {kit.machine.name} ({kit.machine.address}): {', '.join(d.unit for d in kit.daemons)}"
            )
        if doc is not None:
            # JSON is YAML: docker compose reads this file as it is.
            (out / "compose.yaml").write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise LabError(f"cannot write the kit in {out}: {exc.strerror}: {exc.filename}") from None
    return kits


def configure_deployed(folder: Path, spec: LabSpec, report: Report) -> None:
    """The lab file's arrays and hosts, applied through the deployed manager as ``admin``
    (``<folder>/pki/admin.crt``), as ``snaplab lab up`` does for a new lab."""
    lab = LabFolder(folder)
    for f in ("ca.crt", "admin.crt", "admin.key"):
        if not (lab.pki / f).is_file():
            raise LabError(f"{lab.pki} has no {f} (snaplab pki issue admin --role admin --out {lab.pki})")
    configure(lab, spec, {"manager": {"target": manager_target(spec)}}, report)
