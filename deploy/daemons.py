"""The lab's daemons in start order (arrays, manager, agents): command lines, readiness, runtime.json."""

from __future__ import annotations

import sys
import time
from typing import Any

from snaplab.common.rpc import ClientTLS, make_channel, wait_healthy

from .errors import LabError
from .folder import LabFolder, Report
from .host_settings import write_quiesce_settings
from .netns import ARRAY_PORT, MANAGER_PORT, Plan, exec_prefix
from .processes import READY_TIMEOUT, Spawned, daemon_command, last_line, record, spawn, wait_ready
from .spec import ArraySpec, HostSpec, LabSpec
from .status import agent_status

ENROL_TIMEOUT = 30.0  # agent ready -> Agent.Status says enrolled


# -- command lines -----------------------------------------------------------------------------


def array_argv(lab: LabFolder, a: ArraySpec, net: Plan | None = None) -> list[str]:
    argv = [sys.executable, "-m", "snaplab.array.daemon", "--state", str(lab.array_state(a.name))]
    argv += ["--certs", str(lab.pki), "--cert-name", a.name, "--name", a.name]
    if a.product_id:
        argv += ["--product-id", a.product_id]
    if a.restore_rate:
        argv += ["--restore-rate", f"{a.restore_rate:g}"]
    if net is None:
        return argv + ["--listen", "127.0.0.1:0", *_boundary(lab)]
    m = net.machine("array", a.name)  # the LAN for the manager, each SAN port for its hosts
    argv += ["--listen", f"{m.lan}:{ARRAY_PORT}"]
    for addr in m.san.values():
        argv += ["--also-listen", addr]
    return [*exec_prefix(m.ns), *argv, *_boundary(lab)]


def manager_argv(
    lab: LabFolder, spec: LabSpec, runtime: dict[str, Any], net: Plan | None = None
) -> list[str]:
    argv = [
        *daemon_command("snaplab-manager", "snaplab.manager.daemon"),
        "--state",
        str(lab.manager_state),
        "--certs",
        str(lab.pki),
    ]
    listen = "127.0.0.1:0" if net is None else f"{net.manager.lan}:{MANAGER_PORT}"
    argv += ["--cert-name", "manager", "--listen", listen]
    if spec.console:  # the web console (manager/web/), loopback unless the lab file says otherwise
        argv += ["--console", spec.console]
    for a in spec.arrays:
        argv += ["--array", f"{a.name}={runtime['arrays'][a.name]['target']}"]
    argv += _boundary(lab)
    return argv if net is None else [*exec_prefix(net.manager.ns), *argv]


def agent_argv(
    lab: LabFolder,
    h: HostSpec,
    manager_target: str,
    script: list[str],
    net: Plan | None = None,
    spec: LabSpec | None = None,
) -> list[str]:
    """``script``: how to run ``snaplab-agent`` (looked up once for all hosts). On a netns lab the
    agent reaches each array through the SAN ports of it the host is cabled to, in the lab file's
    order, the next when one is cut (none: no block I/O there)."""
    argv = [*script, "--host", h.name, "--state", str(lab.host_state(h.name)), "--certs", str(lab.pki)]
    argv += ["--manager", manager_target, "--socket", str(lab.socket(h.name))]
    argv += ["--role", h.role, "--platform", h.platform]
    for w in h.wwns:
        argv += ["--wwn", w]
    for port in h.ports:
        argv += ["--port", port]
    if h.cluster:
        argv += ["--cluster", h.cluster, "--cluster-role", h.cluster_role]
    argv += _boundary(lab)
    if net is None or spec is None:
        return argv
    for a in spec.arrays:
        paths = [f"{net.ports[p]}:{ARRAY_PORT}" for p in h.ports if p in a.port_names()]
        if paths:  # several: multipath, the first port while it answers (rpc_client._options)
            target = paths[0] if len(paths) == 1 else "ipv4:" + ",".join(paths)
            argv += ["--array-target", f"{a.name}={target}"]
    return [*exec_prefix(net.host(h.name).ns), *argv]


def _boundary(lab: LabFolder) -> list[str]:
    """The lab's chaos rules. Each daemon's metrics are on its default --metrics-listen, a free loopback
    port its ready file names (not spelled out: `127.0.0.1:0` in argv is what restarts rewrite to --listen's port)."""
    return ["--chaos-dir", str(lab.chaos)]


# -- starting each tier ------------------------------------------------------------------------


def _add(lab: LabFolder, runtime: dict[str, Any], s: Spawned, endpoint: str) -> None:
    runtime["processes"].append(record(s, endpoint))
    lab.write_runtime(runtime)  # at once: a `lab down` after a crash of `up` still finds it


def _target(p: Spawned, address: str = "127.0.0.1") -> str:
    """Where a ready TCP daemon listens (its ready file names the port)."""
    assert p.ready is not None
    return f"{address}:{p.ready['port']}"


