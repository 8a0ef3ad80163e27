"""One host's state and disk model (C1): identity, manager and arrays, disks, volumes, mount table, settings, trace.

State folder ``<lab>/hosts/<host>/``::

    host.db                    SQLite (sqlite-utils): meta, disk numbers, volume GUIDs (the mount
                               manager), the mount table, per-volume state (remembered mount points, offline)
    etc/iSMrpl.ini             option settings (below); written with its defaults at first start
    etc/vollist.json           the volume list (``iSMvollist -cr``, agent/vollist.py)
    etc/cvdef.json             control-volume definition for arrays that do not mark CVs (``iSMvollist -cvdef``)
    etc/pinned_volumes.json    GUIDs a lab pins: [{"array": "", "ld": "lv001", "partition": 1, "guid": "37d8..."}]
    etc/iSM_Log<yyyymmdd>.txt  command trace, one SPEC §8 message-log line per message
    mnt/<slug>/                the folder of each mount point of a mounted volume (``G`` for G:, ``c_mnt_bk`` for
                               C:\\mnt\\bk\\): the file-system cache, written to the volume on flush (agent/filesystem.py)
    fscache/<guid>.db          the working copy of a mounted volume's file system (an SQLite archive)
    debug/flush_stop_after     debug hook: the next flush stops after that many page writes (a torn flush)

Disks: disk0 is the local system disk (volume C:); the LDs the arrays show this host (``Disks``)
are disk1, disk2, … in order of first sight, each number kept per (array, LD number) while the LD
stays visible. A disk is Ready when the array lets the host read it and the host has not taken it
offline; an unlinked LV (or one whose link mode is NR, or a BV linked to an LV) is Not Ready; a
failed read (BV or SRA failure, broken path) makes it Unreadable. ``iSMrc_umount`` of an LV takes
its disk offline (Not Ready) until ``iSMrc_mount``, ``iSMrc_scan`` or DISKPART ``online disk``.
A server restart (agent start, :meth:`Host.boot`) leaves disks that are Not Ready unrecognised until
``iSMrc_scan`` (guide 2.3.4 / 3.9).

Volumes: each partition with a volume is named ``\\\\?\\Volume{GUID}\\``; the GUID is kept per
(array, LD number, partition start), or pinned per (array, LD name or number, partition number).
Unmounting removes the mount points but remembers them; with automount on (``MOUNTVOL /E``, the
default) a volume whose disk arrives again (``iSMrc_scan``, restart) is mounted at its remembered
points; ``MOUNTVOL /N`` turns that off; ``iSMrc_umount -offline`` forgets them.

Settings, ``etc/iSMrpl.ini`` (read at each use; ON/OFF, YES/NO, 1/0)::

    [SNAPSHOT]
    MULTI_PARTITION = OFF   ; ON: snapshot, restore and link may act on LDs holding several partitions (A11)
    GPT = OFF               ; ON: they may act on GPT disks (usage format WG) (A11)
"""

from __future__ import annotations

import configparser
import contextlib
import json
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import sqlite_utils
from snaplab.agent import partitions as pt
from snaplab.agent.commands.base import CommandError, trace_line
from snaplab.agent.filesystem import FileSystem, SqlarFileSystem, holders
from snaplab.agent.vollist import VolEntry, VolumeList, normalise_mount_point, normalise_volume_name
from snaplab.san.array_client import ArrayClient

from snaplab.common.errors import E
from snaplab.common.rpc import ClientTLS, SnapLabClientError, call_error, make_channel
from snaplab.v1 import manager_pb2, manager_pb2_grpc

log = logging.getLogger("snaplab.agent.host")

SYSTEM_CAPACITY = 40 * 1024**3
SYSTEM_START = 1024 * 1024
PINNED_VOLUMES = "pinned_volumes.json"
# Reads that say the LU is there but not usable now: the disk is Not Ready, not failed.
NOT_READY_IDS = (E.NOT_READY.msg_id, E.LINK_LOST.msg_id, E.AC_BV_LINKED.msg_id, E.AC_DENIED.msg_id)
DEFAULT_INI = """\
; SnapControl option settings of this server (SnapLab). Values: ON or OFF.
[SNAPSHOT]
; ON: snapshot, restore and link may act on an LD that holds several partitions or logical drives.
MULTI_PARTITION = OFF
; ON: they may act on GPT disks (the LD's usage format must be WG).
GPT = OFF
"""
_GUID = re.compile(r"^\\\\\?\\volume\{([0-9a-f-]{36})\}\\?$", re.IGNORECASE)


def now_text() -> str:
    return datetime.now().strftime("%Y/%m/%d %H:%M:%S")


