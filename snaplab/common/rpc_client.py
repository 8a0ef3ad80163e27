"""Calling a daemon: channels that present our certificate, and waiting for a server to be healthy."""

from __future__ import annotations

import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .rpc_errors import call_error
from .rpc_tls import CHANNEL_OPTIONS, ClientTLS, channel_credentials

# A daemon that was away is reached again within a second of its return: gRPC's default reconnect
# backoff grows to 120 s, during which every call on the channel fails at once with UNAVAILABLE.
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
_CLIENT_OPTIONS = [*CHANNEL_OPTIONS, *RECONNECT_OPTIONS]


def _options(target: str) -> list[tuple[str, object]]:
    """A target of several addresses (``ipv4:A:P,B:P``: a host's SAN paths to one array, the first
    used while it answers) has its server certificate checked against the first address; the server's
    certificate carries them all (a netns lab's machines have their addresses as SANs)."""
    if target.startswith("ipv4:") and "," in target:
        first = target[len("ipv4:"):].split(",", 1)[0].rsplit(":", 1)[0]
        return [*_CLIENT_OPTIONS, ("grpc.ssl_target_name_override", first)]
    return _CLIENT_OPTIONS


def make_channel(target: str, tls: ClientTLS | None) -> grpc.Channel:
    """A channel to ``target`` presenting our certificate (servers' SANs cover localhost and 127.0.0.1)."""
    if tls is None:
        return grpc.insecure_channel(target, options=_CLIENT_OPTIONS)
    return grpc.secure_channel(target, channel_credentials(tls), options=_options(target))


def make_aio_channel(target: str, tls: ClientTLS | None) -> grpc.aio.Channel:
    """:func:`make_channel` for ``grpc.aio`` callers (create it in the loop that uses it)."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=_CLIENT_OPTIONS)
    return grpc.aio.secure_channel(target, channel_credentials(tls), options=_options(target))


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
