"""The file system of a host's volumes, behind a small interface (format, check, mount, flush, unmount).

This is the stand-in of the first agent issue: a volume is "formatted" iff its first sector holds an
NTFS-like boot sector (OEM ID ``NTFS    `` at offset 3, the volume serial at 0x48, 55AA at 510; the
lab keeps the label at 0x100 as a length byte and UTF-16LE). Mounting makes the mount point's folder
``<state>/mnt/<slug>``; unmounting removes it (files put there do not reach the volume yet: a later
issue replaces this class with a real file system that keeps its files on the volume's blocks).
There is no file-system cache, so ``flush`` and a forced unmount have nothing to write or discard.

:func:`holders` is the host's "handle" tool: the processes of this machine that have a file open, or
their working folder, under a mount folder (``iSMrc_umount`` refuses with iSM13609 while any do).
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from snaplab.agent.host import Host, Volume

OEM_ID = b"NTFS    "
SERIAL_OFFSET = 0x48
LABEL_OFFSET = 0x100
MAX_LABEL = 32


@dataclass(frozen=True)
class BootInfo:
    """What the boot sector says: file system, label, serial (``XXXX-XXXX``), size in bytes."""

    fs: str
    label: str
    serial: str
    size: int


class FileSystem(Protocol):
    def format_volume(self, volume: Volume, label: str = "", quick: bool = True) -> BootInfo: ...
    def is_formatted(self, volume: Volume) -> bool: ...
    def info(self, volume: Volume) -> BootInfo | None: ...
    def mount(self, volume: Volume, mount_point: str) -> Path: ...
    def flush(self, volume: Volume) -> None: ...
    def unmount(self, volume: Volume, force: bool = False, mount_point: str | None = None) -> None: ...
    def check(self, volume: Volume, fix: bool = False) -> tuple[bool, list[str]]: ...


def boot_sector(size: int, label: str, serial: int) -> bytes:
    b = bytearray(512)
    b[0:3] = b"\xeb\x52\x90"
    b[3:11] = OEM_ID
    struct.pack_into("<HB", b, 11, 512, 8)  # bytes per sector, sectors per cluster
    b[21] = 0xF8  # fixed disk
    struct.pack_into("<QQQ", b, 0x28, size // 512, 4, max(size // 512 // 16, 8))  # sectors, $MFT, $MFTMirr
    struct.pack_into("<Q", b, SERIAL_OFFSET, serial)
    raw = label[:MAX_LABEL].encode("utf-16-le")
    b[LABEL_OFFSET] = len(raw) // 2
    b[LABEL_OFFSET + 1 : LABEL_OFFSET + 1 + len(raw)] = raw
    b[510:512] = b"\x55\xaa"
    return bytes(b)


def parse_boot_sector(sector: bytes, size: int) -> BootInfo | None:
    if len(sector) < 512 or sector[3:11] != OEM_ID or sector[510:512] != b"\x55\xaa":
        return None
    serial = struct.unpack_from("<Q", sector, SERIAL_OFFSET)[0] & 0xFFFFFFFF
    n = min(sector[LABEL_OFFSET], MAX_LABEL)
    label = sector[LABEL_OFFSET + 1 : LABEL_OFFSET + 1 + 2 * n].decode("utf-16-le", errors="replace")
    return BootInfo("NTFS", label, f"{serial >> 16:04X}-{serial & 0xFFFF:04X}", size)


class StandInFileSystem:
    """NTFS-like boot sector on the volume; mount folders under the host's state."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def format_volume(self, volume: Volume, label: str = "", quick: bool = True) -> BootInfo:
        if volume.local:
            raise PermissionError("the system volume cannot be formatted")
        serial = int.from_bytes(os.urandom(8), "little")
        data = boot_sector(volume.size, label, serial)
        if not quick:  # a full format also clears what the old file system left behind
            volume.write(512, bytes(min(volume.size - 512, 64 * 1024)))
        volume.write(0, data)
        info = parse_boot_sector(data, volume.size)
        assert info is not None
        return info

    def info(self, volume: Volume) -> BootInfo | None:
        if volume.local:
            return BootInfo("NTFS", "", "0000-0001", volume.size)
        try:
            return parse_boot_sector(volume.read(0, 512), volume.size)
        except Exception:  # noqa: BLE001 - an unreadable volume (any failure) is not a formatted one
            return None

    def is_formatted(self, volume: Volume) -> bool:
        return self.info(volume) is not None

    def mount(self, volume: Volume, mount_point: str) -> Path:
        path = self.host.mount_path(mount_point)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def flush(self, volume: Volume) -> None:
        """Nothing is cached by the stand-in: every write already reached the array."""

    def unmount(self, volume: Volume, force: bool = False, mount_point: str | None = None) -> None:
        points = [mount_point] if mount_point is not None else list(volume.mount_points)
        for mp in points:
            shutil.rmtree(self.host.mount_path(mp), ignore_errors=True)

    def check(self, volume: Volume, fix: bool = False) -> tuple[bool, list[str]]:
        """(healthy, report lines) in CHKDSK's words."""
        info = self.info(volume)
        if info is None:
            return False, ["The type of the file system is RAW.", "CHKDSK is not available for RAW drives."]
        lines = ["The type of the file system is NTFS."]
        if info.label:
            lines.append(f"Volume label is {info.label}.")
        lines.append("")
        if not fix:
            lines += ["WARNING!  /F parameter not specified.", "Running CHKDSK in read-only mode.", ""]
        lines += [
            "Stage 1: Examining basic file system structure ...",
            "Stage 2: Examining file name linkage ...",
            "Stage 3: Examining security descriptors ...",
            "",
            "Windows has scanned the file system and found no problems.",
            "No further action is required.",
            "",
            f"{volume.size // 1024:>12} KB total disk space.",
        ]
        return True, lines


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def holders(paths: list[Path]) -> list[tuple[int, str]]:
    """(pid, command name) of every process of this machine with its working folder or an open file
    under one of ``paths``; the calling process itself is not counted."""
    roots = [os.path.realpath(p) for p in paths]
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        base = f"/proc/{entry}"
        hit = False
        try:
            hit = _under(os.readlink(f"{base}/cwd"), roots)
        except OSError:
            pass
        if not hit:
            try:
                fds = os.listdir(f"{base}/fd")
            except OSError:
                fds = []
            for fd in fds:
                try:
                    if _under(os.readlink(f"{base}/fd/{fd}"), roots):
                        hit = True
                        break
                except OSError:
                    continue
        if hit:
            try:
                comm = Path(f"{base}/comm").read_text().strip()
            except OSError:
                comm = "?"
            out.append((int(entry), comm))
    return out
