"""The array's SQLite metadata file: plain SQL (the schema is what sqlite-utils made before, so a
state written by an earlier version opens unchanged; sqlite-utils itself is not imported: it and what it
pulls in cost the daemon's start ~0.3 s, and the restart is on the clock, issue 12)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import groups, holds, sra_policy

SCHEMA_VERSION = 1


_TYPES = {int: "INTEGER", str: "TEXT", bytes: "BLOB", float: "FLOAT"}


class Db:
    """The connection with the two names the engine uses: ``execute`` (a cursor) and ``conn``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def table(self, name: str) -> _Table:
        return _Table(self, name)


class _Table:
    """``create(columns, pk=, if_not_exists=)`` and ``columns_dict``, as sqlite-utils spelled them."""

    def __init__(self, db: Db, name: str) -> None:
        self.db, self.name = db, name

    def create(self, columns: dict, pk: str | tuple[str, ...], if_not_exists: bool = True) -> None:
        cols = []
        for col, typ in columns.items():
            cols.append(f'   "{col}" {_TYPES[typ]}' + (" PRIMARY KEY" if pk == col else ""))
        if isinstance(pk, tuple):
            cols.append("   PRIMARY KEY (" + ", ".join(f'"{x}"' for x in pk) + ")")
        maybe = "IF NOT EXISTS " if if_not_exists else ""
        self.db.execute(f'CREATE TABLE {maybe}"{self.name}" (\n' + ",\n".join(cols) + "\n)")

    @property
    def columns_dict(self) -> dict[str, str]:
        return {r[1]: r[2] for r in self.db.execute(f'PRAGMA table_info("{self.name}")')}


def open_db(path: Path) -> Db:
    # Autocommit connection: every mutation runs inside an explicit BEGIN IMMEDIATE ... COMMIT of ours,
    # so one operation is one atomic transaction (sqlite-utils' own `with conn:` is never used for writes).
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db = Db(conn)
    # WAL + synchronous=FULL: SQLite syncs the log before COMMIT returns, so an acknowledged change
    # survives a power cut, not only kill -9 of the daemon (README "Durability"; the data a
    # transaction maps is synced before its COMMIT: engine._tx).
    # The WAL index stays a shared -shm file (not locking_mode=EXCLUSIVE's heap copy): the crash tests
    # read array.db beside the running daemon. SQLite allocates each -shm page by writing it before
    # mapping it, so a full or read-only file system is an error code (storage.py), not a SIGBUS.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=OFF")
    # As sqlite-utils set it: a REPLACE's implicit delete fires the delete triggers, which the
    # checkpoints' undo log needs (checkpoints.py: INSERT OR REPLACE of a row must be undone to it).
    conn.execute("PRAGMA recursive_triggers=ON")
    _create_schema(db)
    return db


def _create_schema(db: Db) -> None:
    t = db.table
    t("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    t("pools").create({"number": int, "name": str, "kind": str, "capacity": int}, pk="number", if_not_exists=True)
    t("ports").create({"director": int, "port": int, "name": str}, pk=("director", "port"), if_not_exists=True)
    t("lds").create(
        {
            "number": int,
            "name": str,
            "type": str,  # IV, BV, SV, LV, SDV, CV
            "format": str,
            "capacity": int,
            "pool": int,
            "attr": str,  # iv, cv, mv, rv
            "bv": int,  # SV and LV: the BV they belong to
            "seq": int,  # SV: position in the BV's SV set
            "signature": bytes,  # LV: the managed disk signature it gives a linked SV
            "link_lost": int,  # LV: unlinked by the array because its snapshot was deleted (SRA full)
        },
        pk="number",
        if_not_exists=True,
    )
    t("families").create(
        {"ld": int, "cur_epoch": int, "hw": int, "bv_failed": int}, pk="ld", if_not_exists=True
    )
    # The block maps are the hot tables: clustered on their key (WITHOUT ROWID) so an insert touches
    # one B-tree instead of a rowid table plus a key index.
    db.execute(
        "CREATE TABLE IF NOT EXISTS blocks (family INTEGER, lblock INTEGER, epoch INTEGER, pblock INTEGER,"
        " PRIMARY KEY (family, lblock, epoch)) WITHOUT ROWID"
    )
    # The logical blocks with more than one version (blockstore.py: what a restart reads of the maps).
    # A state from before it gets it filled once, from the maps.
    new_kept = not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='kept'").fetchone()
    db.execute("CREATE TABLE IF NOT EXISTS kept (family INTEGER, lblock INTEGER, PRIMARY KEY (family, lblock)) WITHOUT ROWID")
    if new_kept:
        db.execute("INSERT OR IGNORE INTO kept SELECT family, lblock FROM blocks GROUP BY family, lblock HAVING COUNT(*) > 1")
    db.execute(
        "CREATE TABLE IF NOT EXISTS overlay (sv INTEGER, lblock INTEGER, pblock INTEGER,"
        " PRIMARY KEY (sv, lblock)) WITHOUT ROWID"
    )
    # restore.py: which version's bytes a BV block holds since a restore copied it (Family.src)
    db.execute(
        "CREATE TABLE IF NOT EXISTS restored (family INTEGER, lblock INTEGER, epoch INTEGER,"
        " PRIMARY KEY (family, lblock)) WITHOUT ROWID"
    )
    t("gens").create(
        {
            "sv": int,
            "state": str,
            "epoch": int,
            "state_time": str,
            "create_time": str,
            "guard": int,
            "orig_signature": bytes,
            "fault": int,
        },
        pk="sv",
        if_not_exists=True,
    )
    t("links").create({"lv": int, "kind": str, "target": int, "mode": str}, pk="lv", if_not_exists=True)
    t("restores").create(
        {"bv": int, "sv": int, "total": int, "started": str, "signature": bytes}, pk="bv", if_not_exists=True
    )
    t("restore_pending").create({"bv": int, "lblock": int}, pk=("bv", "lblock"), if_not_exists=True)
    t("hosts").create(
        {"name": str, "wwns": str, "ports": str, "platform": str, "initiators": str}, pk="name", if_not_exists=True
    )
    if "initiators" not in t("hosts").columns_dict:  # an array.db from before iSCSI LD sets
        db.execute("ALTER TABLE hosts ADD COLUMN initiators TEXT")
    # data replication (replication.py): blocks a running copy has still to copy, blocks changed since separation
    t("rpl_pending").create({"rv": int, "lblock": int}, pk=("rv", "lblock"), if_not_exists=True)
    t("rpl_diff").create({"rv": int, "lblock": int}, pk=("rv", "lblock"), if_not_exists=True)
    t("access").create({"path": str, "ld": int}, pk=("path", "ld"), if_not_exists=True)
    t("licences").create({"product": str, "capacity": int}, pk="product", if_not_exists=True)
    # cluster shared disks' owners (reservations.py)
    t("reservations").create({"ld": int, "host": str}, pk="ld", if_not_exists=True)
    t("faults").create({"kind": str, "target": str}, pk=("kind", "target"), if_not_exists=True)
    sra_policy.create_tables(db)  # SnapLab extension (issue 14)
    holds.create_tables(db)
    groups.create_tables(db)
    db.execute("CREATE INDEX IF NOT EXISTS blocks_by_epoch ON blocks(family, epoch)")
    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", [str(SCHEMA_VERSION)])
