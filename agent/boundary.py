"""The agent's gRPC boundary as its metrics and chaos rules see it (issue 10).

A ``Run`` call is the command it runs (``iSMsc_create``, as the command process names it; an
unknown command is ``Run`` alone), on the volume its ``-bv``/``-lv``/``-vol`` option names. A chaos
refusal of a ``Run`` is answered as the command's own refusal is: the error line on stderr, exit
status 1 and the host's trace lines, so the command prints exactly what a real refusal of that id
prints. The agent's own metric: the bytes its flushes wrote to volumes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily

from snaplab.agent.commands import base
from snaplab.common.chaos import Firing
from snaplab.common.metrics import DaemonMetrics
from snaplab.v1 import agent_pb2

_SUBJECT_OPTIONS = ("-bv", "-lv", "-vol", "-mv", "-rv")
_ERROR_LINE = re.compile(r":Error: (iSM\d{5}):")


def command_name(argv: list[str]) -> str:
    """The command of ``argv`` as the framework looks it up (no folder, no .exe), "" if not one."""
    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1] if argv else ""
    name = name[:-4] if name.lower().endswith(".exe") else name
    return name if name.lower() in base.COMMANDS else ""


def describe(method: str, request: Any) -> tuple[tuple[str, ...], str]:
    if method != "Run" or request is None:
        return (method,), ""
    argv = list(request.argv)
    name = command_name(argv)
    if not name:
        return (method,), ""
    subject = ""
    for i, arg in enumerate(argv[1:-1], start=1):
        if arg.lower() in _SUBJECT_OPTIONS:
            subject = argv[i + 1]
            break
    return (method, name), subject


def answer(host: Any, method: str, request: Any, f: Firing) -> agent_pb2.CommandReply | None:
    """The reply a refused command gets (as ``base.run`` makes it), for a chaos rule's iSM error."""
    name = command_name(list(request.argv)) if method == "Run" else ""
    if not name or f.error is None:
        return None
    host.trace(name, "INFO", "", "start " + " ".join(request.argv[1:]))
    host.trace(name, "ERROR", f.error.msg_id, f.error.text)
    return agent_pb2.CommandReply(stderr=f"{name}:Error: {f.error.msg_id}: {f.error.text}\n", exit_code=1)


def result_of(reply: Any) -> str:
    """A command reply's result: OK, the iSM id of its error line, or its exit status."""
    code = getattr(reply, "exit_code", 0)
    if not code:
        return "OK"
    m = _ERROR_LINE.search(getattr(reply, "stderr", ""))
    return m.group(1) if m else f"exit {code}"


def register(metrics: DaemonMetrics, host: Any) -> None:
    def collect() -> Iterator[Any]:
        flushed = CounterMetricFamily("snaplab_flush_bytes", "Bytes this host's flushes wrote to volumes",
                                      labels=["host"])
        flushed.add_metric([host.name], getattr(host.fs, "flushed_bytes", 0))
        yield flushed

    metrics.collect_with(collect)
