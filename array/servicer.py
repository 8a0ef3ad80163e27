"""The Array gRPC service: authorise the caller by certificate role, convert (serde), call the engine."""

from __future__ import annotations

import logging
import threading
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

log = logging.getLogger("snaplab.array")


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
        self._lock = threading.Lock()
        self._stopping = False
        self._lookups: set[grpc.ServicerContext] = set()

    def shutdown(self) -> None:
        """End every Lookup stream now (they never end by themselves) so the server drains at once;
        their callers resend what was left unanswered over the unary RPCs, or find the array gone."""
        with self._lock:
            self._stopping = True
            open_streams = list(self._lookups)
        for context in open_streams:
            context.cancel()

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
        return self._query(request, context)

    def LinkInfoOf(self, request: pb.VolumeRef, context: grpc.ServicerContext) -> pb.LinkInfo:
        return self._linkinfo(request, context)

    def _query(self, request: pb.QueryRequest, context: grpc.ServicerContext) -> pb.QueryReply:
        _authorise(context, VIEW_ROLES, "query snapshots")
        return serde.query_msg(self.engine.query(serde.required(request.bv, "bv")))

    def _linkinfo(self, request: pb.VolumeRef, context: grpc.ServicerContext) -> pb.LinkInfo:
        _authorise(context, VIEW_ROLES, "query links")
        return serde.linkinfo_msg(self.engine.linkinfo(serde.required(request.name, "name")))

    def Lookup(
        self, request_iterator: Iterator[pb.LookupBatch], context: grpc.ServicerContext
    ) -> Iterator[pb.LookupReplies]:
        current_identity(context)  # a caller without an identity is refused before the stream starts
        with self._lock:
            if self._stopping:
                return iter(())
            self._lookups.add(context)

        def replies() -> Iterator[pb.LookupReplies]:
            try:
                for batch in request_iterator:
                    if self._stopping:
                        return
                    yield pb.LookupReplies(replies=[self._lookup_one(r, context) for r in batch.requests])
            finally:
                with self._lock:
                    self._lookups.discard(context)

        return replies()

    def _lookup_one(self, request: pb.LookupRequest, context: grpc.ServicerContext) -> pb.LookupReply:
        """One look-up answered as its unary RPC would be: the reply, or the status it would end with."""
        op = request.WhichOneof("op")
        try:
            if op == "query":
                return pb.LookupReply(id=request.id, query=self._query(request.query, context))
            if op == "linkinfo":
                return pb.LookupReply(id=request.id, linkinfo=self._linkinfo(request.linkinfo, context))
            raise serde.bad("LookupRequest names no look-up")
        except Exception as exc:
            if not isinstance(exc, SnapLabError):
                log.exception("unexpected error in ArrayServicer.Lookup (%s)", op)
                exc = SnapLabError(E.INTERNAL, detail=type(exc).__name__)
            return pb.LookupReply(
                id=request.id,
                code=getattr(grpc.StatusCode, exc.status.name).value[0],
                details=str(exc),
                msg_id=exc.msg_id,
            )

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


def add_to_server(engine: ArrayEngine, server: grpc.Server) -> ArrayServicer:
    servicer = ArrayServicer(engine)
    array_pb2_grpc.add_ArrayServicer_to_server(servicer, server)
    return servicer
