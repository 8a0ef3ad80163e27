"""The array daemon (`snaplab-array`): one ArrayEngine served over gRPC with mTLS, health and reflection."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from snaplab.common.rpc import ServerTLS, start_server

from .engine import ArrayEngine
from .servicer import SERVICE_NAME, add_to_server

PROG = "snaplab-array"
DEFAULT_NAME = "SnapLab_Array"
LOCK_FILE = "daemon.lock"
# Worker threads: a Wait holds one for up to its timeout, so keep well more than a lab's hosts.
MAX_WORKERS = 32

log = logging.getLogger("snaplab.array.daemon")


class UsageError(Exception):
    """Bad command-line input: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run one emulated disk array (DynamicSnapVolume) as a gRPC daemon.")
    p.add_argument(
        "--state",
        required=True,
        metavar="DIR",
        help="state folder (created if missing; one daemon at a time)",
    )
    p.add_argument(
        "--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="address to serve (default 127.0.0.1:0)"
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
    tls: ServerTLS | None
    ready_file: Path | None
    name: str | None
    grace: float
    log_level: int


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen must be HOST:PORT with a port 0-65535, not {text!r}")
    return host, int(port)


def parse_args(argv: list[str] | None) -> Config:
    args = _parser().parse_args(argv)
    host, port = _listen(args.listen)
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
    level = logging.getLevelName(args.log_level.upper())
    if not isinstance(level, int):
        raise UsageError(f"--log-level {args.log_level!r} is not a logging level")
    if not args.grace >= 0:
        raise UsageError("--grace must not be negative")
    state = Path(args.state).absolute()
    if state.exists() and not state.is_dir():
        raise UsageError(f"--state {args.state} is not a folder")
    ready = Path(args.ready_file).absolute() if args.ready_file else None
    return Config(state, host, port, tls, ready, args.name, args.grace, level)


def _lock_state(state: Path) -> int:
    """Hold an exclusive lock on the state folder for the daemon's life: two engines on one folder
    would corrupt it. The lock dies with the process, even on SIGKILL."""
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


def serve(cfg: Config, stop: threading.Event) -> int:
    try:
        cfg.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create state folder {cfg.state}: {exc.strerror}") from None
    lock_fd = _lock_state(cfg.state)
    engine = ArrayEngine(cfg.state, name=cfg.name or DEFAULT_NAME)
    try:
        if cfg.name and engine.name != cfg.name:
            log.info("state already names the array %s; --name %s ignored", engine.name, cfg.name)
        servicers = []
        try:
            server = start_server(
                lambda s: servicers.append(add_to_server(engine, s)),
                host=cfg.host,
                port=cfg.port,
                tls=cfg.tls,
                service_names=[SERVICE_NAME],
                max_workers=MAX_WORKERS,
                insecure_test_identities=cfg.tls is None,
            )
        except RuntimeError as exc:  # grpc reports a port in use or a bad address like this
            raise UsageError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}") from None
        try:
            if cfg.ready_file:
                write_ready_file(
                    cfg.ready_file, {"port": server.port, "pid": os.getpid(), "name": engine.name}
                )
            print(
                f"{PROG}: {engine.name} listening on {cfg.host}:{server.port} (state {cfg.state})", flush=True
            )
            log.info("serving %s as %s", SERVICE_NAME, "mTLS" if cfg.tls else "INSECURE (test identities)")
            while not stop.wait(1.0):
                pass
            log.info("stopping: draining requests for up to %.1fs", cfg.grace)
            if cfg.ready_file:
                cfg.ready_file.unlink(missing_ok=True)
        finally:
            for servicer in servicers:
                servicer.shutdown()  # Lookup streams end now rather than holding the drain for its full grace
            server.stop(cfg.grace)  # health NOT_SERVING first, then drain
    finally:
        engine.close()
        os.close(lock_fd)
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    stop = threading.Event()
    try:
        cfg = parse_args(argv)
        logging.basicConfig(
            level=cfg.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        return serve(cfg, stop)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
