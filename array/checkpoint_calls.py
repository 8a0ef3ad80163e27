"""The Array service's checkpoint RPCs (checkpoint.proto): manager and admin only; the engine's
checkpoints.py does the work."""

from __future__ import annotations

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity
from snaplab.common.rpc import translate_errors
from snaplab.v1 import checkpoint_pb2 as cpb

CONTROL_ROLES = ("manager", "admin")


def _name(request: cpb.CheckpointRequest) -> str:
    if not request.name:
        raise SnapLabError(E.CHECKPOINT_BAD_NAME, detail="a checkpoint needs a name")
    return request.name


def _reply(d: dict) -> cpb.CheckpointReply:
    return cpb.CheckpointReply(name=d["name"], taken_at=d.get("taken", 0.0), changes=d.get("changes", 0))


@translate_errors
class CheckpointCallsMixin:
    """A mixin of ``ArrayServicer`` (servicer.py): its ``_call`` authorises and runs in the control pool."""

    async def CheckpointTake(
        self, request: cpb.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> cpb.CheckpointReply:
        return await self._call(context, CONTROL_ROLES, "take checkpoints", self._ckpt_take, request)  # type: ignore[attr-defined]

    def _ckpt_take(self, request: cpb.CheckpointRequest, ident: Identity) -> cpb.CheckpointReply:
        return _reply(self.engine.checkpoint_take(_name(request)))  # type: ignore[attr-defined]

    async def CheckpointRollback(
        self, request: cpb.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> cpb.CheckpointReply:
        call = self._call  # type: ignore[attr-defined]
        return await call(context, CONTROL_ROLES, "roll back to checkpoints", self._ckpt_rollback, request)

    def _ckpt_rollback(self, request: cpb.CheckpointRequest, ident: Identity) -> cpb.CheckpointReply:
        return _reply(self.engine.checkpoint_rollback(_name(request)))  # type: ignore[attr-defined]

    async def CheckpointDelete(
        self, request: cpb.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> cpb.CheckpointReply:
        return await self._call(context, CONTROL_ROLES, "delete checkpoints", self._ckpt_delete, request)  # type: ignore[attr-defined]

    def _ckpt_delete(self, request: cpb.CheckpointRequest, ident: Identity) -> cpb.CheckpointReply:
        name = _name(request)
        self.engine.checkpoint_delete(name)  # type: ignore[attr-defined]
        return cpb.CheckpointReply(name=name)
