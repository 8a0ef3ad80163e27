"""Values written in a lab file: sizes, hex numbers, names, WWNs, volume GUIDs and Windows command lines."""

from __future__ import annotations

import re
import uuid

SECTOR = 512
_UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
# Certificate CNs and file names (pki._NAME), and the array's 32-character limit for names.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
LD_NAME = re.compile(r"\S{1,32}")
WWN = re.compile(r"[0-9A-Fa-f]{2}(?:[:-]?[0-9A-Fa-f]{2}){7}")
_HEX = re.compile(r"(?:0x)?([0-9A-Fa-f]+)h?", re.IGNORECASE)


def parse_size(value: object) -> int:
    """``1GiB``, ``64MiB``, ``512KiB``, ``1.5TiB``, ``4096`` or ``"4096B"`` -> bytes."""
    if isinstance(value, bool):
        raise TypeError("a size must be a number of bytes or a string like '1GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size {value} is negative")
        return value
    if not isinstance(value, str):
        raise TypeError("a size must be a number of bytes or a string like '1GiB'")
    m = _SIZE.fullmatch(value)
    unit = m.group(2).upper() if m else ""
    if not m or unit not in _UNITS:
        raise ValueError(f"size {value!r}: use bytes or a unit of B, KiB, MiB, GiB, TiB (e.g. '64MiB')")
    size = float(m.group(1)) * _UNITS[unit]
    if size != int(size):
        raise ValueError(f"size {value!r} is not a whole number of bytes")
    return int(size)


def format_size(n: int) -> str:
    for unit, mult in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}B"


def parse_hex(value: object, limit: int = 0x10000) -> int:
    """An LD, director or port number: ``"0030h"``, ``"0x30"``, ``"30"`` (all hex) or an int."""
    if isinstance(value, bool):
        raise TypeError("expected a number like '0030h'")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and (m := _HEX.fullmatch(value.strip())):
        n = int(m.group(1), 16)
    else:
        raise ValueError(f"{value!r} is not a number like '0030h'")
    if not 0 <= n < limit:
        raise ValueError(f"{value!r} is out of range (0-{limit - 1:x}h)")
    return n


def normalise_guid(value: str) -> str:
    text = value.strip()
    if text.startswith("\\\\?\\Volume"):
        text = text[len("\\\\?\\Volume") :].rstrip("\\")
    return str(uuid.UUID(text.strip("{}")))


def wwn_key(wwn: str) -> str:
    """One spelling of a WWN (``10:00:...``, ``10-00-...`` and ``1000...`` are the same port)."""
    return wwn.replace(":", "").replace("-", "").lower()


def split_command(line: str) -> list[str]:
    """Split a Windows-style command line: blanks separate, double quotes group, backslashes are literal
    (so ``\\\\?\\Volume{...}\\`` survives, unlike with shlex)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = started = False
    for ch in line:
        if ch == '"':
            quoted, started = not quoted, True
        elif ch.isspace() and not quoted:
            if started:
                out.append("".join(cur))
                cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if quoted:
        raise ValueError("unbalanced double quote")
    if started:
        out.append("".join(cur))
    return out
