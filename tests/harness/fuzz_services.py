"""Fuzzing a running lab's services from outside (the manager, an agent's socket, the command lines) and
the audits after a run: daemons alive, no tracebacks in replies or logs, logs of one line per bad
request at most, bounded memory, and the guide's backup procedure (2.2.1) still passing.

Used by ``tests/security/test_fuzz_*.py`` (a bounded budget) and ``bench/fuzz_services.py`` (10,000
requests per service). Inputs come from ``fuzz_inputs`` (seeded).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from snaplab.common.rpc import ClientTLS, make_channel
from snaplab.v1 import agent_pb2

from .fuzz_inputs import COMMANDS, Inputs, agent_call, manager_call, raw_command_line

TRACEBACK = "Traceback (most recent call last)"
ISM_ERROR = re.compile(r"^[^\n]*?:Error: iSM\d{5}: \S", re.MULTILINE)
WINDOWS_TOOLS = ("mountvol", "diskpart", "format", "chkdsk")
CALL_TIMEOUT = 10.0
WATCH_TIMEOUT = 0.5
CLI_WORKER = Path(__file__).with_name("fuzz_cli_worker.py")


@dataclass
class Outcome:
    """What one fuzz run sent and got back."""

    service: str
    requests: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # tracebacks in replies, errors without an iSM id
    seconds: float = 0.0

    def note(self, code: str, text: str, where: str) -> None:
        self.requests += 1
        self.codes[code] += 1
        if TRACEBACK in text and len(self.problems) < 20:
            self.problems.append(f"{where}: traceback in the reply: {text[:300]!r}")

    def summary(self) -> str:
        top = ", ".join(f"{k} {v}" for k, v in self.codes.most_common(8))
        return f"{self.service}: {self.requests} requests in {self.seconds:.1f} s ({top})"


def _budget(requests: int, seconds: float) -> Iterator[int]:
    deadline = time.monotonic() + seconds
    for i in range(requests):
        if time.monotonic() > deadline:
            return
        yield i


# -- the services ------------------------------------------------------------------------------------


def fuzz_manager(lab: Path, *, requests: int, seconds: float, seed: int) -> Outcome:
    """Raw requests (bytes) to every Manager method as a host, another host and the admin."""
    runtime = json.loads((lab / "runtime.json").read_text())
    target = runtime["manager"]["target"]
    channels = {
        p: make_channel(target, ClientTLS.from_folder(lab / "pki", p))
        for p in ("business01", "test01", "admin")
    }
    g = Inputs(seed)
    out = Outcome("manager")
    t0 = time.monotonic()
    try:
        for _ in _budget(requests, seconds):
            call = manager_call(g)
            ch = channels[call.principal]
            try:
                if call.streaming:
                    stream = ch.unary_stream(call.path, request_serializer=None, response_deserializer=None)
                    for _msg in stream(call.payload, timeout=WATCH_TIMEOUT):
                        pass
                else:
                    ch.unary_unary(call.path, request_serializer=None, response_deserializer=None)(
                        call.payload, timeout=CALL_TIMEOUT
                    )
                out.note("OK", "", call.path)
            except grpc.RpcError as exc:
                details = exc.details() or ""  # type: ignore[attr-defined]
                code = exc.code().name  # type: ignore[attr-defined]
                if call.streaming and code == "DEADLINE_EXCEEDED":
                    code = "OK (stream ended by its deadline)"
                out.note(code, details, call.path)
                _want_ism(out, code, details, call.path)
    finally:
        for ch in channels.values():
            ch.close()
    out.seconds = time.monotonic() - t0
    return out


def _want_ism(out: Outcome, code: str, details: str, where: str) -> None:
    """A refusal of ours carries its iSM id; transport ends (deadline, a cancelled stream) need none."""
    if code in ("DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED") or code.startswith("OK"):
        return
    if not details.startswith("iSM") and len(out.problems) < 20:
        out.problems.append(f"{where}: {code} without an iSM id: {details[:200]!r}")


def fuzz_agent(lab: Path, host: str, *, requests: int, seconds: float, seed: int, scratch: Path) -> Outcome:
    """Raw requests to a host's Agent socket (Run with odd argv and stdin, Status, garbage)."""
    channel = grpc.insecure_channel(f"unix:{lab / 'run' / f'agent-{host}.sock'}")
    g = Inputs(seed)
    out = Outcome(f"agent {host}")
    t0 = time.monotonic()
    try:
        for _ in _budget(requests, seconds):
            method, payload = agent_call(g, str(scratch))
            path = f"/snaplab.v1.Agent/{method}"
            try:
                reply = channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
                    payload, timeout=60.0
                )
                if method == "Run":  # the command's own answer: an iSM line when an iSM command refuses
                    r = agent_pb2.CommandReply.FromString(reply)
                    argv = agent_pb2.CommandRequest.FromString(payload).argv  # accepted, so it decodes
                    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1] if argv else "-"
                    _command_result(out, name, r.exit_code, r.stdout, r.stderr, "")
                else:
                    out.note("OK", reply.decode("utf-8", "replace"), path)
            except grpc.RpcError as exc:
                details = exc.details() or ""  # type: ignore[attr-defined]
                code = exc.code().name  # type: ignore[attr-defined]
                out.note(code, details, path)
                _want_ism(out, code, details, path)
    finally:
        channel.close()
    out.seconds = time.monotonic() - t0
    return out


def fuzz_command_lines(
    lab: Path, host: str, *, requests: int, spawns: int, seconds: float, seed: int, scratch: Path
) -> Outcome:
    """Command lines as bytes (often not UTF-8) with bytes on stdin: ``requests`` of them through the
    command processes' ``main`` in one worker process (``fuzz_cli_worker.py``), and ``spawns`` as
    console scripts of their own (the real argv decoding)."""
    g = Inputs(seed)
    out = Outcome(f"command lines on {host}")
    env = {**os.environ, "SNAPLAB_LAB": str(lab), "SNAPLAB_HOST": host}
    env.pop("PYTHONIOENCODING", None)
    t0 = time.monotonic()
    cases = [raw_command_line(g, str(scratch)) for _ in range(requests)]
    lines = "".join(
        json.dumps(
            {"argv": [base64.b64encode(a).decode() for a in argv], "stdin": base64.b64encode(data).decode()}
        )
        + "\n"
        for argv, data in cases
    )
    proc = subprocess.run(
        [sys.executable, str(CLI_WORKER), str(seconds)],
        input=lines.encode(),
        capture_output=True,
        env=env,
        cwd=scratch,
        timeout=seconds + 120,
        check=False,
    )
    if proc.returncode != 0 or TRACEBACK.encode() in proc.stderr:
        out.problems.append(f"the command-line worker failed ({proc.returncode}): {proc.stderr[-500:]!r}")
    for line in proc.stdout.decode().splitlines():
        r = json.loads(line)
        _command_result(out, r["name"], r["code"], r["stdout"], r["stderr"], r.get("raised", ""))
    bindir = Path(sys.executable).parent
    for argv, data in cases[:spawns]:
        name = argv[0].decode("utf-8", "replace")
        exe = bindir / (name if name in COMMANDS else "iSMsc_query")  # made-up names ran in the worker
        p = subprocess.run(
            [bytes(exe), *argv[1:]],
            input=data,
            capture_output=True,
            env=env,
            cwd=scratch,
            timeout=120,
            check=False,
        )
        _command_result(
            out,
            exe.name,
            p.returncode,
            p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"),
            "",
        )
    out.seconds = time.monotonic() - t0
    return out


def _command_result(out: Outcome, name: str, code: int, stdout: str, stderr: str, raised: str) -> None:
    where = f"{name} (exit {code})"
    out.note("exit 0" if code == 0 else f"exit {code}", stdout + stderr + raised, where)
    if raised and len(out.problems) < 20:
        out.problems.append(f"{where}: main raised {raised[:300]!r}")
    # Every refusal of an iSM command is an iSM line (Windows' own tools print Windows' texts).
    base = name.lower().removesuffix(".exe")
    if (
        code not in (0, 9009)
        and base.startswith("ism")
        and not ISM_ERROR.search(stderr)
        and len(out.problems) < 20
    ):
        out.problems.append(f"{where}: no iSM id in {stderr[:200]!r}")


# -- audits ------------------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """VmRSS of a process in bytes (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Audit:
    """The lab's daemons and logs at the start of a run; ``after()`` says what went wrong since."""

    lab: Path
    pids: dict[str, int] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    log_sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, lab: Path) -> Audit:
        runtime = json.loads((lab / "runtime.json").read_text())
        pids = {f"{p['kind']} {p['name']}": p["pid"] for p in runtime["processes"]}
        logs = {p.name: p.stat().st_size for p in (lab / "run").glob("*.log")}
        return cls(lab, pids, {k: rss(v) for k, v in pids.items()}, logs)

    def new_log_text(self) -> dict[str, str]:
        out = {}
        for p in (self.lab / "run").glob("*.log"):
            with p.open("rb") as f:
                f.seek(self.log_sizes.get(p.name, 0))
                out[p.name] = f.read().decode("utf-8", "replace")
        return out

    def after(self, requests: int, *, rss_limit: int) -> tuple[list[str], dict[str, Any]]:
        """(problems, figures): deaths, tracebacks or more log lines than requests, RSS growth."""
        problems = []
        deaths = [k for k, pid in self.pids.items() if not alive(pid)]
        problems += [f"{k} died" for k in deaths]
        growth = {k: rss(pid) - self.memory[k] for k, pid in self.pids.items() if alive(pid)}
        problems += [f"{k} grew by {g / 1e6:.1f} MB" for k, g in growth.items() if g > rss_limit]
        logs = self.new_log_text()
        tracebacks = {k: t.count(TRACEBACK) for k, t in logs.items() if TRACEBACK in t}
        problems += [f"{k}: {n} tracebacks" for k, n in tracebacks.items()]
        lines = {k: t.count("\n") for k, t in logs.items()}
        problems += [
            f"{k}: {n} log lines for {requests} requests" for k, n in lines.items() if n > requests + 20
        ]
        figures = {
            "deaths": len(deaths),
            "tracebacks_in_logs": sum(tracebacks.values()),
            "log_lines": lines,
            "rss_growth_mb": {k: round(g / 1e6, 1) for k, g in growth.items()},
        }
        return problems, figures


# -- the procedure that must still pass ---------------------------------------------------------------

VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
BACKUP_PROCEDURE = [  # the guide's 2.2.1 steps 1-15 (as tests/test_e2e_procedures.py runs them)
    ("business01", "iSMsc_delete -bv bv001 -bvflg ld -auto"),
    ("business01", "iSMrc_flush -drv G:"),
    ("business01", "iSMrc_umount -drv G:"),
    ("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic"),
    ("business01", "iSMsc_svguard -bv bv001 -bvflg ld -sv .-1 -svflg relgen -mode set"),
    ("business01", "iSMrc_mount -drv G:"),
    ("backup01", "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen"),
    ("backup01", f"iSMrc_mount -mvol {VOL} -drv H:"),
    ("backup01", f"iSMrc_flush -mvol {VOL}"),
    ("backup01", f"iSMrc_umount -mvol {VOL}"),
    ("backup01", "iSMsc_unlink -lv lv001 -lvflg ld"),
    ("backup01", "iSMsc_svguard -bv bv001 -bvflg ld -sv .-1 -svflg relgen -mode cancel"),
]


def backup_procedure(lab: Path, cwd: Path) -> list[str]:
    """Run 2.2.1 on business01 and backup01 as command processes; the problems (empty: it passed)."""
    bindir = Path(sys.executable).parent
    problems = []
    for host, line in BACKUP_PROCEDURE:
        argv = line.split()
        env = {**os.environ, "SNAPLAB_LAB": str(lab), "SNAPLAB_HOST": host}
        p = subprocess.run(
            [str(bindir / argv[0]), *argv[1:]],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if p.returncode != 0:
            problems.append(f"{host}> {line}: exit {p.returncode}: {(p.stdout + p.stderr).strip()[-300:]}")
            break
    return problems
