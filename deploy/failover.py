"""Planned failover of a cluster group (``snaplab cluster move GROUP NODE``) and ``snaplab cluster status``.

A move does what the cluster software does when an operator moves a group (guide 3.10 (10), (12)):
on the owner, the disks' signatures are exported, each shared disk is flushed and the group taken
offline (``CLUSTER GROUP G /OFFLINE``: the cluster dismounts its disks; an operator's ``iSMrc_umount``
of an online shared disk would fail the group over instead); the reservation moves
at the array (array/reservations.py), so from then on only the new owner's writes are accepted; on
the new owner the disks are rescanned, the signatures imported, each disk mounted at the same
letter or folder (by the volume name every node pins for it), its volume list made again, and the
group's takeover commands run. A crashed or stopped owner is skipped
(what it had not flushed is lost, as a server's cache is).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from snaplab.common.errors import E, SnapLabError

from . import lifecycle
from .cluster import group_of, owner_of, set_owner
from .errors import LabError, first_line
from .folder import LabFolder, Report
from .lifecycle import refusal
from .setup_commands import run_command
from .spec import ClusterSpec, GroupSpec, LabSpec, SharedDisk

COMMAND_TIMEOUT = 120.0


def shared_volume_guid(cluster: str, d: SharedDisk) -> str:
    """The volume GUID every node pins for a shared disk's first partition, so a new owner mounts it
    by the same ``\\\\?\\Volume{GUID}\\`` name (lab file order cannot give it another)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"snaplab:cluster:{cluster}:{d.array}:{d.ld}:1"))


def volume_name(cluster: str, d: SharedDisk) -> str:
    return f"\\\\?\\Volume{{{shared_volume_guid(cluster, d)}}}\\"


def cluster_pins(spec: LabSpec, host: str) -> list[dict[str, Any]]:
    """The pinned volumes a node gets for its clusters' shared disks (configure.pin_volumes)."""
    return [
        {"array": d.array, "ld": d.ld, "partition": 1, "guid": shared_volume_guid(c.name, d)}
        for c in spec.clusters
        if host in c.nodes
        for g in c.groups
        for d in g.disks
    ]


def write_cluster_files(lab: LabFolder, spec: LabSpec) -> None:
    """Each node's ``etc/cluster.json``: what its cluster service (agent/cluster/service.py) needs of
    the lab file's cluster."""
    for c in spec.clusters:
        groups = [
            {
                "name": g.name,
                "array": g.disks[0].array,
                "disks": [{"ld": d.ld, "mount": d.mount, "volume": volume_name(c.name, d)} for d in g.disks],
                "takeover": [line for line, _argv in g.takeover],
                "signatures": signature_file(lab, c, g),
            }
            for g in c.groups
        ]
        body = {
            "cluster": c.name,
            "nodes": c.nodes,
            "heartbeat_interval": c.heartbeat_interval,
            "heartbeat_timeout": c.heartbeat_timeout,
            "groups": groups,
        }
        for n in c.nodes:
            path = lab.host_state(n) / "etc" / "cluster.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(body, indent=1) + "\n")


def signature_file(lab: LabFolder, c: ClusterSpec, g: GroupSpec) -> str:
    folder = lab.folder / "clusters" / c.name
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{g.name}.signatures.txt")


def _run(lab: LabFolder, host: str, line: str, report: Report) -> tuple[str, str, int]:
    out, err, code = run_command(lab.folder, host, line.split(" "), timeout=COMMAND_TIMEOUT)
    report(f"{host}> {line}: {'ok' if code == 0 else first_line(err) or first_line(out)}")
    return out, err, code


def _must(lab: LabFolder, host: str, line: str, report: Report) -> str:
    out, err, code = _run(lab, host, line, report)
    if code != 0:
        raise refusal(E.GROUP_MOVE_FAILED, detail=f"{host}> {line}: {first_line(err) or first_line(out)}")
    return out


def find_group(spec: LabSpec, name: str) -> tuple[ClusterSpec, GroupSpec]:
    found = group_of(spec, name)
    if found is None:
        raise refusal(E.CLUSTER_UNKNOWN, name=name)
    return found


