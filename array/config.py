"""Array configuration: name, ports, pools, LDs, the SRA, SV sets and LVs, licences (SPEC A2-A4, A6, A7)."""

from __future__ import annotations

import json
import os

from snaplab.common.errors import E, SnapLabError
from snaplab.common.units import size_text
from snaplab.san import disklayout

from .blockstore import BLOCK, BlockMap, Family
from .model import (
    DSV,
    FORMATS,
    LD,
    LD_ATTRS,
    POOL_KINDS,
    PRODUCTS,
    VERSION3,
    Gen,
    Pool,
    Port,
    ld_number_text,
)

MAX_GENERATIONS = 1024  # per BV; the guide's array and Hitachi Thin Image allow this many
DATA_FAMILY_TYPES = ("IV", "BV", "CV")  # LDs that own a data file; SVs and LVs read their BV's


class ConfigMixin:
    """``iSMcfg``-style building and tearing down of the array's objects, and the B5 description.

    A mixin of ``ArrayEngine`` (engine.py): it uses the engine's state, ``_tx`` and lookups.
    """

    def set_array_name(self, name: str) -> None:
        if not name or len(name) > 32:
            raise SnapLabError(E.BAD_ARGUMENT, detail="array name must be 1-32 characters")
        with self._tx():
            self._set_meta("name", name)
            self.name = name

    def add_port(self, director: int, port: int, name: str) -> Port:
        with self._tx():
            if (director, port) in self.ports:
                raise SnapLabError(E.ALREADY_EXISTS, name=f"{director:02x}h/{port:02x}h")
            if any(p.name == name for p in self.ports.values()):
                raise SnapLabError(E.ALREADY_EXISTS, name=name)
            p = Port(director, port, name)
            self.db.execute("INSERT INTO ports(director, port, name) VALUES (?,?,?)", [director, port, name])
            self.ports[(director, port)] = p
            return p

    def bind_pool(self, number: int, name: str, kind: str, capacity: int) -> Pool:
        if kind not in POOL_KINDS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"pool kind {kind}")
        if capacity <= 0:
            raise SnapLabError(E.BAD_ARGUMENT, detail="pool capacity")
        with self._tx():
            if number in self.pools or any(p.name == name for p in self.pools.values()):
                raise SnapLabError(E.ALREADY_EXISTS, name=name)
            pool = Pool(number, name, kind, capacity)
            self.db.execute("INSERT INTO pools VALUES (?,?,?,?)", [number, name, kind, capacity])
            self.pools[number] = pool
            return pool

    def _pool(self, ref: int | str) -> Pool:
        for p in self.pools.values():
            if p.number == ref or p.name == ref or str(p.number) == str(ref):
                return p
        raise SnapLabError(E.POOL_NOT_FOUND, name=ref)

    def _pool_used(self, pool: int) -> int:
        # SVs and LVs are virtual volumes (their data lives in the SRA), so they reserve no pool capacity.
        return sum(ld.capacity for ld in self.lds.values() if ld.pool == pool and ld.type not in ("SV", "LV"))

    def physical_capacity(self) -> int:
        return sum(p.capacity for p in self.pools.values())

    def _new_ld(self, number: int | None, name: str, type_: str, fmt: str, capacity: int, pool: Pool,
                attr: str = "iv", bv: int | None = None, seq: int = 0) -> LD:
        if not name or len(name) > 32 or any(c.isspace() for c in name):
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"LD name {name!r}")
        if name in self.by_name:
            raise SnapLabError(E.LD_NAME_IN_USE, name=name)
        if number is None:
            # The lowest free number, searched from a hint below which every number is taken (so
            # building 65,536 SVs is not quadratic); an unbind lowers it (_unbind_ld).
            start = min(self._ld_hint, 0x10000)
            number = next((n for n in range(start, 0x10000) if n not in self.lds), 0x10000)
            self._ld_hint = number
        elif number in self.lds:
            raise SnapLabError(E.LD_NUMBER_IN_USE, name=ld_number_text(number))
        if not 0 <= number < 0x10000:
            raise SnapLabError(E.BAD_ARGUMENT, detail="LD number")
        if capacity <= 0 or capacity % disklayout.SECTOR:
            raise SnapLabError(E.BAD_ARGUMENT, detail="capacity must be a positive multiple of 512")
        if type_ not in ("SV", "LV") and self._pool_used(pool.number) + capacity > pool.capacity:
            raise SnapLabError(E.POOL_CAPACITY, name=pool.name)
        ld = LD(number, name, type_, fmt, capacity, pool.number, attr, bv, seq)
        self._save_ld(ld)
        self.lds[number] = ld
        self.by_name[name] = ld
        self._sv_index = None
        if type_ in DATA_FAMILY_TYPES:
            fam = Family(number, str(self.data_dir / f"ld_{number:04x}.dat"), versions=BlockMap(self._blocks, number))
            fam.versions.clear()  # nothing of an earlier LD of this number stays in memory
            if os.path.exists(fam.path):
                self._ckpt_discard(fam.path)  # leftovers of an LD unbound before a crash
            fam.open()
            self._new_files = True
            self.families[number] = fam
            self._save_family(fam)
        return ld

    def bind_ld(self, name: str, capacity: int, pool: int | str, fmt: str, *, number: int | None = None,
                attr: str = "iv") -> LD:
        """``iSMcfg ldbind``: an ordinary LD (IV), or a CV with ``attr='cv'``; ``mv``/``rv`` mark replication."""
        if attr not in LD_ATTRS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-ldattr {attr}")
        if fmt not in FORMATS:
            raise SnapLabError(E.FORMAT_INVALID, name=fmt)
        with self._tx():
            p = self._pool(pool)
            if p.kind not in POOL_KINDS:
                raise SnapLabError(E.CV_POOL_KIND if attr == "cv" else E.BV_POOL_KIND, name=name)
            return self._new_ld(number, name, "CV" if attr == "cv" else "IV", fmt, capacity, p, attr)

    def unbind_ld(self, ref: str | int) -> None:
        """``iSMcfg ldunbind`` / ``lvunbind``: refused while the LD is in use by the snapshot system."""
        with self._tx():
            ld = self.ld(ref)
            if ld.type == "BV" or (ld.type == "SV" and self.gens[ld.number].live):
                raise SnapLabError(E.LD_IN_USE, name=ld.name)
            if any(ld.number in (rv, mv) for rv, (mv, _) in self.pair_states().items()):  # type: ignore[attr-defined]
                raise SnapLabError(E.RPL_PAIRED, name=ld.name)
            limits = self.io_limits()
            if limits.pop(str(ld.number), None) is not None:  # a later LD of this number starts without
                self._set_meta("io_limits", json.dumps(limits))
            if ld.type == "LV" and ld.number in self.links:
                raise SnapLabError(E.LD_IN_USE, name=ld.name)
            if any(lk.kind == "bv" and lk.target == ld.number for lk in self.links.values()):
                raise SnapLabError(E.LD_IN_USE, name=ld.name)
            if ld.type == "SDV":
                pool_sdv = [x for x in self.lds.values() if x.type == "SDV" and x.pool == ld.pool]
                if self._sra_used(ld.pool) > self._sra_capacity(ld.pool) - ld.capacity or (
                    len(pool_sdv) == 1 and any(x.type == "SV" and x.pool == ld.pool for x in self.lds.values())
                ):
                    raise SnapLabError(E.LD_IN_USE, name=ld.name)
            self._remember_unbound(ld)
            self._drop_ld(ld)

    # -- rebuilding (the guide's recovery: lvunbind + lvbind, generationdel + generationadd) -----
    def _unbound(self) -> dict[str, dict]:
        raw = dict(self.db.execute("SELECT key, value FROM meta").fetchall()).get("unbound")
        return json.loads(raw) if raw else {}

    def _remember_unbound(self, ld: LD) -> None:
        """An SV or LV unbound is remembered by name: bound again for the same BV without a number
        it gets its LD number back (if free), an LV its access control too, as the guide's rebuild
        keeps them. Kept in the array's meta (a restart keeps it)."""
        if ld.type not in ("SV", "LV") or ld.bv is None:
            return
        kept = self._unbound()
        kept[ld.name] = {"number": ld.number, "bv": ld.bv, "type": ld.type,
                         "access": sorted(self.access.get(ld.number, ()))}
        self._set_meta("unbound", json.dumps(kept))

    def _rebuilt(self, name: str, type_: str, bv: int, number: int | None) -> tuple[int | None, list[str]]:
        """(LD number, access paths) a rebuilt SV or LV takes back: the remembered number when none
        is given and it is free, and the remembered access; (``number``, []) for a new one."""
        kept = self._unbound()
        old = kept.pop(name, None)
        if old is None or old["type"] != type_ or old["bv"] != bv:
            return number, []
        self._set_meta("unbound", json.dumps(kept))
        if number is None and old["number"] not in self.lds:
            number = old["number"]
        return number, list(old["access"])

    def _drop_ld(self, ld: LD) -> None:
        q = self.db.execute
        q("DELETE FROM lds WHERE number=?", [ld.number])
        q("DELETE FROM access WHERE ld=?", [ld.number])
        self._drop_reservation(ld.number)  # type: ignore[attr-defined]  # reservations.py
        q("DELETE FROM gens WHERE sv=?", [ld.number])
        q("DELETE FROM overlay WHERE sv=?", [ld.number])
        self.lds.pop(ld.number)
        self._ld_hint = min(self._ld_hint, ld.number)
        self.by_name.pop(ld.name)
        self._sv_index = None
        self.access.pop(ld.number, None)
        self.gens.pop(ld.number, None)
        self.overlays.pop(ld.number, None)
        fam = self.families.pop(ld.number, None)
        if fam is not None:
            q("DELETE FROM families WHERE ld=?", [ld.number])
            q("DELETE FROM blocks WHERE family=?", [ld.number])
            q("DELETE FROM kept WHERE family=?", [ld.number])
            fam.versions.clear()  # its maps in memory go too (a later LD may get this number)
            q("DELETE FROM restored WHERE family=?", [ld.number])
            fam.close()
            self._to_truncate.append(fam.path)  # after COMMIT (see _tx)

    def rename_ld(self, ref: str | int, name: str) -> None:
        """``iSMcfg nickname``: the LD keeps its number, bytes, pairs and access; only its name changes."""
        if not name or len(name) > 32 or any(c.isspace() for c in name):
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"LD name {name!r}")
        with self._tx():
            ld = self.ld(ref)
            if name == ld.name:
                return
            if name in self.by_name:
                raise SnapLabError(E.LD_NAME_IN_USE, name=name)
            del self.by_name[ld.name]
            ld.name = name
            self.by_name[name] = ld
            self._save_ld(ld)

    def expand_ld(self, ref: str | int, capacity: int) -> LD:
        """``iSMcfg ldexpand``: an IV or CV grows (its bytes stay, the new part reads as zeros); an LD of
        the snapshot system (BV, SV, LV, SDV) keeps its size while it is one (iSM31222)."""
        with self._tx():
            ld = self.ld(ref)
            if ld.type not in ("IV", "CV"):
                raise SnapLabError(E.LD_NOT_EXPANDABLE, name=ld.name)
            if self._pair_with(ld.number) is not None:  # type: ignore[attr-defined]  # MV and RV stay one size
                raise SnapLabError(E.RPL_PAIRED, name=ld.name)
            if capacity <= ld.capacity or capacity % disklayout.SECTOR:
                raise SnapLabError(E.BAD_ARGUMENT, detail="the new capacity must be larger, a multiple of 512")
            pool = self.pools[ld.pool]
            if self._pool_used(pool.number) + capacity - ld.capacity > pool.capacity:
                raise SnapLabError(E.POOL_CAPACITY, name=pool.name)
            ld.capacity = capacity
            self._save_ld(ld)
            return ld

    def io_limits(self) -> dict[str, str]:
        """LD number (text) -> ``"upper lower report"`` as iSMioc setlimit stored them (array meta)."""
        raw = dict(self.db.execute("SELECT key, value FROM meta").fetchall()).get("io_limits")
        return json.loads(raw) if raw else {}

    def set_io_limit(self, ref: str | int, *, upper: int | None, lower: int | None, report: str) -> None:
        """``iSMioc setlimit``: kept and shown, not enforced (SPEC §7: a state, not a feature)."""
        if report not in ("", "on", "off"):
            raise SnapLabError(E.BAD_ARGUMENT, detail="upperreport must be on or off")
        if any(v is not None and v < 0 for v in (upper, lower)) or (
            upper is not None and lower is not None and lower > upper
        ):
            raise SnapLabError(E.BAD_ARGUMENT, detail="limits must be non-negative, lower not above upper")
        with self._tx():
            ld = self.ld(ref)
            limits = self.io_limits()
            old = (limits.get(str(ld.number)) or "- - -").split()
            new = [str(upper) if upper is not None else old[0], str(lower) if lower is not None else old[1],
                   report or old[2]]
            limits[str(ld.number)] = " ".join(new)
            self._set_meta("io_limits", json.dumps(limits))

    def set_format(self, ref: str | int, fmt: str) -> None:
        """Change an LD's usage format (A2): never for SDVs, never once a generation exists."""
        if fmt not in FORMATS:
            raise SnapLabError(E.FORMAT_INVALID, name=fmt)
        with self._tx():
            ld = self.ld(ref)
            if ld.type == "SDV":
                raise SnapLabError(E.SDV_NO_FORMAT, name=ld.name)
            if ld.type in ("BV", "SV", "LV"):
                raise SnapLabError(E.FORMAT_LOCKED, name=ld.name)
            ld.format = fmt
            self._save_ld(ld)

    # ---------------------------------------------------------------- SRA (A6)
    def _sra_capacity(self, pool: int) -> int:
        return sum(x.capacity for x in self.lds.values() if x.type == "SDV" and x.pool == pool)

    def _sra_used(self, pool: int) -> int:
        return BLOCK * sum(f.retained for f in self.families.values() if self._sv_pool(f.ld) == pool)

    def build_sra(self, pool: int | str, capacity: int, *, sdv_name: str | None = None,
                  number: int | None = None, extend: bool = False) -> LD:
        """``iSMcfg srabind``: build the pool's SRA from an SDV, or extend it with one more SDV."""
        with self._tx():
            p = self._pool(pool)
            has = self._sra_capacity(p.number) > 0
            if has and not extend:
                raise SnapLabError(E.SRA_EXISTS, name=p.name)
            if extend and not has:
                raise SnapLabError(E.SRA_NOT_BUILT, name=p.name)
            n = sum(1 for x in self.lds.values() if x.type == "SDV") + 1
            return self._new_ld(number, sdv_name or f"SDV{n}", "SDV", "", capacity, p)

    def sra_info(self, pool: int | str) -> dict:
        with self._state():
            p = self._pool(pool)
            return {
                "pool": p.name,
                "capacity": self._sra_capacity(p.number),
                "used": self._sra_used(p.number),
                "full": ("sra_full", p.name) in self.faults,
                "failed": ("sra_failure", p.name) in self.faults,
            }

    # ---------------------------------------------------------------- SV sets, LVs (A7)
    def add_generations(self, bv_ref: str | int, pool: int | str, count: int = 1,
                        sv_names: list[str] | None = None, numbers: list[int] | None = None) -> list[LD]:
        """``iSMcfg generationadd``: build SVs for a BV (the IV becomes a BV)."""
        if count < 1:
            raise SnapLabError(E.BAD_ARGUMENT, detail="-count")
        with self._tx():
            self._check_licence(building=True)
            bv = self.ld(bv_ref)
            if bv.type not in ("IV", "BV") or bv.attr == "cv":
                raise SnapLabError(E.NOT_A_BV_CANDIDATE, name=bv.name)
            if bv.attr == "rv" and VERSION3 not in self.licences:
                raise SnapLabError(E.LICENCE_VERSION3, name=bv.name)
            p = self._pool(pool)
            if p.kind != "dynamic":
                raise SnapLabError(E.SV_POOL_KIND, name=p.name)
            existing = self._svs_of(bv.number)
            if existing and existing[0].pool != p.number:
                raise SnapLabError(E.SV_POOL_MIXED, name=bv.name)
            if self._sra_capacity(p.number) == 0:
                raise SnapLabError(E.SRA_NOT_BUILT, name=p.name)
            if len(existing) + count > MAX_GENERATIONS:
                raise SnapLabError(E.GENERATION_LIMIT, name=bv.name)
            names = sv_names or []
            if len(names) not in (0, count):
                raise SnapLabError(E.BAD_ARGUMENT, detail="one -svname per generation")
            out = []
            seq = (existing[-1].seq if existing else 0)
            for i in range(count):
                seq += 1
                name = names[i] if names else f"{bv.name}_SV{seq:02d}"
                num, _ = self._rebuilt(name, "SV", bv.number, numbers[i] if numbers else None)
                sv = self._new_ld(num, name, "SV", bv.format, bv.capacity, p, bv=bv.number, seq=seq)
                g = Gen(sv.number)
                self.gens[sv.number] = g
                self._save_gen(g)
                out.append(sv)
            if bv.type == "IV":
                bv.type = "BV"
                self._save_ld(bv)
            return out

    def delete_generations(self, bv_ref: str | int, count: int = 1) -> list[str]:
        """``iSMcfg generationdel``: remove the newest-built SVs; they must hold no snapshot."""
        with self._tx():
            bv = self._bv(bv_ref)
            svs = self._svs_of(bv.number)
            if count < 1 or count > len(svs):
                raise SnapLabError(E.BAD_ARGUMENT, detail="-count")
            victims = svs[-count:]
            for sv in victims:
                if self.gens[sv.number].live:
                    raise SnapLabError(E.LD_IN_USE, name=sv.name)
            if count == len(svs) and self._lvs_of(bv.number):
                raise SnapLabError(E.LD_IN_USE, name=bv.name)
            for sv in victims:
                self._remember_unbound(sv)
                self._drop_ld(sv)
            if count == len(svs):
                bv.type = "IV"
                self._save_ld(bv)
            return [sv.name for sv in victims]

    def bind_lv(self, bv_ref: str | int, name: str, *, number: int | None = None, pool: int | str | None = None) -> LD:
        """``iSMcfg lvbind``: an LV for a BV, in the pool of its SVs (A3); keeps a given LD number (A7)."""
        with self._tx():
            self._check_licence(building=True)
            bv = self._bv(bv_ref)
            sv_pool = self._sv_pool(bv.number)
            p = self._pool(pool) if pool is not None else self.pools[sv_pool]
            if p.kind != "dynamic":
                raise SnapLabError(E.SV_POOL_KIND, name=p.name)
            if p.number != sv_pool:
                raise SnapLabError(E.LV_POOL_MISMATCH, name=name)
            number, access = self._rebuilt(name, "LV", bv.number, number)
            lv = self._new_ld(number, name, "LV", bv.format, bv.capacity, p, bv=bv.number)
            lv.signature = os.urandom(4)
            self._save_ld(lv)
            for path in access:  # its access control as it was (checked when it was assigned)
                self.db.execute("INSERT OR IGNORE INTO access VALUES (?,?)", [path, lv.number])
                self.access.setdefault(lv.number, set()).add(path)
            return lv

    # ---------------------------------------------------------------- licences (A4)
    def set_licence(self, product: str, capacity: int = 0) -> None:
        if product not in PRODUCTS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"product {product}")
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO licences VALUES (?,?)", [product, capacity])
            self.licences[product] = capacity

    def remove_licence(self, product: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM licences WHERE product=?", [product])
            self.licences.pop(product, None)

    def _check_licence(self, building: bool = False) -> None:
        if DSV not in self.licences or ("licence", DSV) in self.faults:
            raise SnapLabError(E.LICENCE_MISSING, product=DSV)
        if building and self.licences[DSV] < self.physical_capacity():
            raise SnapLabError(
                E.LICENCE_CAPACITY,
                licensed=size_text(self.licences[DSV]),
                physical=size_text(self.physical_capacity()),
            )

    def licence_state(self) -> dict:
        with self._state():
            out = {}
            for product in PRODUCTS:
                if product not in self.licences:
                    # A4: a missing product is a product fault for the snapshot function itself.
                    out[product] = "product fault" if product == DSV else "not licensed"
                elif ("licence", product) in self.faults:
                    out[product] = "product fault"
                elif product == DSV and self.licences[DSV] < self.physical_capacity():
                    out[product] = "capacity short"
                else:
                    out[product] = "licensed"
            return out

    # ---------------------------------------------------------------- monitoring (B5)
    def describe(self) -> dict:
        """Monitoring (B5): array properties, pools with SRA, LDs, licences, faults, hosts."""
        with self._state():
            pairs = self.pair_states()  # type: ignore[attr-defined]
            limits = self.io_limits()
            partner = {rv: (mv, state, "RV", rv) for rv, (mv, state) in pairs.items()}
            partner.update({mv: (rv, state, "MV", rv) for rv, (mv, state) in pairs.items()})
            progress = {rv: self.pair_progress(rv) for rv in pairs}  # type: ignore[attr-defined]
            return {
                "name": self.name,
                "product_id": self.product_id,
                "physical_capacity": self.physical_capacity(),
                "ports": [{"director": p.director, "port": p.port, "name": p.name} for p in self.ports.values()],
                "pools": [
                    {"number": p.number, "name": p.name, "kind": p.kind, "capacity": p.capacity,
                     "sra_capacity": self._sra_capacity(p.number), "sra_used": self._sra_used(p.number),
                     "used": self._pool_used(p.number),
                     **self._sra_policy_info(p.number)}  # type: ignore[attr-defined]  # sra_policy.py
                    for p in sorted(self.pools.values(), key=lambda p: p.number)
                ],
                "lds": [
                    {"number": x.number_text, "name": x.name, "type": x.type, "format": x.format,
                     "capacity": x.capacity, "pool": self.pools[x.pool].name, "attr": x.attr,
                     "access": sorted(self.access.get(x.number, ())),
                     "bv": self.lds[x.bv].name if x.bv is not None and x.bv in self.lds else "",
                     "reserved_by": self.reservations.get(x.number, ""),  # type: ignore[attr-defined]
                     **({"io_limit": limits[str(x.number)]} if str(x.number) in limits else {}),
                     **({"rpl_partner": self.lds[partner[x.number][0]].name, "sync_state": partner[x.number][1],
                         "rpl_role": partner[x.number][2], "rpl_progress": progress[partner[x.number][3]][0],
                         "rpl_diff": progress[partner[x.number][3]][1]} if x.number in partner else {})}
                    for x in sorted(self.lds.values(), key=lambda x: x.number)
                ],
                "licences": self.licence_state(),
                "faults": sorted(f"{k}:{t}" for k, t in self.faults),
                # by name: the order must not depend on when a host was last re-registered
                "hosts": [{"name": h.name, "wwns": h.wwns, "ports": h.ports, "platform": h.platform,
                           "initiators": h.initiators}
                          for h in sorted(self.hosts.values(), key=lambda h: h.name)],
                "events": list(self.array_events),  # type: ignore[attr-defined]  # sra_policy.py
            }
