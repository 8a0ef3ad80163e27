"""The command processes (``iSMsc_create``, ``iSMrc_umount``, ``MOUNTVOL``, …): thin clients of the host's agent.

The command name is the program's name; the host is ``SNAPLAB_HOST`` and the lab folder
``SNAPLAB_LAB`` (default ``~/.snaplab/lab``), whose ``run/agent-<host>.sock`` the agent serves. The
process sends its argv (and, for DISKPART without /s and FORMAT without /Y, its standard input) and
exits with the agent's status. It imports only grpc and the generated agent contract: every command
is a new Python process, so its import time is its start-up cost.

Whatever the command line or its input holds, the process answers with an ``iSMnnnnn`` line and a
non-zero status, never a traceback: arguments or input that are not valid UTF-8 text are a syntax
error here (iSM11100); the agent refuses what breaks its limits (iSM19005) with its own message.
"""

from __future__ import annotations

import os
import sys

import grpc

from snaplab.v1 import agent_pb2, agent_pb2_grpc

# Kept in step with snaplab.common.errors (E.AGENT_DOWN, E.INTERNAL, E.USAGE); tests compare them.
AGENT_DOWN = ("iSM11101", "SnapControl service of the server does not respond. ({name})")
INTERNAL = ("iSM19999", "Internal error occurred. ({detail})")
USAGE = ("iSM11100", "Command syntax is incorrect. ({detail})")
_GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def lab_folder() -> str:
    return os.environ.get("SNAPLAB_LAB") or os.path.expanduser("~/.snaplab/lab")


def socket_path(lab_dir: str | os.PathLike, host: str) -> str:
    return os.path.join(os.path.abspath(os.fspath(lab_dir)), "run", f"agent-{host}.sock")


def _command_name(argv0: str) -> str:
    name = argv0.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-4] if name.lower().endswith(".exe") else name


def _error(command: str, msg: tuple[str, str], **fields: str) -> str:
    return f"{command}:Error: {msg[0]}: {msg[1].format(**fields)}\n"


def exec_command(
    lab_dir: str | os.PathLike, host: str, argv: list[str], stdin: str = "", timeout: float | None = None
) -> tuple[str, str, int]:
    """Run ``argv`` (argv[0] = the command name) on ``host`` of the lab: (stdout, stderr, exit status)."""
    name = _command_name(argv[0]) if argv else ""
    path = socket_path(lab_dir, host)
    if not os.path.exists(path):
        return "", _error(name, AGENT_DOWN, name=host), 1
    channel = grpc.insecure_channel(f"unix:{path}")
    try:
        request = agent_pb2.CommandRequest(argv=list(argv), stdin=stdin, caller_pid=os.getpid())
        reply = agent_pb2_grpc.AgentStub(channel).Run(request, timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        if code in _GONE:
            return "", _error(name, AGENT_DOWN, name=host), 1
        if details.startswith("iSM"):  # the agent's own refusal, e.g. iSM19005 for an argument too long
            return "", f"{name}:Error: {details}\n", 1
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return "", _error(name, USAGE, detail="the command line and its input are too long"), 1
        return "", _error(name, INTERNAL, detail=code.name if code else "RpcError"), 1
    finally:
        channel.close()
    return reply.stdout, reply.stderr, reply.exit_code


def mounted_volume(lab_dir: str | os.PathLike, host: str, mount_point: str, timeout: float = 30.0) -> str | None:
    """The volume mounted at ``mount_point`` on ``host`` now ("" none), or None when its agent does
    not answer."""
    path = socket_path(lab_dir, host)
    if not os.path.exists(path):
        return None
    channel = grpc.insecure_channel(f"unix:{path}")
    try:
        reply = agent_pb2_grpc.AgentStub(channel).Status(
            agent_pb2.StatusRequest(mount_point=mount_point), timeout=timeout
        )
    except grpc.RpcError:
        return None
    finally:
        channel.close()
    return reply.mounted_volume


def wants_stdin(name: str, args: list[str]) -> bool:
    """Whether the command reads its standard input (a DISKPART script, FORMAT's answer)."""
    return _wants_stdin(name, args)


def _wants_stdin(name: str, args: list[str]) -> bool:
    low = [a.lower() for a in args]
    n = name.lower()
    return (n == "diskpart" and "/s" not in low) or (n == "format" and "/y" not in low)


def _not_text(args: list[str]) -> str | None:
    """Why the arguments cannot be sent (they reach us decoded with surrogate escapes), or None."""
    for i, a in enumerate(args, 1):
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            return f"argument {i} is not valid UTF-8 text"
    return None


def _read_stdin() -> str:
    """The standard input as text; ValueError says why it is not."""
    try:
        data = sys.stdin.buffer.read()
    except OSError as exc:
        raise ValueError(f"standard input cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"standard input is not valid UTF-8 text (byte {exc.start})") from None


def _run(name: str, args: list[str]) -> tuple[str, str, int]:
    host = os.environ.get("SNAPLAB_HOST", "")
    if not host:
        why = "SNAPLAB_HOST is not set: name the lab host this command runs on, e.g. export SNAPLAB_HOST=business01"
        return "", _error(name, AGENT_DOWN, name=why), 1
    bad = _not_text(args)
    if bad:
        return "", _error(name, USAGE, detail=bad), 1
    stdin = ""
    if _wants_stdin(name, args) and sys.stdin is not None and not sys.stdin.isatty():
        try:
            stdin = _read_stdin()
        except ValueError as exc:
            return "", _error(name, USAGE, detail=str(exc)), 1
    return exec_command(lab_folder(), host, [name, *args], stdin)


def main() -> int:
    for stream in (sys.stdout, sys.stderr):  # an output encoding that cannot show a character escapes it
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    name = _command_name(sys.argv[0])
    if _not_text([name]):
        name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        out, err, code = _run(name, sys.argv[1:])
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        out, err, code = "", _error(name, INTERNAL, detail=type(exc).__name__), 1
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
