"""The array's look-up socket (issue 12; array/lookup_socket.py, manager/lookup_socket.py): routing's
look-ups from the manager on a plain mTLS connection instead of a gRPC stream message each.

Across real processes: the manager connects to the port the routing Describe offers and routes
through it with the answers of a direct Query; after the array restarts on a new socket port the
manager reconnects. In one process, on a real TLS socket: only a manager's or admin's lab
certificate is served; a frame that is no LookupBatch, breaks a request rule or is over the size
limit ends that connection only; a chaos rule on ``Lookup`` closes the connection as it would
refuse a stream, and the routed operation is still answered (over gRPC). An array without the
socket (insecure) is asked over the Array.Lookup stream (manager/lookups.py)."""

from __future__ import annotations

import asyncio
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from snaplab.array.engine import ArrayEngine
from snaplab.array.lookup_socket import LookupSocket
from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.array.servicer import ArrayServicer
from snaplab.manager.arrays import _socket_host
from snaplab.manager.process import ManagerProcess

from snaplab.common.chaos import Rule, RulesFile, journal_name
from snaplab.common.frames import FrameError, frame
from snaplab.common.rpc import CallLimits, ClientTLS, ServerTLS
from snaplab.common.rpc_tls import ssl_context
from snaplab.v1 import array_pb2 as pb

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20
ARRAY = "Sock_Array"
WWN = "10:00:00:00:c9:00:00:01"
PRINCIPALS = [("array", "array"), ("manager", "manager"), ("admin", "admin"), ("business01", "host")]


def _established_to(port: int) -> int:
    """Established loopback TCP connections whose server side is ``port`` (from /proc/net)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                count += 1
    return count


def _until(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[ArrayProcess, ManagerProcess]]:
    certs = make_lab_certs(tmp_path / "pki", PRINCIPALS)
    with ArrayProcess(tmp_path / "array", certs=certs, name=ARRAY) as array:
        array.listen = f"127.0.0.1:{array.port}"  # a restart keeps the gRPC port the manager knows
        with array.client("admin") as m:
            m.set_licence("DynamicSnapVolume", 1 << 40)
            m.set_licence("AccessControl")
            m.register_host("business01", [WWN])
            m.bind_pool(1, "Pool1", "dynamic", 256 * MiB)
            m.build_sra(1, 64 * MiB, sdv_name="sdv1")
            m.bind_ld("bv1", 4 * MiB, 1, "WN")
            m.add_generations("bv1", 1, 2)
            m.assign_access("bv1", wwn=WWN)
        with ManagerProcess(tmp_path / "manager", certs=certs, arrays={ARRAY: array.target}) as manager:
            yield array, manager


def _lookup_port(array: ArrayProcess) -> int:
    with array.client("manager") as m:
        return m._call("Describe", pb.DescribeRequest(routing=True)).lookup_port


def test_the_manager_routes_over_the_socket_and_reconnects_after_an_array_restart(lab) -> None:  # type: ignore[no-untyped-def]
    array, manager = lab
    port = _lookup_port(array)
    assert port and port != array.port
    with manager.client("business01") as host, array.client("manager") as direct:
        host.enrol("business", wwns=[WWN])
        routed = host.route("bv1", query=pb.QueryRequest(bv="bv1")).query
        assert _established_to(port) == 1  # the manager's one connection
        assert routed == direct.query("bv1")
        for _ in range(20):
            assert host.route("bv1", query=pb.QueryRequest(bv="bv1")).query.bv == "bv1"
        assert _established_to(port) == 1  # still the one

        array.restart()
        new_port = _lookup_port(array)
        assert new_port != port or _established_to(port) == 0

        def reconnected() -> bool:
            assert host.route("bv1", query=pb.QueryRequest(bv="bv1")).query.bv == "bv1"
            return _established_to(new_port) == 1

        assert _until(reconnected, 10.0)


def test_a_chaos_rule_on_lookup_closes_the_socket_and_routing_still_answers(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    array, manager = lab
    folder = tmp_path / "chaos"
    RulesFile(folder).add(Rule(id=0, target=f"array:{ARRAY}", op="Lookup", error="iSM31065"))
    array.extra_args = ["--chaos-dir", str(folder)]
    array.restart()
    with manager.client("business01") as host:
        host.enrol("business", wwns=[WWN])
        for _ in range(5):  # the socket and the stream refused, the unary Query answers
            assert host.route("bv1", query=pb.QueryRequest(bv="bv1")).query.bv == "bv1"
        assert _established_to(_lookup_port(array)) == 0
    assert (folder / journal_name(f"array:{ARRAY}")).read_text().count("\n") >= 2  # the socket's and the stream's


# -- one process, a real TLS socket -------------------------------------------------------------
class _Served:
    """The array's look-up socket on an engine of its own, served by a loop in this thread."""

    def __init__(self, tmp: Path) -> None:
        self.certs = make_lab_certs(tmp / "pki", PRINCIPALS)
        self.engine = ArrayEngine(tmp / "state", name=ARRAY)
        self.servicer = ArrayServicer(self.engine)
        context = ssl_context(ServerTLS.from_folder(self.certs, "array"), server=True)
        self.socket = LookupSocket(self.servicer, context, CallLimits(), None)

    def client_context(self, name: str) -> ssl.SSLContext:
        return ssl_context(ClientTLS.from_folder(self.certs, name), server=False)

    def close(self) -> None:
        self.servicer.close()
        self.engine.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's bytes as a stream client reads them; None when the array closed between frames."""
    try:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("connection ended inside a frame header") from None
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError(f"connection ended inside a frame of {size} bytes") from None


