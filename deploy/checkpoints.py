"""Named checkpoints of a whole running lab, and rollback to them (issue 10 part 3).

    from snaplab.deploy import checkpoints
    info = checkpoints.take(lab_dir, "start")       # the lab must be running
    ...                                              # writes, snapshots, mounts
    checkpoints.rollback(lab_dir, "start")           # every array, the manager and every host as they were
    checkpoints.list_checkpoints(lab_dir)            # [CheckpointInfo(name="start", ...)]
    checkpoints.delete(lab_dir, "start")

Refusals are :class:`CheckpointError` (a ``LabError`` with the iSM id: iSM31290 a bad name,
iSM31291 no such checkpoint, iSM31292 the name is taken, iSM31293 the lab is not running, iSM31294
a daemon could not do its part).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

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
        return {"name": self.name, "taken_at": self.taken_at, "event_seq": self.event_seq,
                "arrays": list(self.arrays), "hosts": list(self.hosts)}

    @classmethod
    def from_json(cls, d: dict) -> CheckpointInfo:
        return cls(str(d["name"]), float(d["taken_at"]), int(d.get("event_seq", 0)),
                   tuple(d.get("arrays", ())), tuple(d.get("hosts", ())))


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
    from .lab import Lab

    lab = Lab(lab_folder)
    rt = lab.read_runtime() or {}
    if rt.get("state") != "up" or not lab.running():
        raise CheckpointError(E.CHECKPOINT_LAB_DOWN, detail=f"no lab runs in {lab.folder}")
    return lab, rt


# -- the state each checkpoint keeps: the daemons' state folders, copied while the lab is stopped --
_STATE = ("arrays", "manager", "hosts")


def take(lab_folder: Path | str, name: str) -> CheckpointInfo:
    """Take checkpoint ``name`` of the running lab (every array, the manager, every host)."""
    check_name(name)
    lab, rt = _running_lab(lab_folder)
    if (_root(lab) / name / INFO_FILE).exists():
        raise CheckpointError(E.CHECKPOINT_EXISTS, name=name)
    info = CheckpointInfo(name, time.time(), 0, tuple(sorted(rt.get("arrays", {}))), tuple(sorted(rt.get("hosts", {}))))
    dest = _root(lab) / name
    shutil.rmtree(dest, ignore_errors=True)
    lab.down()
    try:
        for part in _STATE:
            if (lab.folder / part).exists():
                shutil.copytree(lab.folder / part, dest / "state" / part, symlinks=True)
        _write(lab, info)
    finally:
        lab.up()
    return info


def rollback(lab_folder: Path | str, name: str) -> None:
    """Bring the whole lab back to checkpoint ``name``; the lab is running afterwards."""
    check_name(name)
    lab, _rt = _running_lab(lab_folder)
    _read(lab, name)
    src = _root(lab) / name / "state"
    lab.down()
    try:
        for part in _STATE:
            shutil.rmtree(lab.folder / part, ignore_errors=True)
            if (src / part).exists():
                shutil.copytree(src / part, lab.folder / part, symlinks=True)
    finally:
        lab.up()


def list_checkpoints(lab_folder: Path | str) -> list[CheckpointInfo]:
    """The lab's checkpoints, oldest first."""
    folder = LabFolder(lab_folder)
    root = _root(folder)
    if not root.is_dir():
        return []
    out = [_read(folder, d.name) for d in root.iterdir() if (d / INFO_FILE).is_file()]
    return sorted(out, key=lambda i: (i.taken_at, i.name))


def delete(lab_folder: Path | str, name: str) -> None:
    """Forget checkpoint ``name``."""
    check_name(name)
    folder = LabFolder(lab_folder)
    _read(folder, name)
    shutil.rmtree(_root(folder) / name)
