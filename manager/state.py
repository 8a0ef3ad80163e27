"""The manager's state in SQLite (``<state>/manager.db``): host definitions, enrolled hosts and the event log."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from time import time as wall_clock
from pathlib import Path

import sqlite_utils

from snaplab.common.validation import shown

DB_FILE = "manager.db"
CLASSIFICATIONS = ("INFO", "NOTICE", "WARNING", "ERROR")
HOST_ROLES = ("business", "backup", "test", "standby")
CLUSTER_ROLES = ("", "active", "standby")
MAX_EVENTS_PER_READ = 10_000
CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints (by a background thread) while events come in
# Seconds a look-up's event (``durable=False``) may wait before the writer thread commits it, with
# every other one logged meanwhile, in one transaction: a routed query then costs no commit of its own.
FLUSH_INTERVAL = 0.02  # seconds; at 1,000 look-ups/s one commit carries ~20 events, not ~3
WAL_SIZE_LIMIT = 8 * 1024 * 1024  # bytes the WAL file keeps on disk between checkpoints
# Characters an event keeps of each field (longer ones are cut, unprintable characters escaped): an
# event costs at most a few KiB of manager.db whatever a request carried, and a page of the log
# (MAX_EVENTS_PER_READ events) always fits in one reply.
EVENT_LIMITS = {"source": 64, "operation": 32, "msg_id": 16, "text": 1024}
_CUT_MARK_ROOM = 32  # a stored field may end in "...(N characters)" beyond its limit

log = logging.getLogger("snaplab.manager")


_NOW_TEXT: tuple[int, str] = (-1, "")  # the last second formatted: every routed op logs an event


def now_text() -> str:
    """The event log's time form (SPEC §8 and the guide): ``yyyy/mm/dd hh:mm:ss``."""
    global _NOW_TEXT
    second = int(wall_clock())
    if _NOW_TEXT[0] != second:
        _NOW_TEXT = (second, datetime.fromtimestamp(second).strftime("%Y/%m/%d %H:%M:%S"))
    return _NOW_TEXT[1]


@dataclass(frozen=True)
class HostRecord:
    """One enrolled host. ``name`` comes from its certificate, the rest from its Enrol request."""

    name: str
    role: str
    platform: str = "windows"
    wwns: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    cluster: str = ""
    cluster_role: str = ""
    enrolled: str = ""

    @property
    def paths(self) -> frozenset[str]:
        """The access-control paths of the host, in the array's form (``wwn:…``, ``port:…``)."""
        return frozenset({f"wwn:{w.lower()}" for w in self.wwns} | {f"port:{p}" for p in self.ports})


@dataclass(frozen=True)
class HostDefinition:
    """A host as the lab's configuration defines it on one array (``iSMcfg hostadd``, a lab file's
    ``[[hosts]]``): its HBAs' WWNs and the array ports it is cabled to. Enrolment takes these, never
    what the host's request claims (SPEC B2)."""

    array: str  # the array's key (``--array KEY=...``)
    name: str
    wwns: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    platform: str = "windows"
    cluster: str = ""  # the cluster the configuration makes the host a node of ("" none)


@dataclass(frozen=True)
class EventRecord:
    """One line of the event log."""

    seq: int
    time: str
    source: str
    classification: str
    operation: str
    msg_id: str
    text: str


@dataclass
class _Waiters:
    cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    last_seq: int = 0
    closed: bool = False


