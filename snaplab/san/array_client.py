"""The wire client of the Array service (hosts on the SAN path, admins, tests): one method per RPC or
config op; refusals raise SnapLabClientError."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Self

import grpc

from snaplab.common.rpc import TEST_IDENTITY_KEY, ClientTLS, SnapLabClientError, client_errors, make_channel
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import array_pb2_grpc

DEFAULT_CHUNK = 1024 * 1024
HEADS_PER_CALL = 512  # ReadHeads: LDs per call (a request carries at most 1,024)


def _sv(sv: str | None, svflg: str) -> pb.SvRef:
    return pb.SvRef(sv=sv or "", svflg=svflg)


def _layout(allow_multi: bool, allow_gpt: bool) -> pb.LayoutOptions:
    return pb.LayoutOptions(allow_multi_partition=allow_multi, allow_gpt=allow_gpt)


def _num(number: int | None) -> dict:
    return {} if number is None else {"number": number}


def chunk_data(raw: bytes) -> bytes | memoryview:
    """A serialized DataChunk's ``data``. The array sends one field 1 (tag, length, bytes): that is
    handed on as a view of the received message, not copied twice more (protobuf's parse, then the
    attribute); anything else is parsed by protobuf as usual, so the result is always its ``data``."""
    n, i, shift = 0, 1, 0
    if raw[:1] == b"\x0a":
        while i < len(raw) and i <= 10:
            c = raw[i]
            n |= (c & 0x7F) << shift
            i += 1
            if c < 0x80:
                if i + n == len(raw):
                    return memoryview(raw)[i:]
                break
            shift += 7
    return pb.DataChunk.FromString(raw).data


class ArrayClient:
    """Calls one array daemon as the identity of ``tls`` (mTLS), or, against an insecure test daemon,
    as ``test_identity`` ("name/role"). Replies are the proto messages; refusals raise
    ``SnapLabClientError`` (``.code``, ``.msg_id``, ``.text``)."""

    def __init__(
        self,
        target: str,
        tls: ClientTLS | None = None,
        *,
        test_identity: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        self.target = target
        self.channel = make_channel(target, tls)
        self.stub = array_pb2_grpc.ArrayStub(self.channel)
        # Read's messages as views of what gRPC received (no protobuf copy of each 4 MiB, chunk_data)
        self._read = self.channel.unary_stream(
            "/snaplab.v1.Array/Read",
            request_serializer=pb.ReadRequest.SerializeToString,
            response_deserializer=chunk_data,
            _registered_method=True,
        )
        self.timeout = timeout
        self._metadata = ((TEST_IDENTITY_KEY, test_identity),) if test_identity else None

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        with client_errors():
            return getattr(self.stub, method)(
                request, timeout=timeout if timeout is not None else self.timeout, metadata=self._metadata
            )

    # -- configuration -------------------------------------------------------------------------
    def configure(self, **op: Any) -> pb.ConfigReply:
        """One ConfigRequest, e.g. ``configure(bind_pool=pb.BindPool(...))``."""
        return self._call("Configure", pb.ConfigRequest(**op))

    def set_array_name(self, name: str) -> None:
        self.configure(set_array_name=pb.SetArrayName(name=name))

    def add_port(self, director: int, port: int, name: str) -> None:
        self.configure(add_port=pb.AddPort(director=director, port=port, name=name))

    def bind_pool(self, number: int, name: str, kind: str, capacity: int) -> None:
        self.configure(bind_pool=pb.BindPool(number=number, name=name, kind=kind, capacity=capacity))

    def bind_ld(
        self,
        name: str,
        capacity: int,
        pool: str | int,
        fmt: str,
        *,
        number: int | None = None,
        attr: str = "iv",
    ) -> pb.Ld:
        m = pb.BindLd(name=name, capacity=capacity, pool=str(pool), format=fmt, attr=attr, **_num(number))
        return self.configure(bind_ld=m).lds[0]

    def unbind_ld(self, ld: str) -> list[str]:
        return list(self.configure(unbind_ld=pb.UnbindLd(ld=ld)).names)

    def set_format(self, ld: str, fmt: str) -> None:
        self.configure(set_format=pb.SetFormat(ld=ld, format=fmt))

    def build_sra(
        self,
        pool: str | int,
        capacity: int,
        *,
        sdv_name: str | None = None,
        number: int | None = None,
        extend: bool = False,
    ) -> pb.Ld:
        m = pb.BuildSra(
            pool=str(pool), capacity=capacity, sdv_name=sdv_name or "", extend=extend, **_num(number)
        )
        return self.configure(build_sra=m).lds[0]

    def add_generations(
        self,
        bv: str,
        pool: str | int,
        count: int = 1,
        sv_names: list[str] | None = None,
        numbers: list[int] | None = None,
    ) -> list[pb.Ld]:
        m = pb.AddGenerations(
            bv=bv, pool=str(pool), count=count, sv_names=sv_names or [], numbers=numbers or []
        )
        return list(self.configure(add_generations=m).lds)

    def delete_generations(self, bv: str, count: int = 1) -> list[str]:
        return list(self.configure(delete_generations=pb.DeleteGenerations(bv=bv, count=count)).names)

    def bind_lv(self, bv: str, name: str, *, number: int | None = None) -> pb.Ld:
        return self.configure(bind_lv=pb.BindLv(bv=bv, name=name, **_num(number))).lds[0]

    def set_licence(self, product: str, capacity: int = 0) -> None:
        self.configure(set_licence=pb.SetLicence(product=product, capacity=capacity))

    def remove_licence(self, product: str) -> None:
        self.configure(remove_licence=pb.RemoveLicence(product=product))

    def register_host(
        self, name: str, wwns: Iterable[str] = (), ports: Iterable[str] = (), platform: str = "windows"
    ) -> None:
        self.configure(
            register_host=pb.RegisterHost(name=name, wwns=list(wwns), ports=list(ports), platform=platform)
        )

    def assign_access(self, ld: str, *, port: str | None = None, wwn: str | None = None) -> None:
        self.configure(assign_access=pb.AssignAccess(ld=ld, port=port or "", wwn=wwn or ""))

    def unassign_access(self, ld: str, *, port: str | None = None, wwn: str | None = None) -> None:
        self.configure(unassign_access=pb.UnassignAccess(ld=ld, port=port or "", wwn=wwn or ""))

    # -- snapshot operations -------------------------------------------------------------------
    def create(
        self,
        bv: str,
        sv: str | None = None,
        svflg: str = "ld",
        *,
        cyclic: bool = False,
        allow_multi: bool = False,
        allow_gpt: bool = False,
    ) -> pb.Generation:
        req = pb.CreateRequest(
            bv=bv, sv=_sv(sv, svflg), cyclic=cyclic, options=_layout(allow_multi, allow_gpt)
        )
        return self._call("Create", req)

    def delete(self, bv: str, sv: str | None = None, svflg: str = "ld", *, auto: bool = False) -> str | None:
        reply = self._call("Delete", pb.DeleteRequest(bv=bv, sv=_sv(sv, svflg), auto=auto))
        return reply.deleted_sv or None

    def restore(
        self,
        bv: str,
        sv: str,
        svflg: str = "ld",
        *,
        derived: str = "keep",
        allow_multi: bool = False,
        allow_gpt: bool = False,
    ) -> pb.Generation:
        req = pb.RestoreRequest(
            bv=bv, sv=_sv(sv, svflg), derivsv=derived, options=_layout(allow_multi, allow_gpt)
        )
        return self._call("Restore", req)

    def wait(
        self, bv: str, sv: str, svflg: str = "ld", *, cond: str = "active", timeout: float | None = None
    ) -> pb.Generation:
        """Block until the generation reaches ``cond`` (server default 60 s when ``timeout`` is None)."""
        req = pb.WaitRequest(bv=bv, sv=_sv(sv, svflg), cond=cond, timeout_seconds=timeout or 0.0)
        rpc_timeout = None if self.timeout is None else max(self.timeout, (timeout or 60.0) + 5.0)
        return self._call("Wait", req, rpc_timeout)

    def guard(self, bv: str, sv: str, svflg: str = "ld", *, on: bool) -> pb.Generation:
        return self._call("Guard", pb.GuardRequest(bv=bv, sv=_sv(sv, svflg), on=on))

    # SnapLab extensions (issue 14, docs/extensions.md): named holds, consistency groups
    def hold(self, bv: str, sv: str, svflg: str = "ld", *, name: str) -> pb.Generation:
        return self._call("Guard", pb.GuardRequest(bv=bv, sv=_sv(sv, svflg), hold=name))

    def release(self, bv: str, sv: str, svflg: str = "ld", *, name: str) -> pb.Generation:
        return self._call("Guard", pb.GuardRequest(bv=bv, sv=_sv(sv, svflg), release=name))

    def group(self, group: str, **op: object) -> pb.GroupReply:
        """``group("DB", create=pb.GroupCreate(cyclic=True))``: one consistency group operation."""
        return self._call("Group", pb.GroupRequest(group=group, **op))  # type: ignore[arg-type]

    def link(
        self,
        lv: str,
        sv: str | None = None,
        svflg: str = "ld",
        *,
        bv: str | None = None,
        mode: str = "rw",
        allow_multi: bool = False,
        allow_gpt: bool = False,
    ) -> pb.LinkInfo:
        req = pb.LinkRequest(
            lv=lv, sv=_sv(sv, svflg), bv=bv or "", mode=mode, options=_layout(allow_multi, allow_gpt)
        )
        return self._call("Link", req)

    def unlink(
        self, lv: str, sv: str | None = None, svflg: str = "ld", *, bv: str | None = None
    ) -> pb.LinkInfo:
        return self._call("Unlink", pb.UnlinkRequest(lv=lv, sv=_sv(sv, svflg), bv=bv or ""))

    def query(self, bv: str) -> pb.QueryReply:
        return self._call("Query", pb.QueryRequest(bv=bv))

    def linkinfo(self, volume: str) -> pb.LinkInfo:
        return self._call("LinkInfoOf", pb.VolumeRef(name=volume))

    # -- block I/O -----------------------------------------------------------------------------
    def read(self, ld: str, offset: int, length: int, *, chunk_size: int = 0) -> bytes:
        req = pb.ReadRequest(ld=ld, offset=offset, length=length, chunk_size=chunk_size)
        with client_errors():
            stream = self._read(req, timeout=self.timeout, metadata=self._metadata)
            return b"".join(stream)

    def read_chunks(self, ld: str, offset: int, length: int, *, call: int = 64 << 20,
                    chunk_size: int = 4 << 20) -> Iterator[bytes | memoryview]:
        """The range as the array's messages arrive (``chunk_size`` bytes each, as views: chunk_data),
        in calls of ``call`` bytes; the next call is started before this one is drained, so the array
        reads ahead while the caller works on what came."""
        def start(pos: int) -> Any:
            req = pb.ReadRequest(ld=ld, offset=pos, length=min(call, offset + length - pos), chunk_size=chunk_size)
            return self._read(req, timeout=self.timeout, metadata=self._metadata)

        with client_errors():
            pos, end = offset, offset + length
            stream = start(pos) if length > 0 else None
            try:
                while stream is not None:
                    pos += min(call, end - pos)
                    following = start(pos) if pos < end else None
                    try:
                        yield from stream
                    except BaseException:
                        if following is not None:
                            following.cancel()
                        raise
                    stream = following
            finally:
                if stream is not None:
                    stream.cancel()

    def read_heads(self, lds: list[str], length: int) -> dict[str, bytes | SnapLabClientError]:
        """The first ``length`` bytes of each LD (at most 4 KiB), HEADS_PER_CALL LDs per call; per
        LD the data or the refusal a :meth:`read` of that range would raise."""
        out: dict[str, bytes | SnapLabClientError] = {}
        for i in range(0, len(lds), HEADS_PER_CALL):
            reply = self._call("ReadHeads", pb.ReadHeadsRequest(lds=lds[i : i + HEADS_PER_CALL], length=length))
            for head in reply.heads:
                if head.code:
                    code = getattr(grpc.StatusCode, head.code, grpc.StatusCode.UNKNOWN)
                    out[head.ld] = SnapLabClientError(code, head.details, head.msg_id or None)
                else:
                    out[head.ld] = head.data
        return out

    def write(self, ld: str, offset: int, data: bytes, chunk: int = DEFAULT_CHUNK) -> int:
        """Stream ``data`` in chunks of ``chunk`` bytes; returns the bytes the array acknowledged."""
        if chunk <= 0:
            raise ValueError("chunk must be positive")

        def chunks() -> Iterator[pb.WriteChunk]:
            view = memoryview(data)
            yield pb.WriteChunk(ld=ld, offset=offset, data=bytes(view[:chunk]))
            for pos in range(chunk, len(data), chunk):
                yield pb.WriteChunk(offset=offset + pos, data=bytes(view[pos : pos + chunk]))

        with client_errors():
            reply = self.stub.Write(chunks(), timeout=self.timeout, metadata=self._metadata)
        return reply.bytes_written

    def disks(self, host: str = "") -> list[pb.Ld]:
        """The LDs a host sees: the caller itself for a host certificate, ``host`` for manager/admin."""
        return list(self._call("Disks", pb.DisksRequest(host=host)).lds)

    # -- monitoring and faults -----------------------------------------------------------------
    def describe(self) -> pb.ArrayState:
        return self._call("Describe", pb.DescribeRequest())

    def inject_fault(self, kind: str, target: str) -> pb.ArrayState:
        return self._call("InjectFault", pb.FaultRequest(kind=kind, target=target))

    def clear_fault(self, kind: str, target: str) -> pb.ArrayState:
        return self._call("ClearFault", pb.FaultRequest(kind=kind, target=target))

    # -- lifetime ------------------------------------------------------------------------------
    def set_reservation(self, ld: str, owner: str) -> pb.Reservation:
        """Reserve BV ``ld`` for host ``owner`` (moving it), or release it with ``owner`` ""."""
        return self._call("SetReservation", pb.ReservationRequest(ld=ld, owner=owner))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
