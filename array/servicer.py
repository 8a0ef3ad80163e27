"""The Array gRPC service: authorise the caller by certificate role, convert (serde), call the engine."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity
from snaplab.common.rpc import current_identity, translate_errors
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import array_pb2_grpc

from . import serde
from .engine import ArrayEngine

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Array"].full_name
DEFAULT_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024
# Wait polls the engine in slices this long, so a cancelled or expired call frees its worker thread.
_WAIT_SLICE = 1.0

CONTROL_ROLES = ("manager", "admin")  # configuration, snapshot operations, faults
VIEW_ROLES = ("manager", "admin", "host")  # query, linkinfo, describe, disks
IO_ROLES = ("host", "admin")  # block I/O: a host as itself, an admin unrestricted


def _authorise(context: grpc.ServicerContext, roles: tuple[str, ...], what: str) -> Identity:
    ident = current_identity(context)
    if ident.role not in roles:
        raise SnapLabError(E.CONTROL_DENIED, detail=f"{ident.role} {ident.name} may not {what}")
    return ident


@translate_errors
class ArrayServicer(array_pb2_grpc.ArrayServicer):
    """One array's service. Identity is the caller's certificate (CN = name, OU = role), never a field."""

    def __init__(self, engine: ArrayEngine) -> None:
        self.engine = engine

    # -- helpers (private: not translated, not RPCs) -------------------------------------------
    def _lds(self, names: Iterable[str]) -> list[dict]:
        wanted = set(names)
        return [d for d in self.engine.describe()["lds"] if d["name"] in wanted]

    def _io_host(self, context: grpc.ServicerContext, what: str) -> str | None:
        """The host block I/O is done as: the calling host, or None (unrestricted) for an admin."""
        ident = _authorise(context, IO_ROLES, what)
        return ident.name if ident.role == "host" else None

    # -- configuration -------------------------------------------------------------------------
    def Configure(self, request: pb.ConfigRequest, context: grpc.ServicerContext) -> pb.ConfigReply:
        _authorise(context, CONTROL_ROLES, "configure the array")
        op, args, kwargs = serde.config_call(request)
        removed = [self.engine.ld(args[0]).name] if op == "unbind_ld" else []
        result = getattr(self.engine, op)(*args, **kwargs)
        if op == "delete_generations":
            removed = list(result)
        return serde.config_reply(self._lds(serde.made_ld_names(result)), removed)

    # -- snapshot operations -------------------------------------------------------------------
    def Create(self, request: pb.CreateRequest, context: grpc.ServicerContext) -> pb.Generation:
        _authorise(context, CONTROL_ROLES, "create snapshots")
        args, kwargs = serde.create_call(request)
        return serde.generation_msg(self.engine.create(*args, **kwargs))

    def Delete(self, request: pb.DeleteRequest, context: grpc.ServicerContext) -> pb.DeleteReply:
        _authorise(context, CONTROL_ROLES, "delete snapshots")
        args, kwargs = serde.delete_call(request)
        return pb.DeleteReply(deleted_sv=self.engine.delete(*args, **kwargs) or "")

    def Restore(self, request: pb.RestoreRequest, context: grpc.ServicerContext) -> pb.Generation:
        _authorise(context, CONTROL_ROLES, "restore snapshots")
        args, kwargs = serde.restore_call(request)
        return serde.generation_msg(self.engine.restore(*args, **kwargs))

    def Wait(self, request: pb.WaitRequest, context: grpc.ServicerContext) -> pb.Generation:
        _authorise(context, CONTROL_ROLES, "wait for snapshots")
        args, kwargs = serde.wait_call(request, context.time_remaining())
        deadline = time.monotonic() + kwargs.pop("timeout")
        while True:
            left = deadline - time.monotonic()
            try:
                return serde.generation_msg(
                    self.engine.wait(*args, **kwargs, timeout=max(0.0, min(left, _WAIT_SLICE)))
                )
            except SnapLabError as exc:
                if exc.msg_id != E.WAIT_TIMEOUT.msg_id or left <= _WAIT_SLICE or not context.is_active():
                    raise

    def Guard(self, request: pb.GuardRequest, context: grpc.ServicerContext) -> pb.Generation:
        _authorise(context, CONTROL_ROLES, "guard snapshots")
        args, kwargs = serde.guard_call(request)
        sv = self.engine.guard(*args, **kwargs)
        return serde.find_generation(self.engine.query(request.bv), sv)

    def Link(self, request: pb.LinkRequest, context: grpc.ServicerContext) -> pb.LinkInfo:
        _authorise(context, CONTROL_ROLES, "link volumes")
        args, kwargs = serde.link_call(request)
        return serde.linkinfo_msg(self.engine.link(*args, **kwargs))

    def Unlink(self, request: pb.UnlinkRequest, context: grpc.ServicerContext) -> pb.LinkInfo:
        _authorise(context, CONTROL_ROLES, "unlink volumes")
        args, kwargs = serde.unlink_call(request)
        return serde.linkinfo_msg(self.engine.unlink(*args, **kwargs))

    def Query(self, request: pb.QueryRequest, context: grpc.ServicerContext) -> pb.QueryReply:
        _authorise(context, VIEW_ROLES, "query snapshots")
        return serde.query_msg(self.engine.query(serde.required(request.bv, "bv")))

    def LinkInfoOf(self, request: pb.VolumeRef, context: grpc.ServicerContext) -> pb.LinkInfo:
        _authorise(context, VIEW_ROLES, "query links")
        return serde.linkinfo_msg(self.engine.linkinfo(serde.required(request.name, "name")))

    # -- block I/O -----------------------------------------------------------------------------
    def Read(self, request: pb.ReadRequest, context: grpc.ServicerContext) -> Iterator[pb.DataChunk]:
        host = self._io_host(context, "read volumes")
        ld = serde.required(request.ld, "ld")
        if request.offset < 0 or request.length < 0 or request.chunk_size < 0:
            raise serde.bad("offset, length and chunk_size must not be negative")
        chunk = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK)
        offset, end = request.offset, request.offset + request.length
        # The first chunk is read before the stream starts, so access, faults and a bad LD come back
        # as the call's status rather than after some data.
        first = self.engine.read(ld, offset, min(chunk, request.length), host=host)
        capacity = self.engine.ld(ld).capacity
        if end > capacity:
            raise SnapLabError(E.BAD_RANGE, detail=f"{offset}+{request.length} > {capacity}")

        def chunks() -> Iterator[pb.DataChunk]:
            if first:
                yield pb.DataChunk(data=first)
            pos = offset + len(first)
            while pos < end:
                data = self.engine.read(ld, pos, min(chunk, end - pos), host=host)
                yield pb.DataChunk(data=data)
                pos += len(data)

        return chunks()

    def Write(
        self, request_iterator: Iterator[pb.WriteChunk], context: grpc.ServicerContext
    ) -> pb.WriteReply:
        host = self._io_host(context, "write volumes")
        first_ld = ""
        total = 0
        # Each chunk is committed (durable) when engine.write returns; a refusal mid-stream keeps the
        # chunks before it and reports the error.
        for chunk in request_iterator:
            first_ld = first_ld or chunk.ld
            ld = chunk.ld or first_ld
            if not ld:
                raise serde.bad("the first WriteChunk must name the LD")
            if chunk.offset < 0:
                raise serde.bad("offset must not be negative")
            self.engine.write(ld, chunk.offset, chunk.data, host=host)
            total += len(chunk.data)
        return pb.WriteReply(bytes_written=total)

    def Disks(self, request: pb.DisksRequest, context: grpc.ServicerContext) -> pb.DisksReply:
        ident = _authorise(context, VIEW_ROLES, "list disks")
        if ident.role == "host":
            if request.host and request.host != ident.name:
                raise SnapLabError(
                    E.CONTROL_DENIED, detail=f"host {ident.name} may not list disks of {request.host}"
                )
            host = ident.name
        else:
            host = serde.required(request.host, "host")
        names = [x.name for x in self.engine.visible_lds(host)]
        by_name = {d["name"]: d for d in self._lds(names)}
        return pb.DisksReply(lds=[serde.ld_msg(by_name[n]) for n in names if n in by_name])

    # -- monitoring and faults -----------------------------------------------------------------
    def Describe(self, request: pb.DescribeRequest, context: grpc.ServicerContext) -> pb.ArrayState:
        _authorise(context, VIEW_ROLES, "describe the array")
        return serde.array_state_msg(self.engine.describe())

    def InjectFault(self, request: pb.FaultRequest, context: grpc.ServicerContext) -> pb.ArrayState:
        _authorise(context, CONTROL_ROLES, "inject faults")
        self.engine.inject_fault(
            serde.required(request.kind, "kind"), serde.required(request.target, "target")
        )
        return serde.array_state_msg(self.engine.describe())

    def ClearFault(self, request: pb.FaultRequest, context: grpc.ServicerContext) -> pb.ArrayState:
        _authorise(context, CONTROL_ROLES, "clear faults")
        self.engine.clear_fault(
            serde.required(request.kind, "kind"), serde.required(request.target, "target")
        )
        return serde.array_state_msg(self.engine.describe())


def add_to_server(engine: ArrayEngine, server: grpc.Server) -> None:
    array_pb2_grpc.add_ArrayServicer_to_server(ArrayServicer(engine), server)
