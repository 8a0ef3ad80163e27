#!/usr/bin/env python3
"""Helpers of the control-path benchmarks (bench_routing.py, bench_command.py, bench_vollist.py).

* ``percentile``, ``fmt_ms``: latency statistics;
* ``console_script(name)``: a command's console script beside this interpreter (never a pyenv shim:
  a shim is a bash script that would add its own ~0.1 s to every command process);
* ``LabRun``: a lab made with ``snaplab.deploy.lab.Lab`` from a lab file text in a short temporary
  folder (agent sockets must fit 107 bytes), always torn down (``Lab.down``) and removed on exit;
  ``run(host, argv)`` runs a command as an operator would, as a process of its own, and times it;
* ``UnixEcho``: the raw reference of a command process: ``snaplab.v1.Echo`` served insecurely on a Unix
  socket by another process, as an agent serves its commands (``grpc.server`` with a thread pool, no
  TLS, no interceptor); ``ECHO_CLIENT`` is the ``python3 -c`` program that makes one ``Echo.Ping`` on it;
* ``profiled_command(module)``: run a daemon module's ``main`` under a per-thread cProfile (``--profile``
  of the benchmarks): ``python3 bench/control_common.py profiled MODULE --out FILE -- ARGS...``.

Run as a script it is the Unix-socket Echo server (``unix-echo``) or a profiled daemon (``profiled``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import io
import json
import math
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

HERE = Path(__file__).resolve()
now = time.perf_counter


# ==================================================================== statistics
def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of a sample, linear interpolation between order statistics."""
    s = sorted(xs)
    if not s:
        raise ValueError("empty sample")
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] if lo == hi else s[lo] + (s[hi] - s[lo]) * (k - lo)


def fmt_ms(sec: float) -> str:
    return f"{sec * 1e3:.3f} ms"


def lat_summary(xs: Sequence[float]) -> str:
    return (f"p10 {fmt_ms(percentile(xs, 10))}  p50 {fmt_ms(percentile(xs, 50))}  "
            f"p90 {fmt_ms(percentile(xs, 90))}  p99 {fmt_ms(percentile(xs, 99))}  (n={len(xs)})")


# ==================================================================== commands and labs
def console_script(name: str) -> str:
    """The console script of a command beside this interpreter (as agent.process.script), else PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"console script {name} is not installed (pip install -e .)")
    return found


class LabRun:
    """A lab from lab file ``text`` in a fresh short temporary folder; ``with LabRun(text) as lab:``.

    Started with ``snaplab.deploy.lab.Lab.up`` (what ``snaplab lab up FILE --lab DIR`` does); on exit
    (also on errors and Ctrl-C) ``Lab.down`` stops every process and the folder is removed."""

    def __init__(self, text: str, label: str = "lab", *, setup: bool = True, report=None) -> None:
        self.text, self.label, self.setup = text, label, setup
        self.report = report or (lambda _line: None)
        self.folder: Path | None = None
        self.lab = None
        self.runtime: dict = {}
        self.up_seconds = 0.0

    def start(self) -> Self:
        from snaplab.deploy.lab import Lab, LabSpec

        # /tmp, not $TMPDIR: the agent socket path <lab>/run/agent-<host>.sock must stay short.
        base = "/tmp" if os.path.isdir("/tmp") else None
        self.folder = Path(tempfile.mkdtemp(prefix=f"slb-{self.label}-", dir=base))
        lab_file = self.folder.parent / f"{self.folder.name}.toml"
        lab_file.write_text(self.text, encoding="utf-8")
        try:
            spec = LabSpec.load(lab_file)
        finally:
            lab_file.unlink(missing_ok=True)
        self.lab = Lab(self.folder / "lab")
        t0 = now()
        try:
            self.runtime = self.lab.up(spec, setup=self.setup, report=self.report)
        except BaseException:
            self.stop()
            raise
        self.up_seconds = now() - t0
        return self

    def stop(self) -> None:
        try:
            if self.lab is not None:
                self.lab.down()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def lab_dir(self) -> Path:
        assert self.lab is not None
        return self.lab.folder

    def env(self, host: str) -> dict[str, str]:
        return {**os.environ, "SNAPLAB_HOST": host, "SNAPLAB_LAB": str(self.lab_dir)}

    def run(self, host: str, argv: Sequence[str], *, check: bool = True,
            stdin: str | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Run one command as its own process (its console script) on ``host``: (seconds, result).
        The time is spawn to exit as seen from here (what an operator's script waits for)."""
        cmd = [console_script(argv[0]), *argv[1:]]
        env = self.env(host)
        t0 = now()
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, cwd=self.lab_dir,
                              timeout=120, check=False,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        dt = now() - t0
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} on {host} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return dt, proc


# ==================================================================== the Unix-socket Echo reference
ECHO_CLIENT = """\
import sys, grpc
from snaplab.v1 import echo_pb2, echo_pb2_grpc
ch = grpc.insecure_channel("unix:" + sys.argv[1])
r = echo_pb2_grpc.EchoStub(ch).Ping(echo_pb2.EchoRequest(payload=b"x" * int(sys.argv[2])), timeout=30)
ch.close()
sys.exit(0 if r.size == int(sys.argv[2]) else 1)
"""