async def _ask(port: int, context: ssl.SSLContext, payload: bytes) -> bytes | None:
    """Send one raw frame; the reply frame, or None if the array closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    try:
        writer.write(payload)
        await writer.drain()
        try:
            return await asyncio.wait_for(read_frame(reader), 10)
        except (ConnectionError, ssl.SSLError):
            return None
    finally:
        writer.close()


def _batch() -> bytes:
    return pb.LookupBatch(requests=[
        pb.LookupRequest(id=7, query=pb.QueryRequest(bv="nosuch")),
        pb.LookupRequest(id=9, linkinfo=pb.VolumeRef(name="nosuch")),
    ]).SerializeToString()


def test_only_control_certificates_and_well_formed_frames_are_served(tmp_path: Path) -> None:
    served = _Served(tmp_path)

    async def run() -> None:
        port = await served.socket.start(["127.0.0.1"])
        manager, host = served.client_context("manager"), served.client_context("business01")
        try:
            got = pb.LookupReplies.FromString(await _ask(port, manager, frame(_batch())))
            assert [r.id for r in got.replies] == [7, 9]
            assert all(r.code and r.msg_id for r in got.replies)  # the unary RPCs' refusals of an unknown LD
            assert await _ask(port, host, frame(_batch())) is None  # hosts keep the gRPC boundary
            assert await _ask(port, manager, frame(b"\xff\xff not protobuf")) is None
            assert await _ask(port, manager, struct.pack(">I", 64 << 20)) is None  # over the frame limit
            bad_name = pb.LookupBatch(requests=[pb.LookupRequest(id=1, query=pb.QueryRequest(bv="x" * 500))])
            assert await _ask(port, manager, frame(bad_name.SerializeToString())) is None  # a string rule
            again = pb.LookupReplies.FromString(await _ask(port, served.client_context("admin"), frame(_batch())))
            assert [r.id for r in again.replies] == [7, 9]  # and the socket still serves
            for _ in range(100):  # every connection counted out once the array read its end
                if not served.socket._open:
                    break
                await asyncio.sleep(0.02)
            assert not served.socket._open
        finally:
            served.socket.shutdown()

    try:
        asyncio.run(run())
    finally:
        served.close()


@pytest.mark.timeout(60)
def test_frames_are_answered_in_order_also_when_the_engine_is_busy(tmp_path: Path) -> None:
    """Frames cut anywhere or sent together are each answered, in order; one that arrives while
    the engine's lock is held waits for it (answered by a task, reading paused) instead of failing."""
    served = _Served(tmp_path)

    def batch(i: int) -> bytes:
        return frame(pb.LookupBatch(requests=[pb.LookupRequest(id=i, query=pb.QueryRequest(bv="nosuch"))]).SerializeToString())

    async def run() -> None:
        port = await served.socket.start(["127.0.0.1"])
        context = served.client_context("manager")
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
        try:
            together = batch(1) + batch(2) + batch(3)
            writer.write(together[:3])  # inside the first header
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(together[3:])
            got = [pb.LookupReplies.FromString(await asyncio.wait_for(read_frame(reader), 10)) for _ in range(3)]
            assert [r.replies[0].id for r in got] == [1, 2, 3]
            held, release = threading.Event(), threading.Event()

            def busy() -> None:  # the engine busy in another thread: the look-ups must wait for it
                with served.engine._lock:
                    held.set()
                    release.wait(10)

            holder = threading.Thread(target=busy)
            holder.start()
            try:
                assert held.wait(10)
                writer.write(batch(4) + batch(5))
                await asyncio.sleep(0.2)
                assert not reader._buffer  # type: ignore[attr-defined]  # nothing answered meanwhile
            finally:
                release.set()
                holder.join(10)
            got = [pb.LookupReplies.FromString(await asyncio.wait_for(read_frame(reader), 10)) for _ in range(2)]
            assert [r.replies[0].id for r in got] == [4, 5]
            assert all(r.replies[0].msg_id == "iSM19003" for r in got)
        finally:
            writer.close()
            served.socket.shutdown()

    try:
        asyncio.run(run())
    finally:
        served.close()


