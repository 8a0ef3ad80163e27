"""The disk array as a domain engine: configuration, snapshots, links, access control, faults, bytes.

``ArrayEngine`` keeps every rule of SPEC §3 (A1-A14). It is usable in-process; ``servicer.py`` puts
gRPC around it. One lock serialises operations; every mutating operation is one SQLite
transaction, and if anything fails inside it the memory state is reloaded from the database, so a
refused or failed request leaves nothing half-done.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from snaplab.common.errors import E, SnapLabError

from snaplab.san import disklayout
from .blockstore import BLOCK, ZERO, Family, split_range
from .model import (
    ACCESS_CONTROL,
    ACCESS_MODES,
    DSV,
    FAULT_BV,
    FAULT_KINDS,
    FAULT_NONE,
    FAULT_SRA,
    FORMATS,
    LD,
    LD_ATTRS,
    PLATFORM_FORMATS,
    POOL_KINDS,
    PRODUCTS,
    STATE_ACTIVE,
    STATE_FAULT,
    STATE_RESTORING,
    STATE_UNUSED,
    VERSION3,
    Gen,
    Host,
    Link,
    Pool,
    Port,
    Restore,
    ld_number_text,
)
from .store import open_db

log = logging.getLogger("snaplab.array")

MAX_GENERATIONS = 1024  # per BV; the guide's array and Hitachi Thin Image allow this many
RESTORE_BATCH = 256  # blocks (16 MiB) copied per lock hold, so host I/O interleaves with a running restore
DATA_FAMILY_TYPES = ("IV", "BV", "CV")


def _now() -> str:
    return datetime.now().strftime("%Y/%m/%d %H:%M:%S")


class ArrayEngine:
    """One disk array. All public methods are thread-safe; refusals raise ``SnapLabError``.

    Rules kept here, each with its catalogue message (``snaplab/common/errors.py``):
    A2 usage formats, A3 placement, A4 licences, A5 access control, A6 SRA full, A8 snapshot
    operations, A9 copy-on-write data, A10 signatures, A11 partitions, A12 persistence, A13 faults.
    """

    def __init__(self, state_dir: str | os.PathLike, *, name: str = "SnapLab_Array", clock: Callable[[], str] = _now):
        self.dir = Path(state_dir)
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_db(self.dir / "array.db")
        self._clock = clock
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._in_tx = False
        self._to_free: list[tuple[Family, int]] = []
        self._to_truncate: list[str] = []  # data files of LDs the transaction unbinds
        self._closed = False
        self.families: dict[int, Family] = {}
        self._load()
        if self.name is None:
            with self._tx():
                self._set_meta("name", name)
                self.name = name
        self._worker = threading.Thread(target=self._restore_worker, name="restore", daemon=True)
        self._worker.start()

    # ================================================================ persistence plumbing
    def _load(self) -> None:
        """(Re)build the memory state from the database: at start and after a failed transaction."""
        q = self.db.execute
        meta = dict(q("SELECT key, value FROM meta").fetchall())
        self.name = meta.get("name")
        self.pools = {r[0]: Pool(*r) for r in q("SELECT number, name, kind, capacity FROM pools")}
        self.ports = {(r[0], r[1]): Port(*r) for r in q("SELECT director, port, name FROM ports")}
        self.lds: dict[int, LD] = {}
        for r in q(
            "SELECT number, name, type, format, capacity, pool, attr, bv, seq, signature, link_lost FROM lds"
        ):
            self.lds[r[0]] = LD(r[0], r[1], r[2], r[3] or "", r[4], r[5], r[6], r[7], r[8] or 0, r[9], bool(r[10]))
        self.by_name = {ld.name: ld for ld in self.lds.values()}
        self._sv_index: dict[int, list[LD]] | None = None
        self.gens = {
            r[0]: Gen(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])
            for r in q("SELECT sv, state, epoch, state_time, create_time, guard, orig_signature, fault FROM gens")
        }
        self.links = {r[0]: Link(*r) for r in q("SELECT lv, kind, target, mode FROM links")}
        self.hosts = {
            r[0]: Host(r[0], json.loads(r[1]), json.loads(r[2]), r[3])
            for r in q("SELECT name, wwns, ports, platform FROM hosts")
        }
        self.access: dict[int, set[str]] = {}
        for path, ld in q("SELECT path, ld FROM access"):
            self.access.setdefault(ld, set()).add(path)
        self.licences = dict(q("SELECT product, capacity FROM licences").fetchall())
        self.faults = {(k, t) for k, t in q("SELECT kind, target FROM faults")}
        self.overlays: dict[int, dict[int, int]] = {}
        for sv, lb, pb in q("SELECT sv, lblock, pblock FROM overlay"):
            self.overlays.setdefault(sv, {})[lb] = pb
        for fam in self.families.values():
            fam.close()
        self.families = {}
        for ld, cur, hw, _failed in q("SELECT ld, cur_epoch, hw, bv_failed FROM families"):
            fam = Family(ld, str(self.data_dir / f"ld_{ld:04x}.dat"), cur, hw=hw)
            fam.open()
            self.families[ld] = fam
        for fam_ld, lb, epoch, pb in q("SELECT family, lblock, epoch, pblock FROM blocks ORDER BY family, lblock, epoch"):
            self.families[fam_ld].versions.setdefault(lb, []).append((epoch, pb))
        for fam in self.families.values():
            used = {pb for vs in fam.versions.values() for _, pb in vs}
            fam.retained = sum(1 for vs in fam.versions.values() for _, pb in vs[:-1] if pb != ZERO)
            for sv in self._svs_of(fam.ld):
                ov = self.overlays.get(sv.number, {})
                used.update(ov.values())
                fam.retained += len(ov)
            # Blocks written by a transaction that never committed are free again (crash recovery).
            fam.free = sorted((p for p in range(fam.hw) if p not in used), reverse=True)
            fam.live_epochs = sorted(
                g.epoch for sv in self._svs_of(fam.ld) if (g := self.gens.get(sv.number)) and g.live and g.epoch
            )
            fam.owned = fam.retained_by_epoch()
        self.restores: dict[int, Restore] = {}
        for bv, sv, total, started, sig in q("SELECT bv, sv, total, started, signature FROM restores"):
            self.restores[bv] = Restore(bv, sv, total, started, sig)
        for bv, lb in q("SELECT bv, lblock FROM restore_pending"):
            self.restores[bv].pending.add(lb)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One atomic operation: BEGIN IMMEDIATE ... COMMIT, or rollback and reload on any failure."""
        with self._lock:
            if self._closed:
                raise SnapLabError(E.INTERNAL, detail="array is shutting down")
            if self._in_tx:
                yield
                return
            self._in_tx = True
            self._to_free = []
            self._to_truncate = []
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._in_tx = False
                self._load()
                raise
            finally:
                self._in_tx = False
            # Physical blocks dropped by the transaction are reusable only once it has committed.
            for fam, p in self._to_free:
                fam.free.append(p)
            self._to_free = []
            # Likewise an unbound LD's data goes only once the unbind has committed (a crash before
            # leaves the LD bound with its data; one after leaves a stale file that _new_ld truncates).
            for path in self._to_truncate:
                try:
                    os.truncate(path, 0)
                except OSError as exc:
                    log.warning("cannot truncate %s: %s", path, exc)
            self._to_truncate = []
            self._cond.notify_all()

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])

    def _save_ld(self, ld: LD) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO lds(number, name, type, format, capacity, pool, attr, bv, seq, signature, link_lost)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [ld.number, ld.name, ld.type, ld.format, ld.capacity, ld.pool, ld.attr, ld.bv, ld.seq, ld.signature,
             int(ld.link_lost)],
        )

    def _save_gen(self, g: Gen) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO gens(sv, state, epoch, state_time, create_time, guard, orig_signature, fault)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [g.sv, g.state, g.epoch, g.state_time, g.create_time, int(g.guard), g.orig_signature, g.fault],
        )

    def _save_family(self, fam: Family) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO families(ld, cur_epoch, hw, bv_failed) VALUES (?,?,?,0)",
            [fam.ld, fam.cur_epoch, fam.hw],
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout=5)
        with self._lock:
            for fam in self.families.values():
                fam.close()
            self.db.conn.close()

    # ================================================================ lookups
    def ld(self, ref: str | int) -> LD:
        """An LD by name, by number (int) or by number text ``0010h``."""
        if isinstance(ref, int):
            found = self.lds.get(ref)
        else:
            found = self.by_name.get(ref)
            if found is None and ref.lower().endswith("h"):
                try:
                    found = self.lds.get(int(ref[:-1], 16))
                except ValueError:
                    found = None
        if found is None:
            raise SnapLabError(E.NOT_FOUND, name=ref)
        return found

    def _svs_of(self, bv: int) -> list[LD]:
        """The BV's SV set in build order (cached: it is on the write path through the SRA check)."""
        if self._sv_index is None:
            index: dict[int, list[LD]] = {}
            for x in self.lds.values():
                if x.type == "SV" and x.bv is not None:
                    index.setdefault(x.bv, []).append(x)
            for svs in index.values():
                svs.sort(key=lambda x: x.seq)
            self._sv_index = index
        return self._sv_index.get(bv, [])

    def _lvs_of(self, bv: int) -> list[LD]:
        return [x for x in self.lds.values() if x.type == "LV" and x.bv == bv]

    def _live_gens(self, bv: int) -> list[Gen]:
        """Live generations of a BV, newest first (relative generation -1, -2, ...)."""
        gens = [g for sv in self._svs_of(bv) if (g := self.gens[sv.number]).live]
        return sorted(gens, key=lambda g: g.epoch or 0, reverse=True)

    def _bv(self, ref: str | int) -> LD:
        ld = self.ld(ref)
        if ld.type != "BV":
            raise SnapLabError(E.NOT_BV, name=ld.name)
        return ld

    def resolve_sv(self, sv_ref: str, svflg: str = "ld", bv_ref: str | int | None = None) -> LD:
        """An SV addressed by name (``ld``), relative generation (``relgen``, with the BV) or ``ld.relgen``."""
        bv = self._bv(bv_ref) if bv_ref is not None else None
        if svflg == "ld":
            sv = self.ld(sv_ref)
            if sv.type != "SV" or (bv is not None and sv.bv != bv.number):
                raise SnapLabError(E.NOT_SV, name=sv.name)
            return sv
        if svflg == "relgen":
            if bv is None:
                raise SnapLabError(E.BAD_ARGUMENT, detail="relgen needs the BV")
            rel = sv_ref[1:] if sv_ref.startswith(".") else sv_ref
        elif svflg == "ld.relgen":
            base, dot, rel = sv_ref.rpartition(".")
            if not dot or not base:
                raise SnapLabError(E.BAD_ARGUMENT, detail=f"not BV.relgen: {sv_ref}")
            named = self._bv(base)
            if bv is not None and named.number != bv.number:
                raise SnapLabError(E.NOT_SV, name=sv_ref)
            bv = named
        else:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-svflg {svflg}")
        try:
            n = int(rel)
        except ValueError:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"relative generation {sv_ref}") from None
        live = self._live_gens(bv.number)
        if n >= 0 or -n > len(live):
            raise SnapLabError(E.GEN_NOT_FOUND, name=sv_ref)
        return self.lds[live[-n - 1].sv]

    def relgen(self, sv: LD) -> int | None:
        g = self.gens.get(sv.number)
        if g is None or not g.live or g.epoch is None:
            return None
        eps = self.families[sv.bv].live_epochs  # type: ignore[index]
        return -(len(eps) - bisect.bisect_left(eps, g.epoch))

    # ================================================================ configuration (B1 via manager)
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
            number = next(n for n in range(0, 0x10000) if n not in self.lds)
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
            fam = Family(number, str(self.data_dir / f"ld_{number:04x}.dat"))
            if os.path.exists(fam.path):
                os.truncate(fam.path, 0)  # leftovers of an LD unbound before a crash
            fam.open()
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
            self._drop_ld(ld)

    def _drop_ld(self, ld: LD) -> None:
        q = self.db.execute
        q("DELETE FROM lds WHERE number=?", [ld.number])
        q("DELETE FROM access WHERE ld=?", [ld.number])
        q("DELETE FROM gens WHERE sv=?", [ld.number])
        q("DELETE FROM overlay WHERE sv=?", [ld.number])
        self.lds.pop(ld.number)
        self.by_name.pop(ld.name)
        self._sv_index = None
        self.access.pop(ld.number, None)
        self.gens.pop(ld.number, None)
        self.overlays.pop(ld.number, None)
        fam = self.families.pop(ld.number, None)
        if fam is not None:
            q("DELETE FROM families WHERE ld=?", [ld.number])
            q("DELETE FROM blocks WHERE family=?", [ld.number])
            fam.close()
            self._to_truncate.append(fam.path)  # after COMMIT (see _tx)

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

    def _sv_pool(self, bv: int) -> int | None:
        svs = self._svs_of(bv)
        return svs[0].pool if svs else None

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
        with self._lock:
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
                num = numbers[i] if numbers else None
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
            lv = self._new_ld(number, name, "LV", bv.format, bv.capacity, p, bv=bv.number)
            lv.signature = os.urandom(4)
            self._save_ld(lv)
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
            raise SnapLabError(E.LICENCE_CAPACITY, licensed=self.licences[DSV], physical=self.physical_capacity())

    def licence_state(self) -> dict:
        with self._lock:
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

    # ---------------------------------------------------------------- hosts and access control (A5)
    def register_host(self, name: str, wwns: list[str], ports: list[str], platform: str = "windows") -> Host:
        if platform not in PLATFORM_FORMATS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"platform {platform}")
        with self._tx():
            for port in ports:
                if not any(p.name == port for p in self.ports.values()):
                    raise SnapLabError(E.PORT_NOT_FOUND, name=port)
            h = Host(name, [w.lower() for w in wwns], list(ports), platform)
            self.db.execute(
                "INSERT OR REPLACE INTO hosts VALUES (?,?,?,?)", [name, json.dumps(h.wwns), json.dumps(h.ports), platform]
            )
            self.hosts[name] = h
            return h

    def _host_paths(self, host: Host) -> set[str]:
        return {f"wwn:{w}" for w in host.wwns} | {f"port:{p}" for p in host.ports}

    def _hosts_on_path(self, path: str) -> list[Host]:
        return [h for h in self.hosts.values() if path in self._host_paths(h)]

    def reaches(self, host: str, ld: LD) -> bool:
        h = self.hosts.get(host)
        return h is not None and bool(self.access.get(ld.number, set()) & self._host_paths(h))

    def assign_access(self, ref: str | int, *, port: str | None = None, wwn: str | None = None) -> None:
        """Assign an LD to a port or to an HBA WWN (A5). SV and SDV never; GPT LVs of one BV on distinct servers."""
        if (port is None) == (wwn is None):
            raise SnapLabError(E.BAD_ARGUMENT, detail="give a port or a WWN")
        with self._tx():
            if ACCESS_CONTROL not in self.licences or ("licence", ACCESS_CONTROL) in self.faults:
                raise SnapLabError(E.LICENCE_MISSING, product=ACCESS_CONTROL)
            ld = self.ld(ref)
            if ld.type in ("SV", "SDV"):
                raise SnapLabError(E.AC_FORBIDDEN_TYPE, name=ld.name)
            if port is not None and not any(p.name == port for p in self.ports.values()):
                raise SnapLabError(E.PORT_NOT_FOUND, name=port)
            path = f"port:{port}" if port is not None else f"wwn:{wwn.lower()}"  # type: ignore[union-attr]
            hosts = self._hosts_on_path(path)
            for h in hosts:
                if ld.format not in PLATFORM_FORMATS[h.platform]:
                    raise SnapLabError(E.FORMAT_PLATFORM, name=f"{ld.name} ({ld.format}) to {h.name}")
            if ld.format == "WG" and ld.type in ("LV", "BV"):
                # Guide 3.1 (GPT): the BV and each of its LVs must all be used on different servers.
                bv_num = ld.bv if ld.type == "LV" else ld.number
                partners = [self.lds[bv_num], *self._lvs_of(bv_num)]  # type: ignore[index,arg-type]
                for other in partners:
                    if other.number != ld.number and any(self.reaches(h.name, other) for h in hosts):
                        raise SnapLabError(E.AC_GPT_SAME_SERVER, name=ld.name)
            self.db.execute("INSERT OR IGNORE INTO access VALUES (?,?)", [path, ld.number])
            self.access.setdefault(ld.number, set()).add(path)

    def unassign_access(self, ref: str | int, *, port: str | None = None, wwn: str | None = None) -> None:
        with self._tx():
            ld = self.ld(ref)
            path = f"port:{port}" if port is not None else f"wwn:{(wwn or '').lower()}"
            self.db.execute("DELETE FROM access WHERE path=? AND ld=?", [path, ld.number])
            self.access.get(ld.number, set()).discard(path)

    # ---------------------------------------------------------------- faults (A13)
    def inject_fault(self, kind: str, target: str) -> None:
        if kind not in FAULT_KINDS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"fault kind {kind}")
        with self._tx():
            if kind in ("sra_full", "sra_failure"):
                p = self._pool(target)
                target = p.name
                if kind == "sra_failure":  # every snapshot sharing the SRA becomes unreadable
                    for sv in (x for x in self.lds.values() if x.type == "SV" and x.pool == p.number):
                        self._fail_gen(self.gens[sv.number], FAULT_SRA)
            elif kind == "bv_failure":
                bv = self.ld(target)
                if bv.number not in self.families:
                    raise SnapLabError(E.NOT_BV, name=bv.name)
                target = bv.name
                for sv in self._svs_of(bv.number):
                    self._fail_gen(self.gens[sv.number], FAULT_BV)
            elif kind == "licence" and target not in PRODUCTS:
                raise SnapLabError(E.BAD_ARGUMENT, detail=f"product {target}")
            self.db.execute("INSERT OR IGNORE INTO faults VALUES (?,?)", [kind, target])
            self.faults.add((kind, target))

    def _fail_gen(self, g: Gen, fault: int) -> None:
        if g.live:
            g.fault = g.fault or fault
            if g.state == STATE_ACTIVE:
                g.state = STATE_FAULT
                g.state_time = self._clock()
            self._save_gen(g)

    def clear_fault(self, kind: str, target: str) -> None:
        """Clear a fault. A repaired BV comes back empty (its data was lost); failed generations stay
        failed until deleted and re-created, as the guide's recovery steps say."""
        with self._tx():
            if kind in ("sra_full", "sra_failure"):
                target = self._pool(target).name
            if (kind, target) not in self.faults:
                raise SnapLabError(E.NOT_FOUND, name=f"{kind} {target}")
            if kind == "bv_failure":
                bv = self.ld(target)
                fam = self.families[bv.number]
                self.db.execute("DELETE FROM blocks WHERE family=?", [fam.ld])
                for sv in self._svs_of(bv.number):
                    self.db.execute("DELETE FROM overlay WHERE sv=?", [sv.number])
                    self.overlays.pop(sv.number, None)
                fam.versions.clear()
                fam.retained = 0
                fam.owned = {}
                fam.free = []
                fam.hw = 0
                os.truncate(fam.path, 0)
                self._save_family(fam)
            self.db.execute("DELETE FROM faults WHERE kind=? AND target=?", [kind, target])
            self.faults.discard((kind, target))

    # ================================================================ snapshot operations (A8)
    def _check_layout(self, ld: LD, read: Callable[[int, int], bytes], allow_multi: bool, allow_gpt: bool) -> None:
        layout = disklayout.analyse(read)
        if layout.dynamic:
            raise SnapLabError(E.DYNAMIC_DISK, name=ld.name)
        if layout.scheme == "gpt" and (ld.format != "WG" or not allow_gpt):
            raise SnapLabError(E.GPT_NOT_ALLOWED, name=ld.name)
        if layout.volumes > 1 and not allow_multi:
            raise SnapLabError(E.MULTI_PARTITION, name=ld.name)

    def _check_bv_usable(self, bv: LD) -> None:
        if ("bv_failure", bv.name) in self.faults:
            raise SnapLabError(E.BV_FAILURE, name=bv.name)

    def _check_gen_readable(self, sv: LD, g: Gen) -> None:
        if g.fault == FAULT_BV or ("bv_failure", self.lds[sv.bv].name) in self.faults:  # type: ignore[index]
            raise SnapLabError(E.BV_FAILURE, name=sv.name)
        if g.fault == FAULT_SRA or ("sra_failure", self.pools[sv.pool].name) in self.faults:
            raise SnapLabError(E.SRA_FAILURE, name=sv.name)

    def _cyclic_choice(self, bv: LD) -> LD | None:
        """The SV a cyclic create uses: an unused one of the set, else the oldest unguarded generation."""
        svs = self._svs_of(bv.number)
        for sv in svs:
            if not self.gens[sv.number].live:
                return sv
        for g in reversed(self._live_gens(bv.number)):
            if not g.guard and g.state != STATE_RESTORING:
                return self.lds[g.sv]
        return None

    def create(self, bv_ref: str | int, sv_ref: str | None = None, svflg: str = "ld", *, cyclic: bool = False,
               allow_multi: bool = False, allow_gpt: bool = False) -> dict:
        """``iSMsc_create``: snapshot the BV into a named SV or cyclically. O(1) in data and generations."""
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            self._check_bv_usable(bv)
            if bv.number in self.restores:
                raise SnapLabError(E.RESTORING, name=bv.name)
            pool = self.pools[self._sv_pool(bv.number)]  # type: ignore[index]
            if ("sra_failure", pool.name) in self.faults:
                raise SnapLabError(E.SRA_FAILURE, name=pool.name)
            if cyclic:
                sv = self._cyclic_choice(bv)
                if sv is None:
                    raise SnapLabError(E.NO_CYCLIC_SV, name=bv.name)
            elif sv_ref is None:
                raise SnapLabError(E.BAD_ARGUMENT, detail="give -sv or -cyclic")
            else:
                sv = self.resolve_sv(sv_ref, svflg, bv.number)
            g = self.gens[sv.number]
            if g.live and not cyclic:
                raise SnapLabError(E.SV_ACTIVE, name=sv.name)
            if g.live and self._sv_link(sv.number) is not None:
                raise SnapLabError(E.SV_LINKED, name=sv.name)
            fam = self.families[bv.number]
            self._check_layout(bv, lambda o, n: self._read_head(bv, fam, o, n), allow_multi, allow_gpt)
            if g.live:
                self._delete_gen(g)
            g.epoch = fam.cur_epoch
            fam.cur_epoch += 1
            fam.live_epochs.append(g.epoch)  # epochs only grow: the list stays sorted
            now = self._clock()
            g.state, g.state_time, g.create_time = STATE_ACTIVE, now, now
            g.guard, g.orig_signature, g.fault = False, None, FAULT_NONE
            self._save_gen(g)
            self._save_family(fam)
            return self._gen_info(sv)

    def _delete_gen(self, g: Gen) -> None:
        """Drop a generation and the versions only it still needed (O(versions it owns))."""
        sv = self.lds[g.sv]
        fam = self.families[sv.bv]  # type: ignore[index]
        s = g.epoch
        if s is not None and s in fam.live_epochs:
            i = fam.live_epochs.index(s)
            prev_e = fam.live_epochs[i - 1] if i > 0 else 0
            next_e = fam.live_epochs[i + 1] if i + 1 < len(fam.live_epochs) else None
            fam.live_epochs.pop(i)
            rows = self.db.execute(
                "SELECT DISTINCT lblock FROM blocks WHERE family=? AND epoch>? AND epoch<=?", [fam.ld, prev_e, s]
            ).fetchall()
            dead = []
            for (lb,) in rows:
                vs = fam.versions[lb]
                j = bisect.bisect_right(vs, s, key=lambda r: r[0]) - 1
                if j < 0 or vs[j][0] <= prev_e:
                    continue  # the previous generation still sees it
                if j == len(vs) - 1:
                    continue  # it is the BV's own block
                if next_e is not None and vs[j + 1][0] > next_e:
                    if vs[j][1] != ZERO:  # the next generation sees it: now charged to that one
                        fam.owned[next_e] = fam.owned.get(next_e, 0) + 1
                    continue
                epoch, pb = vs.pop(j)
                dead.append((fam.ld, lb, epoch))
                if pb != ZERO:
                    fam.retained -= 1
                    self._to_free.append((fam, pb))
            self.db.conn.executemany("DELETE FROM blocks WHERE family=? AND lblock=? AND epoch=?", dead)
            fam.owned.pop(s, None)
        ov = self.overlays.pop(g.sv, {})
        if ov:
            fam.retained -= len(ov)
            self._to_free.extend((fam, pb) for pb in ov.values())
            self.db.execute("DELETE FROM overlay WHERE sv=?", [g.sv])
        g.state, g.epoch, g.state_time = STATE_UNUSED, None, self._clock()
        g.create_time, g.guard, g.orig_signature, g.fault = None, False, None, FAULT_NONE
        self._save_gen(g)

    def delete(self, bv_ref: str | int, sv_ref: str | None = None, svflg: str = "ld", *, auto: bool = False) -> str | None:
        """``iSMsc_delete``: a named generation, or ``-auto`` (the one the next cyclic create would use).
        Returns the SV deleted, or None when ``-auto`` found that SV already free."""
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            if auto:
                sv = self._cyclic_choice(bv)
                if sv is None:
                    raise SnapLabError(E.NO_CYCLIC_SV, name=bv.name)
            elif sv_ref is None:
                raise SnapLabError(E.BAD_ARGUMENT, detail="give -sv or -auto")
            else:
                sv = self.resolve_sv(sv_ref, svflg, bv.number)
            g = self.gens[sv.number]
            if not g.live:
                if auto:
                    return None
                raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
            if g.guard:
                raise SnapLabError(E.SV_GUARDED, name=sv.name)
            if g.state == STATE_RESTORING:
                raise SnapLabError(E.RESTORING, name=sv.name)
            if self._sv_link(sv.number) is not None:
                raise SnapLabError(E.SV_LINKED, name=sv.name)
            self._delete_gen(g)
            return sv.name

    def guard(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, on: bool) -> str:
        """``iSMsc_svguard -mode set|cancel``."""
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            g = self.gens[sv.number]
            if not g.live:
                raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
            g.guard = on
            self._save_gen(g)
            return sv.name

    def _sv_link(self, sv: int) -> Link | None:
        for lk in self.links.values():
            if lk.kind == "sv" and lk.target == sv:
                return lk
        return None

    def _bv_link(self, bv: int) -> Link | None:
        for lk in self.links.values():
            if lk.kind == "bv" and lk.target == bv:
                return lk
        return None

    def link(self, lv_ref: str | int, sv_ref: str | None = None, svflg: str = "ld", *, bv_ref: str | int | None = None,
             mode: str = "rw", allow_multi: bool = False, allow_gpt: bool = False) -> dict:
        """``iSMsc_link``: LV to an SV in snap/active, or LV to its BV (then reachable only through the LV)."""
        mode = mode.lower()
        if mode not in ACCESS_MODES:
            raise SnapLabError(E.BAD_ACCESS_MODE, detail=mode)
        with self._tx():
            self._check_licence()
            lv = self.ld(lv_ref)
            if lv.type != "LV":
                raise SnapLabError(E.NOT_LV, name=lv.name)
            if lv.number in self.links:
                raise SnapLabError(E.LV_LINKED, name=lv.name)
            if sv_ref is None:
                if bv_ref is None:
                    raise SnapLabError(E.BAD_ARGUMENT, detail="give -sv or -bv")
                bv = self._bv(bv_ref)
                if lv.bv != bv.number:
                    raise SnapLabError(E.LV_OTHER_BV, name=lv.name)
                self._check_bv_usable(bv)
                if self._bv_link(bv.number) is not None:
                    raise SnapLabError(E.BV_BUSY_LINK, name=bv.name)
                if bv.number in self.restores:
                    raise SnapLabError(E.RESTORING, name=bv.name)
                fam = self.families[bv.number]
                self._check_layout(bv, lambda o, n: self._read_head(bv, fam, o, n), allow_multi, allow_gpt)
                link = Link(lv.number, "bv", bv.number, mode)
            else:
                sv = self.resolve_sv(sv_ref, svflg, bv_ref if bv_ref is not None else (lv.bv if svflg == "relgen" else None))
                if sv.bv != lv.bv:
                    raise SnapLabError(E.LV_OTHER_BV, name=lv.name)
                g = self.gens[sv.number]
                if g.live:
                    self._check_gen_readable(sv, g)
                if g.state != STATE_ACTIVE:
                    raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
                if self._sv_link(sv.number) is not None:
                    raise SnapLabError(E.SV_LINKED, name=sv.name)
                if lv.pool != sv.pool:
                    raise SnapLabError(E.LV_POOL_MISMATCH, name=lv.name)
                self._check_layout(sv, lambda o, n: self._read_gen(sv, g, o, n), allow_multi, allow_gpt)
                if sv.format == "WN":
                    # A10: keep the SV's signature in the SV, show the LV's managed signature to the host.
                    block0 = self._read_gen(sv, g, 0, disklayout.SECTOR)
                    current = disklayout.read_signature(block0)
                    if current is not None and lv.signature is not None:
                        g.orig_signature = current
                        self._write_gen(sv, g, disklayout.MBR_SIGNATURE_OFFSET, lv.signature)
                        self._save_gen(g)
                link = Link(lv.number, "sv", sv.number, mode)
            self.db.execute("INSERT INTO links VALUES (?,?,?,?)", [link.lv, link.kind, link.target, link.mode])
            self.links[lv.number] = link
            if lv.link_lost:
                lv.link_lost = False
                self._save_ld(lv)
            return self.linkinfo(lv.name)

    def unlink(self, lv_ref: str | int, sv_ref: str | None = None, svflg: str = "ld", *, bv_ref: str | int | None = None) -> dict:
        """``iSMsc_unlink``: the LV becomes Not Ready; for a WN SV the signatures are swapped back (A10)."""
        with self._tx():
            self._check_licence()
            lv = self.ld(lv_ref)
            if lv.type != "LV":
                raise SnapLabError(E.NOT_LV, name=lv.name)
            link = self.links.get(lv.number)
            if link is None:
                raise SnapLabError(E.LV_NOT_LINKED, name=lv.name)
            info = self.linkinfo(lv.name)
            if sv_ref is not None:
                sv = self.resolve_sv(sv_ref, svflg, bv_ref if bv_ref is not None else (lv.bv if svflg == "relgen" else None))
                if link.kind != "sv" or link.target != sv.number:
                    raise SnapLabError(E.LINK_MISMATCH, name=lv.name)
            elif bv_ref is not None:
                bv = self._bv(bv_ref)
                if link.kind != "bv" or link.target != bv.number:
                    raise SnapLabError(E.LINK_MISMATCH, name=lv.name)
            if link.kind == "sv":
                sv = self.lds[link.target]
                g = self.gens[sv.number]
                if sv.format == "WN" and g.orig_signature is not None and g.fault == FAULT_NONE:
                    current = disklayout.read_signature(self._read_gen(sv, g, 0, disklayout.SECTOR))
                    if current is not None:
                        lv.signature = current
                        self._save_ld(lv)
                    self._write_gen(sv, g, disklayout.MBR_SIGNATURE_OFFSET, g.orig_signature)
                    g.orig_signature = None
                    self._save_gen(g)
            self.db.execute("DELETE FROM links WHERE lv=?", [lv.number])
            del self.links[lv.number]
            return info

    # ---------------------------------------------------------------- restore
    def restore(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, derived: str = "keep",
                allow_multi: bool = False, allow_gpt: bool = False) -> dict:
        """``iSMsc_restore``: make the BV equal the generation, copying only the blocks that differ.

        Returns at once (the copy runs in the background, state ``rst/exec``); the BV already reads as
        the generation while it runs. ``derived='delete'`` deletes the generations newer than it.
        """
        if derived not in ("keep", "delete"):
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-derivsv {derived}")
        with self._tx():
            self._check_licence()
            bv = self._bv(bv_ref)
            self._check_bv_usable(bv)
            if bv.number in self.restores:
                raise SnapLabError(E.RESTORING, name=bv.name)
            if self._bv_link(bv.number) is not None:
                raise SnapLabError(E.BV_BUSY_LINK, name=bv.name)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            g = self.gens[sv.number]
            if g.live:
                self._check_gen_readable(sv, g)
            if g.state != STATE_ACTIVE:
                raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
            if self._sv_link(sv.number) is not None:
                raise SnapLabError(E.SV_LINKED, name=sv.name)
            self._check_layout(sv, lambda o, n: self._read_gen(sv, g, o, n), allow_multi, allow_gpt)
            if derived == "delete":
                newer = [x for x in self._live_gens(bv.number) if (x.epoch or 0) > (g.epoch or 0)]
                for x in newer:
                    if x.guard:
                        raise SnapLabError(E.SV_GUARDED, name=self.lds[x.sv].name)
                    if self._sv_link(x.sv) is not None:
                        raise SnapLabError(E.SV_LINKED, name=self.lds[x.sv].name)
                for x in newer:
                    self._delete_gen(x)
            fam = self.families[bv.number]
            ov = self.overlays.get(sv.number, {})
            changed = self.db.execute(
                "SELECT DISTINCT lblock FROM blocks WHERE family=? AND epoch>?", [fam.ld, g.epoch or 0]
            )
            candidates = {lb for (lb,) in changed} | set(ov)
            pending = {lb for lb in candidates if self._gen_pblock(fam, g, lb) != self._head_pblock(fam, lb)}
            signature = None
            if bv.format == "WN":
                signature = disklayout.read_signature(self._read_head(bv, fam, 0, disklayout.SECTOR))
            r = Restore(bv.number, sv.number, len(pending), self._clock(), signature, pending)
            self.db.execute("INSERT INTO restores VALUES (?,?,?,?,?)", [r.bv, r.sv, r.total, r.started, signature])
            self.db.conn.executemany("INSERT INTO restore_pending VALUES (?,?)", [(bv.number, lb) for lb in pending])
            self.restores[bv.number] = r
            g.state, g.state_time = STATE_RESTORING, self._clock()
            self._save_gen(g)
            # Block 0 first and at once: it carries the BV's pre-copy signature (A10).
            if 0 in pending:
                self._restore_blocks(bv, fam, r, [0])
            if not r.pending:
                self._finish_restore(bv, r)
            return self._gen_info(sv)

    def _restore_blocks(self, bv: LD, fam: Family, r: Restore, lbs: list[int]) -> None:
        sv = self.lds[r.sv]
        g = self.gens[sv.number]
        plan = []
        for lb in lbs:
            content = self._gen_block(fam, g, lb)
            if lb == 0 and r.signature is not None and content is not None and disklayout.has_mbr(content):
                content = disklayout.with_signature(content, r.signature)
            plan.append((lb, content))
        self._commit_head_blocks(bv, fam, plan, restoring=r)
        self._drop_pending(r, lbs)

    def _drop_pending(self, r: Restore, lbs: list[int]) -> None:
        r.pending.difference_update(lbs)
        self.db.conn.executemany("DELETE FROM restore_pending WHERE bv=? AND lblock=?", [(r.bv, lb) for lb in lbs])

    def _finish_restore(self, bv: LD, r: Restore) -> None:
        g = self.gens[r.sv]
        if g.state == STATE_RESTORING:
            g.state, g.state_time = STATE_ACTIVE, self._clock()
            self._save_gen(g)
        self.db.execute("DELETE FROM restores WHERE bv=?", [bv.number])
        self.db.execute("DELETE FROM restore_pending WHERE bv=?", [bv.number])
        del self.restores[bv.number]

    def _restore_worker(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self.restores:
                    self._cond.wait(timeout=1.0)
                if self._closed:
                    return
                try:
                    for bv_num, r in list(self.restores.items()):
                        with self._tx():
                            bv = self.lds[bv_num]
                            if r.pending:
                                batch = sorted(r.pending)[:RESTORE_BATCH]
                                self._restore_blocks(bv, self.families[bv_num], r, batch)
                            if not r.pending:
                                self._finish_restore(bv, r)
                except SnapLabError as exc:  # e.g. the BV failed meanwhile: the restore stops where it is
                    log.warning("restore stopped: %s", exc)
                    self._cond.wait(timeout=1.0)
                except Exception:  # never let the worker die; the transaction was rolled back
                    log.exception("restore step failed")
                    self._cond.wait(timeout=1.0)
            time.sleep(0)  # let host I/O and operations take the lock between batches

    def wait(self, bv_ref: str | int, sv_ref: str, svflg: str = "ld", *, cond: str = "active",
             timeout: float | None = None) -> dict:
        """``iSMsc_wait -cond active|deleted``: block until the generation reaches the condition."""
        if cond not in ("active", "deleted"):
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"-cond {cond}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            bv = self._bv(bv_ref)
            sv = self.resolve_sv(sv_ref, svflg, bv.number)
            while True:
                g = self.gens.get(sv.number)
                if g is None:
                    raise SnapLabError(E.NOT_FOUND, name=sv.name)
                if cond == "active" and g.state == STATE_ACTIVE:
                    return self._gen_info(sv)
                if cond == "active" and g.state != STATE_RESTORING:
                    raise SnapLabError(E.SV_NOT_ACTIVE, name=sv.name)
                if cond == "deleted" and not g.live:
                    return self._gen_info(sv)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise SnapLabError(E.WAIT_TIMEOUT, name=sv.name)
                if self._closed:
                    raise SnapLabError(E.INTERNAL, detail="array is shutting down")
                self._cond.wait(timeout=min(left, 1.0) if left is not None else 1.0)

    # ================================================================ state queries (B5)
    def _gen_sizes(self, bv: int) -> dict[int, int]:
        return {sv.number: self._gen_size(sv) for sv in self._svs_of(bv)}

    def _gen_size(self, sv: LD) -> int:
        """One generation's share of the SRA: the kept versions charged to it, plus its overlay."""
        g = self.gens[sv.number]
        if not g.live or g.epoch is None:
            return 0
        fam = self.families[sv.bv]  # type: ignore[index]
        return (fam.owned.get(g.epoch, 0) + len(self.overlays.get(sv.number, {}))) * BLOCK

    def _gen_info(self, sv: LD, sizes: dict[int, int] | None = None) -> dict:
        g = self.gens[sv.number]
        link = self._sv_link(sv.number)
        lv = self.lds[link.lv] if link else None
        r = self.restores.get(sv.bv) if g.state == STATE_RESTORING else None  # type: ignore[arg-type]
        if sizes is None:
            sizes = {sv.number: self._gen_size(sv)}
        return {
            "sv": sv.name,
            "sv_number": sv.number_text,
            "bv": self.lds[sv.bv].name,  # type: ignore[index]
            "format": sv.format,
            "relgen": self.relgen(sv),
            "attribute": "normal",
            "state": g.state,
            "state_time": g.state_time or "",
            "create_time": g.create_time or "",
            "guard": g.guard,
            "link": "link" if link else "unlink",
            "lv": lv.name if lv else "",
            "lv_mode": link.mode if link else "",
            "data_size": sizes.get(sv.number, 0) if g.live else 0,
            "restore_total": r.total if r else 0,
            "restore_done": (r.total - len(r.pending)) if r else 0,
            "pool": self.pools[sv.pool].name,
        }

    def query(self, bv_ref: str | int) -> dict:
        """``iSMsc_query``: the BV and, per SV of its set, generation, states, guard, link, data size."""
        with self._lock:
            bv = self._bv(bv_ref)
            sizes = self._gen_sizes(bv.number)
            live = [self._gen_info(self.lds[g.sv], sizes) for g in self._live_gens(bv.number)]
            unused = [self._gen_info(sv, sizes) for sv in self._svs_of(bv.number) if not self.gens[sv.number].live]
            state = "normal"
            if ("bv_failure", bv.name) in self.faults:
                state = "failure"
            elif bv.number in self.restores:
                state = "restoring"
            pool = self._sv_pool(bv.number)
            lk = self._bv_link(bv.number)
            return {
                "bv": bv.name,
                "bv_number": bv.number_text,
                "format": bv.format,
                "state": state,
                "reserve_area": self.pools[pool].name if pool is not None else "-",
                "generations": live + unused,
                "lvs": [
                    {"lv": x.name, "link": "link" if x.number in self.links else "unlink",
                     "mode": self.links[x.number].mode if x.number in self.links else ""}
                    for x in self._lvs_of(bv.number)
                ],
                "bv_link_lv": self.lds[lk.lv].name if lk else "",
            }

    def linkinfo(self, ref: str | int) -> dict:
        """``iSMsc_linkinfo``: what a volume is linked to (LV side) or from (SV/BV side)."""
        with self._lock:
            ld = self.ld(ref)
            out: dict = {"volume": ld.name, "type": ld.type, "format": ld.format, "links": []}
            if ld.type == "LV":
                lk = self.links.get(ld.number)
                out["state"] = "link" if lk else "unlink"
                out["link_lost"] = ld.link_lost
                if lk:
                    out["links"].append({"lv": ld.name, "target": self.lds[lk.target].name, "kind": lk.kind, "mode": lk.mode})
            else:
                lks = [lk for lk in self.links.values() if lk.target == ld.number]
                out["state"] = "link" if lks else "unlink"
                for lk in lks:
                    out["links"].append({"lv": self.lds[lk.lv].name, "target": ld.name, "kind": lk.kind, "mode": lk.mode})
            return out

    def describe(self) -> dict:
        """Monitoring (B5): array properties, pools with SRA, LDs, licences, faults, hosts."""
        with self._lock:
            return {
                "name": self.name,
                "physical_capacity": self.physical_capacity(),
                "ports": [{"director": p.director, "port": p.port, "name": p.name} for p in self.ports.values()],
                "pools": [
                    {"number": p.number, "name": p.name, "kind": p.kind, "capacity": p.capacity,
                     "sra_capacity": self._sra_capacity(p.number), "sra_used": self._sra_used(p.number)}
                    for p in sorted(self.pools.values(), key=lambda p: p.number)
                ],
                "lds": [
                    {"number": x.number_text, "name": x.name, "type": x.type, "format": x.format,
                     "capacity": x.capacity, "pool": self.pools[x.pool].name, "attr": x.attr,
                     "access": sorted(self.access.get(x.number, ())),
                     "bv": self.lds[x.bv].name if x.bv is not None and x.bv in self.lds else ""}
                    for x in sorted(self.lds.values(), key=lambda x: x.number)
                ],
                "licences": self.licence_state(),
                "faults": sorted(f"{k}:{t}" for k, t in self.faults),
                "hosts": [{"name": h.name, "wwns": h.wwns, "ports": h.ports, "platform": h.platform}
                          for h in self.hosts.values()],
            }

    def visible_lds(self, host: str) -> list[LD]:
        """The LDs a host sees as disks: assigned to one of its paths, and not SV/SDV."""
        with self._lock:
            if ("path", host) in self.faults:
                return []
            return [x for x in sorted(self.lds.values(), key=lambda x: x.number)
                    if x.type not in ("SV", "SDV") and self.reaches(host, x)]

    # ================================================================ block I/O (A9)
    def _head_pblock(self, fam: Family, lb: int) -> int | None:
        h = fam.head(lb)
        return None if h is None or h[1] == ZERO else h[1]

    def _gen_pblock(self, fam: Family, g: Gen, lb: int) -> int | None:
        ov = self.overlays.get(g.sv)
        if ov and lb in ov:
            return ov[lb]
        rec = fam.visible(lb, g.epoch)
        return None if rec is None or rec[1] == ZERO else rec[1]

    def _gen_block(self, fam: Family, g: Gen, lb: int) -> bytes | None:
        p = self._gen_pblock(fam, g, lb)
        return None if p is None else fam.read_pblock(p)

    def _read_pblocks(self, fam: Family, pblocks: list[int | None], segs: list[tuple[int, int, int]]) -> bytes:
        total = sum(s[2] for s in segs)
        p0 = pblocks[0] if pblocks else None
        if p0 is not None and all(p == p0 + k for k, p in enumerate(pblocks)):
            # One contiguous physical run (the common case): hand back pread's buffer as it is.
            data = os.pread(fam.fd, total, p0 * BLOCK + segs[0][1])
            return data if len(data) == total else data.ljust(total, b"\0")
        out = bytearray()
        i = 0
        while i < len(segs):
            p = pblocks[i]
            if p is None:
                out += bytes(segs[i][2])
                i += 1
                continue
            j = i + 1  # coalesce consecutive physical blocks into one pread
            while j < len(segs) and pblocks[j] is not None and pblocks[j] == p + (j - i):
                j += 1
            start = p * BLOCK + segs[i][1]
            length = sum(s[2] for s in segs[i:j])
            data = os.pread(fam.fd, length, start)
            out += data if len(data) == length else data.ljust(length, b"\0")
            i = j
        return bytes(out)

    def _read_head(self, bv: LD, fam: Family, offset: int, length: int) -> bytes:
        segs = split_range(offset, length)
        r = self.restores.get(bv.number)
        if r is not None and r.pending:
            g = self.gens[r.sv]
            pbs = [self._gen_pblock(fam, g, lb) if lb in r.pending else self._head_pblock(fam, lb) for lb, _, _ in segs]
        else:
            pbs = [self._head_pblock(fam, lb) for lb, _, _ in segs]
        return self._read_pblocks(fam, pbs, segs)

    def _read_gen(self, sv: LD, g: Gen, offset: int, length: int) -> bytes:
        fam = self.families[sv.bv]  # type: ignore[index]
        segs = split_range(offset, length)
        return self._read_pblocks(fam, [self._gen_pblock(fam, g, lb) for lb, _, _ in segs], segs)

    def _commit_head_blocks(self, bv: LD, fam: Family, plan: list[tuple[int, bytes | None]],
                            restoring: Restore | None = None) -> None:
        """Write whole blocks to the BV (None = zeros). Frozen versions are kept for the generations
        that see them; when the SRA cannot hold them, snapshots are deleted as part of the write (A6)."""
        while True:
            need = sum(1 for lb, _ in plan if (h := fam.head(lb)) and h[1] != ZERO and fam.frozen(h))
            pool = self._sv_pool(bv.number)
            if need == 0 or pool is None:
                break
            pname = self.pools[pool].name
            full = ("sra_full", pname) in self.faults
            if not full and self._sra_used(pool) + need * BLOCK <= self._sra_capacity(pool):
                break
            victim = self._sra_full_victim(bv, restoring)
            if victim is None:
                raise SnapLabError(E.SRA_FULL, name=pname)
            self._auto_delete(victim)
        writes = [(lb, c) for lb, c in plan if c is not None]
        pblocks = fam.alloc(len(writes))
        newp = dict(zip((lb for lb, _ in writes), pblocks))
        fam.write_pblocks([(newp[lb], c if len(c) == BLOCK else c.ljust(BLOCK, b"\0")) for lb, c in writes])
        inserts, updates = [], []
        for lb, c in plan:
            p = newp.get(lb, ZERO)
            h = fam.head(lb)
            if h is None:
                if p != ZERO:
                    fam.versions[lb] = [(fam.cur_epoch, p)]
                    inserts.append((fam.ld, lb, fam.cur_epoch, p))
            elif fam.frozen(h):
                fam.versions[lb].append((fam.cur_epoch, p))
                inserts.append((fam.ld, lb, fam.cur_epoch, p))
                if h[1] != ZERO:
                    fam.retained += 1
                    owner = fam.owner_epoch(h[0])
                    fam.owned[owner] = fam.owned.get(owner, 0) + 1  # type: ignore[index]
            else:
                fam.versions[lb][-1] = (h[0], p)
                updates.append((p, fam.ld, lb, h[0]))
                if h[1] != ZERO:
                    self._to_free.append((fam, h[1]))
        c = self.db.conn
        if inserts:
            c.executemany("INSERT INTO blocks(family, lblock, epoch, pblock) VALUES (?,?,?,?)", inserts)
        if updates:
            c.executemany("UPDATE blocks SET pblock=? WHERE family=? AND lblock=? AND epoch=?", updates)
        if fam.hw:
            self.db.execute("UPDATE families SET hw=? WHERE ld=?", [fam.hw, fam.ld])

    def _sra_full_victim(self, bv: LD, restoring: Restore | None) -> Gen | None:
        """Which snapshot an SRA-full write deletes: the oldest generation of the BV being written,
        unguarded ones before guarded ones. The oldest holds the most differences (the guide's own
        advice), taking the written BV's own shrinks what the write needs, and other BVs' backups
        sharing the SRA are left alone. A running restore's source is never taken."""
        gens = [g for g in reversed(self._live_gens(bv.number)) if not (restoring and g.sv == restoring.sv)]
        gens = [g for g in gens if not (bv.number in self.restores and g.sv == self.restores[bv.number].sv)]
        for g in gens:
            if not g.guard:
                return g
        return gens[0] if gens else None

    def _auto_delete(self, g: Gen) -> None:
        lk = self._sv_link(g.sv)
        if lk is not None:  # the host's I/O on that LV now fails like a disk failure
            self.db.execute("DELETE FROM links WHERE lv=?", [lk.lv])
            del self.links[lk.lv]
            lv = self.lds[lk.lv]
            lv.link_lost = True
            self._save_ld(lv)
        log.warning("SRA full: snapshot %s deleted by a write to its BV", self.lds[g.sv].name)
        self._delete_gen(g)

    def _write_gen(self, sv: LD, g: Gen, offset: int, data: bytes) -> None:
        """Write into one generation (RW link, signatures): its private overlay, charged to the SRA."""
        fam = self.families[sv.bv]  # type: ignore[index]
        ov = self.overlays.setdefault(sv.number, {})
        segs = split_range(offset, len(data))
        new_blocks = sum(1 for lb, _, _ in segs if lb not in ov)
        pool = self.pools[sv.pool]
        if new_blocks and (
            ("sra_full", pool.name) in self.faults
            or self._sra_used(pool.number) + new_blocks * BLOCK > self._sra_capacity(pool.number)
        ):
            raise SnapLabError(E.SRA_FULL, name=pool.name)
        plan, pos = [], 0
        for lb, inner, n in segs:
            piece = data[pos : pos + n]
            pos += n
            if n == BLOCK:
                plan.append((lb, piece))
            else:
                base = self._gen_block(fam, g, lb) or bytes(BLOCK)
                plan.append((lb, base[:inner] + piece + base[inner + n :]))
        pblocks = fam.alloc(len(plan))
        fam.write_pblocks([(p, c) for p, (_, c) in zip(pblocks, plan)])
        rows = []
        for p, (lb, _) in zip(pblocks, plan):
            old = ov.get(lb)
            if old is None:
                fam.retained += 1
            else:
                self._to_free.append((fam, old))
            ov[lb] = p
            rows.append((sv.number, lb, p))
        self.db.conn.executemany("INSERT OR REPLACE INTO overlay VALUES (?,?,?)", rows)
        self.db.execute("UPDATE families SET hw=? WHERE ld=?", [fam.hw, fam.ld])

    def _write_head(self, bv: LD, fam: Family, offset: int, data: bytes) -> None:
        segs = split_range(offset, len(data))
        r = self.restores.get(bv.number)
        plan, pos = [], 0
        for lb, inner, n in segs:
            piece = data[pos : pos + n]
            pos += n
            if n == BLOCK:
                plan.append((lb, piece))
                continue
            if r is not None and lb in r.pending:
                base = self._gen_block(fam, self.gens[r.sv], lb)
            else:
                p = self._head_pblock(fam, lb)
                base = None if p is None else fam.read_pblock(p)
            base = base or bytes(BLOCK)
            plan.append((lb, base[:inner] + piece + base[inner + n :]))
        self._commit_head_blocks(bv, fam, plan)
        if r is not None:  # a host write lands on the restored image: those blocks are done
            done = [lb for lb, _, _ in segs if lb in r.pending]
            if done:
                self._drop_pending(r, done)

    def _io_target(self, ld: LD, host: str | None, write: bool) -> tuple[str, LD, Gen | None]:
        """Resolve what an I/O on ``ld`` reaches: ("head", BV-or-IV, None) or ("gen", SV, gen),
        enforcing the calling host's access control (A5), link modes and faults."""
        if host is not None:
            if ("path", host) in self.faults:
                raise SnapLabError(E.PATH_FAILURE, name=host)
            if ld.type in ("SV", "SDV") or not self.reaches(host, ld):
                raise SnapLabError(E.AC_DENIED, name=ld.name)
            if ld.type == "BV" and self._bv_link(ld.number) is not None:
                raise SnapLabError(E.AC_BV_LINKED, name=ld.name)
        if ld.type == "SDV":
            raise SnapLabError(E.AC_DENIED, name=ld.name)
        if ld.type == "LV":
            lk = self.links.get(ld.number)
            if lk is None:
                raise SnapLabError(E.LINK_LOST if ld.link_lost else E.NOT_READY, name=ld.name)
            if lk.mode == "na":
                raise SnapLabError(E.AC_DENIED, name=ld.name)
            if lk.mode == "nr":
                raise SnapLabError(E.NOT_READY, name=ld.name)
            if lk.mode == "ro" and write:
                raise SnapLabError(E.READ_ONLY, name=ld.name)
            ld = self.lds[lk.target]
        if ld.type == "SV":
            g = self.gens[ld.number]
            if not g.live:
                raise SnapLabError(E.NOT_READY, name=ld.name)
            self._check_gen_readable(ld, g)
            if write and g.state == STATE_RESTORING:
                raise SnapLabError(E.RESTORING, name=ld.name)
            return "gen", ld, g
        self._check_bv_usable(ld)
        return "head", ld, None

    @staticmethod
    def _check_range(ld: LD, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > ld.capacity:
            raise SnapLabError(E.BAD_RANGE, detail=f"{offset}+{length} > {ld.capacity}")

    def read(self, ref: str | int, offset: int, length: int, *, host: str | None = None) -> bytes:
        """Read any byte range; ``host`` is the caller (None = the array itself / an administrator)."""
        with self._lock:
            ld = self.ld(ref)
            self._check_range(ld, offset, length)
            kind, target, g = self._io_target(ld, host, write=False)
            if kind == "gen":
                return self._read_gen(target, g, offset, length)  # type: ignore[arg-type]
            return self._read_head(target, self.families[target.number], offset, length)

    def write(self, ref: str | int, offset: int, data: bytes, *, host: str | None = None) -> None:
        """Write any byte range atomically; returns once it is durable against a daemon crash."""
        with self._tx():
            ld = self.ld(ref)
            self._check_range(ld, offset, len(data))
            kind, target, g = self._io_target(ld, host, write=True)
            if not data:
                return
            if kind == "gen":
                self._write_gen(target, g, offset, data)  # type: ignore[arg-type]
            else:
                self._write_head(target, self.families[target.number], offset, data)

    def check_access(self, ref: str | int, host: str, write: bool = False) -> LD:
        """Raise unless ``host`` may do I/O on the LD now; returns the LD."""
        with self._lock:
            ld = self.ld(ref)
            self._io_target(ld, host, write)
            return ld

    # ================================================================ self-check (tests)
    def verify(self) -> None:
        """Assert the incremental accounting matches a recount (used by tests)."""
        with self._lock:
            for fam in self.families.values():
                retained = sum(1 for vs in fam.versions.values() for _, pb in vs[:-1] if pb != ZERO)
                retained += sum(len(self.overlays.get(sv.number, {})) for sv in self._svs_of(fam.ld))
                assert retained == fam.retained, (fam.ld, retained, fam.retained)
                by_epoch = fam.retained_by_epoch()
                assert {e: n for e, n in fam.owned.items() if n} == by_epoch, (fam.ld, fam.owned, by_epoch)
                assert sum(by_epoch.values()) + sum(
                    len(self.overlays.get(sv.number, {})) for sv in self._svs_of(fam.ld)
                ) == fam.retained
                used = [pb for vs in fam.versions.values() for _, pb in vs if pb != ZERO]
                for sv in self._svs_of(fam.ld):
                    used += list(self.overlays.get(sv.number, {}).values())
                assert len(used) == len(set(used)), "physical block shared"
                assert not set(used) & set(fam.free), "free block in use"
