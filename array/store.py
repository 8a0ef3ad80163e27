"""The array's SQLite metadata file (sqlite-utils for the schema; plain SQL inside transactions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from . import groups, holds, sra_policy

SCHEMA_VERSION = 1


def open_db(path: Path) -> sqlite_utils.Database:
    # Autocommit connection: every mutation runs inside an explicit BEGIN IMMEDIATE ... COMMIT of ours,
    # so one operation is one atomic transaction (sqlite-utils' own `with conn:` is never used for writes).
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    # WAL + synchronous=FULL: SQLite syncs the log before COMMIT returns, so an acknowledged change
    # survives a power cut, not only kill -9 of the daemon (README "Durability"; the data a
    # transaction maps is synced before its COMMIT: engine._tx).
    # The WAL index stays a shared -shm file (not locking_mode=EXCLUSIVE's heap copy): the crash tests
    # read array.db beside the running daemon. SQLite allocates each -shm page by writing it before
    # mapping it, so a full or read-only file system is an error code (storage.py), not a SIGBUS.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=OFF")
    _create_schema(db)
    return db


def _create_schema(db: sqlite_utils.Database) -> None:
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
