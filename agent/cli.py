"""The command processes (``iSMsc_create``, ``iSMrc_umount``, ``MOUNTVOL``, …): thin clients of the host's agent.

The command name is the program's name; the host is ``SNAPLAB_HOST`` and the lab folder
``SNAPLAB_LAB`` (default ``~/.snaplab/lab``), whose ``run/agent-<host>.sock`` the agent serves. The
process sends its argv (and, for DISKPART without /s and FORMAT without /Y, its standard input) and
exits with the agent's status. It imports only grpc and the generated agent contract: every command
is a new Python process, so its import time is its start-up cost.
"""

from __future__ import annotations

import os
import sys

import grpc

from snaplab.v1 import agent_pb2, agent_pb2_grpc

# Kept in step with snaplab.common.errors (E.AGENT_DOWN, E.INTERNAL); tests compare them.
AGENT_DOWN = ("iSM11101", "SnapControl service of the server does not respond. ({name})")
INTERNAL = ("iSM19999", "Internal error occurred. ({detail})")


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
        if code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
        ):
            return "", _error(name, AGENT_DOWN, name=host), 1
        return "", _error(name, INTERNAL, detail=code.name if code else "RpcError"), 1
    finally:
        channel.close()
    return reply.stdout, reply.stderr, reply.exit_code


def _wants_stdin(name: str, args: list[str]) -> bool:
    low = [a.lower() for a in args]
    n = name.lower()
    return (n == "diskpart" and "/s" not in low) or (n == "format" and "/y" not in low)


def main() -> int:
    name = _command_name(sys.argv[0])
    args = sys.argv[1:]
    host = os.environ.get("SNAPLAB_HOST", "")
    if not host:
        sys.stderr.write(
            f"{name}: SNAPLAB_HOST is not set: name the lab host this command runs on, "
            f"e.g. export SNAPLAB_HOST=business01\n"
        )
        return 1
    stdin = ""
    if _wants_stdin(name, args) and sys.stdin is not None and not sys.stdin.isatty():
        stdin = sys.stdin.read()
    out, err, code = exec_command(lab_folder(), host, [name, *args], stdin)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
