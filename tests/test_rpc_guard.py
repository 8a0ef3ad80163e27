"""The guard of aio servers (snaplab/common/rpc_guard.py): per-caller and shared limits, idle streams, bad bytes.

An Echo server in this process with small limits, callers named by the test-identity header; the
real daemons under attack are in tests/security/.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from snaplab.common.rpc import TEST_IDENTITY_KEY, AioServerThread, CallLimits, Quota, make_channel
from snaplab.v1 import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"].full_name
LIMITS = CallLimits(host=Quota(calls=3, streams=2, waits=1), control=Quota(calls=50, streams=50, waits=50),
                    hosts_total=4, idle_timeout=0.5, wait_methods=frozenset({f"/{ECHO}/Ping"}))


class SlowEcho(echo_pb2_grpc.EchoServicer):
    """Ping sleeps for as long as its payload says (in ms) and counts as a wait; streams echo."""

    async def Ping(self, request: echo_pb2.EchoRequest, context: Any) -> echo_pb2.EchoReply:
        await asyncio.sleep(int(request.payload or b"0") / 1000)
        return echo_pb2.EchoReply(payload=request.payload)

    async def Stream(self, request_iterator: AsyncIterator[echo_pb2.EchoChunk], context: Any) -> echo_pb2.EchoReply:
        n = 0
        async for chunk in request_iterator:
            n += len(chunk.payload)
        return echo_pb2.EchoReply(size=n)

    async def Download(self, request: echo_pb2.EchoRequest, context: Any) -> AsyncIterator[echo_pb2.EchoChunk]:
        for _ in range(request.size):
            yield echo_pb2.EchoChunk(payload=b"x" * (1 << 20))


@pytest.fixture(scope="module")
def server() -> Iterator[AioServerThread]:
    with AioServerThread(lambda s: echo_pb2_grpc.add_EchoServicer_to_server(SlowEcho(), s), tls=None,
                         service_names=[ECHO], insecure_test_identities=True, limits=LIMITS) as running:
        yield running


@pytest.fixture
def channel(server: AioServerThread) -> Iterator[grpc.Channel]:
    with make_channel(f"127.0.0.1:{server.port}", None) as ch:
        yield ch


def _as(who: str) -> tuple[tuple[str, str]]:
    return ((TEST_IDENTITY_KEY, who),)


def _ism(call: grpc.Call) -> str | None:
    return next((v for k, v in call.trailing_metadata() or () if k == "ism-msg-id"), None)


def _idle(release: threading.Event) -> Iterator[echo_pb2.EchoChunk]:
    release.wait()
    yield from ()


def _settled(server: AioServerThread, want: int) -> None:
    end = time.monotonic() + 10
    while sum(c for c, _s, _w in server.running.guard.in_progress().values()) != want:
        assert time.monotonic() < end, server.running.guard.in_progress()
        time.sleep(0.01)


def test_a_caller_gets_its_quota_and_is_refused_beyond(server: AioServerThread, channel: grpc.Channel) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    waits = [stub.Ping.future(echo_pb2.EchoRequest(payload=b"1500"), metadata=_as("h1/host"), timeout=10)]
    _settled(server, 1)
    with pytest.raises(grpc.RpcError) as info:  # a second wait: over its waits
        stub.Ping(echo_pb2.EchoRequest(payload=b"0"), metadata=_as("h1/host"), timeout=5)
    assert (info.value.code(), _ism(info.value)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "iSM31150")
    assert "host h1 has 1 waits in progress" in info.value.details()
    # another caller is not affected, and the control roles have their own quota
    assert stub.Ping(echo_pb2.EchoRequest(payload=b"0"), metadata=_as("h2/host"), timeout=5).payload == b"0"
    assert stub.Ping(echo_pb2.EchoRequest(payload=b"0"), metadata=_as("admin/admin"), timeout=5).payload == b"0"
    assert waits[0].result(10).payload == b"1500"
    _settled(server, 0)


def test_hosts_together_are_capped_but_control_roles_are_served(server: AioServerThread, channel: grpc.Channel) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    release = threading.Event()
    held = [stub.Stream.future(_idle(release), metadata=_as(f"h{i}/host"), timeout=10)
            for i in (1, 1, 2, 2)]  # 2 hosts x 2 streams = the shared limit of 4
    try:
        _settled(server, 4)
        with pytest.raises(grpc.RpcError) as info:
            stub.Ping(echo_pb2.EchoRequest(payload=b"0"), metadata=_as("h3/host"), timeout=5)
        assert (info.value.code(), _ism(info.value)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "iSM31151")
        for who in ("admin/admin", "manager/manager"):
            assert stub.Ping(echo_pb2.EchoRequest(payload=b"0"), metadata=_as(who), timeout=5).payload == b"0"
    finally:
        release.set()
        for f in held:
            f.result(10)
    _settled(server, 0)
    assert stub.Ping(echo_pb2.EchoRequest(payload=b"0"), metadata=_as("h3/host"), timeout=5).payload == b"0"


def test_idle_streams_end_for_hosts_but_not_for_control_roles(server: AioServerThread, channel: grpc.Channel) -> None:
    stub = echo_pb2_grpc.EchoStub(channel)
    release = threading.Event()
    host = stub.Stream.future(_idle(release), metadata=_as("h1/host"), timeout=10)
    admin = stub.Stream.future(_idle(release), metadata=_as("admin/admin"), timeout=10)
    download = stub.Download(echo_pb2.EchoRequest(size=1000), metadata=_as("h2/host"), timeout=10)
    assert host.exception(5) is not None
    assert (host.code(), _ism(host)) == (grpc.StatusCode.DEADLINE_EXCEEDED, "iSM31152")
    time.sleep(LIMITS.idle_timeout * 3)
    assert not admin.done()  # a control role's stream may wait for as long as it likes
    with pytest.raises(grpc.RpcError) as info:  # replies it did not take for longer than the timeout
        for _chunk in download:
            pass
    assert (info.value.code(), _ism(info.value)) == (grpc.StatusCode.DEADLINE_EXCEEDED, "iSM31152")
    release.set()
    assert admin.result(5).size == 0
    _settled(server, 0)


def test_undecodable_requests_are_refused_in_one_log_line_behind_the_guard(
    server: AioServerThread, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    ping = channel.unary_unary(f"/{ECHO}/Ping")
    stream = channel.stream_unary(f"/{ECHO}/Stream")
    with caplog.at_level(logging.WARNING, logger="snaplab.common.rpc"):
        for bad in (b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f"):
            with pytest.raises(grpc.RpcError) as info:
                ping(bad, metadata=_as("h1/host"), timeout=5)
            assert (info.value.code(), _ism(info.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "iSM19006")
            assert "are not a snaplab.v1.EchoRequest message" in info.value.details()
        good = echo_pb2.EchoChunk(payload=b"ok").SerializeToString()
        with pytest.raises(grpc.RpcError) as info:
            stream(iter([good, b"\xff\xff"]), metadata=_as("h1/host"), timeout=5)
        assert (info.value.code(), _ism(info.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "iSM19006")
    lines = [r for r in caplog.records if "are not a snaplab.v1.Echo" in r.getMessage()]
    assert len(lines) == 3 and not any(r.exc_info for r in caplog.records)
