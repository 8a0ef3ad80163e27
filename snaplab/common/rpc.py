"""gRPC plumbing shared by the daemons, under one import path: TLS, servers, caller identity, errors, channels.

Each part lives in a module of its own; callers import from here:

- ``rpc_tls``: ``ServerTLS``/``ClientTLS`` (a principal's certificate, key and the lab CA)
- ``rpc_server``: ``start_aio_server`` (``grpc.aio``: the daemons) and ``start_server`` (thread
  pool: benchmark references, plumbing tests), both with mTLS, health and reflection;
  ``AioServerThread`` (an aio server for synchronous callers)
- ``rpc_guard``: per-caller limits, idle streams and undecodable requests on aio servers
  (``CallLimits``, ``Quota``)
- ``rpc_identity``: who is calling (``current_identity``), set per RPC by the servers' interceptors
- ``rpc_errors``: ``translate_errors``/``abort_with`` (an error -> its status and iSM id) and
  ``SnapLabClientError``/``client_errors`` (a failed call -> a typed error)
- ``rpc_validation``: every request decoded and its strings checked (``validation``) before a
  servicer sees it; installed by both servers and the agent's socket
- ``rpc_client``: ``make_channel``/``make_aio_channel``, ``wait_healthy``
- ``rpc_metrics`` and ``rpc_chaos``: operations counted (``metrics``) and chaos rules applied
  (``chaos``) at a daemon's boundary; ``start_aio_server(metrics=..., chaos=...)`` installs them
"""

from __future__ import annotations

from .rpc_client import make_aio_channel, make_channel, wait_healthy
from .rpc_errors import (
    MSG_ID_KEY,
    SnapLabClientError,
    abort_with,
    abort_with_aio,
    call_error,
    client_errors,
    is_aio_context,
    translate_errors,
)
from .rpc_guard import CallLimits, Quota
from .rpc_identity import TEST_IDENTITY_KEY, AioIdentityInterceptor, IdentityInterceptor, current_identity
from .rpc_server import AioServerThread, RunningAioServer, RunningServer, start_aio_server, start_server
from .rpc_tls import MAX_MESSAGE, ClientTLS, ServerTLS
from .rpc_validation import AioValidationInterceptor, ValidationInterceptor

__all__ = [
    "MAX_MESSAGE",
    "MSG_ID_KEY",
    "TEST_IDENTITY_KEY",
    "AioIdentityInterceptor",
    "AioServerThread",
    "AioValidationInterceptor",
    "CallLimits",
    "ClientTLS",
    "IdentityInterceptor",
    "Quota",
    "RunningAioServer",
    "RunningServer",
    "ServerTLS",
    "SnapLabClientError",
    "ValidationInterceptor",
    "abort_with",
    "abort_with_aio",
    "call_error",
    "client_errors",
    "current_identity",
    "is_aio_context",
    "make_aio_channel",
    "make_channel",
    "start_aio_server",
    "start_server",
    "translate_errors",
    "wait_healthy",
]
