"""What every daemon's ``main`` does: one-line argument errors, logging, the state lock, the ready file, signals.

Every daemon also reads its options from a TOML file (``--config FILE``, :func:`parse_with_config`):
the keys are the long option names without ``--`` (``cert-name = "array"``), the flags of the command
line win over the file's. A daemon started by systemd (``NOTIFY_SOCKET`` set) says ``READY=1`` once it
serves and ``STOPPING=1`` when asked to stop (:func:`notify`, the sd_notify datagram; no library).

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
import socket
import sys
import threading
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

LOCK_FILE = "daemon.lock"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The event loop of the grpc.aio daemons: uvloop when installed (its loop is C, where asyncio's
# ``_run_once``/``call_soon`` are Python: bench_routing's profile had ~20% of the manager's CPU per
# routed op there), else asyncio's own; ``SNAPLAB_EVENT_LOOP=asyncio`` picks asyncio's (A/B runs).
EVENT_LOOP_ENV = "SNAPLAB_EVENT_LOOP"


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory ``run_aio`` uses (None: asyncio's default loop)."""
    if os.environ.get(EVENT_LOOP_ENV, "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


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


# -- the config file ---------------------------------------------------------------------------


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file of options: keys are the long options without '--' (flags given win over it)",
    )


def parse_with_config(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``p.parse_args`` with ``--config FILE``'s settings put before the command line's flags, so a
    flag given wins; a repeatable option given on the command line replaces the file's list."""
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config is None:
        return p.parse_args(argv)
    return p.parse_args([*config_argv(p, Path(known.config), argv), *argv])


def config_argv(p: argparse.ArgumentParser, path: Path, argv: list[str]) -> list[str]:
    """The flags a config file stands for; :class:`UsageError` naming the file and key if it is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path}: not valid TOML: {exc}") from None
    actions = {
        opt[2:]: a
        for a in p._actions  # argparse has no public list of its options
        for opt in a.option_strings
        if opt.startswith("--") and opt not in ("--help", "--config")
    }
    tokens: list[str] = []
    for key, value in raw.items():
        action = actions.get(key.replace("_", "-"))
        if action is None:
            raise UsageError(f"--config {path}: unknown key {key!r} (known: {', '.join(sorted(actions))})")
        tokens += _config_tokens(path, key, value, action, argv)
    return tokens


def _config_tokens(
    path: Path, key: str, value: object, action: argparse.Action, argv: list[str]
) -> list[str]:
    flag = action.option_strings[-1]
    bad = f"--config {path}: key {key!r}"
    if action.nargs == 0:  # a switch (--insecure)
        if not isinstance(value, bool):
            raise UsageError(f"{bad} must be true or false, not {value!r}")
        return [flag] if value else []
    repeatable = isinstance(action, (argparse._AppendAction, argparse._ExtendAction))
    if repeatable:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"{bad} must be a list of strings, not {value!r}")
        if any(t == o or t.startswith(o + "=") for t in argv for o in action.option_strings):
            return []  # the command line's own list replaces the file's
        return [f"{flag}={v}" for v in values]
    if action.type in (int, float):
        ok = isinstance(value, int) or (action.type is float and isinstance(value, float))
        if isinstance(value, bool) or not ok:
            raise UsageError(f"{bad} must be a number, not {value!r}")
    elif not isinstance(value, str):
        raise UsageError(f"{bad} must be a string, not {value!r}")
    if action.choices is not None and value not in action.choices:
        raise UsageError(f"{bad} must be one of {', '.join(map(str, action.choices))}, not {value!r}")
    return [f"{flag}={value}"]


# -- systemd's readiness protocol --------------------------------------------------------------


def notify(state: str) -> None:
    """Tell systemd ``state`` (``READY=1``, ``STOPPING=1``) if it started us with Type=notify.

    The sd_notify protocol: one datagram to the Unix socket ``$NOTIFY_SOCKET`` (``@`` = abstract)."""
    where = os.environ.get("NOTIFY_SOCKET", "")
    if not where or where[0] not in "/@":
        return
    address = "\0" + where[1:] if where[0] == "@" else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), address)
    except OSError as exc:  # systemd gone: the daemon serves on regardless
        logging.getLogger("snaplab.daemon").warning("cannot notify systemd (%s): %s", state, exc)
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


def ready(path: Path | None, info: dict) -> None:
    """The daemon serves: its ready file (if asked for) and systemd's ``READY=1``."""
    if path:
        write_ready_file(path, info)
    notify(f"READY=1\nMAINPID={os.getpid()}")


def write_ready_file(path: Path, info: dict) -> None:
    """Write atomically (tmp + rename): a watcher never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)  # a kit's run/ folder may not exist yet (deploy/kits.py)
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
    notify("STOPPING=1")
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
        cfg = _start(parse_args, argv)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(serve_in_loop(cfg))
    except UsageError as exc:
        return _refused(prog, exc)
