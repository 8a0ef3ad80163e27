"""The Agent service's checkpoint RPCs (checkpoint.proto): the host's part of a lab checkpoint
(agent/host/checkpoints.py), under the host's command lock so no command runs meanwhile."""

from __future__ import annotations

import logging
import time

import grpc
from snaplab.agent.host.checkpoints import HostCheckpoints

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import abort_with
from snaplab.v1 import checkpoint_pb2 as cpb

log = logging.getLogger("snaplab.agent.daemon")


class CheckpointCallsMixin:
    """A mixin of ``AgentServicer`` (daemon.py, which has ``host``); refusals end in their status."""

    def _checkpoint(
        self, op: str, request: cpb.CheckpointRequest, context: grpc.ServicerContext
    ) -> cpb.CheckpointReply:
        host = self.host  # type: ignore[attr-defined]
        start = time.monotonic()
        try:
            if not request.name:
                raise SnapLabError(E.CHECKPOINT_BAD_NAME, detail="a checkpoint needs a name")
            with host.command():
                store = HostCheckpoints(host)
                if op == "take":
                    entries, copied = store.take(request.name)
                    reply = cpb.CheckpointReply(
                        name=request.name, taken_at=time.time(), changes=entries, bytes=copied
                    )
                elif op == "rollback":
                    changed, copied = store.rollback(request.name)
                    reply = cpb.CheckpointReply(name=request.name, changes=changed, bytes=copied)
                else:
                    store.delete(request.name)
                    reply = cpb.CheckpointReply(name=request.name)
        except SnapLabError as exc:
            abort_with(context, exc)
            raise  # abort_with raises; this keeps type checkers content
        except Exception as exc:  # the daemon never dies of a request
            log.exception("checkpoint %s %s failed", op, request.name)
            abort_with(
                context,
                SnapLabError(E.CHECKPOINT_FAILED, detail=f"{request.name}: {type(exc).__name__}: {exc}"),
            )
            raise
        log.info(
            "checkpoint %s %s: %d entries, %d bytes, %.3f s",
            op,
            request.name,
            reply.changes,
            reply.bytes,
            time.monotonic() - start,
        )
        return reply

    def CheckpointTake(
        self, request: cpb.CheckpointRequest, context: grpc.ServicerContext
    ) -> cpb.CheckpointReply:
        return self._checkpoint("take", request, context)

    def CheckpointRollback(
        self, request: cpb.CheckpointRequest, context: grpc.ServicerContext
    ) -> cpb.CheckpointReply:
        return self._checkpoint("rollback", request, context)

    def CheckpointDelete(
        self, request: cpb.CheckpointRequest, context: grpc.ServicerContext
    ) -> cpb.CheckpointReply:
        return self._checkpoint("delete", request, context)
