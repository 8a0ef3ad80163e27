"""The Manager service's cluster calls: the quorum witness's heartbeats and takeover claims (witness.py),
the admin's lab events, and the rule that a cluster shares only BVs (guide 3.10 (9)-(12))."""

from __future__ import annotations

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import current_identity, translate_errors
from snaplab.v1 import array_pb2, manager_pb2

from . import serde
from .arrays import ArrayLink
from .roles import ADMIN_ROLE, HOST_ROLE
from .roles import require_role as _require
from .state import HostRecord
from .witness import Witness


@translate_errors
class ClusterCallsMixin:
    """Mixed into ManagerServicer, whose state, arrays, witness, claims lock and event log it uses."""

    witness: Witness
    def _cluster_node(self, context: grpc.aio.ServicerContext, cluster: str) -> HostRecord:
        """The calling host, enrolled as a node of ``cluster``; else iSM31060 / iSM31201."""
        ident = current_identity(context)
        _require(ident, HOST_ROLE, "act as a cluster node")
        host = self.state.host(ident.name)
        if host is None:
            raise SnapLabError(E.NOT_ENROLLED, name=ident.name)
        if not cluster or host.cluster != cluster:
            raise SnapLabError(E.NOT_A_NODE, name=f"{ident.name} in {cluster or '-'}")
        return host

    def _nodes(self, cluster: str) -> list[str]:
        return [h.name for h in self.state.hosts() if h.cluster == cluster]

    def _configured_cluster(self, name: str, claimed: str) -> str:
        """The cluster the configuration (the lab's host definitions) makes ``name`` a node of; a
        host's own claim of another cluster (or of one when it is none's node) is iSM31208."""
        configured = sorted({d.cluster for d in self.state.definitions(name) if d.cluster})
        cluster = configured[0] if configured else ""
        if claimed and claimed != cluster:
            raise SnapLabError(E.CLUSTER_NOT_CONFIGURED, name=f"{name} in {claimed}")
        return cluster

    async def _refuse_shared_non_bv(self, link: ArrayLink, req: array_pb2.AssignAccess) -> None:
        """Guide 3.10 (11): only a BV can be a cluster shared disk. An access change that would give
        an SV or LV to two or more nodes of one cluster (the configuration's) is iSM31207."""
        state = await link.describe()
        ld = next((x for x in state.lds if req.ld in (x.name, x.number)), None)
        if ld is None or ld.type not in ("SV", "LV"):
            return  # the array answers for what it does not know
        paths = set(ld.access) | {f"port:{req.port}" if req.port else f"wwn:{req.wwn.lower()}"}
        reach = {
            h.name
            for h in state.hosts
            if paths & ({f"port:{p}" for p in h.ports} | {f"wwn:{w.lower()}" for w in h.wwns})
        }
        clusters: dict[str, list[str]] = {}
        for d in self.state.definitions():
            if d.array == link.key and d.cluster and d.name in reach:
                clusters.setdefault(d.cluster, []).append(d.name)
        for cluster, nodes in sorted(clusters.items()):
            if len(nodes) >= 2:
                raise SnapLabError(
                    E.SHARED_NOT_BV, name=f"{ld.name} is an {ld.type}; nodes {', '.join(sorted(nodes))} of {cluster}"
                )

    async def LabEvent(
        self, request: manager_pb2.LabEventRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.Event:
        """A transition the lab tool made (admin only), logged in the manager's own words."""
        ident = current_identity(context)
        _require(ident, ADMIN_ROLE, "report lab events")
        host = request.host
        if not host:
            raise SnapLabError(E.BAD_ARGUMENT, detail="a lab event names its host")
        kinds = {
            "host_stopped": ("WARNING", E.HOST_DOWN, f"{host}: stopped"),
            "host_crashed": ("WARNING", E.HOST_DOWN, f"{host}: crashed"),
            "host_started": ("NOTICE", E.HOST_UP, host),
            "signatures_lost": ("WARNING", E.SIGNATURES_LOST, f"{request.detail or '-'} on {host}"),
        }
        if request.kind not in kinds:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"kind must be one of {', '.join(kinds)}")
        classification, msg, name = kinds[request.kind]
        e = SnapLabError(msg, name=name)
        rec = self.state.log_event(host, classification, "lab", e.msg_id, e.text)
        return serde.event_msg(rec)

    async def ClusterHeartbeat(
        self, request: manager_pb2.ClusterBeat, context: grpc.aio.ServicerContext
    ) -> manager_pb2.ClusterView:
        host = self._cluster_node(context, request.cluster)
        if self.witness.beat(request.cluster, host.name):
            e = SnapLabError(E.NODE_UP, name=f"{host.name} in {request.cluster}")
            self._event(host.name, "NOTICE", "ClusterHeartbeat", e.msg_id, e.text)
        return manager_pb2.ClusterView(
            alive=self.witness.alive(request.cluster, self._nodes(request.cluster), request.timeout_seconds)
        )

    async def ClusterClaim(
        self, request: manager_pb2.ClusterClaimRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.ClusterClaimReply:
        host = self._cluster_node(context, request.cluster)
        cluster, timeout = request.cluster, request.timeout_seconds
        if not request.lds:
            raise SnapLabError(E.BAD_ARGUMENT, detail="a claim names the group's shared disks")
        async with self._claims:
            link = await self.arrays.get(request.array)
            state = await link.call("Describe", array_pb2.DescribeRequest())
            lds = {x.name: x for x in state.lds}
            nodes = set(self._nodes(cluster))
            holders = set()
            for name in request.lds:
                ld = lds.get(name)
                if ld is None:
                    raise SnapLabError(E.NOT_FOUND, name=name)
                if ld.reserved_by and ld.reserved_by not in nodes:
                    raise SnapLabError(E.RESERVED_ELSEWHERE, name=f"{name} is owned by {ld.reserved_by}")
                holders.add(ld.reserved_by)
            if request.release:
                for name in request.lds:
                    if lds[name].reserved_by == host.name:
                        await link.call("SetReservation", array_pb2.ReservationRequest(ld=name, owner=""))
                link.invalidate()
                e = SnapLabError(E.RESOURCE_FAILED, name=f"{request.group} on {host.name}")
                self._event(host.name, "WARNING", "ClusterClaim", e.msg_id, e.text)
                return manager_pb2.ClusterClaimReply(granted=True, owner="", previous=host.name)
            holders.discard(host.name)
            alive = [h for h in holders if h and self.witness.heard(cluster, h, timeout)]
            if alive:
                return manager_pb2.ClusterClaimReply(
                    granted=False, owner=alive[0], reason=str(SnapLabError(E.CLAIM_REFUSED, name=alive[0]))
                )
            if not self.witness.heard(cluster, host.name, timeout):  # the claimant must have the witness's ear
                return manager_pb2.ClusterClaimReply(granted=False, reason="claimant not heard by the witness")
            others = sorted(h for h in holders if h)
            previous = others[0] if others else ""
            if previous and self.witness.mark_down(cluster, previous):
                e = SnapLabError(E.HEARTBEAT_LOST, name=f"{previous} in {cluster}")
                self._event(host.name, "WARNING", "ClusterClaim", e.msg_id, e.text)
            for name in request.lds:
                if lds[name].reserved_by == host.name:
                    continue
                await link.call("SetReservation", array_pb2.ReservationRequest(ld=name, owner=host.name))
                e = SnapLabError(E.RESERVATION_MOVED, name=f"{name}: {lds[name].reserved_by or '-'} -> {host.name}")
                self._event(host.name, "INFO", "ClusterClaim", e.msg_id, e.text)
            link.invalidate()
            if any(lds[n].reserved_by != host.name for n in request.lds):
                e = SnapLabError(E.GROUP_TAKEN_OVER, name=f"{request.group} by {host.name} from {previous or '-'}")
                self._event(host.name, "NOTICE", "ClusterClaim", e.msg_id, e.text)
                for name in request.unsigned:  # 3.10 (10): the node never imported these signatures
                    e = SnapLabError(E.SIGNATURES_LOST, name=f"{name} of {request.group} on {host.name}")
                    self._event(host.name, "WARNING", "ClusterClaim", e.msg_id, e.text)
            return manager_pb2.ClusterClaimReply(granted=True, owner=host.name, previous=previous)
