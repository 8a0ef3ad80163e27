"""One host of a running lab stops, crashes, boots or restarts; ``lab up`` brings back only what died.

    snaplab host stop HOST     orderly shutdown: the agent flushes every mounted volume, then exits
    snaplab host kill HOST     a crash: SIGKILL, nothing flushed (a server's power cut)
    snaplab host start HOST    boot: the agent discovers its disks again (Host.boot: an LV that is Not
                               Ready stays unrecognised until link + iSMrc_scan, guide 3.9 / C9)
    snaplab host restart HOST  stop (if it runs), then start

``runtime.json`` keeps, per host, how it went down (``down``: ``stopped`` or ``crashed``), so
``lab status`` can tell a host stopped on purpose from one that died. A process is respawned from the
command line it was first started with; an array or the manager listens again on the port it had, so
every channel to it reconnects (``rpc_client.RECONNECT_OPTIONS``) and nothing else has to restart.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import ClientTLS, SnapLabClientError, client_errors, make_channel
from snaplab.v1 import manager_pb2, manager_pb2_grpc

from . import processes
from .daemons import ENROL_TIMEOUT, wait_enrolled, wait_serving
from .errors import LabError
from .folder import LabFolder, Report
from .processes import AGENT_STOP_TIMEOUT, STOP_TIMEOUT, Spawned, record, spawn, wait_ready

TIERS = ("array", "manager", "agent")  # the order processes start in (and the reverse of stopping)
RUNNING, STOPPED, CRASHED = "running", "stopped", "crashed"


def refusal(message: Any, **fields: object) -> LabError:
    """A lab command's refusal as one iSM line (``snaplab: error: iSM31180: ...``)."""
    return LabError(str(SnapLabError(message, **fields)))


# -- what runs -------------------------------------------------------------------------------------


def host_record(lab: LabFolder, rt: dict[str, Any], host: str) -> dict[str, Any]:
    """The runtime.json process entry of ``host``'s agent; iSM31180 for a host the lab does not have."""
    rec = next(
        (p for p in rt.get("processes", []) if p.get("kind") == "agent" and p.get("name") == host), None
    )
    if rec is None or host not in rt.get("hosts", {}):
        raise refusal(E.LAB_HOST_UNKNOWN, name=host)
    return rec


def host_state(lab: LabFolder, rt: dict[str, Any], host: str) -> str:
    """running, stopped (``snaplab host stop``) or crashed (killed, or it died by itself)."""
    if processes.is_ours(lab, host_record(lab, rt, host)):
        return RUNNING
    return STOPPED if rt["hosts"][host].get("down") == STOPPED else CRASHED


def _running_runtime(lab: LabFolder) -> dict[str, Any]:
    rt = lab.read_runtime()
    if rt is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    return rt


def _mark(lab: LabFolder, host: str, down: str | None) -> None:
    """Record how ``host`` went down (None: it runs again), re-reading runtime.json under the lock."""
    rt = _running_runtime(lab)
    if down is None:
        rt["hosts"][host].pop("down", None)
    else:
        rt["hosts"][host]["down"] = down
    lab.write_runtime(rt)


def tell_manager(lab: LabFolder, host: str, kind: str, detail: str = "", report: Report = lambda _l: None) -> None:
    """Log a transition of the lab in the manager's event log (``LabEvent``, as admin): ``kind``
    host_stopped / host_crashed / host_started / signatures_lost. A manager that does not answer
    (it is down itself) is named, not fatal."""
    rt = lab.read_runtime() or {}
    target = (rt.get("manager") or {}).get("target", "")
    if not target:
        return
    channel = make_channel(target, ClientTLS.from_folder(lab.pki, "admin"))
    try:
        with client_errors():
            manager_pb2_grpc.ManagerStub(channel).LabEvent(
                manager_pb2.LabEventRequest(host=host, kind=kind, detail=detail), timeout=10
            )
    except SnapLabClientError as exc:
        report(f"event {kind} of {host} not logged: {exc}")
    finally:
        channel.close()


# -- stop, kill ------------------------------------------------------------------------------------


def stop_host(lab: LabFolder, host: str, report: Report = lambda _line: None) -> None:
    """Orderly shutdown (SIGTERM): the agent flushes every mounted volume and exits. What it could
    not flush it keeps (agent/fs/kept.py); the caller names it. iSM31182 if it does not run."""
    rt = _running_runtime(lab)
    rec = host_record(lab, rt, host)
    if not processes.is_ours(lab, rec):
        raise refusal(E.LAB_HOST_DOWN, name=host)
    processes.stop(lab, [rec], report=report, timeout=AGENT_STOP_TIMEOUT)
    _mark(lab, host, STOPPED)
    tell_manager(lab, host, "host_stopped", report=report)