def mount_slug(mount_point: str) -> str:
    """The folder name of a mount point: ``G`` for G:, ``c_mnt_bk`` for C:\\mnt\\bk\\."""
    m = normalise_mount_point(mount_point)
    if len(m) == 2:
        return m[0]
    return re.sub(r"[^0-9a-z._-]+", "_", m.rstrip("\\").lower()).strip("_")


def mount_path(lab_folder: Path | str, host: str, mount_point: str) -> Path:
    """Where the files of ``mount_point`` of ``host`` are on this machine (``snaplab path HOST G:``)."""
    return Path(lab_folder) / "hosts" / host / "mnt" / mount_slug(mount_point)


def volume_guid(name: str) -> str | None:
    """The GUID of ``\\\\?\\Volume{GUID}\\`` (trailing backslash optional), lower case; None if not one."""
    m = _GUID.match(name.strip())
    return m.group(1).lower() if m else None


def volume_name(guid: str) -> str:
    return f"\\\\?\\Volume{{{guid}}}\\"


def display_mount_point(mp: str) -> str:
    """``G:`` for a drive letter, the folder with one trailing backslash otherwise (case as given)."""
    n = normalise_mount_point(mp)
    if len(n) == 2:
        return n
    return mp.strip().replace("/", "\\").rstrip("\\") + "\\"


def type_text(ld_type: str, attr: str) -> str:
    """The LD type a host shows: the array's type, with MV/RV for replication-marked ordinary LDs."""
    if ld_type == "IV" and attr in ("mv", "rv"):
        return attr.upper()
    return ld_type


@dataclass
class Volume:
    """A partition's volume as this host sees it now."""

    guid: str
    disk: Disk
    part: pt.Part | None  # None for the system volume
    mount_points: list[str] = field(default_factory=list)  # display form: "G:", "C:\\mnt\\bk\\"
    remembered: list[str] = field(default_factory=list)
    offline: bool = False
    host: Host | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return volume_name(self.guid)

    @property
    def local(self) -> bool:
        return self.part is None

    @property
    def number(self) -> int:
        return 1 if self.part is None else self.part.number

    @property
    def start(self) -> int:
        return SYSTEM_START if self.part is None else self.part.start * pt.SECTOR

    @property
    def size(self) -> int:
        return SYSTEM_CAPACITY - SYSTEM_START if self.part is None else self.part.sectors * pt.SECTOR

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.disk.array, self.disk.ld_number, self.start)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset + length > self.size:
            raise ValueError("read beyond the volume")
        assert self.host is not None
        return self.host.read_disk(self.disk, self.start + offset, length)

    def write(self, offset: int, data: bytes) -> None:
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError("write beyond the volume")
        assert self.host is not None
        self.host.write_disk(self.disk, self.start + offset, data)


@dataclass
class Disk:
    """One disk of the host: the local system disk (number 0) or an array LD."""

    number: int
    array: str = ""
    ld_number: str = ""
    ld_name: str = ""
    ld_type: str = ""  # as the host shows it (type_text)
    format: str = ""
    capacity: int = 0
    array_ready: bool = True  # the array lets this host read it now
    offline: bool = False  # taken offline by this host (iSMrc_umount of an LV)
    recognised: bool = True  # False after a restart with the disk Not Ready, until iSMrc_scan
    error: str = ""  # "iSMnnnnn: text" of the read that failed
    layout: pt.Layout | None = None
    volumes: list[Volume] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.array == ""

    @property
    def name(self) -> str:
        return f"disk{self.number}"

    @property
    def failed(self) -> bool:
        return not self.array_ready and bool(self.error) and not self.error.startswith(NOT_READY_IDS)

    @property
    def ready(self) -> bool:
        return self.recognised and self.array_ready and not self.offline

    @property
    def state(self) -> str:
        if self.ready:
            return "Ready"
        return "Unreadable" if self.failed else "Not Ready"


