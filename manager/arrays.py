"""The arrays a manager manages: one mTLS channel each (manager certificate), the routing look-up
stream and a short-lived description cache. Everything here runs on the manager's event loop."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import TEST_IDENTITY_KEY, ClientTLS, SnapLabClientError, call_error, make_aio_channel
from snaplab.common.rpc_tls import ssl_context
from snaplab.v1 import array_pb2, array_pb2_grpc

from . import serde
from .lookup_socket import LookupSocket
from .lookups import LookupStream, StreamLost
from .routing import ArrayView

DESCRIBE_TTL = 1.0  # seconds a Describe answer serves routing decisions
CALL_TIMEOUT = 30.0
LOOKUP_RETRY = 1.0  # seconds the unary RPCs serve look-ups after the Lookup stream broke
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Array RPC -> (LookupRequest field, reply type): the read-only look-ups routing makes on every
# routed operation go over one long-lived Array.Lookup stream instead of a call each.
LOOKUPS = {"Query": "query", "LinkInfoOf": "linkinfo"}
_CODES = {code.value[0]: code for code in grpc.StatusCode}
T = TypeVar("T")

log = logging.getLogger("snaplab.manager")


class _Fresh(Generic[T]):
    """A value read at most once per ``ttl`` seconds, concurrent readers sharing one read.
    ``read(held)`` gets the value held (None at first), so a read may build on it."""

    def __init__(self, ttl: float, read: Callable[[T | None], Awaitable[T]]) -> None:
        self.ttl, self._read = ttl, read
        self.held: T | None = None
        self._at = float("-inf")
        self._reading: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self.held is not None and time.monotonic() - self._at < self.ttl:
            return self.held
        if self._reading is None:
            fut = self._reading = asyncio.ensure_future(self._read_once())

            def done(f: asyncio.Future[T]) -> None:
                if self._reading is f:
                    self._reading = None
                if not f.cancelled():
                    f.exception()  # retrieved: waiters that went away must not leave it "never retrieved"

            fut.add_done_callback(done)
        return await asyncio.shield(self._reading)

    async def _read_once(self) -> T:
        reading = self._reading
        value = await self._read(self.held)
        if self._reading is reading:  # not expired meanwhile: this answer may serve later readers
            self.held, self._at = value, time.monotonic()
        return value

    def expire(self) -> None:
        """The next ``get()`` reads again (one under way serves only those who asked before this)."""
        self._at = float("-inf")
        self._reading = None


class ArrayLink:
    """One managed array: ``key`` is the name given on the command line (``--array KEY=HOST:PORT``).

    ``call()`` is one Array RPC as the manager; ``Query`` and ``LinkInfoOf`` go over the link's
    ``Array.Lookup`` stream (opened on first use, reopened after it breaks), with exactly the
    answers and refusals of the unary RPCs, which serve them whenever the stream cannot.
    ``describe()`` (the whole state, for monitoring) and ``view()`` (what routing needs: a routing
    Describe, reread with its version so an unchanged view costs the array O(1) whatever its LDs)
    are cached for at most ``ttl`` seconds and dropped by ``invalidate()`` (after any configuration
    change the manager makes), so routing costs no round trip in the common case; concurrent callers
    share one read. Create it in the event loop that will use it."""

    def __init__(
        self,
        key: str,
        target: str,
        tls: ClientTLS | None,
        *,
        ttl: float = DESCRIBE_TTL,
        test_identity: str | None = None,
        on_reachability: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.key = key
        self.on_reachability = on_reachability
        self.target = target
        self.channel = make_aio_channel(target, tls)
        self.stub = array_pb2_grpc.ArrayStub(self.channel)
        self._metadata = ((TEST_IDENTITY_KEY, test_identity),) if test_identity else None
        self.ttl = ttl
        self._state = _Fresh(ttl, self._read_state)
        # the routing view with its version; reread with that version: O(1) if unchanged
        self._view: _Fresh[tuple[str, ArrayView]] = _Fresh(ttl, self._read_view)
        self._stream: LookupStream | None = None
        self._socket: LookupSocket | None = None
        self._stream_after = 0.0  # monotonic time before which look-ups use the unary RPCs
        # The array's look-up socket (lookup_socket.py): its port from the routing view, on the
        # address the channel reaches; preferred to the stream, which serves while it cannot.
        self._socket_tls = tls
        self._socket_host = _socket_host(target) if tls is not None else None
        self._socket_context: ssl.SSLContext | None = None
        self._socket_port = 0
        self._socket_after = 0.0  # monotonic time before which look-ups use the stream
        self._socket_failing = False  # the last one could not connect (warned once)
        self.last_name = key  # the array's own name, as last described
        self.last_product_id = ""  # and its model, shown while it does not answer

    @property
    def names(self) -> set[str]:
        return {self.key, self.last_name}

    async def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One Array RPC as the manager; an array that does not answer is iSM31065, refusals pass through."""
        timeout = timeout if timeout is not None else CALL_TIMEOUT
        try:
            reply = None
            field = LOOKUPS.get(method)
            if field is not None:
                deadline = time.monotonic() + timeout
                reply = await self._lookup(field, request, timeout)
                timeout = max(0.1, deadline - time.monotonic())
            if reply is None:
                try:
                    reply = await getattr(self.stub, method)(
                        request, timeout=timeout, metadata=self._metadata
                    )
                except grpc.RpcError as exc:
                    raise call_error(exc) from exc
        except SnapLabClientError as exc:
            if exc.code in _UNREACHABLE and not exc.msg_id:
                self._reached(False)
                raise SnapLabError(E.ARRAY_UNREACHABLE, name=self.key) from None
            self._reached(True)
            raise
        self._reached(True)
        return reply

    async def _lookup(self, field: str, request: Any, timeout: float) -> Any:
        """The look-up's reply over the socket or the stream, or None when neither can answer it."""
        stream = self._lookups()
        if stream is None:
            return None
        try:
            reply = await stream.ask(field, request, timeout)
        except StreamLost:
            return None
        except SnapLabClientError:  # no answer in time: this one is stuck; the next look-up opens another
            stream.close()
            raise
        if reply.code:
            raise SnapLabClientError(
                _CODES.get(reply.code, grpc.StatusCode.UNKNOWN), reply.details, reply.msg_id or None
            )
        return getattr(reply, field)

    def _lookups(self) -> LookupStream | LookupSocket | None:
        """Where look-ups go: the array's look-up socket if it offers one, else the Lookup stream,
        else None (the unary RPCs); one that failed is not reopened for LOOKUP_RETRY seconds (a
        stream that is not implemented, never). A socket that connects again replaces the stream."""
        now = time.monotonic()
        socket, stream = self._socket, self._stream
        if socket is not None and socket.lost:
            if socket.failure and not self._socket_failing:
                log.warning("look-up socket of %s at %s:%d: %s (routing's look-ups go over gRPC meanwhile)",
                            self.key, self._socket_host, self._socket_port, socket.failure)
            self._socket_failing = bool(socket.failure)
            socket = self._socket = None
            self._socket_after = now + LOOKUP_RETRY
        if socket is None and self._socket_port and self._socket_host and now >= self._socket_after:
            if self._socket_context is None:
                assert self._socket_tls is not None
                self._socket_context = ssl_context(self._socket_tls, server=False)
            socket = self._socket = LookupSocket(self._socket_host, self._socket_port, self._socket_context)
        if socket is not None:
            if stream is not None and not stream.lost and socket.connected:
                stream.close()  # its look-ups still waiting are resent over the unary RPCs
                self._stream = None
            return socket
        if stream is not None and stream.lost:
            self._stream_after = now + (float("inf") if stream.unimplemented else LOOKUP_RETRY)
            stream = self._stream = None
        if stream is None and now >= self._stream_after:
            stream = self._stream = LookupStream(self.stub, self._metadata)
        return stream

    def _reached(self, ok: bool) -> None:
        if self.on_reachability is not None:
            self.on_reachability(self.key, ok)

    async def describe(self) -> array_pb2.ArrayState:
        """The array's whole state (monitoring), at most ``ttl`` seconds old."""
        return await self._state.get()

    async def _read_state(self, _held: array_pb2.ArrayState | None) -> array_pb2.ArrayState:
        state = await self.call("Describe", array_pb2.DescribeRequest())
        self.last_name = state.name or self.key
        self.last_product_id = state.product_id
        return state

    async def view(self) -> ArrayView:
        """What routing needs of the array (routing_view.py on the array's side), at most ``ttl``
        seconds old; reread with the version held, so an unchanged view costs the array O(1)."""
        return (await self._view.get())[1]

    async def _read_view(self, held: tuple[str, ArrayView] | None) -> tuple[str, ArrayView]:
        known = held[0] if held is not None else ""
        state = await self.call("Describe", array_pb2.DescribeRequest(routing=True, known_version=known))
        self._socket_port = state.lookup_port
        self.last_name = state.name or self.key
        self.last_product_id = state.product_id
        if state.unchanged and held is not None and state.routing_version == known:
            return held
        return state.routing_version, serde.array_view(state)

    def invalidate(self) -> None:
        """Forget the description and the view's age: the next ``describe()`` and ``view()`` ask the
        array (one already under way serves only those who asked before this). The view's version
        is kept: if the array's routing view did not change, rereading it costs O(1)."""
        self._state.expire()
        self._view.expire()

    async def close(self) -> None:
        for lookups in (self._socket, self._stream):
            if lookups is not None:
                lookups.close()
        await self.channel.close()


