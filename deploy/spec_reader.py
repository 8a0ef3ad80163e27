"""Reading the lab file's TOML tables: typed values with ``file:where: what`` errors, unknown keys refused."""

from __future__ import annotations

import re
from typing import Any

from .errors import LabFileError
from .netns import check_address
from .spec import ArraySpec, LabSpec
from .values import LD_NAME, NAME, SECTOR, parse_hex, parse_size


class TableReader:
    """What every section reader uses; ``fail`` makes the error the caller raises."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> LabFileError:
        return LabFileError(self.source, where, problem)

    # generic table access: unknown keys are errors (they are typos more often than not)
    def table(
        self, value: object, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table, not {kind_of(value)}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                raise self.fail(where, f"missing {key!r}")
        return value

    def items(self, value: object, where: str) -> list:
        if value is None:
            return []
        if isinstance(value, dict):  # one [section] where a list of [[section]] is meant
            return [value]
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, not {kind_of(value)}")
        return value

    def string(self, t: dict, key: str, where: str, default: str | None = None) -> str:
        value = t.get(key, default)
        if value is None:
            raise self.fail(where, f"missing {key!r}")
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"expected a string, not {kind_of(value)}")
        return value

    def strings(self, t: dict, key: str, where: str) -> list[str]:
        value = t.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "expected a list of strings")
        return list(value)

    def size(self, t: dict, key: str, where: str, *, sector: bool = True) -> int:
        if key not in t:
            raise self.fail(where, f"missing {key!r}")
        try:
            n = parse_size(t[key])
        except (TypeError, ValueError) as exc:
            raise self.fail(f"{where}.{key}", str(exc)) from None
        if n <= 0:
            raise self.fail(f"{where}.{key}", "must be more than 0")
        if sector and n % SECTOR:
            raise self.fail(f"{where}.{key}", f"{n} bytes is not a multiple of {SECTOR}")
        return n

    def number(self, t: dict, key: str, where: str, limit: int = 0x10000) -> int | None:
        if key not in t:
            return None
        try:
            return parse_hex(t[key], limit)
        except (TypeError, ValueError) as exc:
            raise self.fail(f"{where}.{key}", str(exc)) from None

    def name(self, value: str, where: str, what: str, pattern: re.Pattern[str] = NAME) -> str:
        if not pattern.fullmatch(value):
            rule = (
                "1-32 characters without blanks"
                if pattern is LD_NAME
                else "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
            raise self.fail(where, f"{what} {value!r} is not valid: {rule}")
        return value

    # references between sections
    def array_ref(self, t: dict, where: str, spec: LabSpec) -> ArraySpec:
        if "array" not in t:
            if len(spec.arrays) == 1:
                return spec.arrays[0]
            raise self.fail(where, f"missing 'array' (the lab has {len(spec.arrays)} arrays)")
        name = self.string(t, "array", where)
        for a in spec.arrays:
            if a.name == name:
                return a
        raise self.fail(
            f"{where}.array", f"no array named {name!r} (arrays: {listing(a.name for a in spec.arrays)})"
        )

    def address(self, t: dict, key: str, where: str) -> str:
        """A LAN address (deploy/netns.py's range), or "" when the key is absent."""
        text = self.string(t, key, where, "")
        if not text:
            return ""
        try:
            return check_address(text)
        except ValueError as exc:
            raise self.fail(f"{where}.{key}", str(exc)) from None


def kind_of(value: object) -> str:
    return {
        dict: "a table",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def listing(names: Any) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none"


def unique(values: list[str], error: Any) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise error(v)
        seen.add(v)