def _add_healthy(lab: LabFolder, runtime: dict[str, Any], p: Spawned, target: str) -> None:
    """Record a TCP daemon in runtime.json, then wait for its gRPC health to say SERVING."""
    _add(lab, runtime, p, target)
    wait_serving(lab, p, target)


def wait_serving(lab: LabFolder, p: Spawned, target: str) -> None:
    """Until the TCP daemon ``p`` on ``target`` says SERVING (gRPC health, as the lab's admin)."""
    channel = make_channel(target, ClientTLS.from_folder(lab.pki, "admin"))
    try:
        wait_healthy(channel, timeout=READY_TIMEOUT)
    except TimeoutError as exc:
        raise LabError(f"{p.label} on {target} is not healthy: {exc} (log: {p.log})") from None
    finally:
        channel.close()


def start_arrays(
    lab: LabFolder, spec: LabSpec, started: list[Spawned], runtime: dict[str, Any], report: Report,
    net: Plan | None = None,
) -> None:
    procs = [spawn(lab, "array", a.name, array_argv(lab, a, net)) for a in spec.arrays]
    started.extend(procs)
    wait_ready(procs)
    for p, a in zip(procs, spec.arrays, strict=True):
        target = _target(p, net.machine("array", a.name).lan if net else "127.0.0.1")
        runtime["arrays"][a.name] = {"target": target, "product_id": a.product_id, "pid": p.popen.pid}
        _add_healthy(lab, runtime, p, target)
        report(f"array {a.name} listening on {target}")


def start_manager(
    lab: LabFolder, spec: LabSpec, started: list[Spawned], runtime: dict[str, Any], report: Report,
    net: Plan | None = None,
) -> None:
    p = spawn(lab, "manager", "manager", manager_argv(lab, spec, runtime, net))
    started.append(p)
    wait_ready([p])
    target = _target(p, net.manager.lan if net else "127.0.0.1")
    assert p.ready is not None
    runtime["manager"] = {"target": target, "pid": p.popen.pid}
    console = ""
    if spec.console and "console_port" in p.ready:
        host = spec.console.rpartition(":")[0]
        console = f"{host}:{p.ready['console_port']}"
        runtime["manager"]["console"] = console_url(console)
    _add_healthy(lab, runtime, p, target)
    if console:
        runtime["processes"][-1]["console"] = console  # a respawn serves the console where it was
        lab.write_runtime(runtime)
    report(f"manager listening on {target}" + (f", console on {console_url(console)}" if console else ""))


def console_url(endpoint: str) -> str:
    """The address a browser opens: a wildcard listen address is reached on loopback."""
    host, _, port = endpoint.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"https://{host}:{port}/"


def start_agents(
    lab: LabFolder, spec: LabSpec, started: list[Spawned], runtime: dict[str, Any], report: Report,
    net: Plan | None = None,
) -> None:
    """All agents at once; each counts as started once it has enrolled with the manager."""
    script = daemon_command("snaplab-agent", "snaplab.agent.daemon") if spec.hosts else []
    manager = runtime["manager"]["target"]
    for h in spec.hosts:
        write_quiesce_settings(lab, h)  # SnapLab extension: the lab file's quiesce hooks (host_settings.py)
    procs = [spawn(lab, "agent", h.name, agent_argv(lab, h, manager, script, net, spec)) for h in spec.hosts]
    started.extend(procs)
    wait_ready(procs)
    for p, h in zip(procs, spec.hosts, strict=True):
        sock = str(lab.socket(h.name))
        runtime["hosts"][h.name] = {"socket": sock, "role": h.role, "pid": p.popen.pid}
        _add(lab, runtime, p, f"unix:{sock}")
    deadline = time.monotonic() + ENROL_TIMEOUT
    for p, h in zip(procs, spec.hosts, strict=True):
        wait_enrolled(lab, p, deadline)
        report(f"agent {h.name} ({h.role}) on {lab.socket(h.name)}, enrolled")


def wait_enrolled(lab: LabFolder, p: Spawned, deadline: float) -> None:
    """Until the agent ``p`` says it is enrolled with the manager; LabError if it exits or is late."""
    while True:
        status, detail = agent_status(lab.socket(p.name))
        if status is not None and status.enrolled:
            return
        if p.popen.poll() is not None:
            raise LabError(
                f"agent {p.name} exited with status {p.popen.returncode}: {last_line(p.log, p.log_start)} "
                f"(log: {p.log})"
            )
        if time.monotonic() > deadline:
            why = detail or "not enrolled to the manager"
            raise LabError(f"agent {p.name} is not healthy after {ENROL_TIMEOUT:.0f}s: {why} (log: {p.log})")
        time.sleep(0.1)
