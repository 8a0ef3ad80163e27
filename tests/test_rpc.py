"""RPC plumbing: mTLS identities, error translation, health and reflection on a real port-0 server,
for both server flavours (thread-pool ``start_server`` and ``grpc.aio`` ``start_aio_server``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from snaplab.common import pki
from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import (
    AioServerThread,
    ClientTLS,
    RunningServer,
    ServerTLS,
    SnapLabClientError,
    call_error,
    client_errors,
    current_identity,
    make_channel,
    start_server,
    translate_errors,
    wait_healthy,
)
from snaplab.v1 import echo_pb2, echo_pb2_grpc

ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"].full_name
RAW_BIDI = "/snaplab.test.Raw/Bidi"


def _who(context: Any) -> bytes:
    ident = current_identity(context)
    return f"{ident.name}/{ident.role}".encode()


@translate_errors
class EchoServicer(echo_pb2_grpc.EchoServicer):
    """Ping's payload picks the behaviour: who / snap-error / boom / anything else is echoed."""

    def Ping(self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext) -> echo_pb2.EchoReply:
        if request.payload == b"who":
            return echo_pb2.EchoReply(payload=_who(context))
        if request.payload == b"snap-error":
            raise SnapLabError(E.NOT_FOUND, name="LD7")
        if request.payload == b"boom":
            raise ValueError("secret internals")
        return echo_pb2.EchoReply(payload=request.payload, size=len(request.payload))

    def Stream(self, request_iterator: Iterator[echo_pb2.EchoChunk], context: grpc.ServicerContext) -> echo_pb2.EchoReply:
        total = sum(len(chunk.payload) for chunk in request_iterator)
        return echo_pb2.EchoReply(payload=_who(context), size=total)

    def Download(self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext) -> Iterator[echo_pb2.EchoChunk]:
        yield echo_pb2.EchoChunk(payload=_who(context))  # identity is read while gRPC iterates
        if request.payload == b"snap-error":
            raise SnapLabError(E.SRA_FULL, name="POOL0")
        sent = 0
        while sent < request.size:
            n = min(request.chunk_size or 1024, request.size - sent)
            yield echo_pb2.EchoChunk(payload=b"x" * n)
            sent += n


def _add_servicers(server: grpc.Server) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(EchoServicer(), server)

    # No stream-stream method in Echo: a raw bytes handler covers that shape of the interceptor.
    def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:
            yield request + b":" + _who(context)

    handlers = {"Bidi": grpc.stream_stream_rpc_method_handler(bidi)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("snaplab.test.Raw", handlers),))


@translate_errors
class AioEchoServicer(echo_pb2_grpc.EchoServicer):
    """EchoServicer for a grpc.aio server: the same behaviours as coroutines and async generators."""

    async def Ping(self, request: echo_pb2.EchoRequest, context: Any) -> echo_pb2.EchoReply:
        if request.payload == b"who":
            return echo_pb2.EchoReply(payload=_who(context))
        if request.payload == b"snap-error":
            raise SnapLabError(E.NOT_FOUND, name="LD7")
        if request.payload == b"boom":
            raise ValueError("secret internals")
        return echo_pb2.EchoReply(payload=request.payload, size=len(request.payload))

    async def Stream(self, request_iterator: AsyncIterator[echo_pb2.EchoChunk], context: Any) -> echo_pb2.EchoReply:
        total = 0
        async for chunk in request_iterator:
            total += len(chunk.payload)
        return echo_pb2.EchoReply(payload=_who(context), size=total)

    async def Download(self, request: echo_pb2.EchoRequest, context: Any) -> AsyncIterator[echo_pb2.EchoChunk]:
        yield echo_pb2.EchoChunk(payload=_who(context))
        if request.payload == b"snap-error":
            raise SnapLabError(E.SRA_FULL, name="POOL0")
        sent = 0
        while sent < request.size:
            n = min(request.chunk_size or 1024, request.size - sent)
            yield echo_pb2.EchoChunk(payload=b"x" * n)
            sent += n


def _add_aio_servicers(server: grpc.aio.Server) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(AioEchoServicer(), server)

    async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request + b":" + _who(context)

    handlers = {"Bidi": grpc.stream_stream_rpc_method_handler(bidi)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("snaplab.test.Raw", handlers),))


