"""The file system of a host's volumes as commands use it: FORMAT, identification, mount, flush, CHKDSK."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs import chkdsk, journal
from snaplab.agent.fs.archive import (
    FS_NAME,
    PAGE,
    WRITE_CHUNK,
    NotFormatted,
    header_pages,
    new_database,
    read_header,
    serial_of,
    serial_text,
    volume_meta,
)
from snaplab.agent.fs.cache import FileSystemCache
from snaplab.agent.fs.flush import FlushStats
from snaplab.agent.fs.kept import Unflushed

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.host import Volume


@dataclass(frozen=True)
class BootInfo:
    """What the volume says about its file system: type, label, serial (``XXXX-XXXX``), size in bytes."""

    fs: str
    label: str
    serial: str
    size: int


class FileSystem(Protocol):
    """What the host model needs of a file system (SqlarFileSystem is the one it uses)."""

    def format_volume(self, volume: Volume, label: str = "", quick: bool = True) -> BootInfo: ...
    def is_formatted(self, volume: Volume) -> bool: ...
    def info(self, volume: Volume) -> BootInfo | None: ...
    def attach(self, volume: Volume) -> None: ...
    def mounted(self, volume: Volume) -> bool: ...
    def mount(self, volume: Volume, mount_point: str) -> Path: ...
    def flush(self, volume: Volume) -> FlushStats: ...
    def unmount(self, volume: Volume, force: bool = False, mount_point: str | None = None) -> None: ...
    def check(self, volume: Volume, fix: bool = False) -> tuple[int, list[str]]: ...
    def shutdown(self, view: dict[tuple[str, str, int], Volume]) -> list[Unflushed]: ...


class SqlarFileSystem(FileSystemCache):
    """The file system of one host's volumes: an SQLite archive per partition (archive.py), mounted
    through the cache (cache.py), flushed page by page (flush.py), checked and repaired (chkdsk.py)."""

    # -- formatting and identification -----------------------------------------------------------
    def format_volume(self, volume: Volume, label: str = "", quick: bool = True) -> BootInfo:
        if volume.local:
            raise PermissionError("the system volume cannot be formatted")
        self.drop(volume)
        serial = int.from_bytes(os.urandom(4), "little") or 1
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            path = Path(tmp) / "new.db"
            new_database(path, label, serial)
            image = path.read_bytes()
        if len(image) > volume.size:
            raise CommandError(E.DISK_OPERATION, detail="the volume is too small for a file system")
        if not quick:  # a full format also clears what the old file system left behind
            try:
                old = read_header(volume)
            except (NotFormatted, CommandError):
                old = 0
            end = min(max(old * PAGE, 2 * PAGE), volume.size)
            for off in range(len(image), end, WRITE_CHUNK):
                volume.write(off, bytes(min(WRITE_CHUNK, end - off)))
        journal.clear(volume)  # the old file system's last flush record goes with it
        volume.write(0, image)
        return BootInfo(FS_NAME, label, serial_text(serial), volume.size)

    def info(self, volume: Volume) -> BootInfo | None:
        if volume.local:
            return BootInfo(FS_NAME, "", "0000-0001", volume.size)
        s = self.sessions.get(volume.key)
        if s is not None:
            return BootInfo(FS_NAME, s.label, s.serial, volume.size)
        try:
            if volume.size < 2 * PAGE:
                return None
            head = volume.read(0, 2 * PAGE)
        except Exception:  # noqa: BLE001 - an unreadable volume (any failure) is not a formatted one
            return None
        if header_pages(head) is None:
            return None
        meta = volume_meta(head)
        return BootInfo(FS_NAME, str(meta.get("label") or ""), serial_of(meta.get("serial")), volume.size)

    def is_formatted(self, volume: Volume) -> bool:
        if volume.local or volume.key in self.sessions:
            return True
        try:
            read_header(volume)
            return True
        except Exception:  # noqa: BLE001
            return False

    # -- CHKDSK ------------------------------------------------------------------------------------
    def check(self, volume: Volume, fix: bool = False) -> tuple[int, list[str]]:
        """CHKDSK (chkdsk.py): (exit status, report lines)."""
        return chkdsk.check(self, volume, fix)
