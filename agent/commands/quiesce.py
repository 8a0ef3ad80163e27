"""``iSMsc_create … -quiesce [-deadline SECONDS]`` (SnapLab extension, issue 14): application-consistent snapshots.

The flow, all within the deadline (from the start of the freeze hook):

1. the host's freeze hook (iSMrpl.ini ``[QUIESCE] FREEZE``), if any: the application quiesces;
2. the writers in the BV's mounted folders are held (agent/fs/freeze.py) and its volumes flushed;
3. the snapshot, labelled ``application``;
4. the writers released, then the thaw hook (``THAW``).

If the freeze hook is still running at the deadline it is killed, the thaw hook runs at once and
the snapshot is taken labelled ``crash`` (what the volume holds, no flush); a hook that fails also
gives ``crash``. A flush that ends past the deadline (the watchdog released the writers on time)
gives ``crash`` too. Volumes change only when flushed (agent/fs/cache.py), so writers released
while the create is on its way cannot reach the snapshot.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from snaplab.agent.commands.base import CommandError, Ctx
from snaplab.agent.fs.freeze import Freeze
from snaplab.agent.vollist import VolEntry
from snaplab.common.errors import E

log = logging.getLogger("snaplab.agent.commands")

DEFAULT_DEADLINE = 10.0  # VSS gives its writers 10 s between freeze and thaw
MAX_DEADLINE = 600.0
THAW_LIMIT = 10.0  # a thaw hook gets at most this long
T = TypeVar("T")


@dataclass
class Quiesced:
    label: str  # "application" or "crash"
    frozen_ms: int  # how long writers were held
    reason: str = ""  # why the label is "crash"


def deadline_of(ctx: Ctx, text: str | None) -> float:
    """``-deadline SECONDS``, else iSMrpl.ini ``[QUIESCE] DEADLINE``, else 10 s."""
    source = "-deadline"
    if text is None:
        text, source = ctx.host.setting("QUIESCE", "DEADLINE", ""), "[QUIESCE] DEADLINE"
        if not text:
            return DEFAULT_DEADLINE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_DEADLINE:
        detail = f"{source} {text}: seconds, more than 0 and at most {MAX_DEADLINE:.0f} (SnapLab extension)"
        raise CommandError(E.USAGE, detail=detail)
    return value


def _run_hook(ctx: Ctx, which: str, line: str, env: dict[str, str], limit: float) -> str:
    """Run one hook in a shell, in its own process group; "" if it succeeded, else why not."""
    if limit <= 0:
        return f"{which} hook not run: the deadline had passed"
    proc = subprocess.Popen(["sh", "-c", line], cwd=ctx.host.state, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"{which} hook ran past the deadline and was stopped"
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        return f"{which} hook exit {proc.returncode}" + (f": {tail[0][:120]}" if tail else "")
    return ""


def quiesce_and_create(
    ctx: Ctx, bv_name: str, entry: VolEntry | None, deadline_s: float, create: Callable[[str], T]
) -> tuple[T, Quiesced]:
    """Run the flow of the module docstring around ``create(label)``; returns (its result, Quiesced)."""
    t0 = time.monotonic()
    deadline = t0 + deadline_s
    host = ctx.host
    volumes = []
    if entry is not None and (disk := host.disk(entry.array, entry.ld_number)) is not None:
        volumes = [v for v in disk.volumes if v.mount_points and host.fs.mounted(v)]
    folders = [host.mount_path(mp) for v in volumes for mp in v.mount_points]
    env = dict(os.environ, SNAPLAB_HOST=host.name, SNAPLAB_BV=bv_name,
               SNAPLAB_FOLDERS=os.pathsep.join(str(f) for f in folders))
    freeze_hook = host.setting("QUIESCE", "FREEZE", "")
    thaw_hook = host.setting("QUIESCE", "THAW", "")
    reason = _run_hook(ctx, "freeze", freeze_hook, env, deadline - time.monotonic()) if freeze_hook else ""
    frozen_ms = 0
    if reason:  # crash-consistent: release at once (nothing held yet), thaw, snapshot the volume as it is
        if thaw_hook:
            _run_hook(ctx, "thaw", thaw_hook, env, THAW_LIMIT)
        return create("crash"), Quiesced("crash", 0, reason)
    freeze = Freeze(folders, deadline)
    try:
        freeze.hold()
        for v in volumes:
            host.fs.flush(v)
        if freeze.expired:
            reason = "the flush ended past the deadline"
        result = create("crash" if reason else "application")
    finally:
        frozen_ms = round(freeze.release() * 1000)
        if thaw_hook:
            thaw_failed = _run_hook(ctx, "thaw", thaw_hook, env, THAW_LIMIT)
            if thaw_failed:
                log.warning("%s: %s", bv_name, thaw_failed)
    return result, Quiesced("crash" if reason else "application", frozen_ms, reason)

