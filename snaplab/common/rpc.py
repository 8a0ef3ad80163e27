"""gRPC plumbing shared by the daemons: mTLS servers and channels, caller identity, error translation.

Two server flavours: ``start_server`` (a thread-pool ``grpc.server``: the array daemon, whose engine
blocks) and ``start_aio_server`` (``grpc.aio``: the manager, which mostly waits on arrays and serves
each call on one event loop, without thread hand-offs). Both authenticate callers the same way
(``IdentityInterceptor`` / ``AioIdentityInterceptor``) and ``translate_errors`` decorates servicers of
either kind.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity, identity_from_pem

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024
MSG_ID_KEY = "ism-msg-id"
TEST_IDENTITY_KEY = "x-snaplab-test-identity"

_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]
# Infrastructure services answer anyone who passed the TLS handshake; they need no identity.
_OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_MSG_ID_IN_DETAILS = re.compile(r"^(iSM\d{5}): ?(.*)$", re.DOTALL)

_identity: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("snaplab_identity", default=None)

# The context grpc.aio hands to handlers is a Cython class that does not derive from the
# grpc.aio.ServicerContext it implements.
try:
    from grpc._cython.cygrpc import _ServicerContext as _CyServicerContext

    _AIO_CONTEXTS: tuple[type, ...] = (grpc.aio.ServicerContext, _CyServicerContext)
except ImportError:  # pragma: no cover - another grpc build
    _AIO_CONTEXTS = (grpc.aio.ServicerContext,)


def is_aio_context(context: object) -> bool:
    """Whether ``context`` is the servicer context of a call on a ``grpc.aio`` server."""
    return isinstance(context, _AIO_CONTEXTS)


# -- TLS material ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerTLS:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    @classmethod
    def from_folder(cls, folder: Path | str, name: str) -> ServerTLS:
        folder = Path(folder)
        return cls(
            (folder / f"{name}.crt").read_bytes(), (folder / f"{name}.key").read_bytes(), (folder / "ca.crt").read_bytes()
        )


@dataclass(frozen=True)
class ClientTLS:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    @classmethod
    def from_folder(cls, folder: Path | str, name: str) -> ClientTLS:
        folder = Path(folder)
        return cls(
            (folder / f"{name}.crt").read_bytes(), (folder / f"{name}.key").read_bytes(), (folder / "ca.crt").read_bytes()
        )


# -- identity ----------------------------------------------------------------------------------


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

        kinds = {
            (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
            (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
            (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
            (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
        }
        attr, factory = kinds[(handler.request_streaming, handler.response_streaming)]
        return factory(
            wrap(getattr(handler, attr), handler.response_streaming),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class AioIdentityInterceptor(grpc.aio.ServerInterceptor):
    """:class:`IdentityInterceptor` for ``grpc.aio`` servers: same sources of identity, every handler shape.

    Each aio RPC runs in its own task (its own copy of the context variables), so setting the
    identity at the start of the handler cannot leak to another call. The wrapped handlers depend
    on nothing but the method, so they are built once per method.
    """

    def __init__(self, *, tls: bool, insecure_test_identities: bool = False) -> None:
        self._tls = tls
        self._test_identities = insecure_test_identities and not tls
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def _enter(self, context: grpc.aio.ServicerContext) -> None:
        if self._tls:
            _identity.set(_peer_identity(context))
        elif self._test_identities:
            _identity.set(_test_identity(tuple(context.invocation_metadata() or ())))
        else:
            _identity.set(None)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(_OPEN_SERVICES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        enter = self._enter
        kinds = {
            (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
            (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
            (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
            (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
        }
        attr, factory = kinds[(handler.request_streaming, handler.response_streaming)]
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


# -- error translation -------------------------------------------------------------------------


def abort_with(context: grpc.ServicerContext, exc: BaseException) -> NoReturn:
    """End the RPC with the status the error catalogue gives ``exc``; unexpected errors become INTERNAL."""
    if isinstance(exc, SnapLabError):
        context.set_trailing_metadata(((MSG_ID_KEY, exc.msg_id),))
        context.abort(getattr(grpc.StatusCode, exc.status.name), str(exc))
    if isinstance(exc, SnapLabClientError):
        # A refusal from a daemon further down is relayed as it came, so the end client sees its iSM id.
        if exc.msg_id:
            context.set_trailing_metadata(((MSG_ID_KEY, exc.msg_id),))
        context.abort(exc.code, exc.details)
    abort_with(context, SnapLabError(E.INTERNAL, detail=type(exc).__name__))


def _status_of(exc: BaseException) -> tuple[grpc.StatusCode, str, str | None]:
    """(code, details, iSM id) of the status :func:`abort_with` ends a call with for ``exc``."""
    if isinstance(exc, SnapLabError):
        return getattr(grpc.StatusCode, exc.status.name), str(exc), exc.msg_id
    if isinstance(exc, SnapLabClientError):
        return exc.code, exc.details, exc.msg_id
    return _status_of(SnapLabError(E.INTERNAL, detail=type(exc).__name__))


async def abort_with_aio(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """:func:`abort_with` for an aio server: the same status, iSM id and trailing metadata."""
    code, details, msg_id = _status_of(exc)
    trailing = ((MSG_ID_KEY, msg_id),) if msg_id else ()
    await context.abort(code, details, trailing_metadata=trailing)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


def _already_ended_aio(context: grpc.aio.ServicerContext) -> bool:
    return context.code() is not None or context.cancelled()


async def _translate_aio(context: grpc.aio.ServicerContext, exc: Exception, where: str) -> None:
    if isinstance(exc, grpc.aio.AbortError) or _already_ended_aio(context):
        return
    if not isinstance(exc, (SnapLabError, SnapLabClientError)):
        log.exception("unexpected error in %s", where)
    await abort_with_aio(context, exc)


def _already_ended(context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after fixing the status, and a cancelled stream raises
    # RpcError from the request iterator: both must pass through untouched.
    code = getattr(context, "code", lambda: None)()
    return code is not None or not context.is_active()


def _translate(context: grpc.ServicerContext, exc: Exception, where: str) -> None:
    if _already_ended(context):
        return
    if not isinstance(exc, (SnapLabError, SnapLabClientError)):
        log.exception("unexpected error in %s", where)
    abort_with(context, exc)


def translate_errors(cls: type) -> type:
    """Servicer-class decorator: every public method (unary or streaming) ends in a catalogue status.

    The daemon never dies of a request: anything unexpected is logged and answered INTERNAL.
    Methods of an aio servicer (``async def``, or async generators for streamed replies) are
    translated the same way, with the aio context's ``abort``.
    """

    def wrap_async(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        where = f"{cls.__name__}.{name}"

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            context = args[-1] if args else None
            if not is_aio_context(context):
                return await method(self, *args, **kwargs)  # a helper, not an RPC
            try:
                return await method(self, *args, **kwargs)
            except Exception as exc:
                await _translate_aio(context, exc, where)
                raise

        return wrapper

    def wrap_async_gen(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        where = f"{cls.__name__}.{name}"

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            context = args[-1] if args else None
            try:
                async for item in method(self, *args, **kwargs):
                    yield item
            except Exception as exc:
                if not is_aio_context(context):
                    raise
                await _translate_aio(context, exc, where)
                raise

        return wrapper

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(method):
            return wrap_async(name, method)
        if inspect.isasyncgenfunction(method):
            return wrap_async_gen(name, method)
        where = f"{cls.__name__}.{name}"

        def stream(result: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from result
            except Exception as exc:
                _translate(context, exc, where)
                raise

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            context = args[-1] if args else None
            if not isinstance(context, grpc.ServicerContext):
                return method(self, *args, **kwargs)  # a helper, not an RPC: nothing to translate to
            try:
                result = method(self, *args, **kwargs)
            except Exception as exc:
                _translate(context, exc, where)
                raise
            # Generators run after the method returns: errors raised mid-stream are translated here.
            return stream(result, context) if inspect.isgenerator(result) else result

        return wrapper

    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, wrap(name, value))
    return cls


# -- server ------------------------------------------------------------------------------------


class RunningServer:
    """A started server; ``stop()`` (or leaving the ``with`` block) drains it gracefully."""

    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    def stop(self, grace: float = 5.0) -> None:
        # NOT_SERVING first, so load balancers and wait_healthy() stop sending work before we drain.
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    add_servicers: Callable[[grpc.Server], None],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ServerTLS | None,
    service_names: list[str],
    max_workers: int = 16,
    insecure_test_identities: bool = False,
) -> RunningServer:
    """Start a server with health and reflection; mTLS (client certificate required) unless ``tls`` is None.

    ``tls=None`` is for unit tests only: callers then have no identity, except a test header
    when ``insecure_test_identities`` is set.
    """
    if tls is not None and insecure_test_identities:
        raise ValueError("test identities are only for insecure servers")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[IdentityInterceptor(tls=tls is not None, insecure_test_identities=insecure_test_identities)],
        # Without so_reuseport=0 a second daemon could bind a fixed port already in use and share it silently.
        options=[*_OPTIONS, ("grpc.so_reuseport", 0)],
    )
    add_servicers(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        creds = grpc.ssl_server_credentials(
            [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
        )
        bound = server.add_secure_port(address, creds)
    if not bound:
        raise RuntimeError(f"cannot bind {address}")
    server.start()
    return RunningServer(server, bound, health_servicer)


class RunningAioServer:
    """A started ``grpc.aio`` server; ``await stop()`` drains it gracefully."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: Any) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    async def stop(self, grace: float = 5.0) -> None:
        # NOT_SERVING first, so load balancers and wait_healthy() stop sending work before we drain.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_aio_server(
    add_servicers: Callable[[grpc.aio.Server], None],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ServerTLS | None,
    service_names: list[str],
    insecure_test_identities: bool = False,
) -> RunningAioServer:
    """:func:`start_server` on ``grpc.aio`` (call it in the loop that will serve): the same mTLS,
    identities, health and reflection, for servicers whose RPC methods are ``async``."""
    if tls is not None and insecure_test_identities:
        raise ValueError("test identities are only for insecure servers")
    server = grpc.aio.server(
        interceptors=[
            AioIdentityInterceptor(tls=tls is not None, insecure_test_identities=insecure_test_identities)
        ],
        # Without so_reuseport=0 a second daemon could bind a fixed port already in use and share it silently.
        options=[*_OPTIONS, ("grpc.so_reuseport", 0)],
    )
    add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            creds = grpc.ssl_server_credentials(
                [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
            )
            bound = server.add_secure_port(address, creds)
    except RuntimeError as exc:  # grpc.aio raises where grpc.server returns 0
        raise RuntimeError(f"cannot bind {address}") from exc
    if not bound:
        raise RuntimeError(f"cannot bind {address}")
    await server.start()
    return RunningAioServer(server, bound, health_servicer)


# -- client ------------------------------------------------------------------------------------


class SnapLabClientError(Exception):
    """A failed call as clients see it: status code, iSM message id (if any) and text; ``str()`` is the details."""

    def __init__(self, code: grpc.StatusCode, details: str, msg_id: str | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        match = _MSG_ID_IN_DETAILS.match(details)
        self.msg_id = msg_id or (match.group(1) if match else None)
        self.text = match.group(2) if match else details

    def __str__(self) -> str:
        return self.details


def call_error(exc: grpc.RpcError) -> SnapLabClientError:
    """The typed form of a failed call (``grpc.RpcError`` raised by stubs is also a ``grpc.Call``)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    trailing = (exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None) or ()
    msg_id = next((str(v) for k, v in trailing if k == MSG_ID_KEY), None)
    return SnapLabClientError(code, details, msg_id)


@contextlib.contextmanager
def client_errors() -> Iterator[None]:
    """Re-raise ``grpc.RpcError`` as :class:`SnapLabClientError` so callers never handle raw gRPC errors."""
    try:
        yield
    except grpc.RpcError as exc:
        raise call_error(exc) from exc


def make_channel(target: str, tls: ClientTLS | None) -> grpc.Channel:
    """A channel to ``target`` presenting our certificate (servers' SANs cover localhost and 127.0.0.1)."""
    if tls is None:
        return grpc.insecure_channel(target, options=_OPTIONS)
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
    )
    return grpc.secure_channel(target, creds, options=_OPTIONS)


def make_aio_channel(target: str, tls: ClientTLS | None) -> grpc.aio.Channel:
    """:func:`make_channel` for ``grpc.aio`` callers (create it in the loop that uses it)."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=_OPTIONS)
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
    )
    return grpc.aio.secure_channel(target, creds, options=_OPTIONS)


def wait_healthy(channel: grpc.Channel, timeout: float = 10.0, service: str = "") -> None:
    """Poll the health service until ``service`` is SERVING; TimeoutError after ``timeout`` seconds."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"server not healthy after {timeout}s: {last}")
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=min(remaining, 1.0))
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            err = call_error(exc)
            last = f"{err.code.name}: {err}"
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