FLAVOURS: dict[str, Callable[..., Any]] = {
    "threads": lambda **kw: start_server(_add_servicers, **kw),
    "aio": lambda **kw: AioServerThread(_add_aio_servicers, **kw),
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = pki.write_ca(folder)
    pki.write_principal(folder, "array-1", "array", ca_cert, ca_key)
    pki.write_principal(folder, "host-7", "host", ca_cert, ca_key)
    return folder


@pytest.fixture(scope="module")
def rogue_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same principal name, but issued by another CA."""
    folder = tmp_path_factory.mktemp("rogue")
    ca_cert, ca_key = pki.write_ca(folder)
    return pki.write_principal(folder, "host-7", "host", ca_cert, ca_key)


@pytest.fixture(scope="module", params=sorted(FLAVOURS))
def server(request: pytest.FixtureRequest, certs: Path) -> Iterator[RunningServer | AioServerThread]:
    tls = ServerTLS.from_folder(certs, "array-1")
    with FLAVOURS[request.param](tls=tls, service_names=[ECHO]) as running:
        yield running


@pytest.fixture
def channel(server: RunningServer | AioServerThread, certs: Path) -> Iterator[grpc.Channel]:
    with make_channel(f"localhost:{server.port}", ClientTLS.from_folder(certs, "host-7")) as ch:
        yield ch


def test_client_identity_reaches_every_handler_shape(channel: grpc.Channel) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    assert stub.Ping(echo_pb2.EchoRequest(payload=b"who"), timeout=5).payload == b"host-7/host"

    reply = stub.Stream(iter([echo_pb2.EchoChunk(payload=b"ab"), echo_pb2.EchoChunk(payload=b"c")]), timeout=5)
    assert (reply.payload, reply.size) == (b"host-7/host", 3)

    chunks = list(stub.Download(echo_pb2.EchoRequest(size=10, chunk_size=4), timeout=5))
    assert chunks[0].payload == b"host-7/host"
    assert [len(c.payload) for c in chunks[1:]] == [4, 4, 2]

    bidi = channel.stream_stream(RAW_BIDI)
    assert list(bidi(iter([b"a", b"b"]), timeout=5)) == [b"a:host-7/host", b"b:host-7/host"]


def test_test_identity_header_is_ignored_on_tls_server(channel: grpc.Channel) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    reply = stub.Ping(
        echo_pb2.EchoRequest(payload=b"who"), metadata=[("x-snaplab-test-identity", "boss/admin")], timeout=5
    )
    assert reply.payload == b"host-7/host"


def test_client_without_certificate_is_refused(server: RunningServer | AioServerThread, certs: Path) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.crt").read_bytes())
    with grpc.secure_channel(f"localhost:{server.port}", creds) as ch:
        with pytest.raises(grpc.RpcError) as info:
            echo_pb2_grpc.EchoStub(ch).Ping(echo_pb2.EchoRequest(payload=b"who"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_certificate_from_another_ca_is_refused(
    server: RunningServer | AioServerThread, certs: Path, rogue_certs: Path
) -> None:
    rogue = rogue_certs
    # Trusts the real CA for the server, but presents a certificate our CA never signed.
    tls = ClientTLS(
        (rogue / "host-7.crt").read_bytes(), (rogue / "host-7.key").read_bytes(), (certs / "ca.crt").read_bytes()
    )
    with make_channel(f"127.0.0.1:{server.port}", tls) as ch, pytest.raises(grpc.RpcError) as info:
        echo_pb2_grpc.EchoStub(ch).Ping(echo_pb2.EchoRequest(payload=b"who"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_snaplab_error_becomes_its_status_and_msg_id(channel: grpc.Channel) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    with pytest.raises(SnapLabClientError) as info, client_errors():
        stub.Ping(echo_pb2.EchoRequest(payload=b"snap-error"), timeout=5)
    err = info.value
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.msg_id == "iSM19003"
    assert err.text == "Specified volume does not exist. (LD7)"
    assert str(err) == "iSM19003: Specified volume does not exist. (LD7)"


def test_error_raised_mid_stream_is_translated(channel: grpc.Channel) -> None:
    stream = echo_pb2_grpc.EchoStub(channel).Download(echo_pb2.EchoRequest(payload=b"snap-error"), timeout=5)
    assert next(stream).payload == b"host-7/host"
    with pytest.raises(grpc.RpcError) as info:
        next(stream)
    err = call_error(info.value)
    assert (err.code, err.msg_id) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "iSM19060")


def test_unexpected_error_is_internal_logged_and_server_survives(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    with caplog.at_level(logging.ERROR, logger="snaplab.common.rpc"):
        with pytest.raises(grpc.RpcError) as info:
            stub.Ping(echo_pb2.EchoRequest(payload=b"boom"), timeout=5)
    err = call_error(info.value)
    assert err.code == grpc.StatusCode.INTERNAL
    assert str(err) == "iSM19999: Internal error occurred. (ValueError)"
    assert err.msg_id == "iSM19999"
    assert "secret internals" not in str(err)  # the client never sees the exception's text
    assert any("EchoServicer.Ping" in r.getMessage() and r.exc_info for r in caplog.records)
    assert stub.Ping(echo_pb2.EchoRequest(payload=b"still here"), timeout=5).payload == b"still here"


def test_health_and_reflection(channel: grpc.Channel) -> None:
    wait_healthy(channel, timeout=5)
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", ECHO):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert ECHO in names
    assert "grpc.health.v1.Health" in names


def test_stop_marks_not_serving(certs: Path) -> None:
    running = start_server(_add_servicers, tls=ServerTLS.from_folder(certs, "array-1"), service_names=[ECHO])
    running.stop(grace=0)
    # The health servicer's state stays readable after the server is gone.
    reply = running.health.Check(health_pb2.HealthCheckRequest(service=ECHO), None)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_aio_stop_marks_not_serving(certs: Path) -> None:
    running = AioServerThread(_add_aio_servicers, tls=ServerTLS.from_folder(certs, "array-1"), service_names=[ECHO])
    running.stop(grace=0)
    assert running.health._server_status[ECHO] == health_pb2.HealthCheckResponse.NOT_SERVING


def test_aio_server_refuses_a_port_in_use(certs: Path) -> None:
    with (
        start_server(_add_servicers, tls=None, service_names=[ECHO]) as taken,
        pytest.raises(RuntimeError, match="cannot bind"),
    ):
        AioServerThread(_add_aio_servicers, tls=None, service_names=[ECHO], port=taken.port)


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("test_identities", [False, True])
def test_insecure_server_identity_only_from_test_header(flavour: str, test_identities: bool) -> None:
    with FLAVOURS[flavour](
        tls=None, service_names=[ECHO], insecure_test_identities=test_identities
    ) as running, make_channel(f"127.0.0.1:{running.port}", None) as ch:
        stub = echo_pb2_grpc.EchoStub(ch)
        # Calls that do not ask who is calling work either way.
        assert stub.Ping(echo_pb2.EchoRequest(payload=b"hi"), timeout=5).payload == b"hi"
        header = [("x-snaplab-test-identity", "ops/admin")]
        if test_identities:
            assert stub.Ping(echo_pb2.EchoRequest(payload=b"who"), metadata=header, timeout=5).payload == b"ops/admin"
        with pytest.raises(grpc.RpcError) as info:
            stub.Ping(echo_pb2.EchoRequest(payload=b"who"), metadata=None if test_identities else header, timeout=5)
        err = call_error(info.value)
        assert (err.code, err.msg_id) == (grpc.StatusCode.UNAUTHENTICATED, "iSM31050")


def test_certificate_identity_round_trip() -> None:
    ca_cert, ca_key = pki.make_ca()
    cert, _ = pki.issue(ca_cert, ca_key, "mgr-1", "manager")
    assert pki.identity_from_pem(cert) == pki.Identity("mgr-1", "manager")
    with pytest.raises(ValueError):
        pki.issue(ca_cert, ca_key, "x", "root")
    with pytest.raises(ValueError):
        pki.issue(ca_cert, ca_key, "../etc/passwd", "host")
    with pytest.raises(ValueError):
        pki.identity_from_pem(ca_cert)  # the CA has no OU role
