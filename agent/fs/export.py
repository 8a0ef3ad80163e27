"""Export of a partition to a file: its archive (an SQLite database ``sqlite3 -A`` reads), or every byte.

Given the LD's identity (``ld``: array name, LD number), the partition's own committed flush journal
is applied to the file (never to the volume), as a mount would: the export of a volume whose host
died in the middle of a flush is the flush's new state. A copy (an SV) does not apply the BV's
journal (journal.py): its export holds what the copy holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from snaplab.agent import partitions as pt
from snaplab.agent.fs import journal
from snaplab.agent.fs.archive import PAGE, READ_CHUNK, header_pages


class _Partition:
    """A partition read through ``read`` (journal.Device, read-only)."""

    def __init__(self, read: Callable[[int, int], bytes], start: int, size: int) -> None:
        self._read, self.start, self.size = read, start, size

    def read(self, offset: int, length: int) -> bytes:
        return self._read(self.start + offset, length)

    def write(self, offset: int, data: bytes) -> None:
        raise PermissionError("an export does not write the volume")


def export_partition(
    read: Callable[[int, int], bytes],
    capacity: int,
    partition: int,
    dest: Path,
    *,
    whole: bool = False,
    ld: tuple[str, str] | None = None,
) -> int:
    """Write partition ``partition`` (DISKPART's number) of a disk read through ``read(offset, length)``
    to ``dest``: its database (the header's page count), or every byte with ``whole``. Returns the size.
    ValueError when there is no such partition or it holds no file system (and not ``whole``)."""
    layout = pt.read_layout(read, capacity)
    part = next((p for p in layout.volumes() if p.number == partition), None)
    if part is None:
        raise ValueError(
            f"no partition {partition} with a volume (partitions: {[p.number for p in layout.volumes()]})"
        )
    start, size = part.start * pt.SECTOR, part.sectors * pt.SECTOR
    replay: dict[int, bytes] = {}
    if ld is not None and not whole:
        replay = journal.pending(_Partition(read, start, size), (ld[0], ld[1], start)).pages
    if not whole:
        head = replay[1][:100] if 1 in replay else read(start, 100) if size >= 100 else b""
        n = header_pages(head)
        if n is None:
            raise ValueError(f"partition {partition} holds no file system (RAW); --whole exports its bytes")
        size = min(size, n * PAGE)
    with open(dest, "wb") as f:
        f.writelines(read(start + off, min(READ_CHUNK, size - off)) for off in range(0, size, READ_CHUNK))
        for p, page in replay.items():
            if p * PAGE <= size:
                f.seek((p - 1) * PAGE)
                f.write(page)
    return size
