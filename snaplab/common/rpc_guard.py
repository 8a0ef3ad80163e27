"""What keeps one caller from taking a ``grpc.aio`` daemon from the others: per-caller limits, idle streams, bad bytes.

:class:`GuardInterceptor` runs inside the identity interceptor (it reads the caller's identity) on
every RPC of a daemon's services:

- **limits** (:class:`CallLimits`): calls, streaming calls and waits in progress at once, per
  caller (certificate name and role) and for all non-control callers together; beyond a limit the
  call is refused at once with RESOURCE_EXHAUSTED (iSM31150 for the caller's own limit, iSM31151
  for the shared one). Control roles (manager, admin) have a quota of their own, outside the
  shared one, so their traffic is served whatever hosts do;
- **idle streams**: a non-control caller's stream that sends no message, or does not take the
  reply it is sent, for ``idle_timeout`` seconds is ended with DEADLINE_EXCEEDED (iSM31152).

Requests that do not decode or break a string rule are not its business: ``rpc_validation``, inside
it, refuses them (one place for every service).

On an aio server a call that waits (a stream between messages, a long wait) holds no thread, so
these limits bound memory and fairness rather than a thread pool.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity

from .rpc_errors import abort_with_aio
from .rpc_identity import HANDLER_KINDS, WrappingAioInterceptor, _identity

log = logging.getLogger("snaplab.common.rpc")

CONTROL_ROLES = frozenset({"manager", "admin"})


@dataclass(frozen=True)
class Quota:
    """What one caller may have in progress at once."""

    calls: int  # calls of any kind
    streams: int  # of which streaming calls (request or reply streamed)
    waits: int  # of which waits (the methods named in ``CallLimits.wait_methods``)


@dataclass(frozen=True)
class CallLimits:
    """A daemon's limits. ``host`` applies to each non-control caller (role host, or any role but
    manager and admin) and ``hosts_total`` to all of them together; ``control`` to each manager or
    admin identity. ``idle_timeout`` (seconds, None: never) ends idle streams of non-control callers."""

    host: Quota = Quota(calls=16, streams=8, waits=8)
    control: Quota = Quota(calls=1024, streams=64, waits=512)
    hosts_total: int = 256
    idle_timeout: float | None = 30.0
    wait_methods: frozenset[str] = field(default_factory=frozenset)

    def is_control(self, ident: Identity | None) -> bool:
        return ident is not None and ident.role in CONTROL_ROLES

    def idle_timeout_for(self, ident: Identity | None) -> float | None:
        return None if self.is_control(ident) else self.idle_timeout


DEFAULT_LIMITS = CallLimits()


@dataclass
class _Usage:
    calls: int = 0
    streams: int = 0
    waits: int = 0


def _who(ident: Identity | None) -> str:
    return f"{ident.role} {ident.name}" if ident is not None else "a caller without identity"


class GuardInterceptor(WrappingAioInterceptor):
    """Applies :class:`CallLimits` (with ``limits=None``, nothing but the handler-kind check).

    Counting happens on the server's event loop, so it needs no lock. Must come after the identity
    interceptor in the server's interceptor list, so the caller's identity is set when it runs.
    """

    def __init__(self, limits: CallLimits | None) -> None:
        super().__init__()
        self.limits = limits
        self._usage: dict[tuple[str, str], _Usage] = {}
        self._hosts_total = 0

    # -- bookkeeping ---------------------------------------------------------------------------
    def in_progress(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(name, role) -> (calls, streams, waits) in progress now (for tests and diagnostics)."""
        return {k: (u.calls, u.streams, u.waits) for k, u in self._usage.items()}

    def _admit(self, ident: Identity | None, streaming: bool, waiting: bool) -> tuple[str, str]:
        limits = self.limits
        assert limits is not None
        key = (ident.name, ident.role) if ident is not None else ("", "")
        control = limits.is_control(ident)
        quota = limits.control if control else limits.host
        usage = self._usage.get(key) or _Usage()
        over = None
        if usage.calls >= quota.calls:
            over = f"{quota.calls} calls"
        elif streaming and usage.streams >= quota.streams:
            over = f"{quota.streams} streams"
        elif waiting and usage.waits >= quota.waits:
            over = f"{quota.waits} waits"
        if over is not None:
            raise SnapLabError(E.CALLER_LIMIT, detail=f"{_who(ident)} has {over} in progress")
        if not control and self._hosts_total >= limits.hosts_total:
            raise SnapLabError(E.SERVER_BUSY, detail=f"{limits.hosts_total} calls of servers in progress")
        usage.calls += 1
        usage.streams += streaming
        usage.waits += waiting
        self._usage[key] = usage
        if not control:
            self._hosts_total += 1
        return key

    def _release(self, key: tuple[str, str], control: bool, streaming: bool, waiting: bool) -> None:
        usage = self._usage[key]
        usage.calls -= 1
        usage.streams -= streaming
        usage.waits -= waiting
        if usage.calls == 0:
            del self._usage[key]
        if not control:
            self._hosts_total -= 1

    # -- interception --------------------------------------------------------------------------
    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, attr)
        streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
        streaming = streaming_in or streaming_out
        waiting = self.limits is not None and method in self.limits.wait_methods
        short = method.rsplit("/", 1)[-1]
        guard = self

        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            ident = _identity.get()
            limits = guard.limits
            key = None
            control = False
            if limits is not None:
                control = limits.is_control(ident)
                try:
                    key = guard._admit(ident, streaming, waiting)
                except SnapLabError as exc:
                    log.warning("refused %s of %s: %s", short, _who(ident), exc)
                    await abort_with_aio(context, exc)
            idle = limits.idle_timeout_for(ident) if limits is not None else None
            try:
                if streaming_in:
                    request = _checked_requests(request, idle, short, ident)
                if not streaming_out:
                    return await behaviour(request, context)
                replies = behaviour(request, context)
                if not inspect.isasyncgen(replies):  # a coroutine that writes its replies itself
                    return await replies
                await _send_all(replies, context, idle, short)
                return None
            except SnapLabError as exc:  # ours, met by a servicer that does not translate its errors
                if context.code() is None and not context.cancelled():
                    await abort_with_aio(context, exc)
                raise
            finally:
                if key is not None:
                    guard._release(key, control, streaming, waiting)

        if not (inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
            raise TypeError(f"aio servers take async handlers only, not {behaviour!r}")
        return factory(
            run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _checked_requests(
    requests: AsyncIterator[Any], idle: float | None, method: str, ident: Identity | None
) -> AsyncIterator[Any]:
    """The request stream, ended with iSM31152 after ``idle`` seconds without a message (raised where
    the servicer reads the stream)."""
    it = requests.__aiter__()
    while True:
        try:
            if idle is None:
                item = await it.__anext__()
            else:
                async with asyncio.timeout(idle):
                    item = await it.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            log.warning("closed %s of %s: no message for %.0f s", method, _who(ident), idle)
            raise SnapLabError(E.STREAM_IDLE, detail=f"no request message for {idle:g} s") from None
        yield item


async def _send_all(
    replies: AsyncIterator[Any], context: grpc.aio.ServicerContext, idle: float | None, method: str
) -> None:
    """Write each reply; one the client does not take within ``idle`` seconds ends the call (iSM31152)."""
    try:
        async for item in replies:
            if idle is None:
                await context.write(item)
                continue
            try:
                async with asyncio.timeout(idle):
                    await context.write(item)
            except TimeoutError:
                log.warning("closed %s of %s: reply not taken for %.0f s", method, _who(_identity.get()), idle)
                await abort_with_aio(
                    context, SnapLabError(E.STREAM_IDLE, detail=f"reply not taken for {idle:g} s")
                )
    finally:
        await replies.aclose()
