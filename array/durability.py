"""The array's durability points (power loss), and two debug hooks on them for the crash tests.

What a transaction makes durable before it is acknowledged (engine.py ``_tx``): the data files it
wrote (``fdatasync``), the data folder when it created a file in it (``fsync`` of the folder), then
its COMMIT, which SQLite syncs to the log before returning (store.py: WAL, ``synchronous=FULL``).

Debug hooks, each enabled only by an environment variable the tests set (never in a lab):

``SNAPLAB_DEBUG_POWERCUT=DIR``
    DIR holds, at every moment, what a power cut would leave of the state folder if the machine lost
    every write not yet synced: each data file as of its last ``fdatasync`` (and only once its folder
    was synced after it was created: before that, a power cut loses the file itself), and
    ``array.db``/``-wal`` as of the last COMMIT, credited only when the connection really runs
    ``synchronous=FULL`` (else only what was there at start). Each file is replaced atomically, the
    database pair through a symlink (``DIR/db``), so a SIGKILL never leaves a torn image.
    ``python -m harness.power_cut`` starts a daemon on this image (tests/harness/power_cut.py).
``SNAPLAB_DEBUG_COMMIT_PAUSE=DIR``
    When ``DIR/arm`` exists, the next transaction renames it ``DIR/paused`` once its data is synced
    and just before its COMMIT, and sleeps: the crash harness kills the daemon there, inside the
    commit window.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import Any

_POWERCUT = os.environ.get("SNAPLAB_DEBUG_POWERCUT")
_COMMIT_PAUSE = os.environ.get("SNAPLAB_DEBUG_COMMIT_PAUSE")
PAUSE_SECONDS = 30.0  # longer than any harness waits to kill a paused daemon

DB_FILES = ("array.db", "array.db-wal")


def sync_dir(path: Path) -> None:
    """``fsync`` a folder: the files created in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if _POWERCUT is not None:
        _image.dir_synced(Path(path))


def synced_file(path: str) -> None:
    """A data file was just ``fdatasync``ed (blockstore.Family.sync)."""
    if _POWERCUT is not None:
        _image.file_synced(Path(path))


def at_commit(engine: Any) -> None:
    """Just before COMMIT, the data synced: where the commit-pause hook stops."""
    if _COMMIT_PAUSE is not None:
        arm = Path(_COMMIT_PAUSE) / "arm"
        with contextlib.suppress(FileNotFoundError):
            os.replace(arm, arm.with_name("paused"))
            time.sleep(PAUSE_SECONDS)


def committed(engine: Any) -> None:
    """COMMIT returned (or the database was opened): the database as SQLite made it durable."""
    if _POWERCUT is not None:
        _image.db_committed(engine)


class _PowerCutImage:
    """DIR as the ``SNAPLAB_DEBUG_POWERCUT`` hook keeps it (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.pending = root / "pending"  # synced content of files whose folder entry is not durable yet
        self.durable_names: set[str] | None = None  # data files whose folder entry is durable
        self.full: bool | None = None
        self.seq = itertools.count()

    def _start(self, state: Path) -> None:
        """At the daemon's start the state folder is as durable as it is (the tests start it clean)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.data.mkdir(parents=True)
        self.pending.mkdir()
        for f in (state / "data").iterdir():
            shutil.copyfile(f, self.data / f.name)
        self.durable_names = {f.name for f in self.data.iterdir()}
        self._copy_db(state)

    def _copy_db(self, state: Path) -> None:
        n = next(self.seq)
        target = self.root / f"db.{os.getpid()}.{n}"
        target.mkdir()
        for name in DB_FILES:
            if (state / name).exists():
                shutil.copyfile(state / name, target / name)
        link = self.root / f".db.{n}.tmp"
        os.symlink(target.name, link)
        old = os.readlink(self.root / "db") if (self.root / "db").is_symlink() else None
        os.replace(link, self.root / "db")  # atomic: the image is the old pair or the new one
        if old:
            shutil.rmtree(self.root / old, ignore_errors=True)

    @staticmethod
    def _put(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def file_synced(self, path: Path) -> None:
        if self.durable_names is None:
            return
        if path.name in self.durable_names:
            self._put(path, self.data / path.name)
        else:
            self._put(path, self.pending / path.name)

    def dir_synced(self, path: Path) -> None:
        if self.durable_names is None or path.name != "data":
            return
        names = {f.name for f in path.iterdir()}
        for name in names - self.durable_names:  # entries durable now: with their synced content, or empty
            src = self.pending / name
            if src.exists():
                os.replace(src, self.data / name)
            else:
                (self.data / name).touch()
        self.durable_names |= names

    def db_committed(self, engine: Any) -> None:
        if self.durable_names is None:
            self._start(Path(engine.dir))
            self.full = engine.db.execute("PRAGMA synchronous").fetchone()[0] >= 2
            return
        if self.full:
            self._copy_db(Path(engine.dir))


_image = _PowerCutImage(Path(_POWERCUT)) if _POWERCUT is not None else None  # type: ignore[arg-type]
