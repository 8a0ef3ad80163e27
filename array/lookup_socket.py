"""The array's look-up socket: routing's look-ups from the manager on a plain mTLS connection.

Every routed operation makes one look-up (a Query or LinkInfoOf of the BV it goes through). On
the ``Array.Lookup`` gRPC stream a message costs each side about 200 µs of CPU in grpc.aio's
machinery; a frame on an asyncio TLS socket costs about 50 (measured side by side, one process
each, ping-pong of 600-byte messages). So the manager sends its look-ups here when the array
offers the socket (the routing Describe's ``lookup_port``) and keeps the stream and the unary
RPCs for when it cannot connect.

The answers are the stream's: the same servicer code (``ArrayServicer.answer_lookups``) behind the
same boundary. The peer's verified lab certificate must be a control role (the manager or an
admin: hosts keep the gRPC boundary with its per-host limits); at most ``control.streams``
connections per identity, as the stream limit of those roles; each frame a ``LookupBatch`` that
decodes and passes the request rules (frames.py, validation.py); a chaos rule on ``Lookup`` acts
when a connection opens, as on a stream's start, and the look-ups' own rules act per look-up;
each connection ends in the metrics as one ``Lookup``. A frame that breaks a rule ends the
connection (the manager resends over gRPC, which answers with the refusal).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter, deque
from typing import TYPE_CHECKING

from snaplab.common.chaos import crash_now
from snaplab.common.errors import SnapLabError
from snaplab.common.frames import FrameBuffer, FrameError, frame
from snaplab.common.pki import Identity, identity_from_pem
from snaplab.common.rpc_guard import CONTROL_ROLES, CallLimits
from snaplab.common.validation import check_request
from snaplab.v1 import array_pb2 as pb

if TYPE_CHECKING:
    from snaplab.common.metrics import DaemonMetrics

    from .servicer import ArrayServicer

log = logging.getLogger("snaplab.array")

HANDSHAKE_TIMEOUT = 10.0  # seconds a connection may take to present its certificate


class LookupSocket:
    """The socket's listeners and connections, on the daemon's event loop."""

    def __init__(
        self, servicer: ArrayServicer, context: ssl.SSLContext, limits: CallLimits, metrics: DaemonMetrics | None
    ) -> None:
        self.servicer = servicer
        self.context = context
        self.limits = limits
        self.metrics = metrics
        self.port = 0
        self._servers: list[asyncio.Server] = []
        self._open: Counter[Identity] = Counter()
        self._connections: set[_Connection] = set()

    async def start(self, hosts: list[str]) -> int:
        """Listen on the first host on a free port, then on the others on the same port (an address
        whose port is taken is left out, logged): the manager reaches it where it reaches gRPC."""
        loop = asyncio.get_running_loop()
        for i, host in enumerate(hosts):
            try:
                server = await loop.create_server(
                    lambda: _Connection(self), host, self.port, ssl=self.context,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                )
            except OSError as exc:
                if i == 0:
                    raise
                log.warning("look-up socket not on %s:%d: %s", host, self.port, exc.strerror)
                continue
            self._servers.append(server)
            self.port = self.port or server.sockets[0].getsockname()[1]
        return self.port

    def shutdown(self) -> None:
        """Stop listening and end every connection (the manager's look-ups go to gRPC, or find the
        array gone)."""
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.close()

    async def chaos_refusal(self) -> str:
        """A rule on ``Lookup`` as at a stream's start: its delay, a crash, or the status that closes
        the connection ("" to serve it)."""
        chaos = self.servicer.chaos
        f = chaos.decide(("Lookup",), "") if chaos is not None else None
        if f is None:
            return ""
        if f.latency:
            await asyncio.sleep(f.latency)
        if f.crash:
            crash_now(f)
        return f.error.status.name if f.error is not None else f.status


class _Connection(asyncio.Protocol):
    """One manager's connection. Frames are answered in order, one at a time: at once in
    ``data_received`` when the servicer can answer without waiting (``answer_lookups_now``), else
    by a task, reading paused until it is done (and while the manager does not read its answers)."""

    def __init__(self, socket: LookupSocket) -> None:
        self.socket = socket
        self.servicer = socket.servicer
        self.transport: asyncio.Transport | None = None
        self.ident: Identity | None = None  # set once admitted
        self.peer: object = None
        self._frames = FrameBuffer()
        self._waiting: deque[bytes] = deque()  # frames received, not yet answered
        self._task: asyncio.Task[None] | None = None  # answering a frame (or the chaos check at start)
        self._paused_writing = False
        self._start = time.perf_counter()
        self._result = "OK"

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's SSL transport is no asyncio.Transport subclass
        self.peer = transport.get_extra_info("peername")
        ident = _peer_identity(transport)
        sock = self.socket
        if ident is None or ident.role not in CONTROL_ROLES:
            log.warning("look-up socket: refused %s (%s): not a manager or admin certificate", self.peer, ident)
            transport.close()
            return
        if sock._open[ident] >= sock.limits.control.streams:
            log.warning("look-up socket: refused %s of %s: %d connections open", self.peer, ident.name, sock._open[ident])
            transport.close()
            return
        self.ident = ident
        sock._open[ident] += 1
        sock._connections.add(self)
        if self.servicer.chaos is not None:
            self._task = asyncio.get_running_loop().create_task(self._chaos_check())

    def data_received(self, data: bytes) -> None:
        if self.ident is None:
            return
        try:
            self._waiting.extend(self._frames.feed(data))
        except FrameError as exc:
            self._refuse(exc)
            return
        self._answer_waiting()

    def eof_received(self) -> bool | None:
        if self.ident is not None:
            try:
                self._frames.check_ended()
            except FrameError as exc:
                self._refuse(exc)
        return None  # close the connection

    def pause_writing(self) -> None:
        self._paused_writing = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._resume_reading()
        self._answer_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.ident is None:
            return
        if exc is not None and self._result == "OK":
            self._result = "CANCELLED"
        sock = self.socket
        sock._open[self.ident] -= 1
        if not sock._open[self.ident]:
            del sock._open[self.ident]
        sock._connections.discard(self)
        if sock.metrics is not None:
            sock.metrics.observe("Lookup", self._result, time.perf_counter() - self._start)
        self.ident = None

    # -- answering ----------------------------------------------------------------------------
    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _refuse(self, exc: Exception) -> None:
        """A frame that breaks a rule ends the connection (the manager resends over gRPC)."""
        log.warning("look-up socket: closed %s of %s: %s", self.peer, self.ident.name if self.ident else "?", exc)
        self._result = "INVALID_ARGUMENT"
        self._waiting.clear()
        self.close()

    def _resume_reading(self) -> None:
        """Read again once nothing holds it: no frame being answered by a task, the manager reading."""
        t = self.transport
        if t is not None and not t.is_closing() and self._task is None and not self._paused_writing:
            t.resume_reading()

    def _answer_waiting(self) -> None:
        """Answer the frames received, in order, as far as possible without waiting."""
        transport, ident = self.transport, self.ident
        while self._waiting and self._task is None and not self._paused_writing and ident is not None:
            try:
                batch = _checked(self._waiting.popleft())
            except _Refused as exc:
                self._refuse(exc)
                return
            firings = self.servicer.lookup_firings(batch)
            replies = self.servicer.answer_lookups_now(batch, ident, firings)
            if replies is None:
                assert transport is not None
                transport.pause_reading()
                self._task = asyncio.get_running_loop().create_task(self._answer_later(batch, ident, firings))
                return
            assert transport is not None
            transport.write(frame(replies.SerializeToString()))

    async def _answer_later(self, batch: pb.LookupBatch, ident: Identity, firings: dict) -> None:
        try:
            replies = await self.servicer.answer_lookups(batch, ident, firings)
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - a bug must not stall the connection: the manager resends over gRPC
            log.exception("look-up socket: cannot answer a frame of %s; connection closed", ident.name)
            self._result = "INTERNAL"
            self.close()
            return
        self._task = None
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(frame(replies.SerializeToString()))
        self._resume_reading()
        self._answer_waiting()

    async def _chaos_check(self) -> None:
        """A chaos rule on ``Lookup`` acts when the connection opens; frames wait meanwhile."""
        assert self.transport is not None
        self.transport.pause_reading()
        try:
            refused = await self.socket.chaos_refusal()
        except asyncio.CancelledError:
            return
        self._task = None
        if refused:
            self._result = refused
            self.close()
            return
        self._resume_reading()
        self._answer_waiting()


class _Refused(Exception):
    """A frame that is no LookupBatch, or breaks a request rule."""


def _checked(data: bytes) -> pb.LookupBatch:
    try:
        batch = pb.LookupBatch.FromString(data)
    except Exception:  # noqa: BLE001 - DecodeError, invalid UTF-8 in a string field, ...
        raise _Refused(f"{len(data)} bytes are not a snaplab.v1.LookupBatch message") from None
    batch.DiscardUnknownFields()
    try:
        check_request(batch)
    except SnapLabError as err:
        raise _Refused(str(err)) from None
    return batch


def _peer_identity(transport: asyncio.BaseTransport) -> Identity | None:
    """The identity of the peer's verified certificate (TLS checked the chain against the lab CA)."""
    obj = transport.get_extra_info("ssl_object")
    der = obj.getpeercert(binary_form=True) if obj is not None else None
    if not der:
        return None
    try:
        return identity_from_pem(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))
    except ValueError:
        return None
