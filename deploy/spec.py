"""The lab file (TOML): parsing and validation into a ``LabSpec``; every problem is one ``file:where: what`` line."""

from __future__ import annotations

import re
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snaplab.array.model import FORMATS, LD_ATTRS, PLATFORM_FORMATS, POOL_KINDS, PRODUCTS

DSV = "DynamicSnapVolume"
HOST_ROLES = ("business", "backup", "test", "standby")
CLUSTER_ROLES = ("active", "standby")
# Principals of the lab PKI that are not arrays or hosts: names a lab file may not reuse.
RESERVED_NAMES = ("manager", "admin", "ca")
SECTOR = 512
_UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
# Certificate CNs and file names (pki._NAME), and the array's 32-character limit for names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_LD_NAME = re.compile(r"\S{1,32}")
_WWN = re.compile(r"[0-9A-Fa-f]{2}(?:[:-]?[0-9A-Fa-f]{2}){7}")
_HEX = re.compile(r"(?:0x)?([0-9A-Fa-f]+)h?", re.IGNORECASE)


class LabError(Exception):
    """Anything that stops a lab command: reported as one line, never as a traceback."""


class LabFileError(LabError):
    """A problem in a lab file: ``file:where: what``."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}:{where}: {problem}" if where else f"{source}: {problem}")


# -- the parsed lab ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PortSpec:
    director: int
    port: int
    name: str

    @property
    def text(self) -> str:
        return f"{self.director:02x}h/{self.port:02x}h"


@dataclass(frozen=True)
class PoolSpec:
    number: int
    name: str
    kind: str
    capacity: int


@dataclass(frozen=True)
class LdSpec:
    name: str
    capacity: int
    pool: int
    format: str
    number: int | None = None
    attr: str = "iv"


@dataclass(frozen=True)
class SraSpec:
    pool: int
    capacity: int
    name: str | None = None
    number: int | None = None


@dataclass(frozen=True)
class SvSpec:
    name: str | None  # None: the array names it (<BV>_SVnn)
    number: int | None = None


@dataclass(frozen=True)
class GenerationSpec:
    bv: str
    pool: int
    svs: tuple[SvSpec, ...]


@dataclass(frozen=True)
class LvSpec:
    bv: str
    name: str
    number: int | None = None


@dataclass(frozen=True)
class LicenceSpec:
    product: str
    capacity: int


@dataclass
class ArraySpec:
    name: str
    product_id: str = ""
    ports: list[PortSpec] = field(default_factory=list)
    pools: list[PoolSpec] = field(default_factory=list)
    sra: list[SraSpec] = field(default_factory=list)
    lds: list[LdSpec] = field(default_factory=list)
    generations: list[GenerationSpec] = field(default_factory=list)
    lvs: list[LvSpec] = field(default_factory=list)
    licences: list[LicenceSpec] = field(default_factory=list)

    @property
    def physical_capacity(self) -> int:
        return sum(p.capacity for p in self.pools)

    def port_names(self) -> set[str]:
        return {p.name for p in self.ports}

    def ld_kinds(self) -> dict[str, str]:
        """Every LD name this file makes on the array -> IV/CV/BV/SV/LV/SDV."""
        kinds = {ld.name: ("CV" if ld.attr == "cv" else "IV") for ld in self.lds}
        for g in self.generations:
            kinds[g.bv] = "BV"
            kinds.update({sv.name: "SV" for sv in g.svs if sv.name})
        kinds.update({lv.name: "LV" for lv in self.lvs})
        kinds.update({s.name: "SDV" for s in self.sra if s.name})
        return kinds


@dataclass(frozen=True)
class PinnedVolume:
    """The ``\\\\?\\Volume{GUID}\\`` name a host gives partition ``partition`` of LD ``ld``."""

    array: str
    ld: str
    partition: int
    guid: str  # lower case, no braces

    def as_json(self) -> dict[str, Any]:
        return {"array": self.array, "ld": self.ld, "partition": self.partition, "guid": self.guid}


@dataclass
class HostSpec:
    name: str
    role: str
    platform: str = "windows"
    wwns: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    cluster: str = ""
    cluster_role: str = ""
    volumes: list[PinnedVolume] = field(default_factory=list)


@dataclass(frozen=True)
class AccessSpec:
    array: str
    ld: str
    port: str | None = None
    wwn: str | None = None

    @property
    def path(self) -> str:
        return f"port {self.port}" if self.port is not None else f"WWN {self.wwn}"


@dataclass(frozen=True)
class SetupCommand:
    host: str
    line: str
    argv: tuple[str, ...]
    stdin: str = ""
    where: str = ""  # "setup[2]", for messages


@dataclass
class LabSpec:
    source: str  # file name shown in messages
    text: str  # the file as read (copied into the lab folder)
    description: str = ""
    arrays: list[ArraySpec] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)
    access: list[AccessSpec] = field(default_factory=list)
    setup: list[SetupCommand] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str) -> LabSpec:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LabError(f"lab file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LabError(f"cannot read lab file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<lab file>") -> LabSpec:
        return _Parser(source).parse(text)

    def array(self, name: str) -> ArraySpec:
        return next(a for a in self.arrays if a.name == name)

    def host(self, name: str) -> HostSpec:
        return next(h for h in self.hosts if h.name == name)


# -- values ------------------------------------------------------------------------------------


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


# -- parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> LabFileError:
        return LabFileError(self.source, where, problem)

    # generic table access: unknown keys are errors (they are typos more often than not)
    def table(
        self, value: object, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table, not {_kind(value)}")
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
            raise self.fail(where, f"expected a list, not {_kind(value)}")
        return value

    def string(self, t: dict, key: str, where: str, default: str | None = None) -> str:
        value = t.get(key, default)
        if value is None:
            raise self.fail(where, f"missing {key!r}")
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"expected a string, not {_kind(value)}")
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

    def name(self, value: str, where: str, what: str, pattern: re.Pattern[str] = _NAME) -> str:
        if not pattern.fullmatch(value):
            rule = (
                "1-32 characters without blanks"
                if pattern is _LD_NAME
                else "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
            raise self.fail(where, f"{what} {value!r} is not valid: {rule}")
        return value

    # the file
    def parse(self, text: str) -> LabSpec:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.fail("", f"not valid TOML: {exc}") from None
        self.table(raw, "", ("lab", "arrays", "hosts", "access", "setup"))
        lab = self.table(raw.get("lab", {}), "lab", ("description",))
        spec = LabSpec(self.source, text, description=self.string(lab, "description", "lab", ""))
        spec.arrays = [
            self.array(a, f"arrays[{i}]") for i, a in enumerate(self.items(raw.get("arrays"), "arrays"))
        ]
        if not spec.arrays:
            raise self.fail("arrays", "a lab needs at least one [[arrays]] entry")
        _unique(
            [a.name for a in spec.arrays], lambda n: self.fail("arrays", f"array name {n!r} is used twice")
        )
        spec.hosts = [
            self.host(h, f"hosts[{i}]", spec) for i, h in enumerate(self.items(raw.get("hosts"), "hosts"))
        ]
        _unique([h.name for h in spec.hosts], lambda n: self.fail("hosts", f"host name {n!r} is used twice"))
        taken = {a.name for a in spec.arrays} | set(RESERVED_NAMES)
        for i, h in enumerate(spec.hosts):
            if h.name in taken:
                raise self.fail(f"hosts[{i}].name", f"{h.name!r} is already an array name or a reserved name")
        wwns: dict[str, str] = {}
        for h in spec.hosts:
            for w in h.wwns:
                key = _wwn_key(w)
                if key in wwns:
                    raise self.fail(f"hosts[{h.name}].wwns", f"WWN {w} is also a WWN of host {wwns[key]}")
                wwns[key] = h.name
        for i, a in enumerate(self.items(raw.get("access"), "access")):
            spec.access.extend(self.access(a, f"access[{i}]", spec))
        for i, s in enumerate(self.items(raw.get("setup"), "setup")):
            spec.setup.extend(self.setup(s, f"setup[{i}]", spec))
        return spec

    def array(self, raw: object, where: str) -> ArraySpec:
        allowed = ("name", "product_id", "ports", "pools", "sra", "lds", "generations", "lvs", "licences")
        t = self.table(raw, where, allowed, ("name",))
        a = ArraySpec(self.name(self.string(t, "name", where), f"{where}.name", "array name"))
        where = f"arrays[{a.name}]"
        a.product_id = self.string(t, "product_id", where, "")
        for i, p in enumerate(self.items(t.get("ports"), f"{where}.ports")):
            a.ports.append(self.port(p, f"{where}.ports[{i}]"))
        _unique([p.text for p in a.ports], lambda n: self.fail(f"{where}.ports", f"port {n} is listed twice"))
        _unique(
            [p.name for p in a.ports], lambda n: self.fail(f"{where}.ports", f"port name {n!r} is used twice")
        )
        for i, p in enumerate(self.items(t.get("pools"), f"{where}.pools")):
            w = f"{where}.pools[{i}]"
            pt = self.table(p, w, ("number", "name", "kind", "capacity"), ("number", "kind", "capacity"))
            number = self.number(pt, "number", w, 0x10000)
            assert number is not None
            kind = self.string(pt, "kind", w)
            if kind not in POOL_KINDS:
                raise self.fail(f"{w}.kind", f"{kind!r} is not a pool kind ({', '.join(POOL_KINDS)})")
            name = self.name(
                self.string(pt, "name", w, f"Pool{number:04d}"), f"{w}.name", "pool name", _LD_NAME
            )
            a.pools.append(PoolSpec(number, name, kind, self.size(pt, "capacity", w, sector=False)))
        _unique(
            [str(p.number) for p in a.pools],
            lambda n: self.fail(f"{where}.pools", f"pool {n} is listed twice"),
        )
        _unique(
            [p.name for p in a.pools], lambda n: self.fail(f"{where}.pools", f"pool name {n!r} is used twice")
        )
        pools = {p.number: p for p in a.pools}

        def pool_of(t: dict, w: str) -> PoolSpec:
            ref = t.get("pool")
            if ref is None:
                raise self.fail(w, "missing 'pool'")
            for p in a.pools:
                if (
                    ref == p.number
                    or ref == p.name
                    or (isinstance(ref, str) and ref.isdigit() and int(ref) == p.number)
                ):
                    return p
            raise self.fail(
                f"{w}.pool",
                f"no pool {ref!r} in this array (pools: {_names(str(p.number) for p in a.pools)})",
            )

        for i, raw_ld in enumerate(self.items(t.get("lds"), f"{where}.lds")):
            w = f"{where}.lds[{i}]"
            lt = self.table(
                raw_ld,
                w,
                ("number", "name", "format", "capacity", "pool", "attr"),
                ("name", "capacity", "pool"),
            )
            name = self.name(self.string(lt, "name", w), f"{w}.name", "LD name", _LD_NAME)
            w = f"{where}.lds[{name}]"
            fmt = self.string(lt, "format", w, "WN")
            if fmt not in FORMATS:
                raise self.fail(f"{w}.format", f"{fmt!r} is not a usage format ({', '.join(FORMATS)})")
            attr = self.string(lt, "attr", w, "iv").lower()
            if attr not in LD_ATTRS:
                raise self.fail(f"{w}.attr", f"{attr!r} is not an LD attribute ({', '.join(LD_ATTRS)})")
            pool = pool_of(lt, w)
            a.lds.append(
                LdSpec(
                    name, self.size(lt, "capacity", w), pool.number, fmt, self.number(lt, "number", w), attr
                )
            )
        for i, raw_sra in enumerate(self.items(t.get("sra"), f"{where}.sra")):
            w = f"{where}.sra[{i}]"
            st = self.table(raw_sra, w, ("pool", "capacity", "name", "number"), ("pool", "capacity"))
            sdv = self.string(st, "name", w, "") or None
            if sdv:
                self.name(sdv, f"{w}.name", "SDV name", _LD_NAME)
            a.sra.append(
                SraSpec(
                    pool_of(st, w).number, self.size(st, "capacity", w), sdv, self.number(st, "number", w)
                )
            )
        for i, raw_gen in enumerate(self.items(t.get("generations"), f"{where}.generations")):
            w = f"{where}.generations[{i}]"
            gt = self.table(raw_gen, w, ("bv", "pool", "svs", "numbers", "count"), ("bv", "pool"))
            a.generations.append(self.generation(gt, w, pool_of(gt, w)))
        for i, raw_lv in enumerate(self.items(t.get("lvs"), f"{where}.lvs")):
            w = f"{where}.lvs[{i}]"
            vt = self.table(raw_lv, w, ("bv", "name", "number"), ("bv", "name"))
            name = self.name(self.string(vt, "name", w), f"{w}.name", "LV name", _LD_NAME)
            a.lvs.append(LvSpec(self.string(vt, "bv", w), name, self.number(vt, "number", w)))
        for i, raw_lic in enumerate(self.items(t.get("licences"), f"{where}.licences")):
            w = f"{where}.licences[{i}]"
            if isinstance(raw_lic, str):
                raw_lic = {"product": raw_lic}
            ct = self.table(raw_lic, w, ("product", "capacity"), ("product",))
            product = self.string(ct, "product", w)
            if product not in PRODUCTS:
                raise self.fail(f"{w}.product", f"{product!r} is not a product ({', '.join(PRODUCTS)})")
            if "capacity" in ct:
                capacity = self.size(ct, "capacity", w, sector=False)
            else:  # DynamicSnapVolume must cover the physical capacity (A4); the others carry none
                capacity = a.physical_capacity if product == DSV else 0
            a.licences.append(LicenceSpec(product, capacity))
        _unique(
            [c.product for c in a.licences], lambda n: self.fail(f"{where}.licences", f"{n} is listed twice")
        )
        self.check_array(a, where, pools)
        return a

    def port(self, raw: object, where: str) -> PortSpec:
        if isinstance(raw, str):  # "00h/01h BACKUP_PRIMARY", as table 1-2 prints it
            m = re.fullmatch(r"\s*([0-9A-Fa-f]+h?)\s*/\s*([0-9A-Fa-f]+h?)\s+(\S+)\s*", raw)
            if not m:
                raise self.fail(where, f"{raw!r}: write a port as '00h/01h NAME' or {{director, port, name}}")
            raw = {"director": m.group(1), "port": m.group(2), "name": m.group(3)}
        t = self.table(raw, where, ("director", "port", "name"), ("director", "port", "name"))
        director, port = self.number(t, "director", where, 0x100), self.number(t, "port", where, 0x100)
        assert director is not None and port is not None
        return PortSpec(
            director, port, self.name(self.string(t, "name", where), f"{where}.name", "port name", _LD_NAME)
        )

    def generation(self, t: dict, where: str, pool: PoolSpec) -> GenerationSpec:
        svs: list[SvSpec] = []
        raw_svs = t.get("svs", [])
        if not isinstance(raw_svs, list):
            raise self.fail(f"{where}.svs", "expected a list of SV names or {name, number} tables")
        for j, sv in enumerate(raw_svs):
            w = f"{where}.svs[{j}]"
            if isinstance(sv, str):
                sv = {"name": sv}
            st = self.table(sv, w, ("name", "number"), ("name",))
            svs.append(
                SvSpec(
                    self.name(self.string(st, "name", w), f"{w}.name", "SV name", _LD_NAME),
                    self.number(st, "number", w),
                )
            )
        if "numbers" in t:
            nums = t["numbers"]
            if not isinstance(nums, list) or len(nums) != len(svs):
                raise self.fail(f"{where}.numbers", f"give one number per SV name ({len(svs)})")
            if any(sv.number is not None for sv in svs):
                raise self.fail(f"{where}.numbers", "SV numbers are given twice (in svs and in numbers)")
            try:
                svs = [SvSpec(sv.name, parse_hex(n)) for sv, n in zip(svs, nums, strict=True)]
            except (TypeError, ValueError) as exc:
                raise self.fail(f"{where}.numbers", str(exc)) from None
        if "count" in t:
            count = t["count"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise self.fail(f"{where}.count", "expected a positive number of generations")
            if svs and count != len(svs):
                raise self.fail(f"{where}.count", f"count {count} does not match the {len(svs)} SV names")
            svs = svs or [SvSpec(None) for _ in range(count)]
        if not svs:
            raise self.fail(where, "give the SV names ('svs') or a 'count'")
        return GenerationSpec(self.string(t, "bv", where), pool.number, tuple(svs))

    def check_array(self, a: ArraySpec, where: str, pools: dict[int, PoolSpec]) -> None:
        """Cross-checks the array would refuse anyway, caught here with the file's names."""
        names: dict[str, str] = {}
        numbers: dict[int, str] = {}

        def claim(name: str | None, number: int | None, w: str) -> None:
            if name is not None:
                if name in names:
                    raise self.fail(w, f"LD name {name!r} is also used by {names[name]}")
                names[name] = w
            if number is not None:
                if number in numbers:
                    raise self.fail(w, f"LD number {number:04x}h is also used by {numbers[number]}")
                numbers[number] = w

        used = {p: 0 for p in pools}
        lds = {ld.name: ld for ld in a.lds}
        for ld in a.lds:
            claim(ld.name, ld.number, f"{where}.lds[{ld.name}]")
            used[ld.pool] += ld.capacity
        sra_pools: set[int] = set()
        for i, s in enumerate(a.sra):
            claim(s.name, s.number, f"{where}.sra[{i}]")
            used[s.pool] += s.capacity
            sra_pools.add(s.pool)
        sv_pool: dict[str, int] = {}
        for i, g in enumerate(a.generations):
            w = f"{where}.generations[{i}]"
            bv = lds.get(g.bv)
            if bv is None:
                raise self.fail(f"{w}.bv", f"{g.bv!r} is not an LD of [{where}.lds]")
            if bv.attr == "cv":
                raise self.fail(f"{w}.bv", f"{g.bv} is a control volume (attr cv) and cannot be a BV")
            if pools[g.pool].kind != "dynamic":
                raise self.fail(
                    f"{w}.pool", f"SVs must be in a dynamic pool; pool {g.pool} is {pools[g.pool].kind}"
                )
            if g.pool not in sra_pools:
                raise self.fail(
                    f"{w}.pool", f"pool {g.pool} has no snapshot reserve area: add it to [{where}.sra]"
                )
            if sv_pool.setdefault(g.bv, g.pool) != g.pool:
                raise self.fail(f"{w}.pool", f"all SVs of {g.bv} must be in one pool")
            for sv in g.svs:
                claim(sv.name, sv.number, f"{w} ({sv.name or 'SV'})")
        for i, lv in enumerate(a.lvs):
            w = f"{where}.lvs[{i}]"
            if lv.bv not in sv_pool:
                raise self.fail(
                    f"{w}.bv", f"{lv.bv!r} has no generations in [{where}.generations]: an LV needs SVs"
                )
            claim(lv.name, lv.number, w)
        for number, total in used.items():
            if total > pools[number].capacity:
                raise self.fail(
                    f"{where}.pools",
                    f"pool {number} holds {format_size(total)} of LDs and SDVs but has only "
                    f"{format_size(pools[number].capacity)}",
                )
        licences = {c.product: c.capacity for c in a.licences}
        if a.generations or a.lvs:
            if DSV not in licences:
                raise self.fail(f"{where}.licences", f"generations and LVs need the {DSV} licence")
            if licences[DSV] < a.physical_capacity:
                raise self.fail(
                    f"{where}.licences",
                    f"{DSV} capacity {format_size(licences[DSV])} is below the physical capacity "
                    f"{format_size(a.physical_capacity)} (the sum of the pools): the array would refuse to build SVs",
                )

    def host(self, raw: object, where: str, spec: LabSpec) -> HostSpec:
        allowed = ("name", "role", "platform", "wwns", "ports", "cluster", "cluster_role", "volumes")
        t = self.table(raw, where, allowed, ("name", "role"))
        h = HostSpec(
            self.name(self.string(t, "name", where), f"{where}.name", "host name"),
            self.string(t, "role", where),
        )
        where = f"hosts[{h.name}]"
        if h.role not in HOST_ROLES:
            raise self.fail(f"{where}.role", f"{h.role!r} is not a role ({', '.join(HOST_ROLES)})")
        h.platform = self.string(t, "platform", where, "windows")
        if h.platform not in PLATFORM_FORMATS:
            raise self.fail(
                f"{where}.platform", f"{h.platform!r} is not a platform ({', '.join(PLATFORM_FORMATS)})"
            )
        h.wwns = self.strings(t, "wwns", where)
        for w in h.wwns:
            if not _WWN.fullmatch(w):
                raise self.fail(
                    f"{where}.wwns", f"{w!r} is not a WWN (16 hex digits, e.g. 10:00:00:00:c9:2a:00:01)"
                )
        _unique(
            [_wwn_key(w) for w in h.wwns], lambda n: self.fail(f"{where}.wwns", f"WWN {n} is listed twice")
        )
        h.ports = self.strings(t, "ports", where)
        known = {p for a in spec.arrays for p in a.port_names()}
        for p in h.ports:
            if p not in known:
                raise self.fail(f"{where}.ports", f"no array has a port named {p!r} (ports: {_names(known)})")
        _unique(h.ports, lambda n: self.fail(f"{where}.ports", f"port {n} is listed twice"))
        h.cluster = self.string(t, "cluster", where, "")
        h.cluster_role = self.string(t, "cluster_role", where, "")
        if h.cluster_role and h.cluster_role not in CLUSTER_ROLES:
            raise self.fail(
                f"{where}.cluster_role", f"{h.cluster_role!r} is not {' or '.join(CLUSTER_ROLES)}"
            )
        if h.cluster_role and not h.cluster:
            raise self.fail(f"{where}.cluster_role", "a cluster role needs a 'cluster' name")
        if h.cluster and not h.cluster_role:
            raise self.fail(f"{where}.cluster", "a cluster node needs a 'cluster_role' (active or standby)")
        raw_vols = t.get("volumes", [])
        if not isinstance(raw_vols, list):
            raise self.fail(f"{where}.volumes", "expected a list of {array, ld, partition, guid} tables")
        for i, raw_vol in enumerate(raw_vols):
            w = f"{where}.volumes[{i}]"
            vt = self.table(raw_vol, w, ("array", "ld", "partition", "guid"), ("ld", "guid"))
            array = self.array_ref(vt, w, spec)
            ld = self.string(vt, "ld", w)
            if ld not in array.ld_kinds():
                raise self.fail(f"{w}.ld", f"{ld!r} is not an LD of array {array.name}")
            part = vt.get("partition", 1)
            if isinstance(part, bool) or not isinstance(part, int) or not 1 <= part <= 128:
                raise self.fail(f"{w}.partition", "expected a partition number from 1")
            try:
                guid = normalise_guid(self.string(vt, "guid", w))
            except ValueError:
                raise self.fail(
                    f"{w}.guid", f"{vt['guid']!r} is not a GUID like 37d84cca-2507-11d5-a0f7-00004c714491"
                ) from None
            h.volumes.append(PinnedVolume(array.name, ld, part, guid))
        _unique(
            [f"{v.array}/{v.ld}/{v.partition}" for v in h.volumes],
            lambda n: self.fail(f"{where}.volumes", f"partition {n} is pinned twice"),
        )
        _unique(
            [v.guid for v in h.volumes], lambda n: self.fail(f"{where}.volumes", f"GUID {n} is pinned twice")
        )
        return h

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
            f"{where}.array", f"no array named {name!r} (arrays: {_names(a.name for a in spec.arrays)})"
        )

    def access(self, raw: object, where: str, spec: LabSpec) -> list[AccessSpec]:
        t = self.table(raw, where, ("array", "ld", "lds", "port", "ports", "wwn", "wwns"))
        array = self.array_ref(t, where, spec)
        lds = self.strings(t, "ld", where) + self.strings(t, "lds", where)
        ports = self.strings(t, "port", where) + self.strings(t, "ports", where)
        wwns = self.strings(t, "wwn", where) + self.strings(t, "wwns", where)
        if not lds:
            raise self.fail(where, "missing 'ld' (or 'lds')")
        if not ports and not wwns:
            raise self.fail(where, "give 'port'/'ports' or 'wwn'/'wwns'")
        kinds = array.ld_kinds()
        for ld in lds:
            if ld not in kinds:
                raise self.fail(f"{where}.ld", f"{ld!r} is not an LD of array {array.name}")
            if kinds[ld] in ("SV", "SDV"):
                raise self.fail(
                    f"{where}.ld", f"{ld} is an {kinds[ld]}: SVs and SDVs are never assigned to a server (A5)"
                )
        for p in ports:
            if p not in array.port_names():
                raise self.fail(
                    f"{where}.port",
                    f"array {array.name} has no port {p!r} (ports: {_names(array.port_names())})",
                )
        for w in wwns:
            if not _WWN.fullmatch(w):
                raise self.fail(f"{where}.wwn", f"{w!r} is not a WWN (16 hex digits)")
        if not any(c.product == "AccessControl" for c in array.licences):
            raise self.fail(
                where, f"access control needs the AccessControl licence in [arrays[{array.name}].licences]"
            )
        out = [AccessSpec(array.name, ld, port=p) for ld in lds for p in ports]
        return out + [AccessSpec(array.name, ld, wwn=w) for ld in lds for w in wwns]

    def setup(self, raw: object, where: str, spec: LabSpec) -> list[SetupCommand]:
        t = self.table(raw, where, ("host", "commands", "command", "stdin"), ("host",))
        host = self.string(t, "host", where)
        if host not in {h.name for h in spec.hosts}:
            raise self.fail(
                f"{where}.host", f"no host named {host!r} (hosts: {_names(h.name for h in spec.hosts)})"
            )
        lines = self.strings(t, "command", where) + self.strings(t, "commands", where)
        if not lines:
            raise self.fail(where, "missing 'commands' (a list of command lines)")
        stdin = self.string(t, "stdin", where, "")
        if stdin and len(lines) != 1:
            raise self.fail(
                f"{where}.stdin",
                "stdin goes to one command: put that command in a [[setup]] entry of its own",
            )
        out = []
        for i, line in enumerate(lines):
            try:
                argv = split_command(line)
            except ValueError as exc:
                raise self.fail(f"{where}.commands[{i}]", str(exc)) from None
            if not argv:
                raise self.fail(f"{where}.commands[{i}]", "empty command line")
            out.append(SetupCommand(host, line, tuple(argv), stdin, f"{where}.commands[{i}]"))
        return out


def _kind(value: object) -> str:
    return {
        dict: "a table",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _names(names: Any) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "none"


def _unique(values: list[str], error: Any) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise error(v)
        seen.add(v)


def _wwn_key(wwn: str) -> str:
    return wwn.replace(":", "").replace("-", "").lower()
