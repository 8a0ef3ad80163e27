"""Block I/O (SPEC A6, A9): reads and copy-on-write writes of BVs and generations, SRA-full deletion."""

from __future__ import annotations

import logging
import os

from snaplab.common.errors import E, SnapLabError

from .blockstore import BLOCK, ZERO, Family, split_range
from .model import LD, Gen, Restore
from .storage import storage_refusal

log = logging.getLogger("snaplab.array")


class BlockIOMixin:
    """Bytes of the BV head and of each generation; a BV write keeps the versions older generations see.

    A mixin of ``ArrayEngine`` (engine.py); what an I/O may reach is decided in access.py.
    """

    io_read_bytes = 0  # served since the start, for the metrics (engine.figures)
    io_written_bytes = 0

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
        fam.versions.load([lb for lb, _, _ in segs])  # one range query for the blocks not in memory
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
        fam.versions.load([lb for lb, _, _ in segs])
        return self._read_pblocks(fam, [self._gen_pblock(fam, g, lb) for lb, _, _ in segs], segs)

    def _commit_head_blocks(self, bv: LD, fam: Family, plan: list[tuple[int, bytes | None]],
                            restoring: Restore | None = None, src: dict[int, int] | None = None) -> None:
        """Write whole blocks to the BV (None = zeros). Frozen versions are kept for the generations
        that see them; when the SRA cannot hold them, the pool's SRA-full policy decides (sra_policy.py;
        the default is the guide's: snapshots are deleted as part of the write, A6).

        An injected ``sra_full`` fault means no free space at the moment of the write: only what
        the policy frees counts (one snapshot deleted, if it frees enough, not all of them).

        ``src``: per block, the epoch of the version a restore copied it from (``Family.src``); any
        other block written loses its record (its bytes are new)."""
        fam.versions.load([lb for lb, _ in plan])  # one range query for the blocks not in memory
        pool = self._sv_pool(bv.number)
        injected_room: int | None = None
        while True:
            need = sum(1 for lb, _ in plan if (h := fam.head(lb)) and h[1] != ZERO and fam.frozen(h))
            if need == 0 or pool is None:
                break
            used, room = self._sra_used(pool), self._sra_capacity(pool)
            if ("sra_full", self.pools[pool].name) in self.faults:
                injected_room = min(room, used) if injected_room is None else injected_room
                room = injected_room
            if used + need * BLOCK <= room:
                break
            self._sra_no_room(bv, pool, restoring)  # type: ignore[attr-defined]  # sra_policy.py
        if fam.live_epochs:
            fam.ensure_index()  # before the first change: the index is built from the rows (blockstore.py)
        writes = [(lb, c) for lb, c in plan if c is not None]
        pblocks = fam.alloc(len(writes))
        newp = dict(zip((lb for lb, _ in writes), pblocks))
        fam.write_pblocks([(newp[lb], c if len(c) == BLOCK else c.ljust(BLOCK, b"\0")) for lb, c in writes])
        self._unsynced[fam.ld] = fam
        inserts, updates, kept = [], [], []
        for lb, c in plan:
            p = newp.get(lb, ZERO)
            h = fam.head(lb)
            if h is None:
                if p != ZERO:
                    fam.versions[lb] = [(fam.cur_epoch, p)]
                    inserts.append((fam.ld, lb, fam.cur_epoch, p))
            elif fam.frozen(h):
                vs = fam.versions[lb]
                vs.append((fam.cur_epoch, p))
                inserts.append((fam.ld, lb, fam.cur_epoch, p))
                if len(vs) == 2:
                    kept.append((fam.ld, lb))
                fam.charge(lb, h)
                if h[1] != ZERO:
                    fam.retained += 1
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
        if kept:
            c.executemany("INSERT OR IGNORE INTO kept(family, lblock) VALUES (?,?)", kept)
        if fam.hw:
            self.db.execute("UPDATE families SET hw=? WHERE ld=?", [fam.hw, fam.ld])
        if fam.src:  # O(1) when no restore copied into this BV: the plain write path pays nothing
            gone = [(fam.ld, lb) for lb, _ in plan if lb in fam.src and not (src and lb in src)]
            for _, lb in gone:
                del fam.src[lb]
            c.executemany("DELETE FROM restored WHERE family=? AND lblock=?", gone)
        if src:
            fam.src.update(src)
            c.executemany("INSERT OR REPLACE INTO restored VALUES (?,?,?)", [(fam.ld, lb, e) for lb, e in src.items()])
        self._sra_watch(pool)  # type: ignore[attr-defined]  # warning thresholds (sra_policy.py)

    def _sra_full_victim(self, bv: LD, restoring: Restore | None) -> Gen | None:
        """Which snapshot an SRA-full write deletes: the oldest generation of the BV being written,
        unguarded ones before guarded ones. The oldest holds the most differences (the guide's own
        advice), taking the written BV's own shrinks what the write needs, and other BVs' backups
        sharing the SRA are left alone. A running restore's source is never taken."""
        gens = [g for g in reversed(self._live_gens(bv.number)) if not (restoring and g.sv == restoring.sv)]
        gens = [g for g in gens if not (bv.number in self.restores and g.sv == self.restores[bv.number].sv)]
        gens = [g for g in gens if not self._holds(g)]  # type: ignore[attr-defined]  # held: never (holds.py)
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
        ov = self.overlays.get(sv.number, {})
        segs = split_range(offset, len(data))
        new_blocks = sum(1 for lb, _, _ in segs if lb not in ov)
        pool = self.pools[sv.pool]
        if new_blocks and (
            ("sra_full", pool.name) in self.faults
            or self._sra_used(pool.number) + new_blocks * BLOCK > self._sra_capacity(pool.number)
        ):
            if self._sra_policy(pool.number).policy == "fail-writes":  # type: ignore[attr-defined]
                raise SnapLabError(E.SRA_FULL_WRITE_REFUSED, name=sv.name)
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
        ov = self.overlays.setdefault(sv.number, ov)
        pblocks = fam.alloc(len(plan))
        fam.write_pblocks([(p, c) for p, (_, c) in zip(pblocks, plan)])
        self._unsynced[fam.ld] = fam
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
        self._sra_watch(pool.number)  # type: ignore[attr-defined]

    def _write_head(self, bv: LD, fam: Family, offset: int, data: bytes) -> None:
        segs = split_range(offset, len(data))
        pair = self._rpl_before_write(bv, [lb for lb, _, _ in segs])  # type: ignore[attr-defined]  # replication.py
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
        if pair is not None:
            self._rpl_after_write(bv, [lb for lb, _, _ in segs], pair)  # type: ignore[attr-defined]
        if r is not None:  # a host write lands on the restored image: those blocks are done
            done = [lb for lb, _, _ in segs if lb in r.pending]
            if done:
                self._drop_pending(r, done)

    @staticmethod
    def _check_range(ld: LD, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > ld.capacity:
            raise SnapLabError(E.BAD_RANGE, detail=f"{offset}+{length} > {ld.capacity}")

    def read(self, ref: str | int, offset: int, length: int, *, host: str | None = None) -> bytes:
        """Read any byte range; ``host`` is the caller (None = the array itself / an administrator)."""
        with self._state():
            ld = self.ld(ref)
            self._check_range(ld, offset, length)
            kind, target, g = self._io_target(ld, host, write=False)
            try:
                if kind == "gen":
                    data = self._read_gen(target, g, offset, length)  # type: ignore[arg-type]
                else:
                    data = self._read_head(target, self.families[target.number], offset, length)
                    data = self._rv_read_overlay(target, offset, data)  # type: ignore[attr-defined]  # replication.py
                self.io_read_bytes += len(data)
                return data
            except OSError as exc:  # the data file cannot be read (I/O error): say so, keep serving
                refusal = storage_refusal(exc)
                log.error("storage failure, read refused: %s", refusal)
                raise refusal from None

    def read_heads(
        self, refs: list[str], length: int, *, host: str | None = None
    ) -> list[bytes | SnapLabError]:
        """The first ``length`` bytes of each LD, under one hold of the lock; per LD the data or the
        refusal :meth:`read` would raise (a host's disk scan: one call instead of one per disk)."""
        out: list[bytes | SnapLabError] = []
        with self._state():
            for ref in refs:
                try:
                    ld = self.ld(ref)
                    out.append(self.read(ld.name, 0, min(length, ld.capacity), host=host))
                except SnapLabError as exc:
                    out.append(exc)
        return out

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
            self.io_written_bytes += len(data)  # the metrics' block I/O bytes (a refused write is not counted)
