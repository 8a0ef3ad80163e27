"""What every daemon's ``main`` does: one-line argument errors, logging, the state lock, the ready file, signals.

A daemon module gives its parser (:class:`ArgumentParser`), a ``parse_args(argv) -> config`` whose
config has a ``log_level``, and ``serve(config, stop)``; :func:`run` (thread daemons) or
:func:`run_aio` (``grpc.aio`` daemons) does the rest. :class:`UsageError` anywhere before or
during the start is printed as ``PROG: error: ...`` on stderr and becomes the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

LOCK_FILE = "daemon.lock"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class UsageError(Exception):
    """Bad command-line input or a failed start: one line on stderr, exit status ``status`` (2 by default)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing its usage block and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Config(Protocol):
    log_level: int


C = TypeVar("C", bound=_Config)


# -- checks of common options ------------------------------------------------------------------


def host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) of option ``what``, port 0-65535."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{what} must be HOST:PORT with a port 0-65535, not {text!r}")
    return host, int(port)


def log_level(text: str) -> int:
    level = logging.getLevelName(text.upper())
    if not isinstance(level, int):
        raise UsageError(f"--log-level {text!r} is not a logging level")
    return level


def grace(seconds: float) -> float:
    if not seconds >= 0:  # also refuses NaN
        raise UsageError("--grace must not be negative")
    return seconds


def state_folder(text: str) -> Path:
    """``--state``: absolute; it may not exist yet, but must not be a file."""
    state = Path(text).absolute()
    if state.exists() and not state.is_dir():
        raise UsageError(f"--state {text} is not a folder")
    return state


def ready_path(text: str | None) -> Path | None:
    return Path(text).absolute() if text else None


def add_boundary_options(p: argparse.ArgumentParser) -> None:
    """``--metrics-listen`` and ``--chaos-dir``, which every daemon takes (issue 10)."""
    p.add_argument(
        "--metrics-listen",
        default="127.0.0.1:0",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (/metrics) here; the ready file names the port (default 127.0.0.1:0)",
    )
    p.add_argument(
        "--chaos-dir",
        metavar="DIR",
        help="the lab's chaos rules folder (rules.json, written by `snaplab chaos`); none: no rules",
    )


def boundary_options(args: argparse.Namespace) -> tuple[tuple[str, int], Path | None]:
    """(metrics address, chaos folder) of :func:`add_boundary_options`."""
    address = host_port(args.metrics_listen, "--metrics-listen")
    chaos = Path(args.chaos_dir).absolute() if args.chaos_dir else None
    if chaos is not None and chaos.exists() and not chaos.is_dir():
        raise UsageError(f"--chaos-dir {args.chaos_dir} is not a folder")
    return address, chaos


def serve_metrics(metrics: Any, address: tuple[str, int]) -> int:
    """Start ``metrics``' HTTP endpoint; a port in use is a usage error, as for --listen."""
    try:
        return metrics.serve(*address)
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {address[0]}:{address[1]}: {exc.strerror}") from None


# -- the daemon's life -------------------------------------------------------------------------


def lock_state(state: Path, prog: str) -> int:
    """Hold an exclusive lock on the state folder for the daemon's life: two daemons on one folder
    would corrupt it. The lock dies with the process, even on SIGKILL. Returns the lock's fd."""
    fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise UsageError(f"state {state} is in use by another {prog} (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def write_ready_file(path: Path, info: dict) -> None:
    """Write atomically (tmp + rename): a watcher never reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info) + "\n")
    os.replace(tmp, path)


def wait_for_stop(stop: threading.Event) -> None:
    # Short waits, not one long one: the handler that sets ``stop`` runs on this same (main) thread,
    # so the wait keeps coming back to Python.
    while not stop.wait(1.0):
        pass


def stopping(log: logging.Logger, ready_file: Path | None, what: str, grace_seconds: float) -> None:
    """A stop was asked for: say so and withdraw the ready file before draining ``what``."""
    log.info("stopping: draining %s for up to %.1fs", what, grace_seconds)
    if ready_file:
        ready_file.unlink(missing_ok=True)


def _start(parse_args: Callable[[list[str] | None], C], argv: list[str] | None) -> C:
    cfg = parse_args(argv)
    logging.basicConfig(level=cfg.log_level, stream=sys.stderr, format=LOG_FORMAT)
    return cfg


def _refused(prog: str, exc: UsageError) -> int:
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return exc.status


def run(
    prog: str,
    parse_args: Callable[[list[str] | None], C],
    serve: Callable[[C, threading.Event], int],
    argv: list[str] | None = None,
) -> int:
    """``main`` of a daemon that serves on threads: SIGTERM/SIGINT set the event ``serve`` waits on."""
    stop = threading.Event()
    try:
        cfg = _start(parse_args, argv)
        for sig in _STOP_SIGNALS:
            signal.signal(sig, lambda *_: stop.set())
        return serve(cfg, stop)
    except UsageError as exc:
        return _refused(prog, exc)


def run_aio(
    prog: str,
    parse_args: Callable[[list[str] | None], C],
    serve: Callable[[C, asyncio.Event], Awaitable[int]],
    argv: list[str] | None = None,
) -> int:
    """``main`` of a daemon on an event loop: SIGTERM/SIGINT set the ``asyncio.Event`` ``serve`` awaits."""

    async def serve_in_loop(cfg: C) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        return await serve(cfg, stop)

    try:
        return asyncio.run(serve_in_loop(_start(parse_args, argv)))
    except UsageError as exc:
        return _refused(prog, exc)
