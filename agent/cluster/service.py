"""One node's cluster service: heartbeats to the quorum witness, automatic takeover of its groups.

Runs in the agent of a cluster node (``--cluster``) whose lab wrote ``etc/cluster.json`` (the lab
file's ``[[clusters]]``: heartbeat interval and timeout, the groups with their shared disks, letters,
volume names and takeover commands). Every interval the node sends its heartbeat to the witness (the
management server, manager/witness.py) and learns which nodes it heard within the timeout. For each
group another node owns (the reservation of its disks at the array) that the witness no longer
hears, the node claims the group; the witness grants it only with its vote, moving the disks'
reservations to this node, and the node then takes the group over as a planned move's target does:
``iSMrc_scan``, ``iSMrc_signature -import`` of the signatures the owner exported, ``MOUNTVOL`` of
each disk at its letter, ``iSMvollist -cr``, the takeover commands. Every step goes to the host's
command trace and the decisions to the manager's event log.

The cluster network is the heartbeat path to the witness. A node cut off from it (the debug hook
``debug/cluster_net_down``) is no longer heard: the other node is granted its groups, and from the
reservation's move on the array refuses the cut-off node's writes, so at most one node's writes are
ever accepted even while the cut-off node keeps writing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from snaplab.common.rpc import SnapLabClientError, call_error
from snaplab.v1 import manager_pb2

log = logging.getLogger("snaplab.agent.cluster")

CLUSTER_FILE = "cluster.json"
RunCommand = Callable[[Any, list[str], str], tuple[str, str, int]]


@dataclass
class Group:
    name: str
    array: str
    disks: list[dict[str, str]]  # {ld, mount, volume}
    takeover: list[str] = field(default_factory=list)
    signatures: str = ""  # the file the owner exports the signatures to (3.10 (10))


@dataclass
class ClusterConfig:
    cluster: str
    interval: float
    timeout: float
    groups: list[Group]

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            raw["cluster"],
            float(raw["heartbeat_interval"]),
            float(raw["heartbeat_timeout"]),
            [
                Group(g["name"], g["array"], g["disks"], g.get("takeover", []), g.get("signatures", ""))
                for g in raw["groups"]
            ],
        )


def unsigned_disks(signatures: str, lds: list[str]) -> list[str]:
    """Of the group's disks ``lds``, those whose signature the file ``signatures`` (the owner's
    ``iSMrc_signature -export``, which a node imports, 3.10 (10)) does not carry: all of them when
    it was never exported."""
    try:
        text = Path(signatures).read_text(encoding="utf-8") if signatures else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    signed = {
        f[2]
        for f in (line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
        if len(f) >= 5 and f[4] != "-"
    }
    return [ld for ld in lds if ld not in signed]


def lost_signatures_file(state: Path, group: str) -> Path:
    """Where a node notes the disks of ``group`` whose signatures its last takeover lost (read back
    by ``snaplab cluster status``); absent when it imported them all."""
    return state / "cluster" / f"{group}.signatures-lost"


def note_lost_signatures(state: Path, group: str, lost: list[str]) -> None:
    path = lost_signatures_file(state, group)
    if lost:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(lost) + "\n", encoding="utf-8")
    else:
        path.unlink(missing_ok=True)


_current: ClusterService | None = None


def current() -> ClusterService | None:
    """The cluster service of this agent, if it is a cluster node (for the commands)."""
    return _current


class ClusterService:
    """The node's loop (a thread of the agent); ``stop`` ends it.

    ``held`` are groups this node must not claim: taken offline here (``CLUSTER GROUP G /OFFLINE``)
    or failed here (``iSMrc_umount`` of a shared disk); a group another node owns is cleared again."""

    def __init__(self, host: Any, config: ClusterConfig, run: RunCommand, stop: threading.Event) -> None:
        self.host, self.config, self.run_command, self.stop = host, config, run, stop
        self.thread = threading.Thread(target=self._loop, name="cluster", daemon=True)
        self.held: set[str] = set()

    def group(self, name: str) -> Group | None:
        return next((g for g in self.config.groups if g.name.lower() == name.lower()), None)

    def group_of_disk(self, ld: str) -> Group | None:
        return next((g for g in self.config.groups if any(d["ld"] == ld for d in g.disks)), None)

    def resource_failed(self, g: Group) -> bool:
        """A disk of ``g`` failed on this node (it was unmounted under the cluster): give the group
        up at the witness, whose next claim by another node takes it over. True once released."""
        self.held.add(g.name)
        try:
            self.host.manager.ClusterClaim(self._claim_request(g, release=True), timeout=30)
        except grpc.RpcError as exc:
            log.warning("release of %s failed: %s", g.name, call_error(exc))
            return False
        log.warning("disk resource of %s failed: group released for failover", g.name)
        return True

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        log.info(
            "cluster service of %s in %s: heartbeat every %gs, timeout %gs",
            self.host.name,
            self.config.cluster,
            self.config.interval,
            self.config.timeout,
        )
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # the service never dies of one round
                log.exception("cluster round failed")
            self.stop.wait(max(0.05, self.config.interval - (time.monotonic() - started)))

    def cut_off(self) -> bool:
        """Debug hook ``<host>/debug/cluster_net_down``: this node is cut off from the cluster network
        (not from the SAN): it sends no heartbeat and claims nothing while the file exists."""
        return (self.host.state / "debug" / "cluster_net_down").exists()

    def tick(self) -> None:
        if self.cut_off():
            return
        alive = self.heartbeat()
        if alive is None:
            return  # the witness does not answer: no vote, so no takeover (the array fences anyway)
        for g in self.config.groups:
            owner = self.owner(g)
            if owner and owner != self.host.name:
                self.held.discard(g.name)  # it lives elsewhere now: this node may take it again
                self.let_go(g)
            if g.name in self.held or owner == self.host.name or (owner and owner in alive):
                continue
            self.claim(g, owner)

    def heartbeat(self) -> list[str] | None:
        beat = manager_pb2.ClusterBeat(cluster=self.config.cluster, timeout_seconds=self.config.timeout)
        try:
            view = self.host.manager.ClusterHeartbeat(beat, timeout=max(0.5, self.config.interval))
        except grpc.RpcError as exc:
            log.info("witness not heard: %s", call_error(exc))
            return None
        return list(view.alive)

    def owner(self, g: Group) -> str:
        """Who holds the group: the reservation of its first disk, as the array shows this node."""
        try:
            lds = self.host.array(g.array).disks()
        except SnapLabClientError as exc:
            log.info("array %s not reached: %s", g.array, exc)
            return self.host.name  # nothing to decide without the array
        first = g.disks[0]["ld"]
        return next((x.reserved_by for x in lds if x.name == first), "")

    def let_go(self, g: Group) -> None:
        """The group lives on another node (it was taken over while this node was cut off): its disks
        are dismounted here, the cache discarded (the array refuses this node's writes anyway)."""
        for d in g.disks:
            with self.host.command():
                volume = self.host.volume_by_name(d["volume"])
                if volume is not None and volume.mount_points:
                    log.warning(
                        "group %s is owned elsewhere: %s dismounted, its cache discarded", g.name, d["mount"]
                    )
                    self.host.unmount(volume, force=True)

    def _claim_request(
        self, g: Group, *, release: bool = False, unsigned: list[str] | None = None
    ) -> manager_pb2.ClusterClaimRequest:
        return manager_pb2.ClusterClaimRequest(
            cluster=self.config.cluster,
            group=g.name,
            array=g.array,
            lds=[d["ld"] for d in g.disks],
            timeout_seconds=self.config.timeout,
            release=release,
            unsigned=unsigned or [],
        )

    def claim(self, g: Group, owner: str) -> None:
        # Signatures this node has not imported are lost by the takeover: the witness logs them.
        unsigned = unsigned_disks(g.signatures, [d["ld"] for d in g.disks])
        req = self._claim_request(g, unsigned=unsigned)
        try:
            reply = self.host.manager.ClusterClaim(req, timeout=30)
        except grpc.RpcError as exc:
            log.warning("claim of %s failed: %s", g.name, call_error(exc))
            return
        if not reply.granted:
            log.info("claim of %s not granted: %s", g.name, reply.reason)
            return
        log.warning("group %s taken over from %s", g.name, reply.previous or owner or "-")
        self.take_over(g)

    def _run(self, line: str) -> int:
        with self.host.command():
            out, err, code = self.run_command(self.host, line.split(" "), "")
        log.info("takeover> %s: exit %d %s", line, code, (err or out).strip().splitlines()[:1])
        return code

    def take_over(self, g: Group) -> None:
        self._run("iSMrc_scan")
        lost = unsigned_disks(g.signatures, [d["ld"] for d in g.disks])
        if g.signatures and Path(g.signatures).is_file():
            self._run(f"iSMrc_signature -import {g.signatures}")
        if lost:
            log.warning("takeover of %s: signatures of %s not imported here: lost", g.name, ", ".join(lost))
        note_lost_signatures(self.host.state, g.name, lost)
        for d in g.disks:
            self._run(f"MOUNTVOL {d['mount']} {d['volume']}")
        self._run("iSMvollist -cr")
        for line in g.takeover:
            self._run(line)


def start(host: Any, state: Path, run: RunCommand, stop: threading.Event) -> ClusterService | None:
    """The cluster service of a node whose lab defines its cluster (``etc/cluster.json``), started."""
    path = state / "etc" / CLUSTER_FILE
    if not host.cluster or not path.is_file():
        return None
    try:
        config = ClusterConfig.load(path)
    except (OSError, ValueError, KeyError) as exc:
        log.error("cannot read %s: %s; no cluster service", path, exc)
        return None
    global _current
    service = ClusterService(host, config, run, stop)
    _current = service
    service.start()
    return service
