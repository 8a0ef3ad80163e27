"""Hidden lab checkpoints of the array: an undo log of array.db and pinned physical blocks (issue 10).

A checkpoint must cost what changed since it, not what the array holds. The array never writes a
physical block in place (blockstore.py): a write maps a fresh block and frees the old one, so the
bytes a checkpoint saw stay where they are as long as their blocks are not handed out again. So a
checkpoint is two things:

- a position in an undo log of array.db: while any checkpoint exists, triggers on every table
  append the statement that undoes each row change (``ckpt_undo``); rollback runs those after the
  position, newest first, in one transaction, and reloads the memory state;
- a pin on the physical blocks it maps: a block freed while a checkpoint still maps it is not
  reused (``_ckpt_pinned``); blocks allocated after the checkpoint are freed as before.

A data file that would be emptied (an LD unbound, rebound, or cleared of a BV failure) is moved
aside instead (``data/ckpt/ld_XXXX.<position>.dat``) and moved back by a rollback that needs it.

None of it is visible to hosts or the guide's commands: no generation, epoch, SRA charge or LD is
added (iSMsc_query, Describe and the metrics answer exactly as without checkpoints). Rolling back
to a checkpoint keeps it (a test suite's fixture rolls back to the same one again and again) and
drops the checkpoints taken after it. Deleting the last checkpoint drops the triggers, the log and
the pins. The names are the deployment's (deploy/checkpoints.py); the array only keeps them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import ClassVar

from snaplab.common.errors import E, SnapLabError

from . import durability
from .blockstore import Family

log = logging.getLogger("snaplab.array")

PREFIX = "ckpt_"  # the checkpoint tables and triggers: never logged themselves
STASH = "ckpt"  # data/ckpt/: data files a checkpoint still needs
_STASH_RE = re.compile(r"ld_([0-9a-f]{4})\.(\d+)\.dat")


def pinned(all_bases: list[dict[int, tuple[int, frozenset[int]]]], ld: int, pblock: int) -> bool:
    """Whether some checkpoint of ``all_bases`` maps physical block ``pblock`` of family ``ld``."""
    for bases in all_bases:
        base = bases.get(ld)
        if base is not None and pblock < base[0] and pblock not in base[1]:
            return True
    return False


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class CheckpointMixin:
    """``checkpoint_take``/``checkpoint_rollback``/``checkpoint_delete``/``checkpoints`` (module docstring).

    A mixin of ``ArrayEngine`` (engine.py): its ``_tx``, ``_load`` and free-block bookkeeping call
    ``_ckpt_pinned`` and ``_ckpt_discard``; everything else lives here."""

    # per checkpoint (oldest first): {family: (hw, frozenset(free blocks))} as it was taken
    _ckpt_bases: ClassVar[list[dict[int, tuple[int, frozenset[int]]]]] = []  # set per engine by _load

    # -- tables ----------------------------------------------------------------------------------
    @staticmethod
    def _ckpt_create_tables(db) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS ckpt_points (name TEXT PRIMARY KEY, mark INTEGER, taken REAL, bases TEXT)"
        )
        # AUTOINCREMENT: a position is never used twice, even after the log is trimmed or cut back
        db.execute("CREATE TABLE IF NOT EXISTS ckpt_undo (seq INTEGER PRIMARY KEY AUTOINCREMENT, sql TEXT)")

    @staticmethod
    def _ckpt_read_bases(q) -> list[dict[int, tuple[int, frozenset[int]]]]:
        out = []
        for (bases,) in q("SELECT bases FROM ckpt_points ORDER BY mark, taken"):
            out.append({int(k): (v[0], frozenset(v[1])) for k, v in json.loads(bases).items()})
        return out

    def _ckpt_pinned(self, ld: int, pblock: int) -> bool:
        """A checkpoint maps this physical block (it existed then and was not free): do not reuse it."""
        return pinned(self._ckpt_bases, ld, pblock)

    def _ckpt_mark(self) -> int:
        """The log's position now: the last sequence number it ever gave (not its last row: the log
        is trimmed by deletes and cut back by rollbacks, and positions must only grow)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='ckpt_undo'").fetchone()
        return int(row[0]) if row else 0

    # -- the undo log's triggers -------------------------------------------------------------------
    def _ckpt_tables(self) -> list[str]:
        rows = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE ?",
            [PREFIX + "%"],
        ).fetchall()
        return [r[0] for r in rows]

    def _ckpt_triggers(self) -> None:
        """One trigger per table and change (insert, update, delete) that logs the statement undoing it."""
        for table in self._ckpt_tables():
            info = self.db.execute(f"PRAGMA table_info({_q(table)})").fetchall()
            cols = [r[1] for r in info]
            pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
            rowid = not pk
            key = pk or ["rowid"]
            names = (["rowid"] if rowid else []) + cols
            tq = _q(table).replace("'", "''")

            def where(side: str, key: list[str] = key) -> str:
                return " || ' AND ' || ".join(f"'{_q(k)} IS ' || quote({side}.{_q(k)})" for k in key)

            values = " || ',' || ".join(f"quote(OLD.{_q(c)})" for c in names)
            insert_old = (
                f"'INSERT OR REPLACE INTO {tq}({','.join(_q(c) for c in names)}) VALUES (' || {values} || ')'"
            )
            delete_new = f"'DELETE FROM {tq} WHERE ' || {where('NEW')}"
            changed = " OR ".join(f"NEW.{_q(k)} IS NOT OLD.{_q(k)}" for k in key)
            base = PREFIX + table
            self.db.execute(
                f"CREATE TRIGGER IF NOT EXISTS {_q(base + '_i')} AFTER INSERT ON {_q(table)} BEGIN "
                f"INSERT INTO ckpt_undo(sql) VALUES ({delete_new}); END"
            )
            self.db.execute(
                f"CREATE TRIGGER IF NOT EXISTS {_q(base + '_u')} AFTER UPDATE ON {_q(table)} BEGIN "
                f"INSERT INTO ckpt_undo(sql) VALUES ({insert_old}); "
                f"INSERT INTO ckpt_undo(sql) SELECT {delete_new} WHERE {changed}; END"
            )
            self.db.execute(
                f"CREATE TRIGGER IF NOT EXISTS {_q(base + '_d')} AFTER DELETE ON {_q(table)} BEGIN "
                f"INSERT INTO ckpt_undo(sql) VALUES ({insert_old}); END"
            )

    def _ckpt_drop_triggers(self) -> None:
        rows = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='trigger' AND name LIKE ?", [PREFIX + "%"]
        ).fetchall()
        for (name,) in rows:
            self.db.execute(f"DROP TRIGGER IF EXISTS {_q(name)}")

    def _ckpt_start(self) -> None:
        """At engine start: a table made since the checkpoints were taken (a newer schema) is logged too."""
        self._ckpt_create_tables(self.db)
        if self.db.execute("SELECT 1 FROM ckpt_points LIMIT 1").fetchone():
            with self._tx():
                self._ckpt_triggers()

    # -- data files ------------------------------------------------------------------------------
    @property
    def _ckpt_stash(self) -> Path:
        return self.data_dir / STASH

    def _ckpt_discard(self, path: str, fam: Family | None = None) -> None:
        """Empty an LD's data file; while checkpoints exist, move it aside for them instead (``fam``:
        the family whose open file it is, reopened empty)."""
        if not self._ckpt_bases:
            os.truncate(path, 0)
            return
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            return
        self._ckpt_stash.mkdir(exist_ok=True)
        name = Path(path).name.removesuffix(".dat")
        os.rename(path, self._ckpt_stash / f"{name}.{self._ckpt_mark()}.dat")
        self._new_files = True
        durability.sync_dir(self._ckpt_stash)
        if fam is not None:
            fam.close()
            fam.open()

    def _ckpt_unstash(self, mark: int) -> int:
        """Move back the data files the state at ``mark`` had (the first one set aside after it, per
        LD); drop the later ones. Returns how many came back."""
        if not self._ckpt_stash.is_dir():
            return 0
        later: dict[str, list[tuple[int, Path]]] = {}
        for p in self._ckpt_stash.iterdir():
            m = _STASH_RE.fullmatch(p.name)
            if m and int(m.group(2)) > mark:
                later.setdefault(m.group(1), []).append((int(m.group(2)), p))
        for ld_hex, files in later.items():
            files.sort()
            os.replace(files[0][1], self.data_dir / f"ld_{ld_hex}.dat")
            for _, p in files[1:]:
                p.unlink(missing_ok=True)
        return len(later)

    # -- operations ------------------------------------------------------------------------------
    def checkpoints(self) -> list[dict]:
        """The checkpoints the array keeps, oldest first: name, position, time taken."""
        with self._state():
            rows = self.db.execute(
                "SELECT name, mark, taken FROM ckpt_points ORDER BY mark, taken"
            ).fetchall()
        return [{"name": n, "mark": m, "taken": t} for n, m, t in rows]

    def checkpoint_take(self, name: str) -> dict:
        """Remember the whole array as it is now under ``name`` (O(families): a position and pins)."""
        with self._tx():
            if self.db.execute("SELECT 1 FROM ckpt_points WHERE name=?", [name]).fetchone():
                raise SnapLabError(E.CHECKPOINT_EXISTS, name=name)
            self._ckpt_triggers()
            mark = self._ckpt_mark()
            bases = {fam.ld: (fam.hw, frozenset(fam.free)) for fam in self.families.values()}
            taken = time.time()
            self.db.execute(
                "INSERT INTO ckpt_points VALUES (?,?,?,?)",
                [name, mark, taken, json.dumps({k: [hw, sorted(free)] for k, (hw, free) in bases.items()})],
            )
            self._ckpt_bases = [*self._ckpt_bases, bases]
        log.info("checkpoint %s taken (undo position %d)", name, mark)
        return {"name": name, "mark": mark, "taken": taken, "changes": 0}

    def checkpoint_rollback(self, name: str) -> dict:
        """The whole array back to checkpoint ``name``: undo every row change since, newest first,
        bring back data files set aside since, reload. Checkpoints taken after it are dropped."""
        with self._lock:
            return self._rollback(name)

    def _rollback(self, name: str) -> dict:
        with self._tx():
            row = self.db.execute("SELECT mark, taken FROM ckpt_points WHERE name=?", [name]).fetchone()
            if row is None:
                raise SnapLabError(E.CHECKPOINT_NOT_FOUND, name=name)
            mark, taken = int(row[0]), float(row[1])
            top = self._ckpt_mark()
            undo = self.db.execute(
                "SELECT sql FROM ckpt_undo WHERE seq > ? AND seq <= ? ORDER BY seq DESC", [mark, top]
            ).fetchall()
            for (sql,) in undo:
                self.db.execute(sql)
            # the replay logged its own undo rows (after ``top``): the log ends at the checkpoint again
            self.db.execute("DELETE FROM ckpt_undo WHERE seq > ?", [mark])
            self.db.execute(
                "DELETE FROM ckpt_points WHERE mark > ? OR (mark = ? AND taken > ?)", [mark, mark, taken]
            )
            files = self._ckpt_unstash(mark)
            if files:
                self._new_files = True
        # The memory state is the database's again (families' files reopened, free lists without pins).
        self._load()
        self._cond.notify_all()
        log.info(
            "rolled back to checkpoint %s: %d changes undone, %d data files back", name, len(undo), files
        )
        return {"name": name, "mark": mark, "taken": taken, "changes": len(undo)}

    def checkpoint_delete(self, name: str) -> None:
        """Forget checkpoint ``name``; with the last one go the triggers, the log, the pins and the
        data files set aside."""
        with self._lock, self._tx():
            if self.db.execute("SELECT 1 FROM ckpt_points WHERE name=?", [name]).fetchone() is None:
                raise SnapLabError(E.CHECKPOINT_NOT_FOUND, name=name)
            self.db.execute("DELETE FROM ckpt_points WHERE name=?", [name])
            first = self.db.execute("SELECT MIN(mark) FROM ckpt_points").fetchone()[0]
            if first is None:
                self._ckpt_drop_triggers()
                self.db.execute("DELETE FROM ckpt_undo")
            else:  # the log before the oldest checkpoint left undoes nothing anyone can roll back to
                self.db.execute("DELETE FROM ckpt_undo WHERE seq <= ?", [int(first)])
            # blocks the dropped checkpoint alone pinned are free again (reload, under the same lock)
            self._load()
        if not self._ckpt_bases:
            for p in self._ckpt_stash.glob("*.dat") if self._ckpt_stash.is_dir() else []:
                p.unlink(missing_ok=True)
        durability.sync_dir(self.data_dir)
