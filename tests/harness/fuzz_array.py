"""Fuzzing the real array daemon (tests/security/test_fuzz_array.py, bench/fuzz_array.py).

``ArrayFuzz(root, seed).run(requests, seconds)`` starts ``snaplab-array`` (mTLS) on the small lab of
``security_lab.configure``, then sends every Array RPC hostile requests drawn by Hypothesis
(``fuzz_proto``): bytes that are no message, and well-formed messages with hostile values, as each
kind of caller (admin, manager, hosts that are and are not registered, a certificate of role array).
Every answer must be a clean one: a reply that decodes, or a refusal with a catalogue status and an
iSM id in one line (never INTERNAL/UNKNOWN, never a traceback). ``check()`` then proves the daemon
alive and consistent: health SERVING, a log with no traceback and at most a line per request, the
metadata's invariants after a graceful stop, the same state after a restart, a backup procedure
that works, and bounded RSS growth.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from snaplab.array.process import ArrayProcess, make_lab_certs

from snaplab.common.rpc import ClientTLS, make_channel
from snaplab.san.array_client import ArrayClient
from snaplab.v1 import array_pb2 as pb

from . import fuzz_proto, security_lab
from .crash_db import check_db

SERVICE = pb.DESCRIPTOR.services_by_name["Array"]
CALLERS = {  # certificate name -> role; "stranger" is a host the array does not know
    "admin": "admin", "manager": "manager", "business01": "host", "backup01": "host", "stranger": "host",
    "array": "array",
}
CALLER_WEIGHTS = {"admin": 3, "manager": 2, "business01": 3, "backup01": 1, "stranger": 1, "array": 1}
# Client-side statuses that are ours, not the daemon's answer: our deadline, our cancel.
CLIENT_ENDED = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DATA_LOSS}
ISM = "ism-msg-id"
CALL_TIMEOUT = 3.0
WAIT_TIMEOUT = 0.5  # a Wait whose condition does not come ends here (client side), which is fine
STREAM_REPLIES = 3  # replies read from a Read before cancelling it
RSS_LIMIT = 64 * 1024 * 1024  # growth allowed between the warm-up and the end


@dataclass
class Case:
    method: str
    caller: str
    kind: str  # "message" or "garbage"
    payload: list[bytes]  # one request, or the stream of requests

    def __repr__(self) -> str:
        shown = [p[:48] for p in self.payload[:3]]
        return f"Case({self.method} as {self.caller}, {self.kind}, {shown}{'...' if len(self.payload) > 3 else ''})"


@dataclass
class FuzzStats:
    requests: int = 0
    by_method: Counter = field(default_factory=Counter)
    seconds_by_method: Counter = field(default_factory=Counter)  # time spent in calls of each RPC
    by_code: Counter = field(default_factory=Counter)
    garbage: int = 0
    problems: list[str] = field(default_factory=list)
    deaths: int = 0
    tracebacks: int = 0
    log_lines: int = 0
    multiline_details: int = 0  # refusals whose text spans lines because it echoes a name with a newline
    rss_start: int = 0
    rss_end: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in self.by_code.most_common())
        return (f"{self.requests} requests ({self.garbage} undecodable) in {self.seconds:.1f} s; daemon deaths "
                f"{self.deaths}; tracebacks {self.tracebacks}; log lines {self.log_lines}; RSS "
                f"{self.rss_start / 2**20:.1f} -> {self.rss_end / 2**20:.1f} MiB; refusals echoing a newline "
                f"{self.multiline_details}; problems {len(self.problems)}\n"
                f"  answers: {codes}")


def _traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text or '  File "' in text


def _words(admin: ArrayClient) -> list[str]:
    state = admin.describe()
    words = [ld.name for ld in state.lds] + [p.name for p in state.pools] + [p.name for p in state.ports]
    words += [str(p.number) for p in state.pools] + [ld.number for ld in state.lds]
    words += list(CALLERS) + list(security_lab.WWN.values()) + [f"wwn:{w}" for w in security_lab.WWN.values()]
    words += ["DynamicSnapVolume", "AccessControl", "Version3", "sra_full", "sra_failure", "bv_failure", "licence",
              "path", "array_link", "ld", "relgen", "ld.relgen", "active", "deleted", "rw", "ro", "nr", "na", "keep",
              "delete", "WN", "WG", "LX", "basic", "dynamic", "iv", "cv", "mv", "rv", "windows", "linux",
              "bv001.-1", "bv001.-2", ".-1", "sv001_1", "lv001"]
    return words


def _cases(words: list[str]) -> st.SearchStrategy[Case]:
    methods = list(SERVICE.methods)
    encoded = {m.name: fuzz_proto.message(m.input_type, words).map(lambda x: x.SerializeToString()) for m in methods}
    garbage = {m.name: fuzz_proto.garbage(fuzz_proto.message(m.input_type, words)) for m in methods}
    callers = st.sampled_from([c for c, w in CALLER_WEIGHTS.items() for _ in range(w)])
    kinds = st.sampled_from(["message", "message", "message", "garbage"])

    @st.composite
    def case(draw: st.DrawFn) -> Case:
        m = draw(st.sampled_from(methods))
        kind = draw(kinds)
        one = encoded[m.name] if kind == "message" else garbage[m.name]
        if m.client_streaming:
            payload = draw(st.lists(one, max_size=5))
            if kind == "garbage" and payload:  # a bad message after good ones
                payload = draw(st.lists(encoded[m.name], max_size=2)) + payload
        else:
            payload = [draw(one)]
        return Case(m.name, draw(callers), kind, payload)

    return case()


class ArrayFuzz:
    """One daemon, one fuzz run; a context manager that always stops the daemon."""

    def __init__(self, root: Path, *, seed_value: int | None = None, log: Callable[[str], None] = print) -> None:
        self.root = root
        self.seed = seed_value if seed_value is not None else random.randrange(1 << 32)
        self.log = log
        self.certs = make_lab_certs(root / "pki", list(CALLERS.items()))
        self.proc = ArrayProcess(root / "state", certs=self.certs, name=security_lab.ARRAY, log_level="INFO")
        self.channels: dict[str, grpc.Channel] = {}
        self.stats = FuzzStats()

    def __enter__(self) -> ArrayFuzz:
        self.proc.start()
        admin = self.client("admin")
        security_lab.configure(admin)
        for host, wwn in security_lab.WWN.items():
            if host in CALLERS:
                admin.register_host(host, [wwn])
        self.words = _words(admin)
        admin.close()
        for name in CALLERS:
            self.channels[name] = make_channel(self.proc.target, ClientTLS.from_folder(self.certs, name))
        return self

    def __exit__(self, *exc: object) -> None:
        for ch in self.channels.values():
            ch.close()
        self.proc.stop()

    def client(self, name: str) -> ArrayClient:
        return ArrayClient(self.proc.target, ClientTLS.from_folder(self.certs, name), timeout=30)

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    # -- sending ---------------------------------------------------------------------------------
    def send(self, case: Case) -> None:
        m = SERVICE.methods_by_name[case.method]
        path = f"/{SERVICE.full_name}/{case.method}"
        ch = self.channels[case.caller]
        reply_cls = fuzz_proto._message_class(m.output_type)
        self.stats.requests += 1
        self.stats.by_method[case.method] += 1
        self.stats.garbage += case.kind == "garbage"
        replies: list[bytes] = []
        t0 = time.monotonic()
        try:
            if not m.client_streaming and not m.server_streaming:
                timeout = WAIT_TIMEOUT if case.method == "Wait" else CALL_TIMEOUT
                replies = [ch.unary_unary(path)(case.payload[0], timeout=timeout)]
            elif m.server_streaming and not m.client_streaming:
                call = ch.unary_stream(path)(case.payload[0], timeout=CALL_TIMEOUT)
                for reply in call:
                    replies.append(reply)
                    if len(replies) >= STREAM_REPLIES:
                        call.cancel()
                        break
            elif m.client_streaming and not m.server_streaming:
                replies = [ch.stream_unary(path)(iter(case.payload), timeout=CALL_TIMEOUT)]
            else:
                replies = list(ch.stream_stream(path)(iter(case.payload), timeout=CALL_TIMEOUT))
            self.stats.by_code["OK"] += 1
        except grpc.RpcError as exc:
            self._judge_refusal(case, exc)
        self.stats.seconds_by_method[case.method] += time.monotonic() - t0
        for raw in replies:
            try:
                reply = reply_cls.FromString(raw)
            except Exception as exc:  # noqa: BLE001 - any failure to decode is the finding
                self.problem(case, f"reply does not decode: {type(exc).__name__}")
                continue
            if case.method == "Lookup":
                for r in reply.replies:
                    code = grpc.StatusCode.OK if not r.code else next(c for c in grpc.StatusCode if c.value[0] == r.code)
                    if code in BAD or (r.code and not r.msg_id) or _traceback(r.details):
                        self.problem(case, f"look-up reply {code.name} {r.msg_id!r} {r.details[:120]!r}")

    def _judge_refusal(self, case: Case, exc: grpc.RpcError) -> None:
        code = exc.code()
        details = exc.details() or ""
        msg_id = next((v for k, v in exc.trailing_metadata() or () if k == ISM), None)
        self.stats.by_code[code.name] += 1
        if code == grpc.StatusCode.CANCELLED and case.method == "Read":
            return  # we cancelled it after STREAM_REPLIES replies
        if code in CLIENT_ENDED and not msg_id:
            return
        if code == grpc.StatusCode.UNAVAILABLE and not msg_id:
            if self.proc.proc is not None and self.proc.proc.poll() is not None:
                self.stats.deaths += 1
            self.problem(case, f"UNAVAILABLE without an iSM id: {details[:160]!r}")
            return
        if code in BAD or not msg_id or _traceback(details):
            self.problem(case, f"{code.name} {msg_id!r} {details[:160]!r}")
        if "\n" in details:  # a name echoed as given (the names' character rule is issue 8 item 3's)
            self.stats.multiline_details += 1

    def problem(self, case: Case, what: str) -> None:
        if len(self.stats.problems) < 200:
            self.stats.problems.append(f"{case!r}: {what}")

    # -- the run ---------------------------------------------------------------------------------
    def run(self, requests: int, seconds: float) -> FuzzStats:
        """Send about ``requests`` cases (fewer if ``seconds`` run out first), seeded by ``self.seed``."""
        t0 = time.monotonic()
        warm = max(1, requests // 10)
        fuzz = self

        @settings(max_examples=requests, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @seed(self.seed)
        @given(_cases(self.words))
        def one(case: Case) -> None:
            if time.monotonic() - t0 > seconds:
                return
            fuzz.send(case)
            if fuzz.stats.requests == warm:
                fuzz.stats.rss_start = fuzz.rss()
            if fuzz.stats.requests % 1000 == 0:
                fuzz.log(f"fuzz: {fuzz.stats.requests} requests, {len(fuzz.stats.problems)} problems")

        one()
        self.stats.seconds = time.monotonic() - t0
        self.stats.rss_end = self.rss()
        if not self.stats.rss_start:
            self.stats.rss_start = self.stats.rss_end
        return self.stats

    # -- afterwards --------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Everything that must hold after the run; the problems found (empty: all well)."""
        problems: list[str] = []
        if not self.proc.running:
            self.stats.deaths += 1
            return ["the daemon died"]
        with make_channel(self.proc.target, ClientTLS.from_folder(self.certs, "admin")) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10).status
            if status != health_pb2.HealthCheckResponse.SERVING:
                problems.append(f"health {status}")
        if self.stats.rss_end - self.stats.rss_start > RSS_LIMIT:
            problems.append(f"RSS grew by {(self.stats.rss_end - self.stats.rss_start) / 2**20:.0f} MiB")
        with self.client("admin") as admin:
            before = admin.describe()
        if self.proc.stop() != 0:
            problems.append("the daemon did not stop cleanly")
        problems += [f"array.db: {p}" for p in check_db(self.proc.state_dir / "array.db")[0]]
        problems += self._log_problems()
        self.proc.start()
        with self.client("admin") as admin:
            after = admin.describe()
        if after != before:
            problems.append("the state read after a restart differs from the state before it")
        problems += self._backup_procedure()
        return problems

    def _log_problems(self) -> list[str]:
        text = self.proc.log_path.read_text(errors="replace")
        lines = text.splitlines()
        self.stats.log_lines = len(lines)
        self.stats.tracebacks = text.count("Traceback (most recent call last)")
        problems = []
        if self.stats.tracebacks:
            problems.append(f"{self.stats.tracebacks} tracebacks in the daemon's log")
        if len(lines) > self.stats.requests + 50:
            problems.append(f"{len(lines)} log lines for {self.stats.requests} requests")
        return problems

    def _backup_procedure(self) -> list[str]:
        """The guide's backup (2.2.1) on fresh volumes: host writes, snapshot, link the LV, the backup
        host reads the snapshot through it, unlink, delete. Whatever the fuzz configured, faulted or
        unlicensed is set right first, as an operator would."""
        try:
            with self.client("admin") as admin, self.client("business01") as biz, self.client("backup01") as bak:
                state = admin.describe()
                for fault in state.faults:
                    kind, _, target = fault.partition(":")
                    admin.clear_fault(kind, target)
                admin.set_licence("DynamicSnapVolume", (1 << 63) - 1)
                admin.set_licence("AccessControl")
                free = max((p.number for p in state.pools), default=-1) + 1
                names = {ld.name for ld in state.lds}
                tag = next(f"bk{i}" for i in range(1000) if f"bk{i}_bv" not in names)
                admin.bind_pool(free, f"{tag}_p0", "basic", 64 << 20)
                admin.bind_pool(free + 1, f"{tag}_p1", "dynamic", 64 << 20)
                admin.build_sra(free + 1, 16 << 20, sdv_name=f"{tag}_sdv")
                admin.bind_ld(f"{tag}_bv", 4 << 20, free, "WN")
                admin.add_generations(f"{tag}_bv", free + 1, 1, sv_names=[f"{tag}_sv"])
                admin.bind_lv(f"{tag}_bv", f"{tag}_lv")
                w_biz, w_bak = "10:00:00:00:c9:bb:00:01", "10:00:00:00:c9:bb:00:02"
                admin.register_host("business01", [w_biz])
                admin.register_host("backup01", [w_bak])
                admin.assign_access(f"{tag}_bv", wwn=w_biz)
                admin.assign_access(f"{tag}_lv", wwn=w_bak)
                data = random.Random(self.seed).randbytes(256 * 1024)
                biz.write(f"{tag}_bv", 0, data)
                admin.create(f"{tag}_bv", f"{tag}_sv")
                biz.write(f"{tag}_bv", 0, b"\xee" * len(data))  # business goes on after the snapshot
                admin.link(f"{tag}_lv", f"{tag}_sv", mode="ro")
                if bak.read(f"{tag}_lv", 0, len(data)) != data:
                    return ["backup procedure: the LV does not read the snapshot's data"]
                admin.unlink(f"{tag}_lv")
                admin.delete(f"{tag}_bv", f"{tag}_sv")
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            return [f"backup procedure failed: {type(exc).__name__}: {exc}"]
        return []


def run(root: Path, *, requests: int, seconds: float, seed_value: int | None = None,
        log: Callable[[str], None] = print) -> tuple[FuzzStats, list[str], int]:
    """One whole fuzz run: (stats, problems, seed)."""
    with ArrayFuzz(root, seed_value=seed_value, log=log) as fuzz:
        log(f"fuzz: seed {fuzz.seed}, up to {requests} requests or {seconds:.0f} s")
        stats = fuzz.run(requests, seconds)
        problems = list(stats.problems) + fuzz.check()
        return stats, problems, fuzz.seed
