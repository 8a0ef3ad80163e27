"""The ``[[arrays]]`` sections: ports, pools, LDs, SRA, generations, LVs, licences, and their cross-checks."""

from __future__ import annotations

import re

from snaplab.array.groups import GROUP_NAME, MAX_MEMBERS
from snaplab.array.model import FORMATS, LD_ATTRS, POOL_KINDS, PRODUCTS
from snaplab.array.restore import MAX_RESTORE_RATE
from snaplab.array.sra_policy import MAX_QUEUE_TIMEOUT, MAX_THRESHOLDS, POLICIES

from .spec import (
    ArraySpec,
    ConsistencyGroupSpec,
    GenerationSpec,
    LdSpec,
    LicenceSpec,
    LvSpec,
    PoolSpec,
    PortSpec,
    SraSpec,
    SvSpec,
)
from .spec_reader import TableReader, listing, unique
from .values import LD_NAME, format_size, parse_hex

DSV = "DynamicSnapVolume"


class ArraysReader(TableReader):
    def restore_rate(self, t: dict, where: str) -> float:
        """``restore_rate``: MiB/s a restore copies (guide 2.3.5 rehearsals need one that takes time)."""
        value = t.get("restore_rate", 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_RESTORE_RATE:
            raise self.fail(f"{where}.restore_rate", f"expected MiB per second from 0 to {MAX_RESTORE_RATE:g}")
        return float(value)

    def array(self, raw: object, where: str) -> ArraySpec:
        allowed = ("name", "product_id", "restore_rate", "ports", "pools", "sra", "lds", "generations", "lvs", "licences",
                   "address", "groups")
        t = self.table(raw, where, allowed, ("name",))
        a = ArraySpec(self.name(self.string(t, "name", where), f"{where}.name", "array name"))
        where = f"arrays[{a.name}]"
        a.product_id = self.string(t, "product_id", where, "")
        a.address = self.address(t, "address", where)
        a.restore_rate = self.restore_rate(t, where)
        for i, p in enumerate(self.items(t.get("ports"), f"{where}.ports")):
            a.ports.append(self.port(p, f"{where}.ports[{i}]"))
        unique([p.text for p in a.ports], lambda n: self.fail(f"{where}.ports", f"port {n} is listed twice"))
        unique(
            [p.name for p in a.ports], lambda n: self.fail(f"{where}.ports", f"port name {n!r} is used twice")
        )
        for i, p in enumerate(self.items(t.get("pools"), f"{where}.pools")):
            w = f"{where}.pools[{i}]"
            pt = self.table(
                p, w, ("number", "name", "kind", "capacity", "sra_policy", "sra_warn", "sra_queue_timeout"),
                ("number", "kind", "capacity"),
            )
            number = self.number(pt, "number", w, 0x10000)
            assert number is not None
            kind = self.string(pt, "kind", w)
            if kind not in POOL_KINDS:
                raise self.fail(f"{w}.kind", f"{kind!r} is not a pool kind ({', '.join(POOL_KINDS)})")
            name = self.name(
                self.string(pt, "name", w, f"Pool{number:04d}"), f"{w}.name", "pool name", LD_NAME
            )
            a.pools.append(PoolSpec(number, name, kind, self.size(pt, "capacity", w, sector=False),
                                    *self.sra_policy(pt, w)))
        unique(
            [str(p.number) for p in a.pools],
            lambda n: self.fail(f"{where}.pools", f"pool {n} is listed twice"),
        )
        unique(
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
                f"no pool {ref!r} in this array (pools: {listing(str(p.number) for p in a.pools)})",
            )

        for i, raw_ld in enumerate(self.items(t.get("lds"), f"{where}.lds")):
            w = f"{where}.lds[{i}]"
            lt = self.table(
                raw_ld,
                w,
                ("number", "name", "format", "capacity", "pool", "attr"),
                ("name", "capacity", "pool"),
            )
            name = self.name(self.string(lt, "name", w), f"{w}.name", "LD name", LD_NAME)
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
                self.name(sdv, f"{w}.name", "SDV name", LD_NAME)
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
            name = self.name(self.string(vt, "name", w), f"{w}.name", "LV name", LD_NAME)
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
        unique(
            [c.product for c in a.licences], lambda n: self.fail(f"{where}.licences", f"{n} is listed twice")
        )
        self.check_array(a, where, pools)
        for i, raw_group in enumerate(self.items(t.get("groups"), f"{where}.groups")):
            a.groups.append(self.consistency_group(raw_group, f"{where}.groups[{i}]", a, where))
        unique([g.name for g in a.groups], lambda n: self.fail(f"{where}.groups", f"group {n!r} is listed twice"))
        return a

    def consistency_group(self, raw: object, where: str, a: ArraySpec, array_where: str) -> ConsistencyGroupSpec:
        """A consistency group (SnapLab extension, docs/extensions.md): BVs of this array, each in one group."""
        t = self.table(raw, where, ("name", "bvs"), ("name", "bvs"))
        name = self.string(t, "name", where)
        if not GROUP_NAME.fullmatch(name):
            raise self.fail(f"{where}.name", f"{name!r}: 1-32 letters, digits, _ and -")
        bvs = self.strings(t, "bvs", where)
        if not 1 <= len(bvs) <= MAX_MEMBERS:
            raise self.fail(f"{where}.bvs", f"expected 1 to {MAX_MEMBERS} BVs")
        unique(bvs, lambda n: self.fail(f"{where}.bvs", f"{n!r} is listed twice"))
        with_svs = {g.bv for g in a.generations}
        for bv in bvs:
            if bv not in with_svs:
                raise self.fail(f"{where}.bvs", f"{bv!r} is not a BV of [{array_where}.generations]")
            for other in a.groups:
                if bv in other.bvs:
                    raise self.fail(f"{where}.bvs", f"{bv!r} is already in group {other.name!r}")
        return ConsistencyGroupSpec(name, tuple(bvs))

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
            director, port, self.name(self.string(t, "name", where), f"{where}.name", "port name", LD_NAME)
        )

    def sra_policy(self, t: dict, where: str) -> tuple[str | None, tuple[int, ...], float | None]:
        """A pool's SRA-full policy (SnapLab extension, docs/extensions-sra-quiesce.md)."""
        policy = self.string(t, "sra_policy", where, "") or None
        if policy is not None and policy not in POLICIES:
            raise self.fail(f"{where}.sra_policy", f"{policy!r} is not a policy ({', '.join(POLICIES)})")
        warn = t.get("sra_warn", [])
        if (not isinstance(warn, list) or len(warn) > MAX_THRESHOLDS
                or any(isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= 100 for x in warn)):
            raise self.fail(f"{where}.sra_warn", f"expected a list of at most {MAX_THRESHOLDS} percentages 1-100")
        timeout = t.get("sra_queue_timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout <= MAX_QUEUE_TIMEOUT):
            raise self.fail(f"{where}.sra_queue_timeout", f"expected seconds, more than 0 and at most {MAX_QUEUE_TIMEOUT:.0f}")
        return policy, tuple(sorted(set(warn))), None if timeout is None else float(timeout)

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
                    self.name(self.string(st, "name", w), f"{w}.name", "SV name", LD_NAME),
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
