"""Whether a lab's processes are alive and healthy: gRPC health (arrays, manager), Agent.Status (agents)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from snaplab.common.rpc import ClientTLS, make_channel
from snaplab.v1 import agent_pb2, agent_pb2_grpc

from .folder import LabFolder
from .processes import is_ours


@dataclass
class ProcessStatus:
    kind: str  # array, manager, agent
    name: str
    pid: int
    endpoint: str
    log: str
    alive: bool
    healthy: bool
    detail: str = ""
    down: str = "crashed"  # how a process that does not run went down: stopped (on purpose) or crashed
    metrics: str = ""  # HOST:PORT of its Prometheus metrics (/metrics)

    @property
    def state(self) -> str:
        if not self.alive:
            return self.down
        return "running" if self.healthy else f"unhealthy: {self.detail}" if self.detail else "unhealthy"


def lab_status(lab: LabFolder) -> list[ProcessStatus]:
    """Each process of runtime.json: alive (and ours) and healthy (gRPC health of arrays and the
    manager, Agent.Status with enrolment for agents)."""
    rt = lab.read_runtime()
    if rt is None:
        return []
    out = []
    for rec in rt.get("processes", []):
        alive = is_ours(lab, rec)
        healthy, detail = False, ""
        if alive:
            healthy, detail = health(lab, rec)
        out.append(
            ProcessStatus(
                rec["kind"],
                rec["name"],
                rec["pid"],
                rec.get("endpoint", ""),
                rec.get("log", ""),
                alive,
                healthy,
                detail,
                _down(rt, rec),
                rec.get("metrics", ""),
            )
        )
    return out


def _down(rt: dict[str, Any], rec: dict[str, Any]) -> str:
    """stopped for a host `snaplab host stop` stopped; crashed for anything else that does not run."""
    if rec.get("kind") == "agent" and rt.get("hosts", {}).get(rec.get("name"), {}).get("down") == "stopped":
        return "stopped"
    return "crashed"


def health(lab: LabFolder, rec: dict[str, Any]) -> tuple[bool, str]:
    """(healthy, why not) of one live process of runtime.json."""
    endpoint = rec.get("endpoint", "")
    if rec["kind"] == "agent":
        status, detail = agent_status(Path(endpoint.removeprefix("unix:")))
        if status is None:
            return False, detail
        return (True, "") if status.enrolled else (False, "not enrolled")
    try:
        channel = make_channel(endpoint, ClientTLS.from_folder(lab.pki, "admin"))
    except OSError as exc:
        return False, f"no admin certificate: {exc.strerror}"
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return True, ""
        return False, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return False, f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    finally:
        channel.close()


def agent_status(sock: Path, timeout: float = 3.0) -> tuple[agent_pb2.StatusReply | None, str]:
    """Agent.Status over the agent's Unix socket: (reply, "") or (None, why not)."""
    if not sock.exists():
        return None, f"no socket {sock}"
    channel = grpc.insecure_channel(f"unix:{sock}")
    try:
        return agent_pb2_grpc.AgentStub(channel).Status(agent_pb2.StatusRequest(), timeout=timeout), ""
    except grpc.RpcError as exc:
        return None, f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    finally:
        channel.close()

