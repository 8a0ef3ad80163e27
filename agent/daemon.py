"""The host agent daemon (``snaplab-agent``): one host's SnapControl, served to its commands on a Unix socket.

At start it enrols with the manager (retrying until the manager answers, up to ``--enrol-timeout``),
does what a server start does to the disk model (:meth:`Host.boot`), then serves ``Agent.Run``
(one command at a time per host) and ``Agent.Status`` (never waits for a command) on
``--socket`` (mode 0600, local IPC, no TLS) and writes the ready file ``{"socket", "pid", "host"}``.
SIGTERM or SIGINT drains running commands, removes the socket and the ready file, flushes every
mounted file system (one it cannot flush is kept for the next start: agent/fs/kept.py), exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from snaplab.agent import boundary
from snaplab.agent.checkpoint_calls import CheckpointCallsMixin
from snaplab.agent.cluster import service as cluster_service
from snaplab.agent.commands import base
from snaplab.agent.fs.lazywriter import LazyWriter
from snaplab.agent.host import Host

from snaplab.common import daemon_runner, memory
from snaplab.common.chaos import ChaosEngine
from snaplab.common.daemon_runner import ArgumentParser, UsageError
from snaplab.common.errors import E
from snaplab.common.metrics import DaemonMetrics
from snaplab.common.rpc import SnapLabClientError, ValidationInterceptor
from snaplab.common.rpc_chaos import ChaosInterceptor
from snaplab.common.rpc_metrics import MetricsInterceptor
from snaplab.common.validation import shown
from snaplab.v1 import agent_pb2, agent_pb2_grpc

PROG = "snaplab-agent"
MAX_SOCKET_PATH = 107  # sockaddr_un.sun_path, without its terminating NUL
# Commands queue on the host's lock, each holding a worker: keep plenty so Status always gets one.
MAX_WORKERS = 32
ROLES = ("business", "backup", "test", "standby")

log = logging.getLogger("snaplab.agent.daemon")


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG, description="Run one host's SnapControl agent (the iSM*/disk commands of that host)."
    )
    p.add_argument(
        "--host", required=True, metavar="NAME", help="host name (its certificate NAME.crt in --certs)"
    )
    p.add_argument("--state", required=True, metavar="DIR", help="host state folder (created if missing)")
    p.add_argument(
        "--certs", required=True, metavar="PKI", help="lab PKI folder: ca.crt and NAME.crt/NAME.key"
    )
    p.add_argument("--manager", required=True, metavar="HOST:PORT", help="the manager to enrol with")
    p.add_argument("--socket", required=True, metavar="PATH", help="Unix socket to serve commands on")
    p.add_argument("--ready-file", metavar="FILE", help='written once serving: {"socket", "pid", "host"}')
    p.add_argument("--role", default="business", choices=ROLES, help="server role (default business)")
    p.add_argument("--platform", default="windows", help="OS family (default windows)")
    p.add_argument("--wwn", action="extend", nargs="+", default=[], metavar="W", help="HBA WWN (repeatable)")
    p.add_argument(
        "--port",
        action="extend",
        nargs="+",
        default=[],
        metavar="P",
        help="array port name cabled (repeatable)",
    )
    p.add_argument(
        "--array-target",
        action="append",
        default=[],
        metavar="ARRAY=HOST:PORT",
        help="reach ARRAY's block I/O there, not where the manager says (a netns lab's SAN port; repeatable)",
    )
    p.add_argument("--cluster", default="", metavar="NAME", help="cluster name, if a cluster node")
    p.add_argument("--cluster-role", default="", choices=("", "active", "standby"), help="active or standby")
    p.add_argument(
        "--enrol-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to retry enrolment while the manager does not answer (default 30)",
    )
    p.add_argument(
        "--grace", type=float, default=5.0, metavar="SECONDS", help="drain time on SIGTERM (default 5)"
    )
    p.add_argument("--log-level", default="INFO", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    daemon_runner.add_config_option(p)
    daemon_runner.add_boundary_options(p)
    return p


@dataclass
class Config:
    host: str
    state: Path
    certs: Path
    manager: str
    socket: Path
    ready_file: Path | None
    role: str
    platform: str
    wwns: list[str]
    ports: list[str]
    cluster: str
    cluster_role: str
    enrol_timeout: float
    grace: float
    log_level: int
    array_targets: dict[str, str] = field(default_factory=dict)
    metrics_address: tuple[str, int] = ("127.0.0.1", 0)
    chaos_dir: Path | None = None


def parse_args(argv: list[str] | None) -> Config:
    a = daemon_runner.parse_with_config(_parser(), argv)
    level = daemon_runner.log_level(a.log_level)
    certs = Path(a.certs).absolute()
    for f in ("ca.crt", f"{a.host}.crt", f"{a.host}.key"):
        if not (certs / f).is_file():
            raise UsageError(f"--certs {a.certs} has no {f}")
    if a.cluster_role and not a.cluster:
        raise UsageError("--cluster-role needs --cluster")
    sock = Path(a.socket).absolute()
    if len(str(sock).encode()) > MAX_SOCKET_PATH:
        raise UsageError(f"--socket {sock} is longer than {MAX_SOCKET_PATH} bytes (a Unix socket limit)")
    state = daemon_runner.state_folder(a.state)
    metrics_address, chaos_dir = daemon_runner.boundary_options(a)
    targets = {}
    for item in a.array_target:
        name, sep, target = item.partition("=")
        if not sep or not name or not target:
            raise UsageError(f"--array-target {item!r}: write ARRAY=HOST:PORT")
        targets[name] = target
    return Config(
        a.host,
        state,
        certs,
        a.manager,
        sock,
        daemon_runner.ready_path(a.ready_file),
        a.role,
        a.platform,
        a.wwn,
        a.port,
        a.cluster,
        a.cluster_role,
        a.enrol_timeout,
        a.grace,
        level,
        targets,
        metrics_address,
        chaos_dir,
    )


def load_commands() -> list[str]:
    """Import every module of snaplab.agent.commands (each registers its commands); a module that
    fails to import is logged and skipped, so the others still serve."""
    import snaplab.agent.commands as pkg

    loaded = []
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name == "base":
            continue
        try:
            importlib.import_module(f"{pkg.__name__}.{m.name}")
            loaded.append(m.name)
        except Exception:
            log.exception("command module %s not loaded", m.name)
    return loaded


def caller_cwd(pid: int) -> Path | None:
    """The current folder of the command process (same machine): relative paths are the caller's."""
    if pid <= 0:
        return None
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def run_command(host: Host, argv: list[str], stdin: str = "") -> tuple[str, str, int]:
    """One command as the agent runs it: unknown commands and empty requests are syntax errors (iSM11100)."""
    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1] if argv else ""
    key = name.lower().removesuffix(".exe")
    if key not in base.COMMANDS:
        name = shown(name)  # echoed in the error line and the trace: control characters escaped
        text = E.USAGE.text.format(detail=f"unknown command {name or '(none)'}")
        host.trace(name or "agent", "ERROR", E.USAGE.msg_id, text)
        return "", f"{name or 'agent'}:Error: {E.USAGE.msg_id}: {text}\n", 1
    return base.run(host, argv, stdin)


