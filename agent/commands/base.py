"""The SnapControl command framework: registry, per-run context, iSM-style options, messages and trace.

A command is a function ``(ctx: Ctx) -> int | None`` registered with ``@command("iSMsc_create")``.
It prints with ``ctx.print``; a refusal is ``raise CommandError(E.X, name=...)`` (or any
``SnapLabError`` / ``SnapLabClientError``), which ``run`` turns into the error line on stderr, a trace
line and exit status 1. Nothing a command raises ever reaches the user as a traceback.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import grpc

from snaplab.common.errors import E, Message, SnapLabError
from snaplab.common.message_log import function_id
from snaplab.common.rpc import SnapLabClientError, call_error
from snaplab.common.validation import shown
from snaplab.v1 import manager_pb2

if TYPE_CHECKING:  # the host model imports this module
    from snaplab.agent.host import Host

log = logging.getLogger("snaplab.agent")

CommandFn = Callable[["Ctx"], "int | None"]
COMMANDS: dict[str, CommandFn] = {}

_NO_ANSWER = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Typographic dashes appear in the guide's printed commands (e.g. "iSMsc_svguard –bv bv001");
# an operator pasting them must get the same result as with "-".
_DASHES = ("\u2013", "\u2014", "\u2212", "\uff0d")


def command(*names: str) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        for n in names:
            COMMANDS[n.lower()] = fn  # Windows command names are case-insensitive
        return fn

    return register


class CommandError(Exception):
    """A command's refusal: an iSM message (id and text)."""

    def __init__(self, message: Message, **fields: object) -> None:
        self.msg_id = message.msg_id
        self.text = message.text.format(**fields) if fields else message.text
        super().__init__(f"{self.msg_id}: {self.text}")

    @classmethod
    def of(cls, exc: BaseException, *, manager: str = "", array: str = "") -> CommandError:
        """The refusal ``exc`` stands for. A failed call without an iSM id is named by what failed:
        the management server at ``manager``, or the disk array ``array``, did not answer (never the
        transport's own text)."""
        if isinstance(exc, CommandError):
            return exc
        if isinstance(exc, SnapLabError):
            out = cls.__new__(cls)
            out.msg_id, out.text = exc.msg_id, exc.text
            Exception.__init__(out, str(exc))
            return out
        if isinstance(exc, grpc.RpcError):
            exc = call_error(exc)
        if isinstance(exc, SnapLabClientError):
            if not exc.msg_id:
                if exc.code not in _NO_ANSWER:
                    return cls(E.INTERNAL, detail=exc.code.name)
                if manager:
                    return cls(E.MANAGER_UNREACHABLE, name=manager)
                return cls(E.ARRAY_UNREACHABLE, name=array or "-")
            out = cls.__new__(cls)
            text = exc.text or str(exc)
            out.msg_id = exc.msg_id
            if text.startswith(f"{out.msg_id}: "):
                text = text[len(out.msg_id) + 2 :]
            out.text = text
            Exception.__init__(out, f"{out.msg_id}: {out.text}")
            return out
        return cls(E.INTERNAL, detail=type(exc).__name__)


def normalise_args(args: list[str]) -> list[str]:
    out = []
    for a in args:
        for d in _DASHES:
            if a.startswith(d):
                a = "-" + a[len(d) :]
        out.append(a)
    return out


def win_args(args: list[str], valued: tuple[str, ...] = ()) -> tuple[list[str], dict[str, Any]]:
    """Windows-style arguments: positionals, and ``/X`` or ``/X:value`` switches (names upper-cased);
    switches in ``valued`` take the next argument (``/s FILE``)."""
    pos: list[str] = []
    opts: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("/") and len(a) > 1:
            name, _, value = a[1:].partition(":")
            name = name.upper()
            if name in opts:
                raise CommandError(E.USAGE, detail=f"{a} given twice")
            if name in valued and not value:
                if i + 1 >= len(args):
                    raise CommandError(E.USAGE, detail=f"{a} needs a value")
                value = args[i + 1]
                i += 1
            opts[name] = value or True
        else:
            pos.append(a)
        i += 1
    return pos, opts


MAX_PATH_PART = 255  # bytes of one file name (NAME_MAX)
MAX_PATH = 4095  # bytes of a whole path (PATH_MAX without its NUL)


def caller_path(host: Host, name: str) -> Path:
    """A path a command was given: relative paths are relative to the caller's current folder.
    One the file system cannot hold is a syntax error (iSM11100), not an OSError later."""
    p = Path(name)
    p = p if p.is_absolute() else host.cwd / p
    if len(str(p).encode()) > MAX_PATH or any(len(part.encode()) > MAX_PATH_PART for part in p.parts):
        raise CommandError(E.USAGE, detail=f"path {shown(name)} is too long")
    return p