class Host:
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
        self.fs: FileSystem = (filesystem or SqlarFileSystem)(self)
        self.arrays: dict[str, str] = (
            dict(arrays) if arrays is not None else json.loads(self._meta("arrays", "{}"))
        )
        self.enrolled = False
        self.unreachable: dict[str, SnapLabClientError] = {}
        self.cwd: Path = self.state  # the calling process's folder while a command runs
        self._clients: dict[str, ArrayClient] = {}
        self._manager_channel: grpc.Channel | None = None
        self._manager: manager_pb2_grpc.ManagerStub | None = None
        self._view: list[Disk] | None = None
        if not (self.etc / "iSMrpl.ini").exists():
            (self.etc / "iSMrpl.ini").write_text(DEFAULT_INI)

    # ================================================================ storage
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

    # ================================================================ manager and arrays
    def _tls(self) -> ClientTLS | None:
        return ClientTLS.from_folder(self.certs, self.name) if self.certs is not None else None

    @property
    def manager(self) -> manager_pb2_grpc.ManagerStub:
        """The manager, called with this host's certificate (control I/O routing, B3)."""
        if self._manager is None:
            if not self.manager_target or self.certs is None:
                raise CommandError(E.NOT_ENROLLED, name=self.name)
            self._manager_channel = make_channel(self.manager_target, self._tls())
            self._manager = manager_pb2_grpc.ManagerStub(self._manager_channel)
        return self._manager

    def enrol(self, timeout: float = 10.0) -> dict[str, str]:
        """Register with the manager (B2); keeps the array endpoints it answers."""
        req = manager_pb2.EnrolRequest(
            role=self.role,
            platform=self.platform,
            wwns=self.wwns,
            ports=self.ports,
            cluster=self.cluster,
            cluster_role=self.cluster_role,
        )
        try:
            reply = self.manager.Enrol(req, timeout=timeout)
        except grpc.RpcError as exc:
            raise call_error(exc) from None
        arrays = {a.name: a.target for a in reply.arrays}
        if arrays != self.arrays:
            for c in self._clients.values():
                c.close()
            self._clients.clear()
        self.arrays = arrays
        self._set_meta("arrays", json.dumps(arrays))
        self.enrolled = True
        return arrays

    def array_name(self, name: str = "") -> str:
        if name:
            if name not in self.arrays:
                raise CommandError(E.ARRAY_UNKNOWN, name=name)
            return name
        if len(self.arrays) == 1:
            return next(iter(self.arrays))
        if not self.arrays:
            raise CommandError(E.NOT_ENROLLED, name=self.name)
        raise CommandError(E.USAGE, detail="several disk arrays: name one")

    def array(self, name: str = "") -> ArrayClient:
        """The array ``name`` ("" = the only one) as this host: block I/O and ``Disks`` (the SAN)."""
        name = self.array_name(name)
        client = self._clients.get(name)
        if client is None:
            target = self.arrays[name]
            tls = self._tls()
            client = ArrayClient(target, tls, test_identity=None if tls else f"{self.name}/host")
            self._clients[name] = client
        return client

    # ================================================================ commands
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

    # ================================================================ settings and trace
    def settings(self) -> configparser.ConfigParser:
        cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
        try:
            cp.read(self.etc / "iSMrpl.ini", encoding="utf-8")
        except configparser.Error as exc:
            log.warning("iSMrpl.ini is not readable: %s", exc)
        return cp

    def setting(self, section: str, key: str, default: str = "") -> str:
        cp = self.settings()
        for s in cp.sections():
            if s.upper() == section.upper():
                return cp.get(s, key, fallback=default).strip()
        return default

    def flag(self, section: str, key: str, default: bool = False) -> bool:
        value = self.setting(section, key, "").upper()
        if value in ("ON", "YES", "1", "TRUE"):
            return True
        if value in ("OFF", "NO", "0", "FALSE"):
            return False
        return default

    def layout_options(self) -> tuple[bool, bool]:
        """(allow_multi_partition, allow_gpt) from iSMrpl.ini [SNAPSHOT] MULTI_PARTITION / GPT."""
        return self.flag("SNAPSHOT", "MULTI_PARTITION"), self.flag("SNAPSHOT", "GPT")

    def trace(self, command: str, classification: str, msg_id: str, text: str) -> None:
        """Append one message-log line (SPEC §8) to etc/iSM_Log<yyyymmdd>.txt; never fails the command."""
        line = trace_line(self.name, command, classification, msg_id, text)
        try:
            with (
                self._trace_lock,
                open(self.etc / f"iSM_Log{datetime.now():%Y%m%d}.txt", "a", encoding="utf-8") as f,
            ):
                f.write(line + "\n")
        except OSError as exc:
            log.warning("command trace not written: %s", exc)

    # ================================================================ automount
    @property
    def automount(self) -> bool:
        return self._meta("automount", "1") == "1"

    @automount.setter
    def automount(self, on: bool) -> None:
        self._set_meta("automount", "1" if on else "0")

    # ================================================================ volume list and CV definition
    @property
    def vollist_path(self) -> Path:
        return self.etc / "vollist.json"

    def vollist(self) -> VolumeList:
        """The volume list (C2), or CommandError iSM11702 when there is none."""
        try:
            vl = VolumeList.load(self.vollist_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("volume list unreadable: %s", exc)
            vl = None
        if vl is None:
            raise CommandError(E.VOLLIST_MISSING)
        return vl

    def cv_definitions(self) -> dict[str, str]:
        """etc/cvdef.json: array name -> LD name of the CV defined for it (arrays that do not mark CVs)."""
        try:
            raw = json.loads((self.etc / "cvdef.json").read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("cvdef.json unreadable; no CV definition used")
            return {}
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def save_cv_definitions(self, defs: dict[str, str]) -> None:
        tmp = self.etc / "cvdef.json.tmp"
        tmp.write_text(json.dumps(defs, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.etc / "cvdef.json")

    def resolve_ld(self, name: str, flg: str = "ld") -> VolEntry:
        """The volume list's disk entry of the LD named by ``name``: flg ``ld`` (LD name or number),
        ``drv`` (drive letter or NTFS folder) or ``mvol`` (volume name). iSM11703 if not listed."""
        vl = self.vollist()
        f = flg.lower()
        if f == "ld":
            e = vl.by_ld(name)
        elif f == "drv":
            e = vl.by_mount_point(name)
        elif f == "mvol":
            e = vl.by_volume(name)
        else:
            raise CommandError(E.USAGE, detail=f"flag {flg} (ld, drv or mvol)")
        if e is None:
            raise CommandError(E.NOT_IN_VOLLIST, name=name)
        return self.disk_entry(vl, e)

    @staticmethod
    def disk_entry(vl: VolumeList, e: VolEntry) -> VolEntry:
        if e.partition is None:
            return e
        return next((d for d in vl.disks() if d.array == e.array and d.ld_number == e.ld_number), e)

    def control_via(self, array: str, target_entry: VolEntry | None) -> str:
        """The LD name to issue control I/O through: the volume list's CV of that array, else the
        target itself, which must be Ready (iSM31063), else iSM11705 when there is no target."""
        vl = self.vollist()
        arr = array or (target_entry.array if target_entry is not None else "")
        if not arr:
            arrays = {e.array for e in vl.disks()} | set(self.arrays)
            arr = next(iter(arrays)) if len(arrays) == 1 else ""
        cv = vl.cv(arr) if arr else None
        if cv is not None:
            return cv.ld_name
        if target_entry is None:
            raise CommandError(E.NO_CV, name=arr or "-")
        disk = self.disk(target_entry.array, target_entry.ld_number)
        if disk is None or not disk.array_ready:
            raise CommandError(E.VIA_NOT_READY, name=target_entry.ld_name)
        return target_entry.ld_name

    def stale_check(self, entry: VolEntry) -> None:
        """iSM11704 when the list no longer describes the LD of ``entry`` as this host sees it now:
        gone, renamed, another type, format or disk number, or (Ready disks) other volumes or mount points."""
        vl = self.vollist()
        de = self.disk_entry(vl, entry)
        disks = self.disks()
        if de.array in self.unreachable:
            raise CommandError.of(self.unreachable[de.array])
        d = next((x for x in disks if x.array == de.array and x.ld_number == de.ld_number), None)
        if d is None:
            self._explain_missing(de)
            raise CommandError(E.VOLLIST_STALE, name=de.ld_name)
        if (d.ld_name, d.number, d.format, d.ld_type) != (de.ld_name, de.disk, de.format, de.ld_type):
            raise CommandError(E.VOLLIST_STALE, name=de.ld_name)
        if not d.ready:
            return
        listed = {(x.partition, normalise_volume_name(x.volume)): x for x in vl.volumes_of(de)}
        live = {(v.number, normalise_volume_name(v.name)): v for v in d.volumes}
        if set(listed) != set(live):
            raise CommandError(E.VOLLIST_STALE, name=de.ld_name)
        for k, v in live.items():
            if v.mount_points and {normalise_mount_point(m) for m in v.mount_points} != {
                normalise_mount_point(m) for m in listed[k].mount_points
            }:
                raise CommandError(E.VOLLIST_STALE, name=de.ld_name)

    def _explain_missing(self, de: VolEntry) -> None:
        """An LD that vanished from ``Disks`` because the path broke is a path failure, not a stale list."""
        if de.array not in self.arrays:
            return
        try:
            self.array(de.array).read(de.ld_name, 0, pt.SECTOR)
        except SnapLabClientError as exc:
            if exc.msg_id == E.PATH_FAILURE.msg_id:
                raise CommandError.of(exc) from None

    # ================================================================ pinned volume GUIDs
    def pins(self) -> list[dict[str, Any]]:
        try:
            raw = json.loads((self.etc / PINNED_VOLUMES).read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            log.warning("%s unreadable; no pinned volume GUIDs", PINNED_VOLUMES)
            return []
        return [p for p in raw if isinstance(p, dict)] if isinstance(raw, list) else []

    def pin_volume(self, array: str, ld: str, partition_no: int, guid: str) -> None:
        """Give partition ``partition_no`` of LD ``ld`` (name or number text) the volume GUID ``guid``."""
        g = volume_guid(guid) or str(uuid.UUID(guid.strip("{}")))
        with self._db_lock:
            pins = [
                p
                for p in self.pins()
                if not (
                    p.get("array", "") == array
                    and str(p.get("ld")) == ld
                    and int(p.get("partition", 0)) == partition_no
                )
            ]
            pins.append({"array": array, "ld": ld, "partition": partition_no, "guid": g})
            tmp = self.etc / (PINNED_VOLUMES + ".tmp")
            tmp.write_text(json.dumps(pins, indent=1) + "\n")
            os.replace(tmp, self.etc / PINNED_VOLUMES)
        self._view = None

    @staticmethod
    def _pinned(
        pins: list[dict[str, Any]], array: str, ld_name: str, ld_number: str, partition: int
    ) -> str | None:
        for p in pins:
            ld = str(p.get("ld", ""))
            if p.get("array", "") not in ("", array) or int(p.get("partition", 0)) != partition:
                continue
            if ld == ld_name or ld.lower() == ld_number.lower():
                try:
                    return str(uuid.UUID(str(p.get("guid", "")).strip("{}")))
                except ValueError:
                    log.warning("pinned GUID %r is not a GUID", p.get("guid"))
        return None

    # ================================================================ the disk model
    @property
    def system_volume_name(self) -> str:
        return volume_name(str(uuid.uuid5(uuid.NAMESPACE_URL, f"snaplab:{self.name}:system")))

    def _system_disk(self) -> Disk:
        d = Disk(0, capacity=SYSTEM_CAPACITY, ld_type="LOCAL")
        d.volumes = [Volume(volume_guid(self.system_volume_name) or "", d, None, ["C:"], host=self)]
        return d

    def disks(self) -> list[Disk]:
        """The disks as last scanned in this command (scanned now if not yet)."""
        if self._view is None:
            self.scan()
        assert self._view is not None
        return self._view

    def invalidate(self) -> None:
        self._view = None

    def scan(self) -> list[Disk]:
        """Ask every array which LDs this host sees and read their partition tables (C1).

        Array calls are made without the database lock, so Agent.Status never waits on an array."""
        unreachable: dict[str, SnapLabClientError] = {}
        answered: dict[str, list[Any]] = {}
        for name in sorted(self.arrays):
            try:
                answered[name] = self.array(name).disks()
            except SnapLabClientError as exc:
                log.warning("array %s did not list disks: %s", name, exc)
                unreachable[name] = exc
        self.unreachable = unreachable
        disks = [self._system_disk()]
        with self._db_lock:
            rows = {(r["array"], r["ld"]): r for r in self.db.table("disks").rows}
            seen = {(a, ld.number) for a, lds in answered.items() for ld in lds}
            for key in list(rows):
                if key[0] in answered and key not in seen:
                    self.db.table("disks").delete(key)
                    del rows[key]
            used = {r["number"] for r in rows.values()}
            for a in sorted(answered):
                for ld in sorted(answered[a], key=lambda x: x.number):
                    row = rows.get((a, ld.number))
                    if row is None:
                        n = next(i for i in range(1, 10_000) if i not in used)
                        used.add(n)
                        row = {
                            "array": a,
                            "ld": ld.number,
                            "number": n,
                            "ld_name": ld.name,
                            "offline": 0,
                            "unrecognised": 0,
                        }
                        self.db.table("disks").insert(row)
                    elif row["ld_name"] != ld.name:
                        self.db.table("disks").update((a, ld.number), {"ld_name": ld.name})
                    disks.append(
                        Disk(
                            row["number"],
                            a,
                            ld.number,
                            ld.name,
                            type_text(ld.type, ld.attr),
                            ld.format,
                            ld.capacity,
                            offline=bool(row["offline"]),
                            recognised=not row["unrecognised"],
                        )
                    )
        for disk in disks[1:]:
            self._read_layout(disk)
        pins = self.pins()
        with self._db_lock:
            for disk in disks[1:]:
                self._attach_volumes(disk, pins)
        disks.sort(key=lambda d: d.number)
        self._view = disks
        return disks

    def _read_layout(self, disk: Disk) -> None:
        client = self.array(disk.array)
        try:
            disk.layout = pt.read_layout(lambda o, n: client.read(disk.ld_name, o, n), disk.capacity)
        except SnapLabClientError as exc:
            disk.array_ready = False
            disk.error = f"{exc.msg_id or exc.code.name}: {exc.text}"

    def _attach_volumes(self, disk: Disk, pins: list[dict[str, Any]]) -> None:
        """The volumes of a disk whose table was read: GUIDs (mount manager), mount points, state."""
        if disk.layout is None:
            return
        states = {
            (r["start"]): r
            for r in self.db.query(
                "SELECT * FROM volstate WHERE array = ? AND ld = ?", [disk.array, disk.ld_number]
            )
        }
        mounts: dict[int, list[str]] = {}
        for r in self.db.query(
            "SELECT * FROM mounts WHERE array = ? AND ld = ? ORDER BY mp", [disk.array, disk.ld_number]
        ):
            mounts.setdefault(r["start"], []).append(r["display"])
        for part in disk.layout.volumes():
            start = part.start * pt.SECTOR
            guid = self._pinned(pins, disk.array, disk.ld_name, disk.ld_number, part.number)
            if guid is None:
                rows = list(
                    self.db.query(
                        "SELECT guid FROM guids WHERE array = ? AND ld = ? AND start = ?",
                        [disk.array, disk.ld_number, start],
                    )
                )
                if rows:
                    guid = rows[0]["guid"]
                else:
                    guid = str(
                        uuid.uuid5(
                            uuid.NAMESPACE_URL, f"snaplab:{self.name}:{disk.array}:{disk.ld_number}:{start}"
                        )
                    )
                    self.db.table("guids").insert(
                        {"array": disk.array, "ld": disk.ld_number, "start": start, "guid": guid}
                    )
            st = states.get(start)
            disk.volumes.append(
                Volume(
                    guid,
                    disk,
                    part,
                    mounts.get(start, []),
                    json.loads(st["remembered"]) if st else [],
                    bool(st["offline"]) if st else False,
                    host=self,
                )
            )

    # -- lookups -----------------------------------------------------------------------------
    def disk(self, array: str, ld_number: str) -> Disk | None:
        return next((d for d in self.disks() if d.array == array and d.ld_number == ld_number), None)

    def disk_by_number(self, number: int) -> Disk | None:
        return next((d for d in self.disks() if d.number == number and d.recognised), None)

    def visible_disks(self) -> list[Disk]:
        """The disks the OS shows (unrecognised ones are hidden until iSMrc_scan)."""
        return [d for d in self.disks() if d.recognised]

    def volumes(self, ready_only: bool = True) -> list[Volume]:
        return [v for d in self.disks() if d.recognised and (d.ready or not ready_only) for v in d.volumes]

    def volume_by_name(self, name: str) -> Volume | None:
        key = normalise_volume_name(name)
        return next(
            (v for d in self.disks() for v in d.volumes if normalise_volume_name(v.name) == key), None
        )

    def volume_at(self, mount_point: str) -> Volume | None:
        """The volume a mount point is assigned to now (its disk may be Not Ready)."""
        key = normalise_mount_point(mount_point)
        return next(
            (
                v
                for d in self.disks()
                for v in d.volumes
                if any(normalise_mount_point(m) == key for m in v.mount_points)
            ),
            None,
        )

    def mount_path(self, mount_point: str) -> Path:
        """The folder holding the files of ``mount_point`` while it is mounted."""
        return self.mnt / mount_slug(mount_point)

    def is_formatted(self, volume: Volume) -> bool:
        return volume.disk.ready and self.fs.is_formatted(volume)

    # -- block I/O ---------------------------------------------------------------------------
    def read_disk(self, disk: Disk, offset: int, length: int) -> bytes:
        if disk.local:
            return bytes(length)
        if not disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        try:
            data = self.array(disk.array).read(disk.ld_name, offset, length)
        except SnapLabClientError as exc:
            raise CommandError.of(exc) from None
        self.io["read_calls"] += 1
        self.io["read_bytes"] += len(data)
        return data

    def write_disk(self, disk: Disk, offset: int, data: bytes) -> None:
        if disk.local:
            raise CommandError(E.DISK_REFUSED)
        if not disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        try:
            self.array(disk.array).write(disk.ld_name, offset, data)
        except SnapLabClientError as exc:
            raise CommandError.of(exc) from None
        self.io["write_calls"] += 1
        self.io["write_bytes"] += len(data)

    def write_layout(self, disk: Disk, layout: pt.Layout) -> None:
        """Write a partition table (DISKPART) and forget mount points of partitions that are gone."""
        pt.write_layout(lambda o, b: self.write_disk(disk, o, b), layout)
        starts = {p.start * pt.SECTOR for p in layout.volumes()}
        with self._db_lock:
            for v in disk.volumes:
                if v.start not in starts:
                    self.fs.unmount(v, force=True)  # the partition is gone, and its file system
                    self.db.execute(
                        "DELETE FROM mounts WHERE array = ? AND ld = ? AND start = ?", list(v.key)
                    )
                    self.db.execute(
                        "DELETE FROM volstate WHERE array = ? AND ld = ? AND start = ?", list(v.key)
                    )
        self.invalidate()

    # ================================================================ the mount table
    def set_volume_state(
        self, v: Volume, *, remembered: list[str] | None = None, offline: bool | None = None
    ) -> None:
        rem = v.remembered if remembered is None else remembered
        off = v.offline if offline is None else offline
        v.remembered, v.offline = list(rem), off
        with self._db_lock:
            self.db.table("volstate").upsert(
                {
                    "array": v.disk.array,
                    "ld": v.disk.ld_number,
                    "start": v.start,
                    "remembered": json.dumps(rem),
                    "offline": int(off),
                },
                pk=("array", "ld", "start"),
            )

    def check_mount_point(self, mount_point: str) -> str:
        """Validate a new mount point; returns its display form. Folders must be on a drive of this host."""
        n = normalise_mount_point(mount_point)
        if len(n) == 2:
            if n == "C:":
                raise CommandError(E.MOUNT_POINT_IN_USE, name="C:")
            return n
        m = re.match(r"^([a-z]):\\.+", n)
        if not m:
            raise CommandError(E.USAGE, detail=f"mount point {mount_point}")
        drive = m.group(1).upper() + ":"
        if drive != "C:" and not any(drive in v.mount_points for v in self.volumes()):
            raise CommandError(E.PATH_NOT_NORMAL)
        return display_mount_point(mount_point)

    def assign(self, volume: Volume, mount_point: str) -> str:
        """Add a mount point to a volume (MOUNTVOL X: VOL, DISKPART assign); mounts its file system
        if it has one and the disk is Ready. Returns the display form."""
        if volume.local:
            raise CommandError(E.DISK_REFUSED)
        mp = self.check_mount_point(mount_point)
        key = normalise_mount_point(mp)
        with self._db_lock:
            owner = list(self.db.query("SELECT * FROM mounts WHERE mp = ?", [key]))
            if owner and (owner[0]["array"], owner[0]["ld"], owner[0]["start"]) != volume.key:
                raise CommandError(E.MOUNT_POINT_IN_USE, name=mp)
            if not owner:
                self.db.table("mounts").insert(
                    {
                        "mp": key,
                        "display": mp,
                        "array": volume.disk.array,
                        "ld": volume.disk.ld_number,
                        "start": volume.start,
                        "volume": volume.name,
                    }
                )
                volume.mount_points.append(mp)
            rem = [m for m in volume.remembered if normalise_mount_point(m) != key] + [mp]
            self.set_volume_state(volume, remembered=rem, offline=False)
        if volume.disk.ready and self.fs.is_formatted(volume):
            self.fs.mount(volume, mp)
        return mp

    def unassign(self, mount_point: str, *, forget: bool = True) -> Volume:
        """Remove a mount point (MOUNTVOL X: /D, DISKPART remove); its folder goes with it."""
        key = normalise_mount_point(mount_point)
        volume = self.volume_at(mount_point)
        with self._db_lock:
            rows = list(self.db.query("SELECT * FROM mounts WHERE mp = ?", [key]))
            if not rows or volume is None:
                raise CommandError(E.NOT_MOUNTED, name=mount_point)
            self.fs.unmount(volume, force=True, mount_point=rows[0]["display"])
            self.db.table("mounts").delete(key)
            volume.mount_points = [m for m in volume.mount_points if normalise_mount_point(m) != key]
            if forget:
                self.set_volume_state(
                    volume, remembered=[m for m in volume.remembered if normalise_mount_point(m) != key]
                )
        return volume

    def mount(
        self, volume: Volume, mount_point: str | None = None, fallback: list[str] | None = None
    ) -> list[str]:
        """iSMrc_mount: bring the volume's disk online and mount its file system at ``mount_point``
        (which replaces its other mount points), else at its current, remembered or ``fallback``
        points. Not Ready, unrecognised or unformatted: iSM13639."""
        disk = volume.disk
        if volume.local or not disk.recognised or not disk.array_ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        if disk.offline:
            self.set_disk_flags(disk, offline=False)
        if not self.fs.is_formatted(volume):
            raise CommandError(E.PATH_NOT_NORMAL)
        self.fs.attach(volume)  # reads the file system: iSM13639 when it is damaged
        if mount_point is not None:
            key = normalise_mount_point(mount_point)
            for mp in list(volume.mount_points):
                if normalise_mount_point(mp) != key:
                    self.unassign(mp)
            targets = [mount_point]
        else:
            targets = volume.mount_points or volume.remembered or (fallback or [])
            if not targets:
                raise CommandError(E.NO_MOUNT_POINT, name=volume.name)
        done = [self.assign(volume, mp) for mp in list(targets)]
        self.invalidate()
        return done

    def busy(self, volumes: list[Volume]) -> list[tuple[int, str]]:
        return holders([self.mount_path(mp) for v in volumes for mp in v.mount_points])

    def unmount(self, volume: Volume, *, force: bool = False, offline: bool = False) -> list[Volume]:
        """iSMrc_umount: flush and unmount the volume (and, for an LV, every volume of its disk, which
        becomes Not Ready). Refused with iSM13609 while a process holds one of them, unless ``force``
        (the cache is discarded) or ``offline`` (the mount point is removed for good). The volume must
        have exactly one mount point (guide 3.10 (16)). Returns the volumes unmounted."""
        if volume.local:
            raise CommandError(E.DISK_REFUSED)
        if not volume.mount_points:
            raise CommandError(E.NOT_MOUNTED, name=volume.name)
        if len(volume.mount_points) > 1:
            raise CommandError(E.MOUNT_POINT_COUNT, name=volume.name)
        disk = volume.disk
        lv = disk.ld_type == "LV"
        affected = [volume] + ([v for v in disk.volumes if v is not volume and v.mount_points] if lv else [])
        if not force and not offline:
            busy = self.busy(affected)
            if busy:
                who = ", ".join(f"pid {p} ({c})" for p, c in busy)
                log.info("umount of %s refused: held by %s", volume.name, who)
                self.trace("iSMrc_umount", "INFO", "", f"{volume.name} is held by {who}")
                raise CommandError(E.DISK_REFUSED)
            for v in affected:  # the cache goes to the volume; a Not Ready disk cannot take it: iSM13639
                if self.fs.mounted(v):
                    self.fs.flush(v)
        with self._db_lock:
            for v in affected:
                points = list(v.mount_points)
                self.fs.unmount(v, force=True)  # flushed above, or discarded (-force, -offline)
                for mp in points:
                    self.db.table("mounts").delete(normalise_mount_point(mp))
                v.mount_points = []
                if offline and v is volume:
                    self.set_volume_state(v, remembered=[], offline=True)
                else:
                    self.set_volume_state(v, remembered=points, offline=v.offline)
            if lv:
                self.set_disk_flags(disk, offline=True)
        self.invalidate()
        return affected

    def flush_all(self) -> None:
        """What a server shutdown does to its file-system caches: flush every mounted volume it can."""
        for d in self.disks():
            for v in d.volumes:
                if not d.local and d.ready and self.fs.mounted(v):
                    try:
                        self.fs.flush(v)
                    except Exception as exc:  # noqa: BLE001 - a shutdown flushes what it can
                        log.warning("flush of %s at shutdown failed: %s", v.name, exc)

    def set_disk_flags(
        self, disk: Disk, *, offline: bool | None = None, recognised: bool | None = None
    ) -> None:
        changes: dict[str, int] = {}
        if offline is not None:
            changes["offline"] = int(offline)
            disk.offline = offline
        if recognised is not None:
            changes["unrecognised"] = int(not recognised)
            disk.recognised = recognised
        if changes and not disk.local:
            with self._db_lock:
                self.db.table("disks").update((disk.array, disk.ld_number), changes)

    def automount_disk(self, disk: Disk) -> list[str]:
        """A disk arrived: mount its volumes at their remembered points (automount on, not offline)."""
        done: list[str] = []
        if not self.automount or not disk.ready:
            return done
        for v in disk.volumes:
            if v.mount_points or v.offline or not v.remembered or not self.fs.is_formatted(v):
                continue
            for mp in v.remembered:
                try:
                    done.append(self.assign(v, mp))
                except CommandError as exc:
                    log.info("automount of %s at %s skipped: %s", v.name, mp, exc)
        return done

    def rescan(self) -> list[Disk]:
        """iSMrc_scan / DISKPART rescan: disks the array lets us read again are recognised and online."""
        for d in self.scan():
            if d.local or not d.array_ready or (d.recognised and not d.offline):
                continue
            self.set_disk_flags(d, offline=False, recognised=True)
            self.automount_disk(d)
        self.invalidate()
        return self.disks()

    def boot(self) -> None:
        """What a server start does (C9): Not Ready disks become unrecognised (their volumes lose
        their mount points, remembered) until iSMrc_scan; Ready disks keep their mounts or get their
        remembered ones back (automount)."""
        self.mount_path("C:").mkdir(parents=True, exist_ok=True)
        for d in self.scan():
            if d.local:
                continue
            if not d.ready:
                if d.recognised and not d.failed:
                    self.set_disk_flags(d, recognised=False)
                with self._db_lock:
                    for v in d.volumes:
                        if v.mount_points:
                            points = list(v.mount_points)
                            self.fs.unmount(v, force=True)
                            for mp in points:
                                self.db.table("mounts").delete(normalise_mount_point(mp))
                            self.set_volume_state(v, remembered=points)
                            v.mount_points = []
                continue
            for v in d.volumes:
                if v.mount_points and self.fs.is_formatted(v):
                    for mp in v.mount_points:
                        self.fs.mount(v, mp)
            self.automount_disk(d)
        self.invalidate()