class AgentServicer(CheckpointCallsMixin, agent_pb2_grpc.AgentServicer):
    """Thin: requests go to :func:`run_command` and :meth:`Host.status`; nothing raised reaches gRPC."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def Run(self, request: agent_pb2.CommandRequest, context: grpc.ServicerContext) -> agent_pb2.CommandReply:
        argv = list(request.argv)
        try:
            with self.host.command(caller_cwd(request.caller_pid)):
                out, err, code = run_command(self.host, argv, request.stdin)
        except Exception as exc:  # the daemon never dies of a request
            log.exception("command %s failed outside the command framework", argv[:1])
            name = argv[0] if argv else "agent"
            text = E.INTERNAL.text.format(detail=type(exc).__name__)
            return agent_pb2.CommandReply(stderr=f"{name}:Error: {E.INTERNAL.msg_id}: {text}\n", exit_code=1)
        return agent_pb2.CommandReply(stdout=out, stderr=err, exit_code=code)

    def Status(
        self, request: agent_pb2.StatusRequest, context: grpc.ServicerContext
    ) -> agent_pb2.StatusReply:
        try:
            reply = agent_pb2.StatusReply(**self.host.status())
            if request.mount_point:
                with self.host.command(None):  # the disks as a command sees them
                    v = self.host.volume_at(request.mount_point)
                    reply.mounted_volume = v.name if v is not None and v.disk.ready else ""
            return reply
        except Exception:
            log.exception("status failed")
            return agent_pb2.StatusReply(
                host=self.host.name, role=self.host.role, enrolled=self.host.enrolled
            )


def enrol(host: Host, timeout: float, stop: threading.Event) -> None:
    """Enrol, retrying while the manager does not answer; a refusal ends the start at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            arrays = host.enrol(timeout=5.0)
            log.info(
                "enrolled with the manager; arrays: %s",
                ", ".join(f"{k}={v}" for k, v in arrays.items()) or "none",
            )
            return
        except SnapLabClientError as exc:
            if exc.code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise UsageError(f"the manager refused enrolment: {exc}", status=1) from None
            if time.monotonic() >= deadline or stop.is_set():
                raise UsageError(
                    f"the manager at {host.manager_target} does not answer: {exc}", status=1
                ) from None
            log.info("manager not answering yet (%s); retrying", exc.code.name)
            stop.wait(0.5)