def _socket_host(target: str) -> str | None:
    """The address of a channel target (``HOST:PORT``, ``[V6]:PORT``, ``ipv4:A:P,B:P``: the first,
    which the server's certificate is checked against); None for targets with no TCP address (unix:)."""
    if target.startswith("ipv4:"):
        target = target[len("ipv4:"):].split(",", 1)[0]
    elif target.startswith("dns:"):
        target = target[len("dns:"):].lstrip("/")
    host, sep, port = target.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or "/" in host:
        return None
    return host


class ArrayRegistry:
    """The managed arrays by key; requests may name an array by key or by its own name."""

    def __init__(self, links: list[ArrayLink]) -> None:
        self.links = links

    async def get(self, name: str, *, via: str = "") -> ArrayLink:
        """The array a request names; empty names the only array (or, with several, the one whose
        LDs include ``via`` when exactly one does). Unknown: iSM31064."""
        if name:
            for link in self.links:
                if name in link.names:
                    return link
            raise SnapLabError(E.ARRAY_UNKNOWN, name=name)
        if len(self.links) == 1:
            return self.links[0]
        if via:
            having = []
            for link in self.links:
                try:
                    if via in (await link.view()).lds:
                        having.append(link)
                except SnapLabError:
                    continue
            if len(having) == 1:
                return having[0]
        raise SnapLabError(E.ARRAY_UNKNOWN, name="(name the disk array: several are managed)")

    async def select(self, name: str) -> list[ArrayLink]:
        """Every array, or the one ``name`` names."""
        return [await self.get(name)] if name else list(self.links)

    async def close(self) -> None:
        for link in self.links:
            await link.close()
