"""Errors across gRPC both ways: ``SnapLabError`` -> status and iSM id; a failed call -> ``SnapLabClientError``."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn

import grpc

from snaplab.common.errors import E, SnapLabError

# The RPC plumbing logs under one name, whichever of its modules speaks.
log = logging.getLogger("snaplab.common.rpc")

MSG_ID_KEY = "ism-msg-id"
_MSG_ID_IN_DETAILS = re.compile(r"^(iSM\d{5}): ?(.*)$", re.DOTALL)

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


# -- what clients see ----------------------------------------------------------------------------


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


# -- what servicers raise ------------------------------------------------------------------------


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
