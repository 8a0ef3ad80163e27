"""A one-BV array engine small enough for hypothesis to cover overlaps, restores and overwrites
(loaded like labtools: see its docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snaplab.array.engine import ArrayEngine
from snaplab.array.model import DSV
from snaplab.san.blocks import BLOCK

MiB = 1 << 20
SVS = ["sv01", "sv02", "sv03"]


def small_engine(path: Path, blocks: int, **engine_options: Any) -> ArrayEngine:
    """bv001 of `blocks` blocks in pool 1 with the SVs sv01-sv03 bound, in a fresh engine at `path`."""
    e = ArrayEngine(path, name="A", **engine_options)
    e.set_licence(DSV, 1 << 30)
    e.bind_pool(1, "DYN1", "dynamic", 64 * MiB)
    e.build_sra(1, 16 * MiB, sdv_name="SDV1")
    e.bind_ld("bv001", blocks * BLOCK, 1, "LX")
    e.add_generations("bv001", 1, len(SVS), sv_names=SVS)
    return e