def serve(cfg: Config, stop: threading.Event) -> int:
    try:
        cfg.state.mkdir(parents=True, exist_ok=True)
        cfg.socket.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {exc.filename}: {exc.strerror}") from None
    lock_fd = daemon_runner.lock_state(cfg.state, PROG)
    host = Host(
        cfg.host,
        cfg.state,
        certs=cfg.certs,
        manager_target=cfg.manager,
        role=cfg.role,
        platform=cfg.platform,
        wwns=cfg.wwns,
        ports=cfg.ports,
        cluster=cfg.cluster,
        cluster_role=cfg.cluster_role,
        array_targets=cfg.array_targets,
    )
    try:
        loaded = load_commands()
        log.info("commands loaded from: %s", ", ".join(loaded))
        enrol(host, cfg.enrol_timeout, stop)
        # A cluster node's heartbeats start at once (enrolment counted as one), before the disk scan
        # of the boot, which a takeover waits for (both hold the host).
        cluster_service.start(host, cfg.state, run_command, stop)
        try:
            with host.command():
                host.boot()
        except Exception:  # a start must not fail because one array is slow: the next command rescans
            log.exception("disk scan at start failed")
        lazy = LazyWriter(host)  # caches reach their volumes behind the programs (agent/fs/lazywriter.py)
        lazy.start()
        metrics = DaemonMetrics("agent")
        boundary.register(metrics, host)
        interceptors: list[grpc.ServerInterceptor] = [
            ValidationInterceptor(),  # argv and stdin within their limits (common.validation)
            MetricsInterceptor(metrics, boundary.describe, boundary.result_of),
        ]
        if cfg.chaos_dir:
            engine = ChaosEngine(cfg.chaos_dir, f"host:{cfg.host}", metrics.chaos)
            answer = lambda method, request, f: boundary.answer(host, method, request, f)  # noqa: E731
            interceptors.append(ChaosInterceptor(engine, boundary.describe, answer))
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="agent"),
            interceptors=interceptors,
        )
        agent_pb2_grpc.add_AgentServicer_to_server(AgentServicer(host), server)
        cfg.socket.unlink(missing_ok=True)  # a stale socket of a killed agent (the state lock says none runs)
        old = os.umask(0o177)  # the socket is born 0600: only this user's commands reach this host
        try:
            bound = server.add_insecure_port(f"unix:{cfg.socket}")
            server.start()
        finally:
            os.umask(old)
        if not bound:
            raise UsageError(f"cannot listen on unix:{cfg.socket}")
        os.chmod(cfg.socket, 0o600)
        try:
            metrics_port = daemon_runner.serve_metrics(metrics, cfg.metrics_address)
            daemon_runner.ready(
                cfg.ready_file,
                {"socket": str(cfg.socket), "pid": os.getpid(), "host": cfg.host, "metrics_port": metrics_port},
            )
            print(f"{PROG}: {cfg.host} serving on unix:{cfg.socket} (state {cfg.state})", flush=True)
            daemon_runner.wait_for_stop(stop)
            daemon_runner.stopping(log, cfg.ready_file, "commands", cfg.grace)
        finally:
            server.stop(cfg.grace).wait()
            # no metrics.stop(): its shutdown waits out a 0.5 s poll; the process ends the thread
            cfg.socket.unlink(missing_ok=True)
            lazy.stop()
            try:  # a server shutdown writes its file-system caches to the volumes, or keeps them
                with host.command():
                    for u in host.flush_all():
                        for line in u.lines():
                            log.warning("%s", line)
            except Exception:
                log.exception("flush at shutdown failed")
    finally:
        host.close()
        os.close(lock_fd)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    memory.reuse_large_buffers()  # MiB-sized I/O buffers reused, not faulted in again (memory.py)
    return daemon_runner.run(PROG, parse_args, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
