"""Chaos rules at a daemon's gRPC boundary: the interceptors that delay, refuse or crash a call (``chaos``).

Each daemon installs one (``start_aio_server(chaos=...)``; the agent's thread-pool socket
:class:`ChaosInterceptor`), innermost, so a rule acts after the caller's identity, limits and
request checks, as the daemon itself would. What the client then sees is what a real failure looks
like: an iSM refusal has the catalogue's status, text and ``ism-msg-id`` as the daemon's own
refusals have (or, through ``answer``, the reply a real refusal is: the agent's ``Run`` answers
a command's error line); a status rule (``UNAVAILABLE``) has no iSM id, as a transport failure
has none; a crash rule kills the process.

``describe(method, request)`` names a call's operations and subject: ``(("Route", "iSMsc_create"),
"bv001")``. The default is the method alone and the request's first volume-like field; requests
that are streams are described by their method only.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import grpc

from .chaos import ChaosEngine, Firing, crash_now
from .rpc_errors import abort_with, abort_with_aio
from .rpc_identity import HANDLER_KINDS, WrappingAioInterceptor, WrappingInterceptor

Describe = Callable[[str, Any], tuple[tuple[str, ...], str]]
# answer(method, request, firing) -> the reply that stands for the refusal, or None to abort the call
Answer = Callable[[str, Any, Firing], Any]
_SUBJECT_FIELDS = ("bv", "lv", "name", "ld", "target", "host")


def request_subject(request: Any) -> str:
    """The volume (or other object) a request names: its first non-empty ``bv``/``lv``/``name``/… field."""
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    for name in _SUBJECT_FIELDS:
        if name in fields:
            value = getattr(request, name)
            if isinstance(value, str) and value:
                return value
    return ""


def describe_by_method(method: str, request: Any) -> tuple[tuple[str, ...], str]:
    return (method,), request_subject(request) if request is not None else ""


def _details(f: Firing) -> str:
    return f"chaos rule {f.rule.id}: {f.rule.error} on {f.op}"


class AioChaosInterceptor(WrappingAioInterceptor):
    """The rules of ``engine`` on a ``grpc.aio`` server."""

    def __init__(self, engine: ChaosEngine, describe: Describe | None = None, answer: Answer | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.describe = describe or describe_by_method
        self.answer = answer

    async def _apply(self, short: str, request: Any, context: grpc.aio.ServicerContext, unary_out: bool) -> Any:
        """None to go on with the call; a reply to answer instead; or the call ends here."""
        ops, subject = self.describe(short, request)
        f = self.engine.decide(ops, subject)
        if f is None:
            return None
        if f.latency:
            await asyncio.sleep(f.latency)
        if f.crash:
            crash_now(f)
        if f.error is not None:
            reply = self.answer(short, request, f) if self.answer is not None and unary_out else None
            if reply is not None:
                return reply
            await abort_with_aio(context, f.error)
        if f.status:
            await context.abort(getattr(grpc.StatusCode, f.status), _details(f))
        return None

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, attr)
        short = method.rsplit("/", 1)[-1]
        unary_in = not handler.request_streaming
        apply = self._apply

        if inspect.isasyncgenfunction(behaviour):

            async def run_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await apply(short, request if unary_in else None, context, False)
                async for item in behaviour(request, context):
                    yield item

            run: Any = run_stream
        else:

            async def run_call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                reply = await apply(short, request if unary_in else None, context, not handler.response_streaming)
                if reply is not None:
                    return reply
                return await behaviour(request, context)

            run = run_call
        return factory(
            run, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


class ChaosInterceptor(WrappingInterceptor):
    """The rules of ``engine`` on a thread-pool server (the agent's socket)."""

    def __init__(self, engine: ChaosEngine, describe: Describe | None = None, answer: Answer | None = None) -> None:
        super().__init__()
        self.engine = engine
        self.describe = describe or describe_by_method
        self.answer = answer

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        attr, factory = HANDLER_KINDS[(handler.request_streaming, handler.response_streaming)]
        behaviour = getattr(handler, attr)
        short = method.rsplit("/", 1)[-1]
        unary_in = not handler.request_streaming
        unary_out = not handler.response_streaming

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            ops, subject = self.describe(short, request if unary_in else None)
            f = self.engine.decide(ops, subject)
            if f is not None:
                if f.latency:
                    time.sleep(f.latency)
                if f.crash:
                    crash_now(f)
                if f.error is not None:
                    reply = self.answer(short, request, f) if self.answer is not None and unary_out else None
                    if reply is not None:
                        return reply
                    abort_with(context, f.error)
                if f.status:
                    context.abort(getattr(grpc.StatusCode, f.status), _details(f))
            return behaviour(request, context)

        return factory(
            run, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
