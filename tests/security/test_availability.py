"""Issue 8 item 5: one host cannot stall the array (or the manager) for everyone.

The attack, through the real daemons: one host opens 32 idle ``Write``, 32 unread ``Read`` and 32
idle ``Lookup`` streams on the array, and routes 32 ``iSMsc_wait`` through the manager. On the old
thread-pool array that took all 32 worker threads and every other caller got DEADLINE_EXCEEDED.
Now the host gets its quota and the rest is refused at once (RESOURCE_EXHAUSTED, iSM31150); its
streams end when idle (iSM31152); waits hold no thread; and every other caller — another host,
a host routing through the manager, the admin — is answered within 2x of an idle lab's median.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness package: see labtools' docstring
from harness import security_lab as sl
from snaplab.array.process import make_lab_certs

from snaplab.common.rpc import ClientTLS, make_channel
from snaplab.common.rpc_guard import CallLimits
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import array_pb2_grpc, manager_pb2, manager_pb2_grpc

pytestmark = pytest.mark.timeout(240)

IDLE_TIMEOUT = 10.0  # the array's --stream-idle-timeout in this lab (the default is 30 s)
ATTACK = 32  # streams of each kind, routed waits
ROUNDS = 3  # idle and attack phases alternate, so load that comes and goes hits both alike
CALLS = 25  # calls of each kind per phase
LIMITS = CallLimits()
ISM = "ism-msg-id"


def _msg_id(call: grpc.Call) -> str | None:
    return next((v for k, v in call.trailing_metadata() or () if k == ISM), None)


def _idle_requests(release: threading.Event) -> Iterator[object]:
    """A request stream that sends nothing until released (then ends)."""
    release.wait()
    return
    yield  # pragma: no cover - makes this a generator


class Attack:
    """What one host (and its routed waits) holds open: started, counted, ended."""

    def __init__(self, lab: sl.SecurityLab, host: str) -> None:
        self.release = threading.Event()
        tls = ClientTLS.from_folder(lab.certs, host)
        self.array_channel = make_channel(lab.array.target, tls)
        self.manager_channel = make_channel(lab.manager.target, tls)
        self.calls: dict[str, list[grpc.Future]] = {}

    def start(self) -> None:
        self.release.clear()
        array = array_pb2_grpc.ArrayStub(self.array_channel)
        manager = manager_pb2_grpc.ManagerStub(self.manager_channel)
        wait = manager_pb2.ControlRequest(
            via="bv001", wait=pb.WaitRequest(bv="bv001", sv=pb.SvRef(sv="sv001_1"), cond="deleted", timeout_seconds=60)
        )
        self.calls = {
            "Write": [array.Write.future(_idle_requests(self.release), timeout=120) for _ in range(ATTACK)],
            "Read": [array.Read(pb.ReadRequest(ld="bulk01", offset=0, length=1 << 30), timeout=120)
                     for _ in range(ATTACK)],
            "Lookup": [array.Lookup(_idle_requests(self.release), timeout=120) for _ in range(ATTACK)],
            "routed wait": [manager.Route.future(wait, timeout=120) for _ in range(ATTACK)],
        }

    def settle(self, timeout: float = 15.0) -> None:
        """Until the refusals are in: the calls still open are the host's quota."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            open_streams = sum(not c.done() for k in ("Write", "Read", "Lookup") for c in self.calls[k])
            open_waits = sum(not c.done() for c in self.calls["routed wait"])
            if open_streams <= LIMITS.host.streams and open_waits <= LIMITS.host.calls:
                return
            time.sleep(0.05)

    def refused(self) -> dict[str, list[tuple[str, str | None]]]:
        return {k: [(c.code().name, _msg_id(c)) for c in calls if c.done()] for k, calls in self.calls.items()}

    def held(self) -> dict[str, int]:
        return {k: sum(not c.done() for c in calls) for k, calls in self.calls.items()}

    def stop(self) -> None:
        self.release.set()
        for calls in self.calls.values():
            for c in calls:
                c.cancel()
        for calls in self.calls.values():
            for c in calls:
                with _quiet():
                    c.exception(timeout=10) if hasattr(c, "exception") else None

    def close(self) -> None:
        self.stop()
        self.array_channel.close()
        self.manager_channel.close()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sl.SecurityLab]:
    with sl.running(tmp_path_factory.mktemp("availability"), array_args=["--stream-idle-timeout", str(IDLE_TIMEOUT)]) as lab:
        admin = lab.array_client("admin")
        admin.bind_pool(2, "Pool2", "basic", 2 << 30)
        admin.bind_ld("bulk01", 1 << 30, 2, "WN")  # large enough that an unread Read stalls on flow control
        admin.assign_access("bulk01", wwn=sl.WWN["business01"])
        yield lab


