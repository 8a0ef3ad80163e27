"""The management server daemon (`snaplab-manager`): ManagerServicer over gRPC with mTLS, health and reflection.

It serves on ``grpc.aio`` (one event loop: no thread pool, no hand-offs between threads per call).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from snaplab.common.rpc import ClientTLS, ServerTLS, start_aio_server

from .arrays import ArrayLink, ArrayRegistry
from .messages import M
from .observe import Observer
from .servicer import SERVICE_NAME, ManagerServicer, add_to_server
from .state import ManagerState

PROG = "snaplab-manager"
LOCK_FILE = "daemon.lock"
_ARRAY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")

log = logging.getLogger("snaplab.manager.daemon")


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run the management server (iStorageManager) of a SnapLab lab.")
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
    p.add_argument("--ready-file", metavar="FILE", help='written once listening: {"port", "pid"}')
    p.add_argument(
        "--grace", type=float, default=5.0, metavar="SECONDS", help="drain time on SIGTERM (default 5)"
    )
    p.add_argument(
        "--log-level", default="INFO", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
    )
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


def _host_port(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{what} must be HOST:PORT with a port 0-65535, not {text!r}")
    return host, int(port)


def parse_args(argv: list[str] | None) -> Config:
    args = _parser().parse_args(argv)
    host, port = _host_port(args.listen, "--listen")
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
        _, a_port = _host_port(target, f"--array {name}")
        if a_port == 0:
            raise UsageError(f"--array {name}: port 0 is not an array's port")
        if any(n == name for n, _ in arrays):
            raise UsageError(f"--array {name} given twice")
        arrays.append((name, target))
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        raise UsageError(f"--log-level {args.log_level!r} is not a logging level")
    if not args.grace >= 0:
        raise UsageError("--grace must not be negative")
    state = Path(args.state).absolute()
    if state.exists() and not state.is_dir():
        raise UsageError(f"--state {args.state} is not a folder")
    ready = Path(args.ready_file).absolute() if args.ready_file else None
    return Config(state, host, port, tls, client_tls, arrays, ready, args.grace, level)


def _lock_state(state: Path) -> int:
    """An exclusive lock on the state folder for the daemon's life (released by the OS even on SIGKILL)."""
    fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UsageError(f"state {state} is in use by another {PROG} (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def write_ready_file(path: Path, info: dict) -> None:
    """Write atomically (tmp + rename): a watcher never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info) + "\n")
    os.replace(tmp, path)


async def serve(cfg: Config, stop: asyncio.Event) -> int:
    """Serve until ``stop`` is set, then drain for ``cfg.grace`` seconds (runs in the daemon's loop)."""
    try:
        cfg.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create state folder {cfg.state}: {exc.strerror}") from None
    lock_fd = _lock_state(cfg.state)
    state = ManagerState(cfg.state)
    observer = Observer(state)
    registry = ArrayRegistry(
        [
            ArrayLink(name, target, cfg.client_tls, on_reachability=observer.reachability)
            for name, target in cfg.arrays
        ]
    )
    servicer = ManagerServicer(state, registry, observer)
    try:
        try:
            server = await start_aio_server(
                lambda s: add_to_server(servicer, s),
                host=cfg.host,
                port=cfg.port,
                tls=cfg.tls,
                service_names=[SERVICE_NAME],
            )
        except RuntimeError as exc:
            raise UsageError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        try:
            arrays = ", ".join(f"{n}={t}" for n, t in cfg.arrays)
            state.log_event(
                "manager", "INFO", "start", M.STARTED.msg_id, M.STARTED.text.format(detail=arrays)
            )
            if cfg.ready_file:
                write_ready_file(cfg.ready_file, {"port": server.port, "pid": os.getpid()})
            print(
                f"{PROG}: listening on {cfg.host}:{server.port} (state {cfg.state}; arrays {arrays})",
                flush=True,
            )
            await stop.wait()
            log.info("stopping: draining requests for up to %.1fs", cfg.grace)
            if cfg.ready_file:
                cfg.ready_file.unlink(missing_ok=True)
        finally:
            servicer.shutdown()  # Watch streams end now rather than holding the drain for its full grace
            await server.stop(cfg.grace)
        state.log_event("manager", "INFO", "stop", M.STOPPED.msg_id, M.STOPPED.text)
    finally:
        await registry.close()
        state.close()
        os.close(lock_fd)
    log.info("stopped")
    return 0


async def _run(cfg: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await serve(cfg, stop)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        logging.basicConfig(
            level=cfg.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return asyncio.run(_run(cfg))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