def kill_host(lab: LabFolder, host: str, report: Report = lambda _line: None) -> None:
    """A crash: SIGKILL, nothing flushed; waits until the process is gone."""
    rt = _running_runtime(lab)
    rec = host_record(lab, rt, host)
    if not processes.is_ours(lab, rec):
        raise refusal(E.LAB_HOST_DOWN, name=host)
    processes.send_signal(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while processes.is_ours(lab, rec) and time.monotonic() < deadline:
        time.sleep(0.02)
    _mark(lab, host, CRASHED)
    report(f"killed agent {host} (pid {rec['pid']})")
    tell_manager(lab, host, "host_crashed", report=report)


# -- start -----------------------------------------------------------------------------------------


def respawn_argv(rec: dict[str, Any]) -> list[str]:
    """The command line a process was started with, minus the ready file ``spawn`` adds again; a TCP
    daemon listens on the port it had, so its clients' channels find it again."""
    argv = list(rec.get("argv", []))
    if len(argv) >= 2 and argv[-2] == "--ready-file":
        argv = argv[:-2]
    endpoint = rec.get("endpoint", "")
    if rec.get("kind") in ("array", "manager") and "--listen" in argv and endpoint:
        argv[argv.index("--listen") + 1] = endpoint
    if rec.get("kind") == "manager" and "--console" in argv and rec.get("console"):
        argv[argv.index("--console") + 1] = rec["console"]
    return argv


def _replace_record(lab: LabFolder, old: dict[str, Any], s: Spawned) -> None:
    rt = _running_runtime(lab)
    new = record(s, old.get("endpoint", ""))
    if old.get("console"):
        new["console"] = old["console"]
    rt["processes"] = [
        new if (p.get("kind"), p.get("name")) == (old.get("kind"), old.get("name")) else p
        for p in rt.get("processes", [])
    ]
    if s.kind == "agent" and s.name in rt.get("hosts", {}):
        rt["hosts"][s.name]["pid"] = s.popen.pid
        rt["hosts"][s.name].pop("down", None)
    elif s.kind == "array" and s.name in rt.get("arrays", {}):
        rt["arrays"][s.name]["pid"] = s.popen.pid
    elif s.kind == "manager" and rt.get("manager"):
        rt["manager"]["pid"] = s.popen.pid
    lab.write_runtime(rt)


def respawn(lab: LabFolder, rec: dict[str, Any], report: Report = lambda _line: None) -> Spawned:
    """Start a process of runtime.json again from its command line, wait until it serves (an agent:
    until it has enrolled), and record its new pid. On failure it is stopped and LabError says why."""
    s = spawn(lab, rec["kind"], rec["name"], respawn_argv(rec))
    try:
        wait_ready([s])
        if s.kind == "agent":
            wait_enrolled(lab, s, time.monotonic() + ENROL_TIMEOUT)
        else:
            wait_serving(lab, s, rec.get("endpoint", ""))
    except BaseException:
        processes.stop(lab, [record(s)], verify=False)
        raise
    _replace_record(lab, rec, s)
    report(f"started {s.label} (pid {s.popen.pid})")
    return s


def start_host(lab: LabFolder, host: str, report: Report = lambda _line: None) -> None:
    """Boot ``host``: its agent starts from its state and discovers its disks again (Host.boot).
    iSM31181 if it runs; iSM31183 (with the reason) if it does not come up."""
    rt = _running_runtime(lab)
    rec = host_record(lab, rt, host)
    if processes.is_ours(lab, rec):
        raise refusal(E.LAB_HOST_RUNNING, name=host)
    lab.socket(host).unlink(missing_ok=True)  # a crashed agent leaves its socket file
    try:
        respawn(lab, rec, report)
    except LabError as exc:
        raise refusal(E.LAB_HOST_START_FAILED, detail=f"{host}: {exc}") from None
    tell_manager(lab, host, "host_started", report=report)


def restart_host(lab: LabFolder, host: str, report: Report = lambda _line: None) -> None:
    """Orderly stop when it runs, then boot."""
    rt = _running_runtime(lab)
    if processes.is_ours(lab, host_record(lab, rt, host)):
        stop_host(lab, host, report)
    start_host(lab, host, report)


# -- lab up on a lab where some processes died ---------------------------------------------------


def revive(lab: LabFolder, rt: dict[str, Any], report: Report = lambda _line: None) -> list[str]:
    """Start again every process of a running lab that is not running (arrays, then the manager, then
    agents), leaving the others alone; returns their labels."""
    dead = [p for p in rt.get("processes", []) if not processes.is_ours(lab, p)]
    dead.sort(key=lambda p: TIERS.index(p["kind"]) if p.get("kind") in TIERS else len(TIERS))
    started = []
    for rec in dead:
        if rec.get("kind") == "agent":
            lab.socket(rec["name"]).unlink(missing_ok=True)
        s = respawn(lab, rec, report)
        started.append(s.label)
        if s.kind == "agent":
            tell_manager(lab, s.name, "host_started", report=report)
    return started
