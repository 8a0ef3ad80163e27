"""Partition tables as a host reads and writes them on its disks: MBR (primary, extended, logical), GPT, dynamic.

The array reads the same sectors for its partition rules (A11, ``snaplab.san.disklayout``); this
module is the host's side: it parses a whole table into a :class:`Layout` and writes one back, using
the shared MBR builder for the MBR, the EBRs and the GPT protective MBR.

Numbering follows DiskPart: partitions are numbered from 1 in table order (MBR slots, then the
logical partitions of the extended partition in chain order; GPT entries in order), and the
extended container has a number but no volume.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from snaplab.san import disklayout as dl

SECTOR = dl.SECTOR
NTFS = 0x07  # "IFS": the type Windows gives a new basic data partition on an MBR disk
EXTENDED = 0x05
GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128
GPT_TABLE_SECTORS = GPT_ENTRIES * GPT_ENTRY_SIZE // SECTOR  # 32
NO_VOLUME_TYPES = (dl.GPT_MSR, dl.GPT_LDM_METADATA)

Read = Callable[[int, int], bytes]
Write = Callable[[int, bytes], None]


class LayoutError(Exception):
    """A partitioning request the disk cannot satisfy; ``str()`` is DiskPart's wording."""


@dataclass
class Part:
    number: int
    kind: str  # primary, extended, logical, gpt
    ptype: int | uuid.UUID
    start: int  # first sector
    sectors: int
    ebr: int | None = None  # sector of the EBR in front of a logical partition
    guid: uuid.UUID | None = None  # GPT unique partition GUID
    name: str = ""

    @property
    def end(self) -> int:
        """One past the last sector."""
        return self.start + self.sectors

    @property
    def dynamic(self) -> bool:
        return self.ptype in (dl.DYNAMIC_DISK, dl.GPT_LDM_DATA, dl.GPT_LDM_METADATA)

    @property
    def has_volume(self) -> bool:
        return self.kind != "extended" and self.ptype not in NO_VOLUME_TYPES

    @property
    def type_text(self) -> str:
        if self.kind == "gpt":
            if self.ptype == dl.GPT_MSR:
                return "Reserved"
            return "Dynamic Data" if self.dynamic else "Primary"
        if self.dynamic:
            return "Dynamic Data"
        return {"primary": "Primary", "extended": "Extended", "logical": "Logical"}[self.kind]


@dataclass
class Layout:
    scheme: str  # none, mbr, gpt
    total: int  # sectors of the disk
    signature: bytes | None = None  # MBR disk signature
    disk_guid: uuid.UUID | None = None  # GPT disk GUID
    parts: list[Part] = field(default_factory=list)

    @property
    def dynamic(self) -> bool:
        return any(p.dynamic for p in self.parts)

    @property
    def extended(self) -> Part | None:
        return next((p for p in self.parts if p.kind == "extended"), None)

    def renumber(self) -> None:
        order = {"primary": 0, "extended": 0, "gpt": 0, "logical": 1}
        # MBR slots keep their order; logical partitions follow in chain (= disk) order.
        slots = [p for p in self.parts if order[p.kind] == 0]
        logical = sorted((p for p in self.parts if p.kind == "logical"), key=lambda p: p.start)
        self.parts = slots + logical
        for i, p in enumerate(self.parts, 1):
            p.number = i

    def volumes(self) -> list[Part]:
        return [p for p in self.parts if p.has_volume]

    def usable(self) -> tuple[int, int]:
        """(first, one past last) sector partitions may use."""
        if self.scheme == "gpt":
            return 2 + GPT_TABLE_SECTORS, self.total - 1 - GPT_TABLE_SECTORS
        return alignment(self.total), self.total


def alignment(total_sectors: int) -> int:
    """Partition alignment in sectors: 1 MiB as Windows does, 64 KiB on the small LDs of a lab."""
    return 2048 if total_sectors * SECTOR >= 256 * 1024 * 1024 else 128


def new_signature() -> bytes:
    while True:
        sig = os.urandom(4)
        if sig != bytes(4):
            return sig


def signature_text(sig: bytes | None) -> str:
    """How Windows shows a disk signature (DISKPART ``uniqueid disk``): the 32-bit value in hex."""
    return "-" if not sig else f"{int.from_bytes(sig, 'little'):08X}"


