"""Export of a partition to a file: its archive (an SQLite database ``sqlite3 -A`` reads), or every byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from snaplab.agent import partitions as pt
from snaplab.agent.fs.archive import PAGE, READ_CHUNK, header_pages


def export_partition(
    read: Callable[[int, int], bytes], capacity: int, partition: int, dest: Path, *, whole: bool = False
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
    if not whole:
        n = header_pages(read(start, 100)) if size >= 100 else None
        if n is None:
            raise ValueError(f"partition {partition} holds no file system (RAW); --whole exports its bytes")
        size = min(size, n * PAGE)
    with open(dest, "wb") as f:
        f.writelines(read(start + off, min(READ_CHUNK, size - off)) for off in range(0, size, READ_CHUNK))
    return size
