"""glibc malloc settings for a daemon that moves MiB-sized buffers (the agent: a host's mount)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("snaplab")

MiB = 1 << 20
# mallopt(3) parameters
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8
MMAP_THRESHOLD = 32 * MiB  # buffers below this come from the heap, reused (a Read's 4 MiB messages)
TRIM_THRESHOLD = 64 * MiB  # free heap kept before it is handed back to the OS
TOP_PAD = 16 * MiB


def reuse_large_buffers() -> bool:
    """Keep MiB-sized buffers in the heap. With glibc's defaults each 4 MiB buffer of a Read (its
    pread, the message, its serialized form) is a fresh mapping or heap that was just trimmed, whose
    pages fault in one by one: a third of the array's CPU for a mount's 190 MB. The heap kept is
    bounded (TRIM_THRESHOLD above what is in use). False where there is no glibc mallopt."""
    ok = set_malloc(MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD)
    if not ok:
        log.debug("mallopt unavailable: glibc's malloc defaults kept")
    return ok


def set_malloc(mmap_threshold: int, trim_threshold: int, top_pad: int) -> bool:
    """glibc's mmap threshold, trim threshold and top pad (bytes); False where there is no mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return (libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
                and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
                and libc.mallopt(_M_TOP_PAD, top_pad) == 1)
    except (OSError, AttributeError):
        return False


def limit_arenas(count: int) -> bool:
    """At most ``count`` malloc arenas (glibc's default: 8 per core). Each thread that allocates
    MiB-sized buffers (gRPC's, the engine pools') otherwise grows an arena of its own, whose freed
    chunks the others cannot reuse: the peak RSS grows with the threads, not with the work. Call it
    before threads start. False where there is no glibc mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(_M_ARENA_MAX, count) == 1
    except (OSError, AttributeError):
        return False