def parse_signature(text: str) -> bytes:
    value = int(text, 16)
    if not 0 < value <= 0xFFFFFFFF:
        raise ValueError(text)
    return value.to_bytes(4, "little")


# -- reading ---------------------------------------------------------------------------------


def _entries(sector: bytes) -> list[tuple[int, int, int]]:
    out = []
    for i in range(4):
        e = sector[446 + 16 * i : 446 + 16 * (i + 1)]
        lba, count = struct.unpack_from("<II", e, 8)
        if e[4] != 0 and count != 0:
            out.append((e[4], lba, count))
    return out


def read_layout(read: Read, capacity: int) -> Layout:
    """The partition table of a disk of ``capacity`` bytes, read through ``read(offset, length)``."""
    total = capacity // SECTOR
    mbr = read(0, SECTOR)
    if not dl.has_mbr(mbr):
        return Layout("none", total)
    entries = _entries(mbr)
    if any(t == dl.GPT_PROTECTIVE for t, _, _ in entries):
        return _read_gpt(read, total)
    layout = Layout("mbr", total, signature=bytes(mbr[dl.MBR_SIGNATURE_OFFSET : dl.MBR_SIGNATURE_OFFSET + 4]))
    for ptype, lba, count in entries:
        if ptype in dl.EXTENDED_TYPES:
            layout.parts.append(Part(0, "extended", ptype, lba, count))
            layout.parts += _read_logical(read, lba, lba + count)
        else:
            layout.parts.append(Part(0, "primary", ptype, lba, count))
    layout.renumber()
    return layout


def _read_logical(read: Read, ext_start: int, ext_end: int) -> list[Part]:
    out: list[Part] = []
    ebr_lba, seen = ext_start, set[int]()
    while ebr_lba not in seen and len(seen) < 128 and ext_start <= ebr_lba < ext_end:
        seen.add(ebr_lba)
        ebr = read(ebr_lba * SECTOR, SECTOR)
        if not dl.has_mbr(ebr):
            break
        nxt = None
        for ptype, lba, count in _entries(ebr):
            if ptype in dl.EXTENDED_TYPES:
                nxt = ext_start + lba
            else:
                out.append(Part(0, "logical", ptype, ebr_lba + lba, count, ebr=ebr_lba))
        if nxt is None:
            break
        ebr_lba = nxt
    return out


def _read_gpt(read: Read, total: int) -> Layout:
    header = read(SECTOR, 92)
    layout = Layout("gpt", total)
    if header[:8] != b"EFI PART":
        return layout
    layout.disk_guid = uuid.UUID(bytes_le=bytes(header[56:72]))
    entries_lba, n, size = struct.unpack_from("<QII", header, 72)
    n = min(n, 256)
    if n == 0 or size < 128:
        return layout
    table = read(entries_lba * SECTOR, n * size)
    for i in range(n):
        raw = table[i * size : i * size + 128]
        if len(raw) < 128 or raw[:16] == bytes(16):
            continue
        first, last = struct.unpack_from("<QQ", raw, 32)
        name = raw[56:128].decode("utf-16-le", errors="replace").split("\x00", 1)[0]
        ptype = uuid.UUID(bytes_le=bytes(raw[:16]))
        unique = uuid.UUID(bytes_le=bytes(raw[16:32]))
        sectors = last - first + 1 if last >= first else 0
        layout.parts.append(Part(0, "gpt", ptype, first, sectors, guid=unique, name=name))
    layout.renumber()
    return layout


# -- writing ---------------------------------------------------------------------------------


def write_layout(write: Write, layout: Layout) -> None:
    """Write the whole table of ``layout`` (MBR + EBR chain, or protective MBR + both GPT copies)."""
    if layout.scheme == "mbr":
        _write_mbr(write, layout)
    elif layout.scheme == "gpt":
        _write_gpt(write, layout)
    else:
        write(0, bytes(SECTOR))


