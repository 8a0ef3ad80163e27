"""A host's part of a lab checkpoint (issue 10 part 3): its folder, host.db and file-system sessions.

``<state>/checkpoints/<name>/`` keeps::

    manifest.json   every entry of the host's folder when taken: kind, size, mtime, ctime, inode, mode
    files/...       a copy of each regular file (the file-system caches, etc/, fscache/, ...)
    host.db         host.db as it was (SQLite's backup API: a consistent copy of the live database)
    memory.pickle   the mounted volumes' sessions and the kept caches (agent/fs/cache.py), which live
                    in memory beside the files

A rollback compares the folder with the manifest and copies back only what differs (an entry
whose size, times or inode changed, or that went away) and removes what was added: O(what
changed), plus one ``stat`` per entry. host.db comes back through the backup API into the open
connection; the sessions are swapped. Left out, as the event log is: the command trace
(``etc/iSM_Log*.txt``), and the daemon's lock file. Everything runs under the host's command lock,
so no command sees half of it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snaplab.common.errors import E, SnapLabError

if TYPE_CHECKING:
    from snaplab.agent.host import Host

FOLDER = "checkpoints"
_SKIP_TOP = {FOLDER, "host.db", "host.db-wal", "host.db-shm", "host.db-journal", "daemon.lock"}


def _skipped(rel: str) -> bool:
    top = rel.split("/", 1)[0]
    if top in _SKIP_TOP:
        return True
    return rel.startswith("etc/iSM_Log")


def _entry(st: os.stat_result, path: str) -> list[Any]:
    if stat.S_ISLNK(st.st_mode):
        return ["l", 0, 0, 0, 0, 0, os.readlink(path)]
    kind = "d" if stat.S_ISDIR(st.st_mode) else "f"
    return [kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, stat.S_IMODE(st.st_mode), ""]


def scan(root: Path) -> dict[str, list[Any]]:
    """Every entry under ``root`` but the skipped ones: relative path -> its entry (symlinks not followed)."""
    out: dict[str, list[Any]] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(root / rel_dir if rel_dir else root)
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if _skipped(rel):
                    continue
                st = e.stat(follow_symlinks=False)
                out[rel] = _entry(st, e.path)
                if out[rel][0] == "d":
                    stack.append(rel)
    return out


def _same(a: list[Any], b: list[Any]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "l":
        return a[6] == b[6]
    if a[0] == "d":
        return a[5] == b[5]
    return a[1:5] == b[1:5] and a[5] == b[5]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class HostCheckpoints:
    """The checkpoints of one host (module docstring). Call with the host's command lock held."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.root = host.state / FOLDER

    def _dir(self, name: str) -> Path:
        return self.root / name

    def take(self, name: str) -> tuple[int, int]:
        """Keep the host as it is under ``name``; returns (entries, bytes copied)."""
        dest = self._dir(name)
        if (dest / "manifest.json").exists():
            raise SnapLabError(E.CHECKPOINT_EXISTS, name=name)
        tmp = self.root / f".{name}.tmp"
        _remove(tmp)
        (tmp / "files").mkdir(parents=True)
        state = self.host.state
        manifest = scan(state)
        copied = 0
        for rel, e in sorted(manifest.items()):
            if e[0] == "f":
                target = tmp / "files" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(state / rel, target)
                copied += e[1]
        with self.host._db_lock:
            out = sqlite3.connect(tmp / "host.db")
            try:
                self.host.db.conn.backup(out)
            finally:
                out.close()
        memory = {"sessions": self.host.fs.sessions, "kept": getattr(self.host.fs, "kept", {})}
        (tmp / "memory.pickle").write_bytes(pickle.dumps(memory))
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        _remove(dest)
        os.replace(tmp, dest)
        return len(manifest), copied

    def rollback(self, name: str) -> tuple[int, int]:
        """The host's folder, host.db and sessions as ``name`` kept them; returns (entries changed,
        bytes copied back)."""
        src = self._dir(name)
        try:
            manifest: dict[str, list[Any]] = json.loads((src / "manifest.json").read_text())
            memory = pickle.loads((src / "memory.pickle").read_bytes())
        except FileNotFoundError:
            raise SnapLabError(E.CHECKPOINT_NOT_FOUND, name=name) from None
        state = self.host.state
        now = scan(state)
        changed, copied = 0, 0
        # what is not as it was goes first (deepest first, so a folder goes after its entries)
        for rel in sorted(now, key=lambda r: r.count("/"), reverse=True):
            old = manifest.get(rel)
            if old is None or old[0] != now[rel][0]:
                _remove(state / rel)
                changed += 1
        for rel in sorted(manifest, key=lambda r: r.count("/")):
            old = manifest[rel]
            cur = now.get(rel)
            if cur is not None and _same(old, cur):
                continue
            path = state / rel
            changed += 1
            if old[0] == "d":
                path.mkdir(exist_ok=True)
                os.chmod(path, old[5])
            elif old[0] == "l":
                _remove(path)
                os.symlink(old[6], path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.ckpt")
                shutil.copy2(src / "files" / rel, tmp)
                os.replace(tmp, path)
                copied += old[1]
                manifest[rel] = _entry(os.stat(path, follow_symlinks=False), str(path))
        if changed:  # restored files have new inodes and times: the manifest says what is there now
            (src / "manifest.json").write_text(json.dumps(manifest))
        with self.host._db_lock:
            saved = sqlite3.connect(src / "host.db")
            try:
                saved.backup(self.host.db.conn)
            finally:
                saved.close()
        self.host.fs.sessions = memory["sessions"]
        if hasattr(self.host.fs, "kept"):
            self.host.fs.kept = memory["kept"]
        self.host._view = None
        return changed, copied

    def delete(self, name: str) -> None:
        d = self._dir(name)
        if not (d / "manifest.json").exists():
            raise SnapLabError(E.CHECKPOINT_NOT_FOUND, name=name)
        shutil.rmtree(d)
