"""Every request checked before a servicer sees it: bytes that are no message, strings that break their rule.

The interceptors wrap each method's request deserializer: a request that does not decode
(iSM19006) or carries a string outside its rule (``validation``, iSM19005) becomes a refusal that
the wrapped handler answers with INVALID_ARGUMENT and its iSM id, logging one line, never a
traceback. Unknown fields are dropped, so nothing a request smuggles is forwarded further.
Open services (health, reflection) get the decoding check only.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from .errors import E, SnapLabError
from .rpc_errors import abort_with, abort_with_aio
from .rpc_identity import HANDLER_KINDS as _HANDLER_KINDS
from .validation import check_request

log = logging.getLogger("snaplab.common.rpc")

_OUR_PACKAGE = "snaplab."


class _Refused:
    """What a request that failed the checks decodes to: the handler answers it with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: SnapLabError) -> None:
        self.error = error


def _checked_deserializer(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None
    cls = getattr(parse, "__self__", None)
    type_name = cls.DESCRIPTOR.full_name if hasattr(cls, "DESCRIPTOR") else "request"
    ours = type_name.startswith(_OUR_PACKAGE)

    def deserialize(data: bytes) -> Any:
        try:
            message = parse(data)
        except Exception:  # noqa: BLE001 - DecodeError, invalid UTF-8 in a string field, ...
            return _Refused(
                SnapLabError(E.BAD_REQUEST, detail=f"{len(data)} bytes are not a {type_name} message")
            )
        if ours:
            message.DiscardUnknownFields()
            try:
                check_request(message)
            except SnapLabError as err:
                return _Refused(err)
        return message

    return deserialize


def _note(method: str, context: Any, err: SnapLabError) -> None:
    try:
        peer = context.peer()
    except Exception:  # noqa: BLE001 - a peer we cannot name is still refused
        peer = "?"
    log.warning("refused %s from %s: %s", method, peer, err)


class ValidationInterceptor(grpc.ServerInterceptor):
    """The checks for a thread-pool ``grpc.server`` (the array daemon, the agent's socket)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap_sync(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap_sync(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    attr, factory = _HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
    behaviour = getattr(handler, attr)

    def refuse(context: grpc.ServicerContext, err: SnapLabError) -> None:
        _note(method, context, err)
        abort_with(context, err)

    if handler.request_streaming:

        def checked(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            for item in requests:
                if type(item) is _Refused:
                    refuse(context, item.error)
                yield item

        def streamed(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behaviour(checked(requests, context), context)

        wrapped: Callable[..., Any] = streamed
    else:

        def single(request: Any, context: grpc.ServicerContext) -> Any:
            if type(request) is _Refused:
                refuse(context, request.error)
            return behaviour(request, context)

        wrapped = single
    return factory(
        wrapped,
        request_deserializer=_checked_deserializer(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


class AioValidationInterceptor(grpc.aio.ServerInterceptor):
    """The same checks for a ``grpc.aio`` server (the manager)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        return None if handler is None else self.wrapped(handler, handler_call_details.method)

    def wrapped(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The method's handler with its requests checked (built once per method)."""
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap_aio(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap_aio(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    attr, factory = _HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
    behaviour = getattr(handler, attr)
    is_gen = inspect.isasyncgenfunction(behaviour)
    if not is_gen and not inspect.iscoroutinefunction(behaviour):
        return handler  # not an aio handler of ours: served as it is

    async def refuse(context: grpc.aio.ServicerContext, err: SnapLabError) -> None:
        _note(method, context, err)
        await abort_with_aio(context, err)

    async def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in requests:
            if type(item) is _Refused:
                await refuse(context, item.error)
            yield item

    async def first(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if handler.request_streaming:
            return checked(request, context)
        if type(request) is _Refused:
            await refuse(context, request.error)
        return request

    if is_gen:

        async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for item in behaviour(await first(request, context), context):
                yield item

        wrapped: Callable[..., Any] = generator
    else:

        async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await behaviour(await first(request, context), context)

        wrapped = coroutine
    return factory(
        wrapped,
        request_deserializer=_checked_deserializer(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )
