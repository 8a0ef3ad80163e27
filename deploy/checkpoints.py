"""Named checkpoints of a whole running lab, and rollback to them (issue 10 part 3).

    from snaplab.deploy import checkpoints
    info = checkpoints.take(lab_dir, "start")       # the lab must be running
    ...                                              # writes, snapshots, mounts
    checkpoints.rollback(lab_dir, "start")           # every array, the manager and every host as they were
    checkpoints.list_checkpoints(lab_dir)            # [CheckpointInfo(name="start", ...)]
    checkpoints.delete(lab_dir, "start")

Each daemon keeps its own part while it runs (checkpoint.proto): every array an undo position of its
metadata and a pin on the blocks it maps (array/checkpoints.py), the manager its tables
(manager/checkpoints.py), every host a copy of its folder with its host.db and file-system
sessions (agent/host/checkpoints.py). A rollback undoes what changed since, in every daemon at once;
nothing restarts. This module asks them (the arrays and the manager as ``admin``, each agent on its
socket) and keeps the index, ``<lab>/checkpoints/<name>/checkpoint.json``. On a netns lab, call it
from the manager's namespace (``snaplab lab checkpoint`` enters it).

Rolling back to a checkpoint keeps it and drops the checkpoints taken after it. Refusals are
:class:`CheckpointError` (a ``LabError`` with the iSM id: iSM31290 a bad name, iSM31291 no such
checkpoint, iSM31292 the name is taken, iSM31293 the lab is not running, iSM31294 a daemon could
not do its part).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snaplab.common.errors import E, Message, SnapLabError

from .errors import LabError
from .folder import LabFolder

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
INFO_FILE = "checkpoint.json"


class CheckpointError(LabError):
    """A checkpoint request refused: one iSM line naming the checkpoint; ``ism_id`` is its id."""

    def __init__(self, message: Message, **fields: object) -> None:
        err = SnapLabError(message, **fields)
        super().__init__(str(err))
        self.ism_id = err.msg_id
        self.text = err.text


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint of a lab: its name, when it was taken (``time.time()``), the manager's event
    log position then (the last event's sequence number), and what it covers."""

    name: str
    taken_at: float
    event_seq: int = 0
    arrays: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "taken_at": self.taken_at,
            "event_seq": self.event_seq,
            "arrays": list(self.arrays),
            "hosts": list(self.hosts),
        }

    @classmethod
    def from_json(cls, d: dict) -> CheckpointInfo:
        return cls(
            str(d["name"]),
            float(d["taken_at"]),
            int(d.get("event_seq", 0)),
            tuple(d.get("arrays", ())),
            tuple(d.get("hosts", ())),
        )


def check_name(name: str) -> str:
    """A checkpoint name: 1-32 letters, digits, ``_ . -``, starting with a letter or digit."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = name if isinstance(name, str) else type(name).__name__
        raise CheckpointError(
            E.CHECKPOINT_BAD_NAME,
            detail=f"{shown!r}: 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    return name


def _root(folder: LabFolder) -> Path:
    return folder.folder / "checkpoints"


def _read(folder: LabFolder, name: str) -> CheckpointInfo:
    path = _root(folder) / name / INFO_FILE
    try:
        return CheckpointInfo.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CheckpointError(E.CHECKPOINT_NOT_FOUND, name=name) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(E.CHECKPOINT_FAILED, detail=f"{name}: {path} cannot be read: {exc}") from None


def _write(folder: LabFolder, info: CheckpointInfo) -> None:
    d = _root(folder) / info.name
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info.to_json(), indent=1) + "\n")
    os.replace(tmp, d / INFO_FILE)


def _running_lab(lab_folder: Path | str):  # -> Lab (imported late: the lab machinery is heavy)
    """The lab and its runtime.json; every daemon must run (none stopped with ``snaplab host stop``):
    a checkpoint is all of the lab or nothing, so this is checked before any daemon is asked."""
    from .lab import Lab

    lab = Lab(lab_folder)
    rt = lab.read_runtime() or {}
    alive = lab.running() if rt.get("state") == "up" else []
    if not alive:
        raise CheckpointError(E.CHECKPOINT_LAB_DOWN, detail=f"no lab runs in {lab.folder}")
    kinds = {"array": "array", "manager": "manager", "host": "agent"}
    running = {(p.get("kind"), p.get("name")) for p in alive}
    stopped = [f"{p.kind} {p.name}" for p in _parts(rt) if (kinds[p.kind], p.name) not in running]
    if stopped:
        raise CheckpointError(
            E.CHECKPOINT_LAB_DOWN, detail=f"{', '.join(stopped)} of the lab in {lab.folder} not running"
        )
    return lab, rt


@contextlib.contextmanager
def _locked(lab_folder: Path | str) -> Iterator[tuple[Any, dict]]:
    """The running lab under its folder's lock: no ``lab up``/``down`` (nor another checkpoint
    command) works on it meanwhile."""
    from .lab import Lab

    lab = Lab(lab_folder)
    if not lab.is_lab():  # before the lock, which would make the folder
        raise CheckpointError(E.CHECKPOINT_LAB_DOWN, detail=f"no lab in {lab.folder}")
    with lab.locked("checkpoint"):
        yield _running_lab(lab_folder)


CALL_TIMEOUT = 120.0  # one daemon's part (a host copies its folder when taking)


@dataclass(frozen=True)
class _Part:
    """One daemon of the running lab and how to reach it."""

    kind: str  # array, manager, host
    name: str
    target: str  # host:port, or the agent's unix socket path


def _parts(rt: dict) -> list[_Part]:
    out = [_Part("array", n, a["target"]) for n, a in sorted(rt.get("arrays", {}).items())]
    if rt.get("manager", {}).get("target"):
        out.append(_Part("manager", "manager", rt["manager"]["target"]))
    out += [_Part("host", n, h["socket"]) for n, h in sorted(rt.get("hosts", {}).items())]
    return out


def _call(lab: LabFolder, part: _Part, method: str, name: str) -> Any:
    """``method`` (CheckpointTake, CheckpointRollback, CheckpointDelete) of one daemon."""
    import grpc

    from snaplab.common.rpc import ClientTLS, client_errors, make_channel
    from snaplab.v1 import agent_pb2_grpc, array_pb2_grpc, checkpoint_pb2, manager_pb2_grpc

    if part.kind == "host":
        channel = grpc.insecure_channel(f"unix:{part.target}")
        stub: Any = agent_pb2_grpc.AgentStub(channel)
    else:
        channel = make_channel(part.target, ClientTLS.from_folder(lab.pki, "admin"))
        stub = (array_pb2_grpc.ArrayStub if part.kind == "array" else manager_pb2_grpc.ManagerStub)(channel)
    try:
        with client_errors():
            # wait_for_ready: a connection or TLS handshake that fails once on a loaded machine is
            # dialled again within the timeout (nothing was sent yet, so nothing is done twice)
            return getattr(stub, method)(
                checkpoint_pb2.CheckpointRequest(name=name), timeout=CALL_TIMEOUT, wait_for_ready=True
            )
    finally:
        channel.close()


def _each(
    lab: LabFolder, parts: list[_Part], method: str, name: str
) -> tuple[dict[str, Any], dict[str, Exception]]:
    """``method`` on every part at once: (replies, failures) by ``kind:name``."""
    replies: dict[str, Any] = {}
    failed: dict[str, Exception] = {}

    def one(part: _Part) -> None:
        key = f"{part.kind}:{part.name}"
        try:
            replies[key] = _call(lab, part, method, name)
        except Exception as exc:  # noqa: BLE001 - each daemon's failure is reported with its name
            failed[key] = exc

    with ThreadPoolExecutor(max_workers=max(1, len(parts))) as pool:
        list(pool.map(one, parts))
    return replies, failed


def _msg_id(exc: Exception) -> str:
    return str(getattr(exc, "msg_id", "") or "")


def _failure(name: str, what: str, failed: dict[str, Exception]) -> CheckpointError:
    from .errors import one_line

    detail = "; ".join(f"{k}: {one_line(v)}" for k, v in sorted(failed.items()))
    return CheckpointError(E.CHECKPOINT_FAILED, detail=f"{what} {name}: {detail}")


def take(lab_folder: Path | str, name: str) -> CheckpointInfo:
    """Take checkpoint ``name`` of the running lab: every array, the manager and every host.

    Take it while no command runs (a command running on a host waits until the host's part is
    taken, but another host's may already be). Costs O(the hosts' folders) (their files are
    copied) and O(LDs) on the arrays."""
    check_name(name)
    with _locked(lab_folder) as (lab, rt):
        return _take(lab, rt, name)


def _take(lab: LabFolder, rt: dict, name: str) -> CheckpointInfo:
    if (_root(lab) / name / INFO_FILE).exists():
        raise CheckpointError(E.CHECKPOINT_EXISTS, name=name)
    parts = _parts(rt)
    replies, failed = _each(lab, parts, "CheckpointTake", name)
    if failed:
        ours = [p for p in parts if f"{p.kind}:{p.name}" in replies]
        _each(lab, ours, "CheckpointDelete", name)  # all or nothing: the parts taken are dropped again
        if all(_msg_id(e) == E.CHECKPOINT_EXISTS.msg_id for e in failed.values()):
            raise CheckpointError(E.CHECKPOINT_EXISTS, name=name)
        raise _failure(name, "take", failed)
    seq = int(replies["manager:manager"].event_seq) if "manager:manager" in replies else 0
    info = CheckpointInfo(
        name,
        time.time(),
        seq,
        tuple(p.name for p in parts if p.kind == "array"),
        tuple(p.name for p in parts if p.kind == "host"),
    )
    _write(lab, info)
    return info


def rollback(lab_folder: Path | str, name: str) -> None:
    """Bring the whole running lab back to checkpoint ``name``, every daemon at once, none restarted.

    Costs O(what changed since): the arrays undo their metadata changes (the bytes stay where they
    are), the hosts copy back the files that differ. Checkpoints taken after it are dropped."""
    rollback_parts(lab_folder, name)


def rollback_parts(lab_folder: Path | str, name: str) -> dict[str, Any]:
    """:func:`rollback`, returning each daemon's reply by ``kind:name`` (what it undid: ``changes``,
    ``bytes`` copied back), for benchmarks and diagnostics."""
    check_name(name)
    with _locked(lab_folder) as (lab, rt):
        return _rollback(lab, rt, name)


def _rollback(lab: LabFolder, rt: dict, name: str) -> dict[str, Any]:
    info = _read(lab, name)
    parts = _parts(rt)
    replies, failed = _each(lab, parts, "CheckpointRollback", name)
    if failed:
        raise _failure(name, "rollback to", failed)
    later = [i for i in list_checkpoints(lab.folder) if i.taken_at > info.taken_at]
    hosts = [p for p in parts if p.kind == "host"]  # the arrays and the manager dropped theirs already
    for other in later:
        _each(lab, hosts, "CheckpointDelete", other.name)
        shutil.rmtree(_root(lab) / other.name, ignore_errors=True)
    return replies


def list_checkpoints(lab_folder: Path | str) -> list[CheckpointInfo]:
    """The lab's checkpoints, oldest first."""
    folder = LabFolder(lab_folder)
    root = _root(folder)
    if not root.is_dir():
        return []
    out = [_read(folder, d.name) for d in root.iterdir() if (d / INFO_FILE).is_file()]
    return sorted(out, key=lambda i: (i.taken_at, i.name))


def delete(lab_folder: Path | str, name: str) -> None:
    """Forget checkpoint ``name`` in every daemon of the running lab (an array drops its undo log and
    pins with its last checkpoint)."""
    check_name(name)
    with _locked(lab_folder) as (lab, rt):
        _read(lab, name)
        _replies, failed = _each(lab, _parts(rt), "CheckpointDelete", name)
        failed = {k: e for k, e in failed.items() if _msg_id(e) != E.CHECKPOINT_NOT_FOUND.msg_id}
        shutil.rmtree(_root(lab) / name, ignore_errors=True)
        if failed:
            raise _failure(name, "delete", failed)