class ManagerState:
    """The hosts the manager knows and its event log, kept in ``<state>/manager.db``.

    Rules it keeps:

    - A host definition is keyed by (array, host name) and written only by an admin's configuration
      (``define_host``); defining again replaces it.
    - A host is keyed by the name in its certificate; enrolling again replaces its record (role,
      platform, WWNs, ports, cluster) and its enrolment time, never another host's.
    - Events are append-only: each gets the next sequence number (1, 2, …, never reused) and the
      time it was logged; the classification is one of INFO, NOTICE, WARNING, ERROR. Each field is
      stored and read in a bounded, escaped form (``EVENT_LIMITS``, ``validation.shown``).
    - Every write is one committed transaction before the method returns: a restart keeps it. The
      one exception is an event logged with ``durable=False`` (an operation that changed nothing: a
      look-up): it is committed by the writer thread within ``FLUSH_INTERVAL``, with the others
      waiting then, in one transaction, or before that by the next write or read of the log
      (pending events first, so the log keeps its order); its sequence number is known, and the
      watchers woken, when it is committed. A manager killed in between loses only such look-up
      events, never a state change's.
    - All methods are thread-safe. ``wait_events`` blocks until an event newer than a sequence
      number exists, a timeout passes, or ``close()``/``wake()`` is called — so a live watcher never
      blocks shutdown; ``add_listener`` callbacks run after every event (event-loop watchers).
    - The database is this process's alone (the daemon locks the state folder): enrolled hosts are
      also kept in memory, so looking one up reads no table.
    - Writes never wait for a WAL checkpoint (the fsyncs that copy the log into the database
      file): a background thread runs them, at most every ``CHECKPOINT_INTERVAL`` seconds, on its
      own connection. Commits are as durable as before (WAL, ``synchronous=NORMAL``: a committed
      write survives the process dying; the fsync at checkpoint covers power loss).
    """

    def __init__(self, state_dir: str | Path, *, clock: Callable[[], str] = now_text) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        conn = sqlite3.connect(str(self.dir / DB_FILE), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # _checkpoints() does them, off the request path
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # the WAL shrinks back on restart
        self.db = sqlite_utils.Database(conn)
        self.db.table("hosts").create(
            {
                "name": str,
                "role": str,
                "platform": str,
                "wwns": str,  # JSON list
                "ports": str,  # JSON list
                "cluster": str,
                "cluster_role": str,
                "enrolled": str,
            },
            pk="name",
            if_not_exists=True,
        )
        self.db.table("host_definitions").create(
            {"array": str, "name": str, "wwns": str, "ports": str, "platform": str, "cluster": str},
            pk=("array", "name"),
            if_not_exists=True,
        )
        if "cluster" not in self.db.table("host_definitions").columns_dict:  # a state from before clusters
            conn.execute("ALTER TABLE host_definitions ADD COLUMN cluster TEXT DEFAULT ''")
        self.db.table("events").create(
            {
                "seq": int,
                "time": str,
                "source": str,
                "classification": str,
                "operation": str,
                "msg_id": str,
                "text": str,
            },
            pk="seq",
            if_not_exists=True,
        )
        # the last of each array's own events copied into the log (observe.py; SnapLab extension, issue 14)
        conn.execute("CREATE TABLE IF NOT EXISTS array_events_seen (array TEXT PRIMARY KEY, seq INTEGER)")
        self._waiters = _Waiters()
        row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        self._waiters.last_seq = int(row[0] or 0)
        self._pending: list[tuple[object, ...]] = []  # events logged durable=False, not yet committed
        self._flush_wanted = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self._hosts = {r["name"]: _host(r) for r in self.db.query("SELECT * FROM hosts")}
        self._definitions = {
            (r["array"], r["name"]): _definition(r) for r in self.db.query("SELECT * FROM host_definitions")
        }
        self._dirty = threading.Event()  # written since the last checkpoint
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="manager-db-checkpoint", daemon=True
        )
        self._checkpointer.start()
        self._flusher = threading.Thread(target=self._flushes, name="manager-db-events", daemon=True)
        self._flusher.start()

    def reload(self) -> None:
        """The enrolled hosts and definitions from manager.db again (after a lab rollback rewrote them)."""
        with self._lock:
            self._hosts = {r["name"]: _host(r) for r in self.db.query("SELECT * FROM hosts")}
            self._definitions = {
                (r["array"], r["name"]): _definition(r) for r in self.db.query("SELECT * FROM host_definitions")
            }

    # -- host definitions ----------------------------------------------------------------------------
    def define_host(
        self,
        array: str,
        name: str,
        *,
        wwns: list[str] | tuple[str, ...] = (),
        ports: list[str] | tuple[str, ...] = (),
        platform: str = "windows",
        cluster: str = "",
    ) -> HostDefinition:
        """Record (or replace) how the configuration defines host ``name`` on ``array`` (with the
        cluster it makes the host a node of, if any)."""
        d = HostDefinition(array, name, tuple(w.lower() for w in wwns), tuple(ports), platform, cluster)
        with self._lock:
            self._write(
                "INSERT OR REPLACE INTO host_definitions(array, name, wwns, ports, platform, cluster)"
                " VALUES (?,?,?,?,?,?)",
                [array, name, json.dumps(list(d.wwns)), json.dumps(list(d.ports)), platform, cluster],
            )
            self._definitions[(array, name)] = d
        return d

    def definitions(self, name: str | None = None) -> list[HostDefinition]:
        """The definitions of host ``name`` (every host's if None), by array and name."""
        with self._lock:
            found = [d for key, d in sorted(self._definitions.items()) if name is None or key[1] == name]
        return found

    # -- hosts -------------------------------------------------------------------------------------
    def enrol(
        self,
        name: str,
        role: str,
        *,
        platform: str = "windows",
        wwns: list[str] | tuple[str, ...] = (),
        ports: list[str] | tuple[str, ...] = (),
        cluster: str = "",
        cluster_role: str = "",
    ) -> HostRecord:
        """Record (or re-record) a host; returns the record as stored."""
        rec = HostRecord(
            name=name,
            role=role,
            platform=platform,
            wwns=tuple(w.lower() for w in wwns),
            ports=tuple(ports),
            cluster=cluster,
            cluster_role=cluster_role,
            enrolled=self._clock(),
        )
        row = {
            "name": rec.name,
            "role": rec.role,
            "platform": rec.platform,
            "wwns": json.dumps(list(rec.wwns)),
            "ports": json.dumps(list(rec.ports)),
            "cluster": rec.cluster,
            "cluster_role": rec.cluster_role,
            "enrolled": rec.enrolled,
        }
        with self._lock:
            self._write(
                "INSERT OR REPLACE INTO hosts(name, role, platform, wwns, ports, cluster, cluster_role, enrolled)"
                " VALUES (:name, :role, :platform, :wwns, :ports, :cluster, :cluster_role, :enrolled)",
                row,
            )
            self._hosts[rec.name] = rec
        return rec

    def host(self, name: str) -> HostRecord | None:
        """The enrolled host of that name, or None."""
        return self._hosts.get(name)

    def hosts(self) -> list[HostRecord]:
        """Every enrolled host, by name."""
        with self._lock:
            return [self._hosts[n] for n in sorted(self._hosts)]

    # -- events ------------------------------------------------------------------------------------
    def log_event(
        self,
        source: str,
        classification: str,
        operation: str,
        msg_id: str = "",
        text: str = "",
        *,
        durable: bool = True,
    ) -> EventRecord:
        """Append one event and wake every watcher; returns it with its sequence number.

        ``durable``: committed before this returns (with any pending before it); False (for an
        operation that changed nothing) leaves the commit to the writer thread (class docstring).
        A durable event that cannot be committed stays pending (the writer retries it) and the
        error is raised."""
        if classification not in CLASSIFICATIONS:
            raise ValueError(f"classification {classification!r} is not one of {CLASSIFICATIONS}")
        lim = EVENT_LIMITS
        source, operation = shown(source, lim["source"]), shown(operation, lim["operation"])
        msg_id, text = shown(msg_id, lim["msg_id"]), shown(text, lim["text"])
        with self._lock:
            time = self._clock()
            self._pending.append((time, source, classification, operation, msg_id, text))
            if not durable:
                self._flush_wanted.set()
                return EventRecord(0, time, source, classification, operation, msg_id, text)
            seq = self._flush_locked()
        return EventRecord(seq, time, source, classification, operation, msg_id, text)

    def array_event_seen(self, array: str) -> int:
        """The sequence number of the last of the array's own events already in the log (0: none)."""
        with self._lock:
            row = self.db.conn.execute("SELECT seq FROM array_events_seen WHERE array=?", [array]).fetchone()
        return int(row[0]) if row else 0

    def set_array_event_seen(self, array: str, seq: int) -> None:
        with self._lock:
            self._write("INSERT OR REPLACE INTO array_events_seen VALUES (?,?)", [array, seq])

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (in the logging thread) after every event is logged."""
        self._listeners.append(callback)

    def _flush_locked(self) -> int:
        """Commit the pending events in one transaction, in order (call with ``_lock`` held), wake
        the watchers, and return the last one's sequence number; on failure they stay pending and
        the error is raised."""
        if not self._pending:
            return 0
        rows, self._pending = self._pending, []
        try:
            seq = self._write_many(
                "INSERT INTO events(time, source, classification, operation, msg_id, text) VALUES (?,?,?,?,?,?)",
                rows,
            )
        except BaseException:
            self._pending = rows + self._pending
            raise
        with self._waiters.cond:
            self._waiters.last_seq = max(self._waiters.last_seq, seq)
            self._waiters.cond.notify_all()
        for listener in self._listeners:
            listener()
        return seq

    def flush(self) -> None:
        """Commit every pending (``durable=False``) event now."""
        with self._lock:
            self._flush_locked()

    def _flushes(self) -> None:
        """The writer thread: commits pending events ``FLUSH_INTERVAL`` after the first of them."""
        while True:
            self._flush_wanted.wait()
            if self._stop_checkpoints.wait(FLUSH_INTERVAL):
                return  # close() commits the rest
            self._flush_wanted.clear()
            try:
                self.flush()
            except sqlite3.Error as exc:  # busy or failing disk: they stay pending, tried again
                log.warning("cannot write events to %s: %s", DB_FILE, exc)
                self._flush_wanted.set()
                if self._stop_checkpoints.wait(CHECKPOINT_INTERVAL):
                    return

    def events(self, after_seq: int = 0, limit: int = 0) -> list[EventRecord]:
        """Events with ``seq > after_seq``, oldest first; at most ``limit`` (0: up to 10 000).
        Pending events are committed first, so a reader sees every event logged."""
        n = MAX_EVENTS_PER_READ if limit <= 0 else min(limit, MAX_EVENTS_PER_READ)
        # Read bounded too: a log written before the limits existed may hold huge fields, and NULs
        # (which end an SQLite text for substr and length): the head of each field's bytes is read.
        room = {f: m + _CUT_MARK_ROOM for f, m in EVENT_LIMITS.items()}
        fields = ", ".join(
            f"substr(CAST({f} AS BLOB), 1, {4 * m}) AS {f}, length(CAST({f} AS BLOB)) AS {f}_len"
            for f, m in room.items()
        )
        with self._lock:
            try:
                self._flush_locked()
            except sqlite3.Error as exc:  # still readable: the committed part of the log
                log.warning("cannot write events to %s: %s", DB_FILE, exc)
            rows = list(
                self.db.query(
                    f"SELECT seq, time, classification, {fields} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    [max(0, after_seq), n],
                )
            )
        out = []
        for r in rows:
            kept = {f: _bounded(r[f], r[f"{f}_len"], m) for f, m in room.items()}
            out.append(EventRecord(r["seq"], r["time"], classification=r["classification"], **kept))
        return out

    @property
    def last_seq(self) -> int:
        with self._waiters.cond:
            return self._waiters.last_seq

    def wait_events(self, after_seq: int, timeout: float, limit: int = 0) -> list[EventRecord]:
        """Events newer than ``after_seq``; if there are none yet, wait up to ``timeout`` seconds for one.

        Returns early (possibly empty) on ``wake()`` or ``close()``."""
        w = self._waiters
        with w.cond:
            if w.last_seq <= after_seq and not w.closed:
                w.cond.wait(timeout)
            if w.closed:
                return []
        return self.events(after_seq, limit)

    def wake(self) -> None:
        """Wake every ``wait_events`` caller (a watcher whose client went away re-checks and leaves)."""
        with self._waiters.cond:
            self._waiters.cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._waiters.closed

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Release every waiter, checkpoint and close the database."""
        with self._waiters.cond:
            self._waiters.closed = True
            self._waiters.cond.notify_all()
        self._stop_checkpoints.set()
        self._dirty.set()
        self._flush_wanted.set()
        self._checkpointer.join()
        self._flusher.join()
        with self._lock:
            try:
                self._flush_locked()
            except sqlite3.Error as exc:
                log.warning("cannot write events to %s: %s", DB_FILE, exc)
            try:
                self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("final checkpoint of %s failed: %s", DB_FILE, exc)
            self.db.conn.close()

    def _checkpoints(self) -> None:
        """Copy the WAL into the database file now and then, on a connection of this thread's own
        (PASSIVE: never blocks a writer; the next write after a full checkpoint restarts the WAL)."""
        conn = sqlite3.connect(str(self.dir / DB_FILE), isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._dirty.wait()
                if self._stop_checkpoints.wait(CHECKPOINT_INTERVAL):
                    return  # close() makes the last one
                self._dirty.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or failing disk: the WAL keeps the data; try again later
                    log.warning("checkpoint of %s failed: %s", DB_FILE, exc)
        finally:
            conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the state's connection: committed (and the WAL marked for a
        checkpoint) when the block ends, rolled back if it raises."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._dirty.set()

    def _write_many(self, sql: str, rows: list[tuple[object, ...]]) -> int:
        """Insert ``rows`` in one transaction; the rowid of the last (rows get max + 1, in order)."""
        with self._transaction() as conn:
            conn.executemany(sql, rows)
            return int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    def _write(self, sql: str, params: object) -> sqlite3.Cursor:
        self._flush_locked()  # pending events first: the log keeps the order things happened in
        with self._transaction() as conn:
            return conn.execute(sql, params)  # type: ignore[arg-type]

def _bounded(head: bytes | None, size: int | None, limit: int) -> str:
    """A field read as the head of its bytes (``size`` in all): at most ``limit`` characters, escaped."""
    text = (head or b"").decode("utf-8", "replace")
    if (size or 0) > len(head or b""):
        return shown(text, limit, total=size, unit="bytes")
    return shown(text, limit)


def _definition(row: dict) -> HostDefinition:
    return HostDefinition(
        row["array"],
        row["name"],
        tuple(json.loads(row["wwns"] or "[]")),
        tuple(json.loads(row["ports"] or "[]")),
        row["platform"] or "windows",
        row.get("cluster") or "",
    )


def _host(row: dict) -> HostRecord:
    return HostRecord(
        name=row["name"],
        role=row["role"],
        platform=row["platform"],
        wwns=tuple(json.loads(row["wwns"] or "[]")),
        ports=tuple(json.loads(row["ports"] or "[]")),
        cluster=row["cluster"] or "",
        cluster_role=row["cluster_role"] or "",
        enrolled=row["enrolled"] or "",
    )
