"""Sizes as iSM prints them (``4.0MB``, ``512.0GB``: binary units, one decimal), for every message and layout."""

from __future__ import annotations


def size_text(n: int) -> str:
    """``n`` bytes in the largest unit (TB, GB, MB) it reaches; small sizes in MB (``0.5MB``)."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n / (1 << 20):.1f}MB" if n else "0.0MB"
