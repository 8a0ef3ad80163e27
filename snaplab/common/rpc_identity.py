"""Who is calling: the caller's lab identity from its verified certificate (or a test header), per RPC."""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity, identity_from_pem

from .rpc_errors import abort_with, is_aio_context

# The RPC plumbing logs under one name, whichever of its modules speaks.
log = logging.getLogger("snaplab.common.rpc")

TEST_IDENTITY_KEY = "x-snaplab-test-identity"
# Infrastructure services answer anyone who passed the TLS handshake; they need no identity.
_OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("snaplab_identity", default=None)

# (request streaming, response streaming) -> the handler's attribute and its factory, for re-wrapping.
HANDLER_KINDS = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def current_identity(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> Identity:
    """The authenticated caller of the RPC being served; aborts UNAUTHENTICATED if there is none
    (on an aio server: raises it, and ``translate_errors`` ends the call with that status)."""
    ident = _identity.get()
    if ident is None:
        err = SnapLabError(E.UNAUTHENTICATED, detail="no client identity")
        if is_aio_context(context):
            raise err
        abort_with(context, err)
    return ident


# Verified peer certificate (PEM bytes) -> its identity. A certificate says who it is the same way
# every time, so parsing it once per connection's certificate is enough; bounded so a stream of
# distinct certificates cannot grow it without limit.
_PEM_IDENTITIES: dict[bytes, Identity | None] = {}
_PEM_CACHE_MAX = 4096


def _peer_identity(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> Identity | None:
    # TLS has already verified the chain against our CA; we only read who the peer is.
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return None
    pem = pems[0]
    try:
        return _PEM_IDENTITIES[pem]
    except KeyError:
        pass
    try:
        ident: Identity | None = identity_from_pem(pem)
    except ValueError:
        log.warning("peer %s presented a certificate without a lab identity", context.peer())
        ident = None
    if len(_PEM_IDENTITIES) >= _PEM_CACHE_MAX:
        _PEM_IDENTITIES.clear()
    _PEM_IDENTITIES[pem] = ident
    return ident


def _test_identity(metadata: tuple[Any, ...] | None) -> Identity | None:
    for key, value in metadata or ():
        if key == TEST_IDENTITY_KEY:
            name, sep, role = str(value).partition("/")
            return Identity(name, role) if sep and name and role else None
    return None


def _in_context(ctx: contextvars.Context, iterator: Iterator[Any]) -> Iterator[Any]:
    """Iterate ``iterator`` with ``ctx`` entered for each step (gRPC pulls responses after the handler returned)."""
    try:
        while True:
            try:
                item = ctx.run(next, iterator)
            except StopIteration:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            ctx.run(close)


class IdentityInterceptor(grpc.ServerInterceptor):
    """Puts the caller's :class:`Identity` where :func:`current_identity` finds it, for every handler shape.

    TLS servers take it from the verified peer certificate (CN = name, OU = role). Insecure servers
    take it from the ``x-snaplab-test-identity: name/role`` header, and only when built for tests.
    """

    def __init__(self, *, tls: bool, insecure_test_identities: bool = False) -> None:
        self._tls = tls
        self._test_identities = insecure_test_identities and not tls

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_OPEN_SERVICES):
            return handler
        header_identity = _test_identity(handler_call_details.invocation_metadata) if self._test_identities else None

        def enter(context: grpc.ServicerContext) -> contextvars.Context:
            # A fresh Context per call: the identity cannot leak to the next RPC served by this worker thread.
            ctx = contextvars.copy_context()
            ident = _peer_identity(context) if self._tls else header_identity
            ctx.run(_identity.set, ident)
            return ctx

        def wrap(behaviour: Callable[..., Any], streaming_response: bool) -> Callable[..., Any]:
            def unary_response(request: Any, context: grpc.ServicerContext) -> Any:
                return enter(context).run(behaviour, request, context)

            def stream_response(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                ctx = enter(context)
                return _in_context(ctx, iter(ctx.run(behaviour, request, context)))

            return stream_response if streaming_response else unary_response

        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        return factory(
            wrap(getattr(handler, attr), handler.response_streaming),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class WrappingAioInterceptor(grpc.aio.ServerInterceptor):
    """An aio interceptor that wraps each method's handler once (``_wrap``) and serves the wrapped one
    from then on; the infrastructure services (health, reflection) pass unwrapped."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        return None if handler is None else self.wrapped(handler, handler_call_details.method)

    def wrapped(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The method's handler as this interceptor serves it (built once per method)."""
        if method.startswith(_OPEN_SERVICES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class WrappingInterceptor(grpc.ServerInterceptor):
    """:class:`WrappingAioInterceptor` for a thread-pool server (the agent's socket)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_OPEN_SERVICES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class AioIdentityInterceptor(WrappingAioInterceptor):
    """:class:`IdentityInterceptor` for ``grpc.aio`` servers: same sources of identity, every handler shape.

    Each aio RPC runs in its own task (its own copy of the context variables), so setting the
    identity at the start of the handler cannot leak to another call. The wrapped handlers depend
    on nothing but the method, so they are built once per method.
    """

    def __init__(self, *, tls: bool, insecure_test_identities: bool = False) -> None:
        super().__init__()
        self._tls = tls
        self._test_identities = insecure_test_identities and not tls

    def _enter(self, context: grpc.aio.ServicerContext) -> None:
        if self._tls:
            _identity.set(_peer_identity(context))
        elif self._test_identities:
            _identity.set(_test_identity(tuple(context.invocation_metadata() or ())))
        else:
            _identity.set(None)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        enter = self._enter
        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, attr)

        if inspect.isasyncgenfunction(behaviour):

            async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                enter(context)
                async for item in behaviour(request, context):
                    yield item

            wrapped: Callable[..., Any] = streaming
        elif inspect.iscoroutinefunction(behaviour):

            async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
                enter(context)
                return await behaviour(request, context)

            wrapped = coroutine
        else:
            raise TypeError(f"aio servers take async handlers only, not {behaviour!r}")
        return factory(
            wrapped, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
