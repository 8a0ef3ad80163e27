"""Starting a daemon's gRPC server: mTLS, caller identities, health and reflection; ``grpc.aio`` or thread-pool.

Two flavours: ``start_aio_server`` (``grpc.aio``: the daemons; every call is a coroutine on one
event loop, so a call that waits holds no thread, and the guard of ``rpc_guard`` limits what each
caller may have in progress) and ``start_server`` (a thread-pool ``grpc.server``: the benchmarks'
raw-gRPC reference and plumbing tests). ``AioServerThread`` runs an aio server on a loop of its own
thread, for synchronous callers (in-process tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent import futures
from typing import Any, Self

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .chaos import ChaosEngine
from .metrics import DaemonMetrics
from .rpc_chaos import AioChaosInterceptor, Answer, Describe
from .rpc_guard import DEFAULT_LIMITS, CallLimits, GuardInterceptor
from .rpc_metrics import AioMetricsInterceptor
from .rpc_identity import AioIdentityInterceptor, IdentityInterceptor
from .rpc_tls import CHANNEL_OPTIONS, ServerTLS, server_credentials
from .rpc_validation import AioValidationInterceptor, ValidationInterceptor

# Without so_reuseport=0 a second daemon could bind a fixed port already in use and share it silently.
_SERVER_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


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
        interceptors=[
            IdentityInterceptor(tls=tls is not None, insecure_test_identities=insecure_test_identities),
            ValidationInterceptor(),  # every request's bytes and strings (rpc_validation)
        ],
        options=_SERVER_OPTIONS,
    )
    add_servicers(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    address = _address(host, port)
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, server_credentials(tls))
    if not bound:
        raise RuntimeError(f"cannot bind {address}")
    server.start()
    return RunningServer(server, bound, health_servicer)


class RunningAioServer:
    """A started ``grpc.aio`` server; ``await stop()`` drains it gracefully. ``guard`` counts what
    each caller has in progress."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: Any, guard: GuardInterceptor) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer
        self.guard = guard

    async def stop(self, grace: float = 5.0) -> None:
        # NOT_SERVING first, so load balancers and wait_healthy() stop sending work before we drain.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def _generic_only(service_name: str, method_handlers: dict) -> None:
    """Stands in for ``grpc.aio.Server.add_registered_method_handlers`` (see start_aio_server)."""


class _Wrapped(grpc.GenericRpcHandler):
    """A service's generic handler serving each method as the interceptors, outermost first, would
    have wrapped it. grpc.aio runs the interceptors' ``intercept_service`` coroutines on every call,
    one awaited inside the other; ours only wrap each method once, so the composition is built once
    per method here and found with one look-up per call."""

    def __init__(self, inner: grpc.GenericRpcHandler, interceptors: list[Any]) -> None:
        self._inner = inner
        self._interceptors = interceptors[::-1]  # innermost first
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        built = self._built.get(method)
        if built is not None and built[0] is handler:
            return built[1]
        wrapped = handler
        for interceptor in self._interceptors:
            wrapped = interceptor.wrapped(wrapped, method)
        self._built[method] = (handler, wrapped)
        return wrapped


async def start_aio_server(
    add_servicers: Callable[[grpc.aio.Server], None],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ServerTLS | None,
    service_names: list[str],
    insecure_test_identities: bool = False,
    limits: CallLimits | None = DEFAULT_LIMITS,
    metrics: DaemonMetrics | None = None,
    chaos: ChaosEngine | None = None,
    describe: Describe | None = None,
    answer: Answer | None = None,
    also_hosts: tuple[str, ...] = (),
) -> RunningAioServer:
    """:func:`start_server` on ``grpc.aio`` (call it in the loop that will serve): the same mTLS,
    identities, health and reflection, for servicers whose RPC methods are ``async``; each caller
    within ``limits`` (None: no limits); every request checked by ``rpc_validation``; operations
    counted in ``metrics`` and the chaos rules of ``chaos`` applied (``rpc_metrics``, ``rpc_chaos``:
    ``describe`` names a call's operations, ``answer`` the reply a refusal stands for). ``also_hosts``:
    more addresses served on the same port (an array's SAN ports beside its LAN address)."""
    if tls is not None and insecure_test_identities:
        raise ValueError("test identities are only for insecure servers")
    guard = GuardInterceptor(limits)
    interceptors: list[grpc.aio.ServerInterceptor] = [
        AioIdentityInterceptor(tls=tls is not None, insecure_test_identities=insecure_test_identities),
        guard,  # after the identity: it counts by caller
        AioValidationInterceptor(),  # decoding and request rules, the one place for both
    ]
    if metrics is not None:  # outside the chaos rules: what a rule makes of a call is its result
        interceptors.append(AioMetricsInterceptor(metrics, describe))
    if chaos is not None:  # innermost: a rule acts where the daemon itself would
        interceptors.append(AioChaosInterceptor(chaos, describe, answer))
    server = grpc.aio.server(options=_SERVER_OPTIONS)
    add_generic = server.add_generic_rpc_handlers
    server.add_generic_rpc_handlers = lambda handlers: add_generic(  # type: ignore[method-assign]
        tuple(_Wrapped(h, interceptors) for h in handlers)
    )
    # Every method is served through its service's generic handler only: grpc.aio's serving loop
    # waits on one pending call per registered method with asyncio.wait, whose cost grows with the
    # method count (the manager has ~20: a fifth of its profiled CPU per routed op), and the generic
    # handler finds every method by name just the same.
    server.add_registered_method_handlers = _generic_only  # type: ignore[method-assign]
    add_servicers(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *service_names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    bound = 0
    for h in (host, *also_hosts):
        address = _address(h, bound or port)
        try:
            if tls is None:
                got = server.add_insecure_port(address)
            else:
                got = server.add_secure_port(address, server_credentials(tls))
        except RuntimeError as exc:  # grpc.aio raises where grpc.server returns 0
            raise RuntimeError(f"cannot bind {address}") from exc
        if not got:
            raise RuntimeError(f"cannot bind {address}")
        bound = bound or got
    await server.start()
    return RunningAioServer(server, bound, health_servicer, guard)


class AioServerThread:
    """:func:`start_aio_server` on an event loop of its own thread, for synchronous callers: ``port``,
    ``run(coroutine)`` in the server's loop, ``stop(grace)``; a context manager."""

    def __init__(self, add_servicers: Callable[[grpc.aio.Server], None], **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aio-server", daemon=True)
        self._thread.start()
        try:
            self.running: RunningAioServer = self.run(start_aio_server(add_servicers, **kwargs))
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            raise
        self.port = self.running.port
        self.health = self.running.health

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, grace: float = 0) -> None:
        if self._loop.is_running():
            self.run(self.running.stop(grace), timeout=grace + 30.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