def test_a_frame_that_cannot_be_answered_closes_only_its_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure answering a frame (a bug) ends that connection, so the manager resends over gRPC,
    instead of leaving it waiting; the socket serves the next connection."""
    served = _Served(tmp_path)
    answer_now = served.servicer.answer_lookups_now

    async def broken(*_args: object) -> pb.LookupReplies:
        raise RuntimeError("bug")

    async def run() -> None:
        port = await served.socket.start(["127.0.0.1"])
        context = served.client_context("manager")
        try:
            monkeypatch.setattr(served.servicer, "answer_lookups_now", lambda *_a: None)
            monkeypatch.setattr(served.servicer, "answer_lookups", broken)
            assert await asyncio.wait_for(_ask(port, context, frame(_batch())), 10) is None  # closed, no answer
            monkeypatch.setattr(served.servicer, "answer_lookups_now", answer_now)
            reply = await asyncio.wait_for(_ask(port, context, frame(_batch())), 10)
            assert reply is not None and pb.LookupReplies.FromString(reply).replies
        finally:
            served.socket.shutdown()

    try:
        asyncio.run(run())
    finally:
        served.close()


def test_the_manager_finds_the_socket_where_its_channel_goes() -> None:
    assert _socket_host("127.0.0.1:5000") == "127.0.0.1"
    assert _socket_host("[::1]:5000") == "::1"
    assert _socket_host("ipv4:198.18.0.2:50051,198.18.1.2:50051") == "198.18.0.2"  # the first SAN path
    assert _socket_host("dns:///array1:50051") == "array1"
    assert _socket_host("unix:/run/array.sock") is None


def test_an_array_without_the_socket_is_asked_over_the_lookup_stream(tmp_path: Path) -> None:
    """An insecure (test) array offers no socket: look-ups go over one Array.Lookup stream, which
    batches what is asked together and answers each as its unary RPC would."""
    from snaplab.manager.arrays import ArrayLink
    from snaplab.manager.lookups import LookupStream

    from snaplab.common.rpc import SnapLabClientError

    with ArrayProcess(tmp_path / "array", name=ARRAY) as array:
        with array.client("admin", "admin") as m:
            m.bind_pool(0, "Pool0", "basic", 64 * MiB)
            m.bind_ld("bv1", 4 * MiB, 0, "WN")

        async def scenario() -> None:
            link = ArrayLink(ARRAY, array.target, None, test_identity="manager/manager")
            try:
                await link.view()
                replies = await asyncio.gather(*(link.call("LinkInfoOf", pb.VolumeRef(name="bv1"), 10)
                                                 for _ in range(20)))
                assert {r.volume for r in replies} == {"bv1"}
                assert isinstance(link._stream, LookupStream) and not link._stream.lost and link._socket is None
                with pytest.raises(SnapLabClientError) as info:
                    await link.call("LinkInfoOf", pb.VolumeRef(name="nosuch"), 10)
                assert info.value.msg_id  # the unary RPC's refusal, relayed
                assert not link._stream.lost  # a refusal does not end the stream
            finally:
                await link.close()

        asyncio.run(scenario())
