"""The daemons' malloc settings (snaplab/common/memory.py): the agent keeps MiB buffers in the heap, the array limits its arenas."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys

import pytest

from snaplab.common import memory


def test_large_buffers_are_kept_in_the_heap_where_glibc_has_mallopt() -> None:
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("no glibc mallopt here")
    # in a process of its own: the settings are the whole process's
    code = "from snaplab.common import memory; print(memory.reuse_large_buffers())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True"
    assert memory.MMAP_THRESHOLD > 4 << 20  # above a Read's 4 MiB messages


def test_the_array_daemon_limits_its_malloc_arenas_where_glibc_has_mallopt() -> None:
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("no glibc mallopt here")
    code = ("from snaplab.common import memory; from snaplab.array import daemon; "
            "print(memory.limit_arenas(daemon.ARENAS), daemon.ARENAS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "2"]