def _write_mbr(write: Write, layout: Layout) -> None:
    slots = [p for p in layout.parts if p.kind in ("primary", "extended")]
    if len(slots) > 4:
        raise LayoutError("The partition table is full.")
    sig = layout.signature or new_signature()
    layout.signature = sig
    write(0, dl.build_mbr([(int(p.ptype), p.start, p.sectors) for p in slots], signature=sig))  # type: ignore[arg-type]
    ext = layout.extended
    if ext is None:
        return
    logical = sorted((p for p in layout.parts if p.kind == "logical"), key=lambda p: p.start)
    if not logical:  # an empty extended partition still starts with an (empty) EBR
        write(ext.start * SECTOR, dl.build_mbr([], signature=bytes(4)))
        return
    for i, p in enumerate(logical):
        assert p.ebr is not None
        entries = [(int(p.ptype), p.start - p.ebr, p.sectors)]  # type: ignore[arg-type]
        if i + 1 < len(logical):
            n = logical[i + 1]
            assert n.ebr is not None
            entries.append((EXTENDED, n.ebr - ext.start, n.end - n.ebr))
        write(p.ebr * SECTOR, dl.build_mbr(entries, signature=bytes(4)))


def _gpt_header(layout: Layout, current: int, backup: int, entries_lba: int, entries_crc: int) -> bytes:
    first, end = layout.usable()
    h = bytearray(SECTOR)
    h[0:8] = b"EFI PART"
    struct.pack_into("<IIII", h, 8, 0x00010000, 92, 0, 0)
    struct.pack_into("<QQQQ", h, 24, current, backup, first, end - 1)
    h[56:72] = (layout.disk_guid or uuid.uuid4()).bytes_le
    struct.pack_into("<QIII", h, 72, entries_lba, GPT_ENTRIES, GPT_ENTRY_SIZE, entries_crc)
    struct.pack_into("<I", h, 16, zlib.crc32(bytes(h[:92])))
    return bytes(h)


def _write_gpt(write: Write, layout: Layout) -> None:
    if layout.disk_guid is None:
        layout.disk_guid = uuid.uuid4()
    parts = [p for p in layout.parts if p.kind == "gpt"]
    if len(parts) > GPT_ENTRIES:
        raise LayoutError("The partition table is full.")
    table = bytearray(GPT_ENTRIES * GPT_ENTRY_SIZE)
    for i, p in enumerate(parts):
        off = i * GPT_ENTRY_SIZE
        if p.guid is None:
            p.guid = uuid.uuid4()
        table[off : off + 16] = p.ptype.bytes_le  # type: ignore[union-attr]
        table[off + 16 : off + 32] = p.guid.bytes_le
        struct.pack_into("<QQQ", table, off + 32, p.start, p.end - 1, 0)
        name = p.name.encode("utf-16-le")[:72]
        table[off + 56 : off + 56 + len(name)] = name
    crc = zlib.crc32(bytes(table))
    last = layout.total - 1
    backup_entries = last - GPT_TABLE_SECTORS
    pmbr = dl.build_mbr([(dl.GPT_PROTECTIVE, 1, min(layout.total - 1, 0xFFFFFFFF))], signature=bytes(4))
    write(0, pmbr)
    write(SECTOR, _gpt_header(layout, 1, last, 2, crc))
    write(2 * SECTOR, bytes(table))
    write(backup_entries * SECTOR, bytes(table))
    write(last * SECTOR, _gpt_header(layout, last, 1, backup_entries, crc))


# -- changing a layout -------------------------------------------------------------------------


def initialise(total: int, scheme: str) -> Layout:
    """An empty MBR (with a new disk signature) or GPT layout."""
    if scheme == "mbr":
        return Layout("mbr", total, signature=new_signature())
    return Layout("gpt", total, disk_guid=uuid.uuid4())


