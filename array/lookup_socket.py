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
from collections import Counter
from typing import TYPE_CHECKING

from snaplab.common.chaos import crash_now
from snaplab.common.errors import SnapLabError
from snaplab.common.frames import FrameError, frame, read_frame
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
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, hosts: list[str]) -> int:
        """Listen on the first host on a free port, then on the others on the same port (an address
        whose port is taken is left out, logged): the manager reaches it where it reaches gRPC."""
        for i, host in enumerate(hosts):
            try:
                server = await asyncio.start_server(
                    self._serve, host, self.port, ssl=self.context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
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
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ident = _peer_identity(writer)
        if ident is None or ident.role not in CONTROL_ROLES:
            log.warning("look-up socket: refused %s (%s): not a manager or admin certificate", peer, ident)
            writer.close()
            return
        if self._open[ident] >= self.limits.control.streams:
            log.warning("look-up socket: refused %s of %s: %d connections open", peer, ident.name, self._open[ident])
            writer.close()
            return
        self._open[ident] += 1
        self._writers.add(writer)
        start, result = time.perf_counter(), "OK"
        try:
            refused = await self._chaos_refusal()
            if refused:
                result = refused
                return
            while True:
                batch = _checked(await read_frame(reader), peer, ident)
                if batch is None:
                    break
                replies = await self.servicer.answer_lookups(batch, ident)
                writer.write(frame(replies.SerializeToString()))
                await writer.drain()
        except (FrameError, _Refused) as exc:
            log.warning("look-up socket: closed %s of %s: %s", peer, ident.name, exc)
            result = "INVALID_ARGUMENT"
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            result = "CANCELLED"
        finally:
            self._open[ident] -= 1
            if not self._open[ident]:
                del self._open[ident]
            self._writers.discard(writer)
            writer.close()
            if self.metrics is not None:
                self.metrics.observe("Lookup", result, time.perf_counter() - start)

    async def _chaos_refusal(self) -> str:
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


class _Refused(Exception):
    """A frame that is no LookupBatch, or breaks a request rule."""


def _checked(data: bytes | None, peer: object, ident: Identity) -> pb.LookupBatch | None:
    if data is None:
        return None
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


def _peer_identity(writer: asyncio.StreamWriter) -> Identity | None:
    """The identity of the peer's verified certificate (TLS checked the chain against the lab CA)."""
    obj = writer.get_extra_info("ssl_object")
    der = obj.getpeercert(binary_form=True) if obj is not None else None
    if not der:
        return None
    try:
        return identity_from_pem(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))
    except ValueError:
        return None
