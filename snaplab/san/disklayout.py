"""What the array reads of an LD's first blocks: the partition table and the disk signature (A10, A11)."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

SECTOR = 512
MBR_SIGNATURE_OFFSET = 440  # 4-byte NT disk signature inside the MBR
MBR_MAGIC = b"\x55\xaa"
GPT_PROTECTIVE = 0xEE
DYNAMIC_DISK = 0x42  # LDM: simple, spanned, striped, mirror and RAID-5 volumes live behind this type
EXTENDED_TYPES = (0x05, 0x0F, 0x85)
# Windows keeps a hidden reserved partition on every GPT disk; it holds no volume, so it is not counted.
GPT_MSR = uuid.UUID("e3c9e316-0b5c-4db8-817d-f92df00215ae")
GPT_LDM_METADATA = uuid.UUID("5808c8aa-7e8f-42e0-85d2-e1e90434cfb3")
GPT_LDM_DATA = uuid.UUID("af9b60a0-1431-4f62-bc68-3311714a69ad")


@dataclass(frozen=True)
class DiskLayout:
    """Partition scheme ('none', 'mbr', 'gpt'), how many volumes it holds and whether it is a dynamic disk."""

    scheme: str
    volumes: int
    dynamic: bool = False


def has_mbr(block0: bytes) -> bool:
    return len(block0) >= SECTOR and block0[510:512] == MBR_MAGIC


def read_signature(block0: bytes) -> bytes | None:
    """The 4-byte disk signature of an MBR disk, or None when the LD holds no MBR."""
    if not has_mbr(block0):
        return None
    return bytes(block0[MBR_SIGNATURE_OFFSET : MBR_SIGNATURE_OFFSET + 4])


def with_signature(block0: bytes, signature: bytes) -> bytes:
    b = bytearray(block0)
    b[MBR_SIGNATURE_OFFSET : MBR_SIGNATURE_OFFSET + 4] = signature
    return bytes(b)


def _mbr_entries(sector: bytes) -> list[tuple[int, int, int]]:
    """(type, first LBA, sector count) of the used entries of an MBR or EBR."""
    out = []
    for i in range(4):
        e = sector[446 + 16 * i : 446 + 16 * (i + 1)]
        ptype = e[4]
        lba, count = struct.unpack_from("<II", e, 8)
        if ptype != 0 and count != 0:
            out.append((ptype, lba, count))
    return out


def analyse(read) -> DiskLayout:
    """Analyse an LD through ``read(offset, length) -> bytes``.

    Counts MBR primary partitions and the logical partitions of the extended partition's EBR chain,
    or the GPT entries (the reserved partition excepted); LDM types mark a dynamic disk.
    """
    mbr = read(0, SECTOR)
    if not has_mbr(mbr):
        return DiskLayout("none", 0)
    entries = _mbr_entries(mbr)
    if any(t == GPT_PROTECTIVE for t, _, _ in entries):
        return _analyse_gpt(read)
    if any(t == DYNAMIC_DISK for t, _, _ in entries):
        return DiskLayout("mbr", len(entries), dynamic=True)
    volumes = 0
    for ptype, lba, _count in entries:
        if ptype in EXTENDED_TYPES:
            volumes += _count_logical(read, lba)
        else:
            volumes += 1
    return DiskLayout("mbr", volumes)


def _count_logical(read, ext_start: int) -> int:
    count, ebr_lba, seen = 0, ext_start, set()
    while ebr_lba not in seen and len(seen) < 128:  # a looping or absurd chain is cut off
        seen.add(ebr_lba)
        ebr = read(ebr_lba * SECTOR, SECTOR)
        if not has_mbr(ebr):
            break
        entries = _mbr_entries(ebr)
        nxt = None
        for ptype, lba, _n in entries:
            if ptype in EXTENDED_TYPES:
                nxt = ext_start + lba
            else:
                count += 1
        if nxt is None:
            break
        ebr_lba = nxt
    return count


def _analyse_gpt(read) -> DiskLayout:
    header = read(SECTOR, 92)
    if header[:8] != b"EFI PART":
        return DiskLayout("gpt", 0)
    entries_lba, n_entries, entry_size = struct.unpack_from("<QII", header, 72)
    n_entries = min(n_entries, 256)
    table = read(entries_lba * SECTOR, n_entries * entry_size) if n_entries else b""
    volumes, dynamic = 0, False
    for i in range(n_entries):
        raw = table[i * entry_size : i * entry_size + 16]
        if len(raw) < 16 or raw == bytes(16):
            continue
        ptype = uuid.UUID(bytes_le=bytes(raw))
        if ptype == GPT_MSR:
            continue
        if ptype in (GPT_LDM_METADATA, GPT_LDM_DATA):
            dynamic = True
        volumes += 1
    return DiskLayout("gpt", volumes, dynamic=dynamic)


def build_mbr(partitions: list[tuple[int, int, int]], signature: bytes = b"\x12\x34\x56\x78") -> bytes:
    """A 512-byte MBR with up to four (type, first LBA, sector count) entries; for tests and tools."""
    b = bytearray(SECTOR)
    b[MBR_SIGNATURE_OFFSET : MBR_SIGNATURE_OFFSET + 4] = signature
    for i, (ptype, lba, count) in enumerate(partitions[:4]):
        off = 446 + 16 * i
        b[off + 4] = ptype
        struct.pack_into("<II", b, off + 8, lba, count)
    b[510:512] = MBR_MAGIC
    return bytes(b)


def build_gpt(partition_types: list[uuid.UUID]) -> list[tuple[int, bytes]]:
    """(offset, bytes) writes for a protective MBR, a GPT header and entries; for tests and tools."""
    mbr = build_mbr([(GPT_PROTECTIVE, 1, 0xFFFFFFFF)], signature=bytes(4))
    header = bytearray(92)
    header[:8] = b"EFI PART"
    struct.pack_into("<QII", header, 72, 2, 128, 128)
    entries = bytearray(128 * 128)
    for i, t in enumerate(partition_types):
        entries[i * 128 : i * 128 + 16] = t.bytes_le
    return [(0, mbr), (SECTOR, bytes(header)), (2 * SECTOR, bytes(entries))]


BASIC_DATA = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