def _others(lab: sl.SecurityLab) -> dict[str, Callable[[], object]]:
    """Calls of everyone but the attacker: another host on the array directly and through the manager, the admin."""
    test01 = lab.array_client("test01", timeout=10)
    test01_routed = lab.manager_client("test01", timeout=10)
    backup01_routed = lab.manager_client("backup01", timeout=10)
    admin = lab.array_client("admin", timeout=10)
    return {
        "test01 Disks (array)": lambda: test01.disks(),
        "test01 Read 64 KiB (array)": lambda: test01.read("bv002", 0, 64 * 1024),
        "test01 iSMsc_query (manager)": lambda: test01_routed.route("bv002", query=pb.QueryRequest(bv="bv002")),
        "backup01 iSMsc_query via CV (manager)": lambda: backup01_routed.route(
            "BACKUP_CV", query=pb.QueryRequest(bv="bv001")),
        "admin Describe (array)": lambda: admin.describe(),
    }


def _measure(others: dict[str, Callable[[], object]], into: dict[str, list[float]]) -> None:
    for _ in range(CALLS):
        for name, call in others.items():  # interleaved, so every kind sees the same moments
            t = time.perf_counter()
            call()
            into[name].append(time.perf_counter() - t)


def test_one_host_cannot_stall_the_others(lab: sl.SecurityLab) -> None:
    others = _others(lab)
    idle: dict[str, list[float]] = {k: [] for k in others}
    attacked: dict[str, list[float]] = {k: [] for k in others}
    attack = Attack(lab, "business01")
    refusals: dict[str, list[tuple[str, str | None]]] = {}
    try:
        _measure(others, idle)  # warm-up: channels, caches
        idle = {k: [] for k in others}
        for _ in range(ROUNDS):
            _measure(others, idle)
            attack.start()
            attack.settle()
            held = attack.held()
            # the host holds its quota, no more; the rest was refused at once, in the real style
            assert held["Write"] + held["Read"] + held["Lookup"] <= LIMITS.host.streams, held
            assert held["routed wait"] <= LIMITS.host.calls, held
            _measure(others, attacked)
            assert attack.held() == held, "the attack must still hold its calls while the others are measured"
            for kind, got in attack.refused().items():
                refusals.setdefault(kind, []).extend(got)
            attack.stop()
    finally:
        attack.close()
    for kind, got in refusals.items():
        assert len(got) >= ROUNDS * (ATTACK - LIMITS.host.calls), (kind, len(got))
        assert set(got) == {("RESOURCE_EXHAUSTED", "iSM31150")}, (kind, set(got))
    report = []
    for name in others:
        base, under = statistics.median(idle[name]), statistics.median(attacked[name])
        report.append(f"{name}: idle {base * 1e3:.2f} ms, attacked {under * 1e3:.2f} ms ({under / base:.2f}x)")
    print("\n".join(report))
    for name in others:
        assert statistics.median(attacked[name]) <= 2 * statistics.median(idle[name]), "\n".join(report)


def test_idle_streams_are_closed(lab: sl.SecurityLab) -> None:
    """Streams that send nothing, and a Read whose replies are not taken, end after the idle timeout."""
    tls = ClientTLS.from_folder(lab.certs, "business01")
    release = threading.Event()
    with make_channel(lab.array.target, tls) as channel:
        stub = array_pb2_grpc.ArrayStub(channel)
        t0 = time.monotonic()
        write = stub.Write.future(_idle_requests(release), timeout=60)
        lookup = stub.Lookup(_idle_requests(release), timeout=60)
        read = stub.Read(pb.ReadRequest(ld="bulk01", offset=0, length=1 << 30), timeout=60)
        try:
            for call in (write, lookup):
                assert call.exception(timeout=IDLE_TIMEOUT + 20) is not None
                assert (call.code(), _msg_id(call)) == (grpc.StatusCode.DEADLINE_EXCEEDED, "iSM31152")
            assert IDLE_TIMEOUT - 0.5 <= time.monotonic() - t0 < IDLE_TIMEOUT + 20
            time.sleep(1.0)  # the Read's reply stream has waited on us for longer than the timeout by now
            with pytest.raises(grpc.RpcError) as info:
                for _chunk in read:
                    pass
            assert (info.value.code(), _msg_id(info.value)) == (grpc.StatusCode.DEADLINE_EXCEEDED, "iSM31152")
        finally:
            release.set()
            read.cancel()
    # the same host is served again at once
    assert lab.array_client("business01").disks()


