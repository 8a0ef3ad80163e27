#!/usr/bin/env python3
"""Helpers of the benchmarks that run real daemons over gRPC (bench_grpc_io.py, bench_rss.py).

* ``BenchCerts``: a throwaway lab CA with the principals the benchmarks use;
* ``start_array``: the real array daemon (``ArrayProcess``, mTLS), optionally with every thread
  profiled (``--profile``: the daemon runs under ``python3 bench/grpc_common.py profiled-array``);
* ``EchoProcess``: the raw gRPC reference, ``snaplab.v1.Echo`` served by another process with the
  same plumbing as the daemon (``snaplab.common.rpc.start_server``: mTLS with client certificates,
  the identity interceptor, health, reflection, 32 worker threads: the thread pool, which moves plain
  bytes faster than ``grpc.aio``, so the reference is the harder one) and a servicer doing nothing but
  moving bytes: ``Stream`` drops what it receives (or keeps it, once, when asked with ``x-echo-keep``)
  and ``Download`` sends the kept bytes back, so the reference carries the very bytes the array gets,
  in the same chunks;
* ``rss_of(pid)``: VmRSS / VmHWM of a process from /proc.

Run as a script it is the Echo server (``echo``) or the profiled daemon (``profiled-array``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

HERE = Path(__file__).resolve()
ECHO_NAME = "snaplab.v1.Echo"
KEEP_KEY = "x-echo-keep"


# ==================================================================== certificates and the array daemon
class BenchCerts:
    """A lab CA in ``folder`` with: array, echo (role array), admin, and host ``bench01``."""

    HOST = "bench01"
    HOST_WWN = "10:00:00:00:c9:be:0c:01"

    def __init__(self, folder: Path) -> None:
        from snaplab.array.process import make_lab_certs

        self.folder = make_lab_certs(folder, [("array", "array"), ("echo", "array"), ("admin", "admin"),
                                              (self.HOST, "host")])

    def tls(self, name: str):  # -> ClientTLS
        from snaplab.common.rpc import ClientTLS

        return ClientTLS.from_folder(self.folder, name)


class _ProfiledArrayProcess:
    """Mixin: run the daemon under ``grpc_common.py profiled-array`` (per-thread cProfile, printed on exit)."""

    profile_out: Path

    def command(self) -> list[str]:  # type: ignore[override]
        cmd = super().command()  # type: ignore[misc]
        i = cmd.index("-m")
        return [cmd[0], str(HERE), "profiled-array", "--out", str(self.profile_out), "--", *cmd[i + 2 :]]


def start_array(state: Path, certs: BenchCerts, *, profile_out: Path | None = None, env: dict | None = None):
    """Start the real daemon (mTLS) on ``state``; returns the running ``ArrayProcess``."""
    from snaplab.array.process import ArrayProcess

    if profile_out is None:
        proc = ArrayProcess(state, certs=certs.folder, name="Bench_Array", log_level="WARNING", env=env)
    else:
        cls = type("ProfiledArrayProcess", (_ProfiledArrayProcess, ArrayProcess), {})
        proc = cls(state, certs=certs.folder, name="Bench_Array", log_level="WARNING", env=env)
        proc.profile_out = profile_out
    return proc.start()


def rss_of(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak), RssAnon, RssFile of a process, in bytes (from /proc/<pid>/status)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmSize", "Threads"):
                parts = rest.split()
                out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


# ==================================================================== the Echo reference server
def _echo_servicer():
    from snaplab.v1 import echo_pb2, echo_pb2_grpc

    class EchoServicer(echo_pb2_grpc.EchoServicer):
        """Moves bytes and nothing else. ``Stream`` called with the metadata ``x-echo-keep: 1`` keeps
        the payloads (otherwise it drops them, as the daemon drops a chunk once written), and
        ``Download`` returns the kept ones (the same bytes, the same chunks) when ``size`` matches."""

        def __init__(self) -> None:
            self.last: list[bytes] = []
            self.fill = os.urandom(4 << 20)

        def Ping(self, request, context):
            return echo_pb2.EchoReply(payload=request.payload, size=len(request.payload))

        def Stream(self, request_iterator, context):
            if (KEEP_KEY, "1") in tuple(context.invocation_metadata()):
                self.last = [c.payload for c in request_iterator]
                return echo_pb2.EchoReply(size=sum(len(c) for c in self.last))
            return echo_pb2.EchoReply(size=sum(len(c.payload) for c in request_iterator))

        def Download(self, request, context) -> Iterator:
            if sum(len(c) for c in self.last) == request.size:
                for c in self.last:
                    yield echo_pb2.EchoChunk(payload=c)
                return
            sent, step = 0, min(request.chunk_size or (1 << 20), len(self.fill))
            while sent < request.size:
                n = min(step, request.size - sent)
                yield echo_pb2.EchoChunk(payload=self.fill[:n])
                sent += n

    return EchoServicer(), echo_pb2_grpc.add_EchoServicer_to_server


def echo_main(argv: list[str]) -> int:
    from snaplab.common.rpc import ServerTLS, start_server

    p = argparse.ArgumentParser(prog="grpc_common.py echo")
    p.add_argument("--certs", required=True)
    p.add_argument("--cert-name", default="echo")
    p.add_argument("--ready-file", required=True)
    p.add_argument("--workers", type=int, default=32)
    args = p.parse_args(argv)
    servicer, add = _echo_servicer()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = start_server(lambda s: add(servicer, s), tls=ServerTLS.from_folder(args.certs, args.cert_name),
                          service_names=[ECHO_NAME], max_workers=args.workers)
    tmp = Path(args.ready_file + ".tmp")
    tmp.write_text(json.dumps({"port": server.port, "pid": os.getpid()}))
    os.replace(tmp, args.ready_file)
    while not stop.wait(0.5):
        pass
    server.stop(1.0)
    return 0


class EchoProcess:
    """The Echo server in its own process: ``with EchoProcess(folder, certs) as echo: echo.stub(...)``."""

    def __init__(self, folder: Path, certs: BenchCerts) -> None:
        self.folder, self.certs = folder, certs
        self.ready = folder / "echo.ready.json"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ready.unlink(missing_ok=True)
        with open(self.folder / "echo.log", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(HERE), "echo", "--certs", str(self.certs.folder),
                                          "--ready-file", str(self.ready)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"echo server exited {self.proc.returncode}: "
                                   f"{(self.folder / 'echo.log').read_text()[-2000:]}")
            try:
                info = json.loads(self.ready.read_text())
                if info["pid"] == self.proc.pid:
                    self.port = info["port"]
                    return self
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("echo server not ready")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def channel(self, principal: str):
        from snaplab.common.rpc import make_channel

        return make_channel(f"127.0.0.1:{self.port}", self.certs.tls(principal))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ==================================================================== the profiled daemon
def profiled_array_main(argv: list[str]) -> int:
    """Run ``snaplab.array.daemon.main(argv)`` with a cProfile in every thread it starts; on exit write
    the top functions (cumulative and own time) of all those threads merged to --out (idle waits of the
    gRPC pool and the restore worker show up as ``acquire``/``get``/``wait``: skip them)."""
    p = argparse.ArgumentParser(prog="grpc_common.py profiled-array")
    p.add_argument("--out", required=True)
    p.add_argument("--top", type=int, default=30)
    args, rest = p.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    profs: dict[str, cProfile.Profile] = {}
    lock = threading.Lock()

    def hook(frame, event, arg):  # first event in a new thread: give it its own profiler
        prof = cProfile.Profile()
        with lock:
            profs[f"{threading.current_thread().name}#{threading.get_ident()}"] = prof
        prof.enable()

    threading.setprofile(hook)
    from snaplab.array import daemon

    main_prof = profs["main"] = cProfile.Profile()  # the main thread runs the event loop
    main_prof.enable()
    try:
        return daemon.main(rest)
    finally:
        main_prof.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        s = io.StringIO()
        merged = None
        for prof in profs.values():
            try:
                st = pstats.Stats(prof, stream=s)
            except TypeError:  # a thread that never recorded anything
                continue
            merged = st if merged is None else merged.add(prof)
        if merged is not None:
            for key in ("cumulative", "tottime"):
                s.write(f"--- daemon, all threads merged (sorted by {key})\n")
                merged.strip_dirs().sort_stats(key).print_stats(args.top)
        Path(args.out).write_text(s.getvalue())


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "echo":
        sys.exit(echo_main(sys.argv[2:]))
    if cmd == "profiled-array":
        sys.exit(profiled_array_main(sys.argv[2:]))
    print("usage: grpc_common.py echo|profiled-array ...", file=sys.stderr)
    sys.exit(2)
