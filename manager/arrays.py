"""The arrays a manager manages: one mTLS channel each (manager certificate), the routing look-up
stream and a short-lived description cache. Everything here runs on the manager's event loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import TEST_IDENTITY_KEY, ClientTLS, SnapLabClientError, call_error, make_aio_channel
from snaplab.v1 import array_pb2, array_pb2_grpc

from . import serde
from .routing import ArrayView

DESCRIBE_TTL = 1.0  # seconds a Describe answer serves routing decisions
CALL_TIMEOUT = 30.0
LOOKUP_RETRY = 1.0  # seconds the unary RPCs serve look-ups after the Lookup stream broke
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Array RPC -> (LookupRequest field, reply type): the read-only look-ups routing makes on every
# routed operation go over one long-lived Array.Lookup stream instead of a call each.
LOOKUPS = {"Query": "query", "LinkInfoOf": "linkinfo"}
_CODES = {code.value[0]: code for code in grpc.StatusCode}

log = logging.getLogger("snaplab.manager")


class _StreamLost(Exception):
    """The Lookup stream ended or failed before answering: resend over the unary RPC."""


class _LookupStream:
    """One ``Array.Lookup`` stream: concurrent look-ups told apart by id. A writer task sends
    whatever look-ups are waiting as one batch whenever the previous write is done, so at low load
    each goes out at once and under load they share writes. When the stream ends, every look-up
    still waiting gets ``_StreamLost`` (look-ups change nothing, so resending them is safe)."""

    def __init__(self, stub: array_pb2_grpc.ArrayStub, metadata: tuple[tuple[str, str], ...] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._call = stub.Lookup(metadata=metadata)
        self._pending: dict[int, asyncio.Future[array_pb2.LookupReply]] = {}
        self._ids = itertools.count(1)
        self._batch = array_pb2.LookupBatch()
        self._wake = asyncio.Event()
        self.lost = False
        self.unimplemented = False
        self._writer = self._loop.create_task(self._write())
        self._reader = self._loop.create_task(self._read())

    async def _write(self) -> None:
        try:
            while not self.lost:
                if not self._batch.requests:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch, self._batch = self._batch, array_pb2.LookupBatch()
                await self._call.write(batch)
        except (grpc.RpcError, asyncio.InvalidStateError, asyncio.CancelledError):
            pass
        except Exception:  # pragma: no cover - a bug here must not leave look-ups hanging
            log.exception("Lookup stream writer failed")
        finally:
            self.close()

    async def _read(self) -> None:
        try:
            while True:
                replies = await self._call.read()
                if replies is grpc.aio.EOF:
                    break
                for reply in replies.replies:
                    fut = self._pending.pop(reply.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        except grpc.RpcError as exc:
            self.unimplemented = exc.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - a bug here must not leave look-ups hanging
            log.exception("Lookup stream reader failed")
        finally:
            self.close()

    def close(self) -> None:
        if not self.lost:
            self.lost = True
            self._call.cancel()
        self._wake.set()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(_StreamLost())

    async def ask(self, field: str, request: Any, timeout: float) -> array_pb2.LookupReply:
        if self.lost:
            raise _StreamLost()
        i = next(self._ids)
        fut: asyncio.Future[array_pb2.LookupReply] = self._loop.create_future()
        self._pending[i] = fut
        item = self._batch.requests.add(id=i)
        getattr(item, field).CopyFrom(request)
        self._wake.set()
        timer = self._loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(i, None)


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(SnapLabClientError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


def _shared(coro: Any, forget: Callable[[asyncio.Future[Any]], object]) -> asyncio.Future[Any]:
    """``coro`` as a future concurrent callers share; ``forget(future)`` when it is done."""
    fut = asyncio.ensure_future(coro)

    def done(f: asyncio.Future[Any]) -> None:
        forget(f)
        if not f.cancelled():
            f.exception()  # retrieved: waiters that went away must not leave it "never retrieved"

    fut.add_done_callback(done)
    return fut


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
        self._cached: tuple[float, array_pb2.ArrayState] | None = None
        self._describing: asyncio.Future[array_pb2.ArrayState] | None = None
        # the routing view: (when read, its version, the view); reread with its version: O(1) if unchanged
        self._view: tuple[float, str, ArrayView] | None = None
        self._viewing: asyncio.Future[ArrayView] | None = None
        self._stream: _LookupStream | None = None
        self._stream_after = 0.0  # monotonic time before which look-ups use the unary RPCs
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
        """The look-up's reply over the stream, or None when the stream cannot answer it."""
        stream = self._stream
        if stream is None or stream.lost:
            if stream is not None:
                self._stream = None
                self._stream_after = time.monotonic() + (
                    float("inf") if stream.unimplemented else LOOKUP_RETRY
                )
            if time.monotonic() < self._stream_after:
                return None
            stream = self._stream = _LookupStream(self.stub, self._metadata)
        try:
            reply = await stream.ask(field, request, timeout)
        except _StreamLost:
            return None
        except SnapLabClientError:  # no answer in time: this stream is stuck; the next look-up opens another
            stream.close()
            raise
        if reply.code:
            raise SnapLabClientError(
                _CODES.get(reply.code, grpc.StatusCode.UNKNOWN), reply.details, reply.msg_id or None
            )
        return getattr(reply, field)

    def _reached(self, ok: bool) -> None:
        if self.on_reachability is not None:
            self.on_reachability(self.key, ok)

    async def describe(self) -> array_pb2.ArrayState:
        """The array's whole state (monitoring), at most ``ttl`` seconds old."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        if self._describing is None:
            self._describing = _shared(self._fetch_state(), lambda f: self._describing is f and self._no_describing())
        return await asyncio.shield(self._describing)

    def _no_describing(self) -> None:
        self._describing = None

    async def _fetch_state(self) -> array_pb2.ArrayState:
        fetch = self._describing
        state = await self.call("Describe", array_pb2.DescribeRequest())
        if self._describing is fetch:  # not invalidated meanwhile: this answer may serve later callers
            self._cached = (time.monotonic(), state)
        self.last_name = state.name or self.key
        self.last_product_id = state.product_id
        return state

    async def view(self) -> ArrayView:
        """What routing needs of the array (routing_view.py on the array's side), at most ``ttl``
        seconds old; reread with the version held, so an unchanged view costs the array O(1)."""
        cached = self._view
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[2]
        if self._viewing is None:
            self._viewing = _shared(self._fetch_view(), lambda f: self._viewing is f and self._no_viewing())
        return await asyncio.shield(self._viewing)

    def _no_viewing(self) -> None:
        self._viewing = None

    async def _fetch_view(self) -> ArrayView:
        fetch, held = self._viewing, self._view
        known = held[1] if held is not None else ""
        state = await self.call("Describe", array_pb2.DescribeRequest(routing=True, known_version=known))
        if state.unchanged and held is not None and state.routing_version == known:
            view = held[2]
        else:
            view = serde.array_view(state)
        if self._viewing is fetch:  # not invalidated meanwhile
            self._view = (time.monotonic(), state.routing_version, view)
        self.last_name = state.name or self.key
        self.last_product_id = state.product_id
        return view

    def invalidate(self) -> None:
        """Forget the description and the view's age: the next ``describe()`` and ``view()`` ask the
        array (one already under way serves only those who asked before this). The view's version
        is kept: if the array's routing view did not change, rereading it costs O(1)."""
        self._cached = None
        self._describing = None
        if self._view is not None:
            self._view = (float("-inf"), self._view[1], self._view[2])
        self._viewing = None

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        await self.channel.close()


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