def unix_echo_main(argv: list[str]) -> int:
    from concurrent import futures

    import grpc

    from snaplab.v1 import echo_pb2, echo_pb2_grpc

    p = argparse.ArgumentParser(prog="control_common.py unix-echo")
    p.add_argument("--socket", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--workers", type=int, default=32)  # as the agent (agent.daemon.MAX_WORKERS)
    args = p.parse_args(argv)

    class Echo(echo_pb2_grpc.EchoServicer):
        def Ping(self, request, context):
            return echo_pb2.EchoReply(payload=request.payload, size=len(request.payload))

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    Path(args.socket).unlink(missing_ok=True)
    if not server.add_insecure_port(f"unix:{args.socket}"):
        print(f"cannot listen on unix:{args.socket}", file=sys.stderr)
        return 1
    server.start()
    tmp = Path(args.ready_file + ".tmp")
    tmp.write_text(json.dumps({"socket": args.socket, "pid": os.getpid()}))
    os.replace(tmp, args.ready_file)
    while not stop.wait(0.5):
        pass
    server.stop(1.0).wait()
    Path(args.socket).unlink(missing_ok=True)
    return 0


class UnixEcho:
    """``with UnixEcho(folder) as echo: echo.socket`` -- the Echo server on ``folder/echo.sock``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.socket = self.folder / "echo.sock"
        self.ready = self.folder / "echo.ready.json"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ready.unlink(missing_ok=True)
        with open(self.folder / "echo.log", "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, str(HERE), "unix-echo", "--socket", str(self.socket),
                                          "--ready-file", str(self.ready)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"echo server exited {self.proc.returncode}: "
                                   f"{(self.folder / 'echo.log').read_text()[-2000:]}")
            try:
                if json.loads(self.ready.read_text())["pid"] == self.proc.pid:
                    return self
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("echo server not ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ==================================================================== profiled daemons
def profiled_command(module: str, out: Path, *, cpu: bool = False) -> list[str]:
    """The argv prefix that runs ``module``'s ``main(argv)`` profiled (append ``--`` and its args);
    ``cpu``: per-thread CPU time rather than wall time."""
    return [sys.executable, str(HERE), "profiled", module, "--out", str(out), *(["--cpu"] if cpu else [])]


def profiled_main(argv: list[str]) -> int:
    """Run ``MODULE.main(ARGS)`` with a cProfile in every thread; on exit write the top functions of all
    threads merged (cumulative and own time; idle waits show as ``wait``/``acquire``) to --out."""
    p = argparse.ArgumentParser(prog="control_common.py profiled")
    p.add_argument("module")
    p.add_argument("--out", required=True)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--cpu", action="store_true",
                   help="measure each thread's CPU time (time.thread_time), not wall time: idle waits vanish")
    args, rest = p.parse_known_args(argv)
    timer = time.thread_time if args.cpu else None
    if rest and rest[0] == "--":
        rest = rest[1:]
    profs: dict[str, cProfile.Profile] = {}
    lock = threading.Lock()

    def hook(frame, event, arg):  # first event in a new thread: give it its own profiler
        prof = cProfile.Profile(timer) if timer else cProfile.Profile()
        with lock:
            profs[f"{threading.current_thread().name}#{threading.get_ident()}"] = prof
        prof.enable()

    mod = importlib.import_module(args.module)
    threading.setprofile(hook)
    main_prof = profs["main"] = cProfile.Profile(timer) if timer else cProfile.Profile()  # the event loop
    main_prof.enable()
    try:
        return mod.main(rest)
    finally:
        main_prof.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        for prof in list(profs.values()):
            with contextlib.suppress(ValueError, RuntimeError):  # another thread's, or never enabled
                prof.disable()
        s = io.StringIO()
        merged = None
        for prof in profs.values():
            try:
                merged = pstats.Stats(prof, stream=s) if merged is None else merged.add(prof)
            except TypeError:  # a thread that recorded nothing
                continue
        if merged is not None:
            for key in ("cumulative", "tottime"):
                s.write(f"--- {args.module}: all threads merged, {'CPU' if args.cpu else 'wall'} time "
                        f"(sorted by {key})\n")
                merged.strip_dirs().sort_stats(key).print_stats(args.top)
        Path(args.out).write_text(s.getvalue())


def print_profile(path: Path, title: str) -> None:
    """Print a profile written by ``profiled_main`` (without pstats' preambles)."""
    try:
        text = path.read_text()
    except OSError as exc:
        print(f"--- profile: {title}: not written ({exc.strerror})")
        return
    out = []
    for line in text.splitlines():
        if line.strip().endswith("function calls (") or "primitive calls" in line or line.startswith("Ordered by"):
            continue
        out.append(line)
    print(f"--- profile: {title}")
    print("\n".join(out).rstrip() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "unix-echo":
        sys.exit(unix_echo_main(sys.argv[2:]))
    if cmd == "profiled":
        sys.exit(profiled_main(sys.argv[2:]))
    print("usage: control_common.py unix-echo|profiled ...", file=sys.stderr)
    sys.exit(2)
