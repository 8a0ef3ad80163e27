"""A host's disks and volumes as it sees them now, and the names Windows gives volumes and mount points."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent import partitions as pt
from snaplab.agent.vollist import normalise_mount_point

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.host.host import Host

SYSTEM_CAPACITY = 40 * 1024**3
SYSTEM_START = 1024 * 1024
# Reads that say the LU is there but not usable now: the disk is Not Ready, not failed.
NOT_READY_IDS = (
    E.NOT_READY.msg_id,
    E.LINK_LOST.msg_id,
    E.AC_BV_LINKED.msg_id,
    E.AC_DENIED.msg_id,
    E.ARRAY_UNREACHABLE.msg_id,  # every path to the array cut: the device is not ready, not broken
)
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

    def read_chunks(self, offset: int, length: int) -> Iterator[bytes | memoryview]:
        """The range in the pieces the array sends, as they arrive (their lengths add up to ``length``)."""
        if offset < 0 or offset + length > self.size:
            raise ValueError("read beyond the volume")
        assert self.host is not None
        return self.host.read_disk_chunks(self.disk, self.start + offset, length)

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
    reserved_by: str = ""  # a cluster shared disk: the node whose writes the array accepts (reservations)
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
