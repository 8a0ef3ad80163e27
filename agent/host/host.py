"""One host's state: its folder and host.db, the command lock, and the parts of the model it combines.

State folder ``<lab>/hosts/<host>/``::

    host.db                    SQLite (sqlite-utils): meta, disk numbers, volume GUIDs (the mount
                               manager), the mount table, per-volume state (remembered mount points, offline)
    etc/iSMrpl.ini             option settings (settings.py); written with its defaults at first start
    etc/vollist.json           the volume list (``iSMvollist -cr``, agent/vollist.py)
    etc/cvdef.json             control-volume definition for arrays that do not mark CVs (``iSMvollist -cvdef``)
    etc/pinned_volumes.json    GUIDs a lab pins: [{"array": "", "ld": "lv001", "partition": 1, "guid": "37d8..."}]
    etc/iSM_Log<yyyymmdd>.txt  command trace, one SPEC §8 message-log line per message
    mnt/<slug>/                the folder of each mount point of a mounted volume (``G`` for G:, ``c_mnt_bk`` for
                               C:\\mnt\\bk\\): the file-system cache, written to the volume on flush (agent/fs/)
    fscache/<guid>.db          the working copy of a mounted volume's file system (an SQLite archive)
    fscache/kept/              caches a graceful stop could not flush, for the next start (agent/fs/kept.py)
    unflushed/                 kept caches the next start could not take back (the volume had changed)
    debug/flush_stop_after     debug hook: the next flush stops after that many in-place page writes
    debug/flush_pause_at       debug hook: the next flush pauses in a phase (agent/fs/writeback.py)
    debug/cluster_net_down     debug hook: the node is cut off from its cluster network (agent/cluster/)

The model's parts: disks and volumes (model.py), the manager and arrays (connections.py), settings
and trace (settings.py), the volume list (resolve.py), the disk scan (discovery.py), the mount table
(mounts.py).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import sqlite_utils
from snaplab.agent.fs.sqlarfs import FileSystem, SqlarFileSystem
from snaplab.agent.host.connections import Connections
from snaplab.agent.host.discovery import Discovery
from snaplab.agent.host.model import Disk
from snaplab.agent.host.mounts import MountTable
from snaplab.agent.host.resolve import Resolve
from snaplab.agent.host.settings import DEFAULT_INI, Settings
from snaplab.san.array_client import ArrayClient

from snaplab.common.rpc import SnapLabClientError
from snaplab.v1 import manager_pb2_grpc


class Host(Connections, Settings, Resolve, Discovery, MountTable):
    """One host's state. Commands run one at a time (:meth:`command`); :meth:`status` needs no lock.

    ``certs`` is the lab PKI folder holding ``<name>.crt``/``.key``: the manager and the arrays are
    called with that certificate. Without ``certs`` (unit tests) arrays are called insecurely as the
    test identity ``<name>/host`` and there is no manager."""

    def __init__(
        self,
        name: str,
        state: Path | str,
        *,
        certs: Path | str | None = None,
        manager_target: str = "",
        role: str = "business",
        platform: str = "windows",
        wwns: tuple[str, ...] | list[str] = (),
        ports: tuple[str, ...] | list[str] = (),
        cluster: str = "",
        cluster_role: str = "",
        arrays: Mapping[str, str] | None = None,
        filesystem: type | None = None,
        array_targets: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.state = Path(state).absolute()
        self.etc = self.state / "etc"
        self.mnt = self.state / "mnt"
        self.etc.mkdir(parents=True, exist_ok=True)
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.certs = Path(certs).absolute() if certs is not None else None
        self.manager_target = manager_target
        self.role, self.platform = role, platform
        self.wwns, self.ports = list(wwns), list(ports)
        self.cluster, self.cluster_role = cluster, cluster_role
        self.command_lock = threading.Lock()
        self._holder: int | None = None
        self._db_lock = threading.RLock()
        self._trace_lock = threading.Lock()
        self.db = sqlite_utils.Database(sqlite3.connect(self.state / "host.db", check_same_thread=False))
        self._init_db()
        self.io = {"read_calls": 0, "read_bytes": 0, "write_calls": 0, "write_bytes": 0}  # block I/O so far
        self.io_lock = threading.Lock()  # a mount reads from several threads
        self.fs: FileSystem = (filesystem or SqlarFileSystem)(self)
        self.arrays: dict[str, str] = (
            dict(arrays) if arrays is not None else json.loads(self._meta("arrays", "{}"))
        )
        self.array_targets = dict(array_targets or {})  # the SAN's targets, over the manager's (netns labs)
        self.enrolled = False
        self.unreachable: dict[str, SnapLabClientError] = {}
        self.cwd: Path = self.state  # the calling process's folder while a command runs
        self._clients: dict[str, ArrayClient] = {}
        self._manager_channel: grpc.Channel | None = None
        self._manager: manager_pb2_grpc.ManagerStub | None = None
        self._view: list[Disk] | None = None
        if not (self.etc / "iSMrpl.ini").exists():
            (self.etc / "iSMrpl.ini").write_text(DEFAULT_INI)

    # -- storage ---------------------------------------------------------------------------------
    def _init_db(self) -> None:
        with self._db_lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            self.db.table("disks").create(
                {"array": str, "ld": str, "number": int, "ld_name": str, "offline": int, "unrecognised": int},
                pk=("array", "ld"),
                if_not_exists=True,
            )
            self.db.table("guids").create(
                {"array": str, "ld": str, "start": int, "guid": str},
                pk=("array", "ld", "start"),
                if_not_exists=True,
            )
            self.db.table("mounts").create(
                {"mp": str, "display": str, "array": str, "ld": str, "start": int, "volume": str},
                pk="mp",
                if_not_exists=True,
            )
            self.db.table("volstate").create(
                {"array": str, "ld": str, "start": int, "remembered": str, "offline": int},
                pk=("array", "ld", "start"),
                if_not_exists=True,
            )

    def _meta(self, key: str, default: str = "") -> str:
        with self._db_lock:
            rows = list(self.db.query("SELECT value FROM meta WHERE key = ?", [key]))
        return rows[0]["value"] if rows else default

    def _set_meta(self, key: str, value: str) -> None:
        with self._db_lock:
            self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    def dump_db(self) -> str:
        """The whole host.db as SQL text (iSMvolgather)."""
        with self._db_lock:
            return "\n".join(self.db.conn.iterdump()) + "\n"

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        if self._manager_channel is not None:
            self._manager_channel.close()
        with self._db_lock:
            self.db.conn.close()

    # -- commands --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def command(self, cwd: Path | None = None) -> Iterator[None]:
        """Hold the host for one command: commands run one at a time and see a fresh disk scan."""
        with self.command_lock:
            self._holder = threading.get_ident()
            self._view = None
            self.cwd = cwd or self.state
            try:
                yield
            finally:
                self._holder = None
                self.cwd = self.state

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Let other commands of this host run during a long wait (e.g. iSMsc_wait); the disk view is
        refreshed afterwards. A no-op when the caller does not hold the host."""
        if self._holder != threading.get_ident():
            yield
            return
        self._holder = None
        self.command_lock.release()
        try:
            yield
        finally:
            self.command_lock.acquire()
            self._holder = threading.get_ident()
            self._view = None

    def status(self) -> dict[str, Any]:
        """Agent.Status: no array I/O and no command lock."""
        with self._db_lock:
            mounts = [
                f"{r['display']} {r['volume']}" for r in self.db.query("SELECT * FROM mounts ORDER BY mp")
            ]
        return {
            "host": self.name,
            "role": self.role,
            "enrolled": self.enrolled,
            "mounts": ["C: " + self.system_volume_name, *mounts],
        }