def move_group(lab: LabFolder, spec: LabSpec, group: str, node: str, report: Report = lambda _l: None) -> str:
    """Planned move of ``group`` to ``node``; returns the previous owner. Refusals (one iSM line,
    nothing changed): iSM31200 unknown group, iSM31201 not a node of its cluster, iSM31182 the node
    does not run, iSM31202 it already owns the group."""
    rt = lab.read_runtime()
    if rt is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    c, g = find_group(spec, group)
    if node not in c.nodes:
        raise refusal(E.NOT_A_NODE, name=f"{node} in {c.name}")
    if lifecycle.host_state(lab, rt, node) != lifecycle.RUNNING:
        raise refusal(E.LAB_HOST_DOWN, name=node)
    owner = owner_of(lab, rt, g)
    if owner == node:
        raise refusal(E.GROUP_ALREADY_THERE, name=f"{g.name} on {node}")
    sigs = signature_file(lab, c, g)
    if owner and lifecycle.host_state(lab, rt, owner) == lifecycle.RUNNING:
        _must(lab, owner, f"iSMrc_signature -export {sigs}", report)  # 3.10 (10)
        for d in g.disks:
            _must(lab, owner, f"iSMrc_flush -drv {d.mount}", report)
        _must(lab, owner, f"CLUSTER GROUP {g.name} /OFFLINE", report)  # the cluster dismounts its disks
    set_owner(lab, rt, g, node)
    report(f"reservation of {', '.join(d.ld for d in g.disks)} moved to {node}")
    from snaplab.agent.cluster.service import (  # lab commands need no agent code otherwise
        note_lost_signatures,
        unsigned_disks,
    )

    _must(lab, node, "iSMrc_scan", report)
    lost = unsigned_disks(sigs, [d.ld for d in g.disks])  # never exported: the node cannot import them
    if (lab.folder / "clusters" / c.name / f"{g.name}.signatures.txt").is_file():
        _must(lab, node, f"iSMrc_signature -import {sigs}", report)
    note_lost_signatures(lab.host_state(node), g.name, lost)
    if lost:
        report(str(SnapLabError(E.SIGNATURES_LOST, name=f"{', '.join(lost)} of {g.name} on {node}")))
        lifecycle.tell_manager(lab, node, "signatures_lost", f"{', '.join(lost)} of {g.name}", report)
    for d in g.disks:
        _must(lab, node, f"MOUNTVOL {d.mount} {volume_name(c.name, d)}", report)
    _must(lab, node, "iSMvollist -cr", report)  # its commands name the disks by their letters now
    for line, _argv in g.takeover:
        _must(lab, node, line, report)
    return owner


def group_on_off(lab: LabFolder, spec: LabSpec, group: str, *, online: bool) -> str:
    """``CLUSTER GROUP G /OFFLINE|/ONLINE`` on the group's owner; returns its message line."""
    rt = lab.read_runtime()
    if rt is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    _c, g = find_group(spec, group)
    owner = owner_of(lab, rt, g)
    if not owner or lifecycle.host_state(lab, rt, owner) != lifecycle.RUNNING:
        raise refusal(E.LAB_HOST_DOWN, name=owner or f"owner of {g.name}")
    if not online:
        for d in g.disks:
            _must(lab, owner, f"iSMrc_flush -drv {d.mount}", lambda _l: None)
    return _must(
        lab, owner, f"CLUSTER GROUP {g.name} {'/ONLINE' if online else '/OFFLINE'}", lambda _l: None
    ).strip()


@dataclass
class GroupState:
    name: str
    owner: str
    disks: list[tuple[str, str, str]]  # (ld, mount, state on the owner: online / offline)
    lost_signatures: list[str]  # disks whose signatures the owner's takeover lost (3.10 (10))


@dataclass
class NodeState:
    state: str  # running / stopped / crashed
    heartbeat_age: float | None  # seconds since the witness last heard it; None never (or not known)


def heartbeat_ages(lab: LabFolder, rt: dict[str, Any]) -> dict[str, float] | None:
    """Seconds since the witness (the manager) last heard each cluster node; None if it does not answer."""
    from snaplab.common.rpc import ClientTLS, SnapLabClientError, client_errors, make_channel
    from snaplab.v1 import manager_pb2, manager_pb2_grpc

    target = (rt.get("manager") or {}).get("target", "")
    if not target:
        return None
    channel = make_channel(target, ClientTLS.from_folder(lab.pki, "admin"))
    try:
        with client_errors():
            reply = manager_pb2_grpc.ManagerStub(channel).Monitor(manager_pb2.MonitorRequest(), timeout=15)
    except SnapLabClientError:
        return None
    finally:
        channel.close()
    return {h.name: h.heartbeat_age for h in reply.hosts if h.cluster and h.heartbeat_age >= 0}


def cluster_status(
    lab: LabFolder, spec: LabSpec, name: str | None
) -> list[tuple[ClusterSpec, dict[str, NodeState], list[GroupState]]]:
    """Per cluster: each node's state (running / stopped / crashed) and the age of its last heartbeat,
    each group's owner, disks and the signatures its owner's takeover lost."""
    rt = lab.read_runtime()
    if rt is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    clusters = [c for c in spec.clusters if name is None or c.name == name]
    if name is not None and not clusters:
        raise refusal(E.CLUSTER_UNKNOWN, name=name)
    from snaplab.agent.cluster.service import lost_signatures_file
    from snaplab.agent.host import mount_path  # imported here: lab commands need no agent code otherwise

    ages = heartbeat_ages(lab, rt) or {}
    out = []
    for c in clusters:
        nodes = {n: NodeState(lifecycle.host_state(lab, rt, n), ages.get(n)) for n in c.nodes}
        groups = []
        for g in c.groups:
            owner = owner_of(lab, rt, g)
            disks = []
            for d in g.disks:
                online = owner in nodes and nodes[owner].state == lifecycle.RUNNING
                online = online and mount_path(lab.folder, owner, d.mount).is_dir()
                disks.append((d.ld, d.mount, "online" if online else "offline"))
            lost: list[str] = []
            if owner:
                marker = lost_signatures_file(lab.host_state(owner), g.name)
                lost = marker.read_text(encoding="utf-8").split() if marker.is_file() else []
            groups.append(GroupState(g.name, owner or "-", disks, lost))
        out.append((c, nodes, groups))
    return out
