"""Console options: iSM-style option parsing, sizes and LD numbers as the console commands take them."""

from __future__ import annotations

import re
from typing import Any

from snaplab.common.units import size_text

DEFAULT_LAB = "~/.snaplab/lab"
TIMEOUT = 30.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Usage(Exception):
    """A command line the command does not accept: iSM11100."""


# -- option parsing ------------------------------------------------------------------------------


def parse_options(
    args: list[str], values: tuple[str, ...] = (), flags: tuple[str, ...] = (), repeat: tuple[str, ...] = ()
) -> dict[str, Any]:
    """iSM-style options: ``-name value`` (values; those in ``repeat`` may repeat and give lists) and
    ``-flag``. Option names are case-insensitive; anything else is a usage error."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        key = args[i].lower()
        if key in values or key in repeat:
            if i + 1 >= len(args):
                raise Usage(f"{args[i]} needs a value")
            if key in repeat:
                out.setdefault(key, []).append(args[i + 1])
            elif key in out:
                raise Usage(f"{args[i]} given twice")
            else:
                out[key] = args[i + 1]
            i += 2
        elif key in flags:
            if key in out:
                raise Usage(f"{args[i]} given twice")
            out[key] = True
            i += 1
        else:
            raise Usage(f"unknown argument {args[i]}")
    return out


def need(opts: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if n not in opts]
    if missing:
        raise Usage(f"{' '.join(missing)} is required")


def parse_size(text: str) -> int:
    """``1GB``, ``512MB``, ``64KB``, ``1.5G``, ``4096`` (bytes); binary units (1KB = 1024 bytes)."""
    m = _SIZE.match(text)
    if not m:
        raise Usage(f"size {text!r}: give a number with KB, MB, GB or TB")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value != int(value) or value <= 0:
        raise Usage(f"size {text!r} is not a positive whole number of bytes")
    return int(value)


def parse_number(text: str, what: str) -> int:
    """An LD, pool, director or port number: decimal (``56``) or hex as iSM shows it (``0038h``, ``0x38``)."""
    t = text.strip().lower()
    try:
        if t.endswith("h"):
            return int(t.removesuffix("h"), 16)
        if t.startswith("0x"):
            return int(t, 0)
        return int(t, 10)
    except ValueError:
        raise Usage(f"{what} {text!r} is not a number (decimal, or hex like 0038h)") from None


fmt_size = size_text  # the console's layouts and the array's messages print sizes alike


# -- iSMcfg --------------------------------------------------------------------------------------

