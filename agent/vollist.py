"""The volume list (iSMvollist, C2) and the control-volume definition (C3) of one host.

The list is a snapshot of the host's view taken by ``iSMvollist -cr``: which array LDs the host
sees as which disks, their partitions' volume names and mount points, and the CV of each array.
Commands resolve their targets through it, so a list older than the host's configuration gives
errors (iSM11703/iSM11704) until it is recreated — as on the real product.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class VolEntry:
    """One LD the host sees (partition None) or one partition's volume on it."""

    array: str  # disk array name
    ld_number: str  # "0030h"
    ld_name: str
    ld_type: str  # IV, BV, LV, CV as the array reported it at creation
    format: str  # WN, WG, ...
    disk: int  # disk number: the host's "disk<N>" / \\.\PhysicalDrive<N>
    partition: int | None = None  # 1-based partition number; None for the disk itself
    volume: str = ""  # \\?\Volume{GUID}\ of the partition, "" for the disk entry
    mount_points: list[str] = field(default_factory=list)  # "G:" or an NTFS folder "C:\mnt\bk\"
    definition: str = ""  # "control" for the array's CV
    # The array's own name when the list was made, if it is not ``array`` (the name this host knew
    # it by when it enrolled, which keys its disks): an array renamed since (iSMcfg arrayname).
    array_name: str = ""

    @property
    def shown_array(self) -> str:
        """The ``Disk Array Name`` the list shows."""
        return self.array_name or self.array

    @property
    def special_file(self) -> str:
        """What ``Special File`` shows on a Windows host."""
        return f"disk{self.disk}" if self.partition is None else self.volume


@dataclass
class VolumeList:
    host: str
    created: str  # yyyy/mm/dd hh:mm:ss
    entries: list[VolEntry] = field(default_factory=list)

    # -- lookups --------------------------------------------------------------------------------
    def disks(self) -> list[VolEntry]:
        return [e for e in self.entries if e.partition is None]

    def by_ld(self, name: str, array: str | None = None) -> VolEntry | None:
        """The disk entry of an LD, by name or number text (``0030h``)."""
        for e in self.disks():
            if (e.ld_name == name or e.ld_number.lower() == name.lower()) and (array is None or e.array == array):
                return e
        return None

    def volumes_of(self, disk_entry: VolEntry) -> list[VolEntry]:
        return [e for e in self.entries if e.partition is not None and e.disk == disk_entry.disk]

    def by_mount_point(self, mount_point: str) -> VolEntry | None:
        key = normalise_mount_point(mount_point)
        for e in self.entries:
            if any(normalise_mount_point(m) == key for m in e.mount_points):
                return e
        return None

    def by_volume(self, volume: str) -> VolEntry | None:
        key = normalise_volume_name(volume)
        for e in self.entries:
            if e.volume and normalise_volume_name(e.volume) == key:
                return e
        return None

    def cv(self, array: str | None = None) -> VolEntry | None:
        for e in self.disks():
            if e.definition == "control" and (array is None or e.array == array):
                return e
        return None

    # -- storage --------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": self.host, "created": self.created,
                                   "entries": [asdict(e) for e in self.entries]}, indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> VolumeList | None:
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(raw["host"], raw["created"], [VolEntry(**e) for e in raw["entries"]])


def normalise_mount_point(mp: str) -> str:
    """``g``, ``G:``, ``G:\\`` all name drive G:; folders compare case-insensitively with one trailing \\."""
    m = mp.strip().replace("/", "\\")
    if len(m) in (1, 2, 3) and m[0].isalpha() and m[1:2] in ("", ":") and m[2:] in ("", "\\"):
        return m[0].upper() + ":"
    return m.rstrip("\\").lower() + "\\"


def normalise_volume_name(v: str) -> str:
    """``\\\\?\\Volume{GUID}\\`` compared case-insensitively, with or without the trailing backslash."""
    return v.strip().rstrip("\\").lower()