def test_routed_wait_still_works_and_holds_nothing(lab: sl.SecurityLab) -> None:
    """A legitimate routed iSMsc_wait returns as soon as its condition holds (it sleeps until the array
    commits), also while another host holds its full quota of waits."""
    admin = lab.array_client("admin")
    admin.create("bv001", "sv001_2")
    attack = Attack(lab, "business01")
    try:
        attack.start()
        attack.settle()
        done: dict[str, object] = {}
        backup01 = lab.manager_client("backup01", timeout=60)

        def wait() -> None:
            done["reply"] = backup01.route(
                "BACKUP_CV", wait=pb.WaitRequest(bv="bv001", sv=pb.SvRef(sv="sv001_2"), cond="deleted",
                                                 timeout_seconds=30))
            done["at"] = time.monotonic()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive(), "the wait must wait for its condition"
        deleted_at = time.monotonic()
        admin.delete("bv001", "sv001_2")
        waiter.join(15)
        assert not waiter.is_alive() and done["reply"].generation.sv == "sv001_2", done
        assert float(done["at"]) - deleted_at < 1.0  # woken by the commit, not by a poll
    finally:
        attack.close()


CROWD_TOTAL = 3 * LIMITS.host.streams  # the shared limit of the crowd's lab (--host-calls)


@pytest.fixture
def crowd_lab(tmp_path: Path) -> Iterator[sl.SecurityLab]:
    """A lab whose shared limit a few hosts reach, so the crowd is open well before its first idle
    stream is ended (opening 256 TLS streams on a loaded machine took longer than an idle timeout)."""
    with sl.running(tmp_path / "crowd", array_args=["--host-calls", str(CROWD_TOTAL)]) as lab:
        yield lab


def test_many_hosts_together_cannot_crowd_out_the_admin(crowd_lab: sl.SecurityLab, tmp_path: Path) -> None:
    """Hosts together hold at most the shared limit (then iSM31151); the admin and the manager are
    served whatever they hold."""
    lab = crowd_lab
    n_hosts = CROWD_TOTAL // LIMITS.host.streams
    names = [f"crowd{i:02d}" for i in range(n_hosts + 1)]
    make_lab_certs(lab.certs, [(n, "host") for n in names])
    release = threading.Event()
    channels = [make_channel(lab.array.target, ClientTLS.from_folder(lab.certs, n)) for n in names]
    streams = []
    try:
        for channel in channels[:-1]:
            stub = array_pb2_grpc.ArrayStub(channel)
            streams += [stub.Lookup(_idle_requests(release), timeout=60) for _ in range(LIMITS.host.streams)]
        deadline = time.monotonic() + 60  # the streams open in the background: slow on a loaded machine
        last = array_pb2_grpc.ArrayStub(channels[-1])
        while True:
            try:
                last.Disks(pb.DisksRequest(), timeout=10)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    assert time.monotonic() < deadline, exc  # a handshake that timed out: not an answer
                    continue
                assert (exc.code(), _msg_id(exc)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "iSM31151")
                break
            assert time.monotonic() < deadline, "the shared limit of hosts was never reached"
            time.sleep(0.1)
        assert not any(s.done() for s in streams)  # each host got its own quota
        assert lab.array_client("admin").describe().name == sl.ARRAY
        assert lab.manager_client("admin").monitor().arrays
        assert lab.manager_client("test01").route("bv002", query=pb.QueryRequest(bv="bv002")).query.bv == "bv002"
    finally:
        release.set()
        for s in streams:
            s.cancel()
        for channel in channels:
            channel.close()
