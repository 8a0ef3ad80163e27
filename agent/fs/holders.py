"""The host's "handle" tool: which processes of this machine hold files or folders under a mount folder.

``iSMrc_umount`` refuses with iSM13609 while any do.
"""

from __future__ import annotations

import os
from pathlib import Path


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def holders(paths: list[Path]) -> list[tuple[int, str]]:
    """(pid, command name) of every process of this machine with its working folder or an open file
    under one of ``paths``; the calling process itself is not counted."""
    roots = [os.path.realpath(p) for p in paths]
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        base = f"/proc/{entry}"
        hit = False
        try:
            hit = _under(os.readlink(f"{base}/cwd"), roots)
        except OSError:
            pass
        if not hit:
            try:
                fds = os.listdir(f"{base}/fd")
            except OSError:
                fds = []
            for fd in fds:
                try:
                    if _under(os.readlink(f"{base}/fd/{fd}"), roots):
                        hit = True
                        break
                except OSError:
                    continue
        if hit:
            try:
                comm = Path(f"{base}/comm").read_text().strip()
            except OSError:
                comm = "?"
            out.append((int(entry), comm))
    return out