def _free(lo: int, hi: int, used: list[tuple[int, int]], align: int) -> list[tuple[int, int]]:
    """Aligned free extents [start, end) of [lo, hi) around the ``used`` ranges."""
    out, pos = [], lo
    for s, e in sorted(used):
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    if hi > pos:
        out.append((pos, hi))
    aligned = []
    for s, e in out:
        s2 = -(-s // align) * align
        if e - s2 > 0:
            aligned.append((s2, e))
    return aligned


def _pick(extents: list[tuple[int, int]], sectors: int | None, head: int = 0) -> tuple[int, int]:
    """(start, sectors) in the first extent that fits (``head`` sectors go in front: an EBR gap)."""
    if not extents:
        raise LayoutError("There is not enough usable free space on specified disk(s) to create a volume.")
    if sectors is None:
        s, e = max(extents, key=lambda x: x[1] - x[0])
        if e - s - head <= 0:
            raise LayoutError(
                "There is not enough usable free space on specified disk(s) to create a volume."
            )
        return s, e - s
    for s, e in extents:
        if e - s - head >= sectors:
            return s, sectors + head
    raise LayoutError("There is not enough space available on the disk(s) to complete this operation.")


def free_sectors(layout: Layout) -> int:
    align = alignment(layout.total)
    if layout.scheme == "none":  # an uninitialised disk: all of it, as DiskPart counts it
        return layout.total - align
    lo, hi = layout.usable()
    used = [(p.start, p.end) for p in layout.parts if p.kind != "logical"]
    return sum(e - s for s, e in _free(lo, hi, used, align))


def add_partition(layout: Layout, kind: str, size_mb: int | None) -> Part:
    """Add a primary, extended or logical partition (GPT: primary only); returns it, numbered."""
    if layout.dynamic:
        raise LayoutError("The operation is not supported on a dynamic disk. Use CREATE VOLUME instead.")
    sectors = None if size_mb is None else size_mb * 1024 * 1024 // SECTOR
    if sectors is not None and sectors <= 0:
        raise LayoutError("The arguments specified for this command are not valid.")
    align = alignment(layout.total)
    lo, hi = layout.usable()
    if layout.scheme == "gpt":
        if kind != "primary":
            raise LayoutError("Extended and logical partitions are not supported on GPT disks.")
        used = [(p.start, p.end) for p in layout.parts]
        start, n = _pick(_free(lo, hi, used, align), sectors)
        part = Part(0, "gpt", dl.BASIC_DATA, start, n, guid=uuid.uuid4(), name="Basic data partition")
    elif kind in ("primary", "extended"):
        if sum(1 for p in layout.parts if p.kind in ("primary", "extended")) >= 4:
            raise LayoutError("No more primary partitions can be created on this disk.")
        if kind == "extended" and layout.extended is not None:
            raise LayoutError("An extended partition already exists on this disk.")
        used = [(p.start, p.end) for p in layout.parts if p.kind != "logical"]
        start, n = _pick(_free(lo, hi, used, align), sectors)
        part = Part(0, kind, NTFS if kind == "primary" else EXTENDED, start, n)
    elif kind == "logical":
        ext = layout.extended
        if ext is None:
            raise LayoutError("There is no extended partition on this disk to hold a logical drive.")
        used = [(p.ebr if p.ebr is not None else p.start, p.end) for p in layout.parts if p.kind == "logical"]
        extents = _free(ext.start, ext.end, used, align)
        ebr, n = _pick(extents, sectors, head=align)
        part = Part(0, "logical", NTFS, ebr + align, n - align, ebr=ebr)
    else:
        raise LayoutError("The arguments specified for this command are not valid.")
    layout.parts.append(part)
    layout.renumber()
    return part


def delete_partition(layout: Layout, part: Part) -> None:
    if part.kind == "extended" and any(p.kind == "logical" for p in layout.parts):
        raise LayoutError("The extended partition is not empty.")
    layout.parts.remove(part)
    layout.renumber()


def convert_dynamic(layout: Layout) -> None:
    """Basic to dynamic: every partition becomes a simple volume (its entry takes the LDM type).

    The lab keeps no LDM database: the volumes of a dynamic disk are its LDM-typed entries, so an
    empty disk converted to dynamic reads back as an empty basic disk."""
    if layout.scheme == "none":
        raise LayoutError("The disk is not initialized.")
    if any(p.kind in ("extended", "logical") for p in layout.parts):
        raise LayoutError(
            "The disk contains an extended partition; the conversion is not supported in this lab."
        )
    for p in layout.parts:
        if p.kind == "gpt":
            p.ptype = dl.GPT_LDM_DATA if p.ptype != dl.GPT_MSR else p.ptype
        else:
            p.ptype = dl.DYNAMIC_DISK
