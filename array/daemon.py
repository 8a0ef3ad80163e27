"""The array daemon (`snaplab-array`): one ArrayEngine served over gRPC (``grpc.aio``) with mTLS, health and reflection."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from snaplab.common import daemon_runner, memory
from snaplab.common.chaos import ChaosEngine
from snaplab.common.daemon_runner import ArgumentParser, UsageError
from snaplab.common.metrics import DaemonMetrics
from snaplab.common.rpc import CallLimits, ServerTLS, start_aio_server
from snaplab.common.rpc_tls import ssl_context

from . import metrics as array_metrics

from .engine import ArrayEngine
from .lookup_socket import LookupSocket
from .restore import MAX_RESTORE_RATE
from .servicer import SERVICE_NAME, WAIT_METHOD, ArrayServicer, add_to_server
from .storage import STORAGE_ERRORS, storage_refusal

PROG = "snaplab-array"
DEFAULT_NAME = "SnapLab_Array"
# What each caller may have in progress (snaplab/common/rpc_guard.py); the README lists the figures.
LIMITS = CallLimits(wait_methods=frozenset({WAIT_METHOD}))

ARENAS = 2  # malloc arenas (memory.limit_arenas): the peak RSS bounded under concurrent 1 MiB writes

log = logging.getLogger("snaplab.array.daemon")


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG, description="Run one emulated disk array (DynamicSnapVolume) as a gRPC daemon."
    )
    p.add_argument(
        "--state",
        required=True,
        metavar="DIR",
        help="state folder (created if missing; one daemon at a time)",
    )
    p.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="address to serve (default 127.0.0.1:0)"
    )
    p.add_argument(
        "--also-listen", action="append", default=[], metavar="HOST",
        help="another address served on the same port (repeatable: the SAN ports of a netns lab)",
    )
    p.add_argument("--certs", metavar="DIR", help="folder with ca.crt and NAME.crt/NAME.key: serve mTLS")
    p.add_argument(
        "--cert-name", default="array", metavar="NAME", help="certificate name in --certs (default array)"
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="no TLS; callers name themselves in the x-snaplab-test-identity header (tests only)",
    )
    p.add_argument("--ready-file", metavar="FILE", help='written once listening: {"port", "pid", "name"}')
    p.add_argument(
        "--name", metavar="ARRAY_NAME", help=f"name of a new array (default {DEFAULT_NAME}); kept on restart"
    )
    p.add_argument(
        "--product-id", metavar="MODEL", help="the model iSMview shows (default D1-10); kept on restart"
    )
    p.add_argument(
        "--restore-rate",
        type=float,
        default=0.0,
        metavar="MIB_PER_S",
        help="how fast a restore copies, in MiB/s (default 0: as fast as it can)",
    )
    p.add_argument(
        "--grace", type=float, default=5.0, metavar="SECONDS", help="drain time on SIGTERM (default 5)"
    )
    p.add_argument(
        "--log-level", default="INFO", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
    )
    p.add_argument(
        "--stream-idle-timeout",
        type=float,
        default=LIMITS.idle_timeout,
        metavar="SECONDS",
        help=f"end a host's stream idle this long (default {LIMITS.idle_timeout:g})",
    )
    p.add_argument(
        "--host-calls",
        type=int,
        default=LIMITS.hosts_total,
        metavar="N",
        help=f"calls of all servers together in progress at most (default {LIMITS.hosts_total}; "
        "the admin and the manager are always served)",
    )
    daemon_runner.add_config_option(p)
    daemon_runner.add_boundary_options(p)
    return p


@dataclass
class Config:
    state: Path
    host: str
    port: int
    tls: ServerTLS | None
    ready_file: Path | None
    name: str | None
    grace: float
    log_level: int
    limits: CallLimits = LIMITS
    product_id: str = ""
    also_hosts: tuple[str, ...] = ()
    metrics_address: tuple[str, int] = ("127.0.0.1", 0)
    chaos_dir: Path | None = None
    restore_rate: float = 0.0


def parse_args(argv: list[str] | None) -> Config:
    args = daemon_runner.parse_with_config(_parser(), argv)
    host, port = daemon_runner.host_port(args.listen, "--listen")
    if args.certs and args.insecure:
        raise UsageError("give --certs or --insecure, not both")
    if not args.certs and not args.insecure:
        raise UsageError("--certs DIR is required (or --insecure, for tests only)")
    tls = None
    if args.certs:
        try:
            tls = ServerTLS.from_folder(args.certs, args.cert_name)
        except OSError as exc:
            raise UsageError(f"cannot read certificates: {exc.strerror}: {exc.filename}") from None
    if args.name is not None and not 1 <= len(args.name) <= 32:
        raise UsageError("--name must be 1-32 characters")
    if args.product_id is not None and (not 1 <= len(args.product_id) <= 32 or not args.product_id.isprintable()
                                        or " " in args.product_id or ":" in args.product_id):
        raise UsageError("--product-id must be 1-32 printable characters without blanks or ':'")
    if not 0 < args.stream_idle_timeout < float("inf"):
        raise UsageError("--stream-idle-timeout must be a positive number of seconds")
    if not 1 <= args.host_calls <= 1_000_000:
        raise UsageError("--host-calls must be a number from 1 to 1000000")
    if not 0 <= args.restore_rate <= MAX_RESTORE_RATE:
        raise UsageError(f"--restore-rate must be a number of MiB/s from 0 to {MAX_RESTORE_RATE}")
    level = daemon_runner.log_level(args.log_level)
    grace = daemon_runner.grace(args.grace)
    state = daemon_runner.state_folder(args.state)
    ready = daemon_runner.ready_path(args.ready_file)
    limits = replace(LIMITS, idle_timeout=args.stream_idle_timeout, hosts_total=args.host_calls)
    metrics_address, chaos_dir = daemon_runner.boundary_options(args)
    also = tuple(args.also_listen)
    if any(not h or ":" in h for h in also):
        raise UsageError("--also-listen takes an IPv4 address or a name, without a port")
    return Config(state, host, port, tls, ready, args.name, grace, level, limits, args.product_id or "", also,
                  metrics_address, chaos_dir, args.restore_rate)


async def serve(cfg: Config, stop: asyncio.Event) -> int:
    """Serve until ``stop`` is set, then drain for ``cfg.grace`` seconds (runs in the daemon's loop)."""
    try:
        cfg.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create state folder {cfg.state}: {exc.strerror}") from None
    # A file-size limit (RLIMIT_FSIZE) must fail the write (EFBIG: storage full), not kill the daemon.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    lock_fd = -1
    try:
        lock_fd = daemon_runner.lock_state(cfg.state, PROG)
        engine = ArrayEngine(cfg.state, name=cfg.name or DEFAULT_NAME, product_id=cfg.product_id,
                             restore_rate=cfg.restore_rate)
    except STORAGE_ERRORS as exc:  # the state cannot even be opened: say why, as a refusal does
        if lock_fd >= 0:
            os.close(lock_fd)
        raise UsageError(f"cannot open the state in {cfg.state}: {storage_refusal(exc)}") from None
    try:
        if cfg.name and engine.name != cfg.name:
            log.info("state already names the array %s; --name %s ignored", engine.name, cfg.name)
        servicers = []
        metrics = DaemonMetrics("array")
        array_metrics.register(metrics, engine)
        # The chaos target is the array's name in the lab (`snaplab chaos add --target array:NAME`).
        chaos = ChaosEngine(cfg.chaos_dir, f"array:{engine.name}", metrics.chaos) if cfg.chaos_dir else None
        try:
            server = await start_aio_server(
                lambda s: servicers.append(add_to_server(engine, s)),
                host=cfg.host,
                port=cfg.port,
                tls=cfg.tls,
                service_names=[SERVICE_NAME],
                insecure_test_identities=cfg.tls is None,
                limits=cfg.limits,
                metrics=metrics,
                chaos=chaos,
                also_hosts=cfg.also_hosts,
            )
        except RuntimeError as exc:  # grpc reports a port in use or a bad address like this
            raise UsageError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        for servicer in servicers:
            servicer.chaos = chaos
        lookups = await _start_lookup_socket(cfg, servicers[0], metrics)
        try:
            metrics_port = daemon_runner.serve_metrics(metrics, cfg.metrics_address)
            daemon_runner.ready(
                cfg.ready_file,
                {"port": server.port, "pid": os.getpid(), "name": engine.name, "metrics_port": metrics_port},
            )
            print(
                f"{PROG}: {engine.name} listening on {cfg.host}:{server.port} (state {cfg.state})", flush=True
            )
            log.info("serving %s as %s", SERVICE_NAME, "mTLS" if cfg.tls else "INSECURE (test identities)")
            await stop.wait()
            daemon_runner.stopping(log, cfg.ready_file, "requests", cfg.grace)
        finally:
            if lookups is not None:
                lookups.shutdown()
            for servicer in servicers:
                servicer.shutdown()  # Lookup streams end now rather than holding the drain for its full grace
            await server.stop(cfg.grace)  # health NOT_SERVING first, then drain
            for servicer in servicers:
                servicer.close()
            # no metrics.stop(): its shutdown waits out a 0.5 s poll; the process ends the thread
    finally:
        engine.close()
        os.close(lock_fd)
    log.info("stopped")
    return 0


async def _start_lookup_socket(cfg: Config, servicer: ArrayServicer, metrics: DaemonMetrics) -> LookupSocket | None:
    """The look-up socket (lookup_socket.py) on the addresses gRPC serves, on a free port; an
    insecure array has none (its callers name themselves in a header only gRPC carries). A socket
    that cannot listen is logged: routing's look-ups then stay on gRPC."""
    if cfg.tls is None:
        return None
    sock = LookupSocket(servicer, ssl_context(cfg.tls, server=True), cfg.limits, metrics)
    try:
        servicer.lookup_port = await sock.start([cfg.host, *cfg.also_hosts])
    except OSError as exc:
        log.warning("no look-up socket on %s: %s (routing's look-ups stay on gRPC)", cfg.host, exc.strerror)
        return None
    return sock


def main(argv: list[str] | None = None) -> int:
    # No memory.reuse_large_buffers() here: at 64 GiB (bench_scale) the heap it keeps raised the
    # array's RSS from 158.7 to 174.8 MB and its peak from 195.9 to 213.1 MB, over the 200 MB target.
    memory.limit_arenas(ARENAS)
    return daemon_runner.run_aio(PROG, parse_args, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