@dataclass
class Ctx:
    """One run of one command on one host."""

    name: str
    args: list[str]
    host: Host
    stdin: str = ""
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    traced: bool = False  # a message of the command's end went to the trace (its Info line)

    # -- output ------------------------------------------------------------------------------------
    def print(self, line: str = "") -> None:
        self.out.append(line)

    def eprint(self, line: str = "") -> None:
        self.err.append(line)

    def info(self, message: Message, **fields: object) -> None:
        """The success line ``<command>:Info: iSMnnnnn: <text>`` (stdout), also written to the trace."""
        text = message.text.format(**fields) if fields else message.text
        self.print(f"{self.name}:Info: {message.msg_id}: {text}")
        self.host.trace(self.name, "INFO", message.msg_id, text)
        self.traced = True

    def warning(self, message: Message, **fields: object) -> None:
        """A warning line ``<command>:Warning: iSMnnnnn: <text>`` (stderr), also written to the trace."""
        text = message.text.format(**fields) if fields else message.text
        self.eprint(f"{self.name}:Warning: {message.msg_id}: {text}")
        self.host.trace(self.name, "WARNING", message.msg_id, text)
        self.traced = True

    def notice(self, message: Message, **fields: object) -> None:
        text = message.text.format(**fields) if fields else message.text
        self.print(f"{self.name}:Notice: {message.msg_id}: {text}")
        self.host.trace(self.name, "NOTICE", message.msg_id, text)
        self.traced = True

    # -- options -------------------------------------------------------------------------------
    def options(self, with_value: tuple[str, ...] = (), flags: tuple[str, ...] = (),
                positional: int = 0) -> dict[str, Any]:
        """Parse iSM-style options: ``-bv bv001`` (with_value), ``-cyclic`` (flags).

        Returns {option: value or True}; positional arguments under "_" (at most ``positional``).
        Repeated, unknown or incomplete options are a syntax error (iSM11100)."""
        out: dict[str, Any] = {"_": []}
        i = 0
        while i < len(self.args):
            a = self.args[i]
            key = a.lower() if a.startswith("-") else None
            if key is not None and key in with_value:
                if i + 1 >= len(self.args):
                    raise CommandError(E.USAGE, detail=f"{a} needs a value")
                if key in out:
                    raise CommandError(E.USAGE, detail=f"{a} given twice")
                out[key] = self.args[i + 1]
                i += 2
            elif key is not None and key in flags:
                if key in out:
                    raise CommandError(E.USAGE, detail=f"{a} given twice")
                out[key] = True
                i += 1
            elif key is None and len(out["_"]) < positional:
                out["_"].append(a)
                i += 1
            else:
                raise CommandError(E.USAGE, detail=f"unknown argument {a}")
        return out

    # -- control I/O ---------------------------------------------------------------------------
    def route(self, op: str, request: Any, *, via: str, array: str = "",
              timeout: float | None = 60.0, probe: bool = False) -> manager_pb2.ControlReply:
        """Send one control operation through the manager (B3), issued through LD ``via``
        (``probe``: another route follows if this array lacks the LD)."""
        req = manager_pb2.ControlRequest(array=array, via=via, probe=probe, **{op: request})
        try:
            return self.host.manager.Route(req, timeout=timeout)
        except grpc.RpcError as exc:
            raise CommandError.of(exc, manager=self.host.manager_target) from None


def run(host: Host, argv: list[str], stdin: str = "") -> tuple[str, str, int]:
    """Run one command as ``host``; returns (stdout, stderr, exit status)."""
    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1] if argv else ""
    if name.lower().endswith(".exe"):
        name = name[:-4]
    fn = COMMANDS.get(name.lower())
    ctx = Ctx(name=name, args=normalise_args(list(argv[1:])), host=host, stdin=stdin)
    if fn is None:
        return "", f"'{name}' is not recognized as an internal or external command.\n", 9009
    host.trace(name, "INFO", "", "start " + " ".join(argv[1:]))
    started, clock = datetime.now(), time.monotonic()
    error = ""
    try:
        code = fn(ctx) or 0
        if not ctx.traced:  # iSMrc_*, MOUNTVOL, DISKPART print no Info line: the trace ends them
            if code == 0:
                host.trace(name, "INFO", "", _end_line(ctx.out))
            else:
                host.trace(name, "ERROR", "", f"abnormal end (exit {code})")
    except Exception as exc:  # every refusal becomes one iSM error line
        if not isinstance(exc, (CommandError, SnapLabError, SnapLabClientError, grpc.RpcError)):
            log.exception("command %s failed", name)
        err = CommandError.of(exc)
        ctx.eprint(f"{name}:Error: {err.msg_id}: {err.text}")
        host.trace(name, "ERROR", err.msg_id, err.text)
        code, error = 1, err.msg_id
    record = getattr(host, "record_operation", None)  # a test's stand-in host may keep no trace
    if record is not None:
        record(
            {
                "time": started.isoformat(timespec="milliseconds"),
                "command": name,
                "argv": list(argv[1:]),
                "cwd": str(getattr(host, "cwd", "")),
                "exit": code,
                "ms": round((time.monotonic() - clock) * 1000, 1),
                "error": error,
            }
        )
    return "".join(line + "\n" for line in ctx.out), "".join(line + "\n" for line in ctx.err), code


def _end_line(out: list[str]) -> str:
    """The trace's end of a command without an Info line: its own ``… Normal End <time>`` line when it
    prints one (iSMrc_flush, iSMrc_umount, iSMrc_mount), else ``normal end`` (MOUNTVOL, DISKPART)."""
    ends = [" ".join(line.split()) for line in out if "Normal End" in line]
    return ends[-1] if ends else "normal end"


def trace_line(host: str, command: str, classification: str, msg_id: str, text: str) -> str:
    """SPEC §8 message log layout: ``Mon Date hh:mm:ss host function-id classification command : iSMyyyyy : text``."""
    now = datetime.now()
    return f"{now:%a %b %d %H:%M:%S} {host} {function_id(command)} {classification} {command} : {msg_id} : {text}"
