"""Operations by kind and result, with their latency, counted at a daemon's gRPC boundary (``metrics``).

The operation is the most specific name the daemon's ``describe`` gives a call (the routed op of a
manager's ``Route``, the command of an agent's ``Run``, else the method); the result ``OK``, the
iSM id of a refusal, or the status name of a failure without one. ``result_of(reply)`` lets a daemon
whose replies carry their own outcome (the agent's command replies) name it.
Installed outside the chaos interceptor, so what a rule makes of a call is counted as its result.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from typing import Any

import grpc

from .metrics import DaemonMetrics
from .rpc_chaos import Describe, describe_by_method
from .rpc_identity import HANDLER_KINDS, WrappingAioInterceptor, WrappingInterceptor

ResultOf = Callable[[Any], str]
_ISM_ID = re.compile(r"^(iSM\d{5}):")


def _failure(context: Any, exc: BaseException) -> str:
    code = context.code() if hasattr(context, "code") else None
    details = (context.details() if hasattr(context, "details") else None) or ""
    if isinstance(details, bytes):
        details = details.decode(errors="replace")
    m = _ISM_ID.match(details)
    if m:
        return m.group(1)
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "CANCELLED" if isinstance(exc, (GeneratorExit, StopAsyncIteration)) else "UNKNOWN"


class AioMetricsInterceptor(WrappingAioInterceptor):
    def __init__(self, metrics: DaemonMetrics, describe: Describe | None = None, result_of: ResultOf | None = None) -> None:
        super().__init__()
        self.metrics = metrics
        self.describe = describe or describe_by_method
        self.result_of = result_of

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, attr)
        short = method.rsplit("/", 1)[-1]
        unary_in = not handler.request_streaming
        metrics, describe, result_of = self.metrics, self.describe, self.result_of

        if inspect.isasyncgenfunction(behaviour):

            async def run_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                op = describe(short, request if unary_in else None)[0][-1]
                start = time.perf_counter()
                result = "OK"
                try:
                    async for item in behaviour(request, context):
                        yield item
                except BaseException as exc:
                    result = _failure(context, exc)
                    raise
                finally:
                    metrics.observe(op, result, time.perf_counter() - start)

            run: Any = run_stream
        else:

            async def run_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                op = describe(short, request if unary_in else None)[0][-1]
                start = time.perf_counter()
                result = "OK"
                try:
                    reply = await behaviour(request, context)
                    if result_of is not None and reply is not None:
                        result = result_of(reply)
                    return reply
                except BaseException as exc:
                    result = _failure(context, exc)
                    raise
                finally:
                    metrics.observe(op, result, time.perf_counter() - start)

            run = run_call
        return factory(
            run, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


class MetricsInterceptor(WrappingInterceptor):
    """:class:`AioMetricsInterceptor` for a thread-pool server (the agent's socket; unary methods)."""

    def __init__(self, metrics: DaemonMetrics, describe: Describe | None = None, result_of: ResultOf | None = None) -> None:
        super().__init__()
        self.metrics = metrics
        self.describe = describe or describe_by_method
        self.result_of = result_of

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, attr)
        if handler.request_streaming or handler.response_streaming:
            return handler  # the agent has none; counting a stream needs its end, not its start
        short = method.rsplit("/", 1)[-1]

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            op = self.describe(short, request)[0][-1]
            start = time.perf_counter()
            result = "OK"
            try:
                reply = behaviour(request, context)
                if self.result_of is not None and reply is not None:
                    result = self.result_of(reply)
                return reply
            except BaseException as exc:
                result = _failure(context, exc)
                raise
            finally:
                self.metrics.observe(op, result, time.perf_counter() - start)

        return factory(
            run, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
