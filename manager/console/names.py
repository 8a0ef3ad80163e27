"""LD names as the real iSMcfg takes them: optionally ``TYPE:NAME`` (Cinder: ``LX:cinder_bv``)."""

from __future__ import annotations

OS_TYPES = ("A2", "A4", "AX", "CX", "LX", "NX", "SX", "WN", "WG")
NAME_OPTS = ("-ldname", "-bvname", "-lvname", "-newname")


def plain_name(text: str) -> str:
    """An LD name as the real iSMcfg takes it, optionally ``TYPE:NAME`` (Cinder: ``LX:cinder_bv``)."""
    kind, sep, rest = text.partition(":")
    return rest if sep and kind.upper() in OS_TYPES and rest else text
