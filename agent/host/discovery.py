"""Disk discovery: the LDs the arrays show this host, their disk numbers, partition tables and volume GUIDs.

Disks: disk0 is the local system disk (volume C:); the LDs the arrays show this host (``Disks``)
are disk1, disk2, … in order of first sight, each number kept per (array, LD number) while the LD
stays visible. A disk is Ready when the array lets the host read it and the host has not taken it
offline; an unlinked LV (or one whose link mode is NR, or a BV linked to an LV) is Not Ready; a
failed read (BV or SRA failure, broken path) makes it Unreadable. ``iSMrc_umount`` of an LV takes
its disk offline (Not Ready) until ``iSMrc_mount``, ``iSMrc_scan`` or DISKPART ``online disk``.
A server restart (agent start, :meth:`Host.boot`) leaves disks that are Not Ready unrecognised until
``iSMrc_scan`` (guide 2.3.4 / 3.9).

Each partition with a volume is named ``\\\\?\\Volume{GUID}\\``; the GUID is kept per
(array, LD number, partition start), or pinned per (array, LD name or number, partition number).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlite_utils
from snaplab.agent import partitions as pt
from snaplab.agent.host.model import SYSTEM_CAPACITY, Disk, Volume, type_text, volume_guid, volume_name
from snaplab.agent.vollist import normalise_mount_point, normalise_volume_name

from snaplab.common.errors import E
from snaplab.common.rpc import SnapLabClientError

log = logging.getLogger("snaplab.agent.host")

PINNED_VOLUMES = "pinned_volumes.json"
LAYOUT_READERS = 4  # partition-table reads in flight at once during a scan
HEAD_BYTES = 2 * pt.SECTOR  # read for every disk at once: the MBR and a GPT header


class _NeedsMore(Exception):
    """A partition table reaches past the first sectors read for every disk."""


class Discovery:
    """Part of Host: the disk view of the current command (:meth:`disks`), scanned from the arrays."""

    # State that Host.__init__ sets (host.py), named here so this part reads on its own.
    name: str
    etc: Path
    db: sqlite_utils.Database
    arrays: dict[str, str]
    unreachable: dict[str, SnapLabClientError]
    _db_lock: threading.RLock
    _view: list[Disk] | None

    # -- pinned volume GUIDs ---------------------------------------------------------------------
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

    # -- the disk view ---------------------------------------------------------------------------
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
                    seen_as = {
                        "ld_name": ld.name,
                        "ld_type": type_text(ld.type, ld.attr),
                        "format": ld.format,
                        "capacity": ld.capacity,
                    }
                    if row is None:
                        n = next(i for i in range(1, 10_000) if i not in used)
                        used.add(n)
                        row = {"array": a, "ld": ld.number, "number": n, **seen_as, "offline": 0, "unrecognised": 0}
                        self.db.table("disks").insert(row, alter=True)
                    elif any(row.get(k) != v for k, v in seen_as.items()):
                        self.db.table("disks").update((a, ld.number), seen_as, alter=True)
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
                            reserved_by=ld.reserved_by,
                        )
                    )
            disks += self._not_responding(rows, unreachable)
        self._read_layouts([d for d in disks[1:] if d.array not in unreachable])
        pins = self.pins()
        with self._db_lock:
            for disk in disks[1:]:
                self._attach_volumes(disk, pins)
        disks.sort(key=lambda d: d.number)
        self._view = disks
        return disks

    @staticmethod
    def _not_responding(
        rows: dict[tuple[str, str], dict[str, Any]], unreachable: dict[str, SnapLabClientError]
    ) -> list[Disk]:
        """The disks of arrays that do not answer (every SAN path cut, the array down): still listed,
        as the host saw them last, Not Ready with the array's silence as their error — a host's
        disks do not vanish when their paths fail, their I/O does."""
        out = []
        for (a, ld_number), row in sorted(rows.items(), key=lambda kv: kv[1]["number"]):
            if a not in unreachable:
                continue
            disk = Disk(
                row["number"],
                a,
                ld_number,
                row["ld_name"],
                row.get("ld_type") or "",
                row.get("format") or "",
                row.get("capacity") or 0,
                offline=bool(row["offline"]),
                recognised=not row["unrecognised"],
            )
            disk.array_ready = False
            disk.error = f"{E.ARRAY_UNREACHABLE.msg_id}: {E.ARRAY_UNREACHABLE.text.format(name=a)}"
            out.append(disk)
        return out

    def _read_layouts(self, disks: list[Disk]) -> None:
        """Every disk's partition table. The first sectors of all of an array's disks come in one
        ``ReadHeads`` call (a read is a round trip of ~1 ms, so with 1,024 LDs one read each would
        cost a second); only disks whose table points further (GPT entries, extended partitions) read
        more, a few at once, well under the array's per-host limit of streams in progress
        (CallLimits.host.streams = 8), which other commands and flushes of this host share."""
        heads: dict[tuple[str, str], bytes | SnapLabClientError] = {}
        for name in sorted({d.array for d in disks}):
            names = [d.ld_name for d in disks if d.array == name]
            try:
                got = self.array(name).read_heads(names, HEAD_BYTES)
            except SnapLabClientError as exc:
                log.warning("array %s did not read the disks' first sectors: %s", name, exc)
                got = dict.fromkeys(names, exc)
            heads.update({(name, ld): answer for ld, answer in got.items()})
        more = []
        for disk in disks:
            head = heads.get((disk.array, disk.ld_name))
            if isinstance(head, SnapLabClientError):
                disk.array_ready = False
                disk.error = f"{head.msg_id or head.code.name}: {head.text}"
            elif head is not None and not self._read_layout(disk, head, further=False):
                more.append((disk, head))
            elif head is None:
                more.append((disk, b""))
        if len(more) < 2 * LAYOUT_READERS:
            for disk, head in more:
                self._read_layout(disk, head)
            return
        with ThreadPoolExecutor(LAYOUT_READERS, thread_name_prefix="layout") as pool:
            list(pool.map(lambda dh: self._read_layout(*dh), more))

    def _read_layout(self, disk: Disk, head: bytes, *, further: bool = True) -> bool:
        """Read ``disk``'s table, served from ``head`` where it holds the range; False (nothing set)
        if it needs more and ``further`` is False."""
        client = self.array(disk.array)

        def read(offset: int, length: int) -> bytes:
            if offset + length <= len(head):
                return head[offset : offset + length]
            if not further:
                raise _NeedsMore
            return client.read(disk.ld_name, offset, length)

        try:
            disk.layout = pt.read_layout(read, disk.capacity)
        except _NeedsMore:
            return False
        except SnapLabClientError as exc:
            disk.array_ready = False
            disk.error = f"{exc.msg_id or exc.code.name}: {exc.text}"
        return True

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
