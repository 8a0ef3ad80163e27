"""The management server daemon (`snaplab-manager`): ManagerServicer over gRPC with mTLS, health and reflection.

It serves on ``grpc.aio`` (one event loop: no thread pool, no hand-offs between threads per call).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from snaplab.common import daemon_runner
from snaplab.common.chaos import ChaosEngine
from snaplab.common.daemon_runner import ArgumentParser, UsageError
from snaplab.common.metrics import DaemonMetrics
from snaplab.common.rpc import ClientTLS, ServerTLS, start_aio_server

from . import metrics as manager_metrics
from .arrays import ArrayLink, ArrayRegistry
from .chaos_events import ChaosReporter
from .messages import M
from .observe import Observer
from .servicer import SERVICE_NAME, ManagerServicer, add_to_server
from .state import ManagerState
from .web.server import ConsoleConfig, ConsoleServer

PROG = "snaplab-manager"
_ARRAY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")

log = logging.getLogger("snaplab.manager.daemon")


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG, description="Run the management server (iStorageManager) of a SnapLab lab."
    )
    p.add_argument(
        "--state", required=True, metavar="DIR", help="state folder (manager.db; one daemon at a time)"
    )
    p.add_argument("--certs", required=True, metavar="PKI", help="folder with ca.crt and NAME.crt/NAME.key")
    p.add_argument(
        "--cert-name", default="manager", metavar="NAME", help="certificate name in --certs (default manager)"
    )
    p.add_argument(
        "--array",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="a managed array daemon (repeatable, at least one)",
    )
    p.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="address to serve (default 127.0.0.1:0)"
    )
    p.add_argument(
        "--console",
        metavar="HOST:PORT",
        help="serve the web console (HTTPS, the --cert-name certificate) here, e.g. 127.0.0.1:0 (default: none)",
    )
    p.add_argument(
        "--console-admin",
        default="admin",
        metavar="NAME",
        help="certificate in --certs the console calls the manager with (default admin)",
    )
    p.add_argument(
        "--ready-file", metavar="FILE", help='written once listening: {"port", "pid"[, "console_port"]}'
    )
    p.add_argument(
        "--grace", type=float, default=5.0, metavar="SECONDS", help="drain time on SIGTERM (default 5)"
    )
    p.add_argument(
        "--log-level", default="INFO", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
    )
    daemon_runner.add_config_option(p)
    daemon_runner.add_boundary_options(p)
    return p


@dataclass
class Config:
    state: Path
    host: str
    port: int
    tls: ServerTLS
    client_tls: ClientTLS
    arrays: list[tuple[str, str]]
    ready_file: Path | None
    grace: float
    log_level: int
    metrics_address: tuple[str, int] = ("127.0.0.1", 0)
    chaos_dir: Path | None = None
    console: ConsoleConfig | None = None
    console_tls: ClientTLS | None = None


def parse_args(argv: list[str] | None) -> Config:
    args = daemon_runner.parse_with_config(_parser(), argv)
    host, port = daemon_runner.host_port(args.listen, "--listen")
    try:
        tls = ServerTLS.from_folder(args.certs, args.cert_name)
        client_tls = ClientTLS.from_folder(args.certs, args.cert_name)
    except OSError as exc:
        raise UsageError(f"cannot read certificates: {exc.strerror}: {exc.filename}") from None
    if not args.array:
        raise UsageError("give at least one --array NAME=HOST:PORT")
    arrays: list[tuple[str, str]] = []
    for item in args.array:
        name, sep, target = item.partition("=")
        if not sep or not _ARRAY_KEY.fullmatch(name):
            raise UsageError(
                f"--array must be NAME=HOST:PORT with a plain name of 1-32 characters, not {item!r}"
            )
        _, a_port = daemon_runner.host_port(target, f"--array {name}")
        if a_port == 0:
            raise UsageError(f"--array {name}: port 0 is not an array's port")
        if any(n == name for n, _ in arrays):
            raise UsageError(f"--array {name} given twice")
        arrays.append((name, target))
    level = daemon_runner.log_level(args.log_level)
    grace = daemon_runner.grace(args.grace)
    state = daemon_runner.state_folder(args.state)
    ready = daemon_runner.ready_path(args.ready_file)
    console = console_tls = None
    if args.console:
        c_host, c_port = daemon_runner.host_port(args.console, "--console")
        certs = Path(args.certs)
        console = ConsoleConfig(c_host, c_port, certs / f"{args.cert_name}.crt", certs / f"{args.cert_name}.key",
                                certs / "ca.crt")
        try:
            console_tls = ClientTLS.from_folder(args.certs, args.console_admin)
        except OSError as exc:
            raise UsageError(f"cannot read the console's certificate: {exc.strerror}: {exc.filename}") from None
    metrics_address, chaos_dir = daemon_runner.boundary_options(args)
    return Config(state, host, port, tls, client_tls, arrays, ready, grace, level, metrics_address, chaos_dir,
                  console, console_tls)


async def serve(cfg: Config, stop: asyncio.Event) -> int:
    """Serve until ``stop`` is set, then drain for ``cfg.grace`` seconds (runs in the daemon's loop)."""
    try:
        cfg.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create state folder {cfg.state}: {exc.strerror}") from None
    lock_fd = daemon_runner.lock_state(cfg.state, PROG)
    state = ManagerState(cfg.state)
    observer = Observer(state)
    registry = ArrayRegistry(
        [
            ArrayLink(name, target, cfg.client_tls, on_reachability=observer.reachability)
            for name, target in cfg.arrays
        ]
    )
    servicer = ManagerServicer(state, registry, observer)
    metrics = DaemonMetrics("manager")
    manager_metrics.register(metrics, servicer)
    chaos = ChaosEngine(cfg.chaos_dir, "manager", metrics.chaos) if cfg.chaos_dir else None
    reporter = asyncio.ensure_future(ChaosReporter(cfg.chaos_dir, state, cfg.state).run()) if cfg.chaos_dir else None
    try:
        try:
            server = await start_aio_server(
                lambda s: add_to_server(servicer, s),
                host=cfg.host,
                port=cfg.port,
                tls=cfg.tls,
                service_names=[SERVICE_NAME],
                metrics=metrics,
                chaos=chaos,
                describe=manager_metrics.describe,
            )
        except RuntimeError as exc:
            raise UsageError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        console: ConsoleServer | None = None
        try:
            arrays = ", ".join(f"{n}={t}" for n, t in cfg.arrays)
            state.log_event(
                "manager", "INFO", "start", M.STARTED.msg_id, M.STARTED.text.format(detail=arrays)
            )
            metrics_port = daemon_runner.serve_metrics(metrics, cfg.metrics_address)
            ready = {"port": server.port, "pid": os.getpid(), "metrics_port": metrics_port}
            if cfg.console is not None:
                console = await _start_console(cfg, state, server.port)
                ready["console_port"] = console.port
            daemon_runner.ready(cfg.ready_file, ready)
            print(
                f"{PROG}: listening on {cfg.host}:{server.port} (state {cfg.state}; arrays {arrays})",
                flush=True,
            )
            await stop.wait()
            daemon_runner.stopping(log, cfg.ready_file, "requests", cfg.grace)
        finally:
            servicer.shutdown()
            if console is not None:
                await _stop_console(console)  # Watch streams end now rather than holding the drain for its full grace
            await server.stop(cfg.grace)
        state.log_event("manager", "INFO", "stop", M.STOPPED.msg_id, M.STOPPED.text)
    finally:
        if reporter is not None:
            reporter.cancel()
        # no metrics.stop(): its shutdown waits out a 0.5 s poll; the process ends the thread
        await registry.close()
        state.close()
        os.close(lock_fd)
    log.info("stopped")
    return 0


async def _start_console(cfg: Config, state: ManagerState, grpc_port: int) -> ConsoleServer:
    """The web console in this loop, calling this manager's gRPC port as the admin (manager/web/)."""
    from .web.api import ManagerApi
    from .web.auth import ConsoleAuth, load_or_make_token
    from .web.server import Console

    assert cfg.console is not None and cfg.console_tls is not None
    own = "127.0.0.1" if cfg.host in ("", "0.0.0.0", "::") else cfg.host
    api = ManagerApi(f"[{own}]:{grpc_port}" if ":" in own else f"{own}:{grpc_port}", cfg.console_tls)
    console = ConsoleServer(cfg.console, Console(api, ConsoleAuth(load_or_make_token(cfg.state)),
                                                   lambda: state.last_seq))
    try:
        port = await console.start()
    except OSError as exc:
        await api.close()
        raise UsageError(f"cannot serve the console on {cfg.console.host}:{cfg.console.port}: {exc.strerror}") from None
    where = f"https://{cfg.console.host}:{port}/"
    state.log_event("manager", "INFO", "start", M.CONSOLE_STARTED.msg_id, M.CONSOLE_STARTED.text.format(detail=where))
    return console


async def _stop_console(console: ConsoleServer) -> None:
    try:
        await console.stop()
    except Exception:  # the manager's own drain must still run
        log.exception("cannot stop the console")
    await console.console.api.close()


def main(argv: list[str] | None = None) -> int:
    return daemon_runner.run_aio(PROG, parse_args, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
