"""Snapshot operations (SPEC A8, A10): create, delete, guard, link, unlink, and the query/linkinfo answers."""

from __future__ import annotations

import bisect
from collections.abc import Callable

from snaplab.common.errors import E, SnapLabError
from snaplab.san import disklayout

from .blockstore import BLOCK, ZERO
from .model import (
    ACCESS_MODES,
    FAULT_NONE,
    LD,
    STATE_ACTIVE,
    STATE_RESTORING,
    STATE_UNUSED,
    Gen,
    Link,
)


def _epoch_of(rec: tuple[int, int]) -> int:
    return rec[0]


class SnapshotsMixin:
    """``iSMsc_create``/``delete``/``svguard``/``link``/``unlink``, and the ``query``/``linkinfo`` answers.

    A mixin of ``ArrayEngine`` (engine.py); reads and signature writes go through blockio.py.
    """

    def _check_layout(self, ld: LD, read: Callable[[int, int], bytes], allow_multi: bool, allow_gpt: bool) -> None:
        layout = disklayout.analyse(read)
        if layout.dynamic:
            raise SnapLabError(E.DYNAMIC_DISK, name=ld.name)
        if layout.scheme == "gpt" and (ld.format != "WG" or not allow_gpt):
            raise SnapLabError(E.GPT_NOT_ALLOWED, name=ld.name)
        if layout.volumes > 1 and not allow_multi:
            raise SnapLabError(E.MULTI_PARTITION, name=ld.name)

    def _cyclic_choice(self, bv: LD) -> LD | None:
        """The SV a cyclic create uses: an unused one of the set, else the oldest unguarded generation."""
        svs = self._svs_of(bv.number)
        gens = self.gens
        epochs = self.families[bv.number].live_epochs  # one per live generation, oldest first
        if len(epochs) < len(svs):
            for sv in svs:
                if not gens[sv.number].live:
                    return sv
        # Oldest first, each live epoch's SV from the family's index (no pass over the set).
        sv_at = self.families[bv.number].sv_at
        for e in epochs:
            g = gens.get(sv_at.get(e, -1))
            # a held generation (holds.py, SnapLab extension) is kept as a guarded one is
            if (g is not None and g.epoch == e and g.live and not g.guard and g.state != STATE_RESTORING
                    and not self._holds(g)):  # type: ignore[attr-defined]
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
            # A named SV that holds a snapshot is refreshed (re-created), as OpenSVC's sync driver
            # does on every update; a guard or a link keeps it (the cyclic choice never takes a guarded one).
            if g.live and g.guard:
                raise SnapLabError(E.SV_GUARDED, name=sv.name)
            if g.live:
                self._check_unheld(sv, g)  # type: ignore[attr-defined]  # holds.py (issue 14)
            if g.live and self._sv_link(sv.number) is not None:
                raise SnapLabError(E.SV_LINKED, name=sv.name)
            fam = self.families[bv.number]
            self._check_layout(bv, lambda o, n: self._read_head(bv, fam, o, n), allow_multi, allow_gpt)
            if g.live:
                self._delete_gen(g, save=False)  # its row is written once, below, as the new generation
            g.epoch = fam.cur_epoch
            fam.cur_epoch += 1
            fam.live_epochs.append(g.epoch)  # epochs only grow: the list stays sorted
            fam.sv_at[g.epoch] = sv.number
            now = self._clock()
            g.state, g.state_time, g.create_time = STATE_ACTIVE, now, now
            g.guard, g.orig_signature, g.fault = False, None, FAULT_NONE
            self._save_gen(g)
            self._save_family(fam)
            return self._gen_info(sv)

    def _delete_gen(self, g: Gen, *, save: bool = True) -> None:
        """Drop a generation and the versions only it still needed (O(the versions it is the newest to see)).
        ``save=False``: the caller writes the generation's row itself (a create reusing the SV)."""
        sv = self.lds[g.sv]
        fam = self.families[sv.bv]  # type: ignore[index]
        s = g.epoch
        # The space it frees goes back to the file system in the background (reclaim.py), which
        # cannot look before this transaction ends (it runs under the lock). Not after a plain
        # overwrite: its freed blocks are reused by the next write, which on a punched hole would
        # allocate again (a costlier sync).
        fam.reclaim_due = True
        if s is not None and s in fam.live_epochs:
            fam.ensure_index()  # built with the generation still live (blockstore.py)
            i = fam.live_epochs.index(s)
            prev_e = fam.live_epochs[i - 1] if i > 0 else 0
            next_e = fam.live_epochs[i + 1] if i + 1 < len(fam.live_epochs) else None
            fam.live_epochs.pop(i)
            fam.sv_at.pop(s, None)
            dead, single = [], []  # versions dropped; blocks left with one version (no longer ``kept``)
            freed = 0
            # Only the versions this generation is the newest to see (Family.last_seen), not a scan of
            # every block written before it: deleting the oldest touches exactly the blocks it frees.
            last_seen = fam.last_seen  # (a property: once, not per block)
            seen = last_seen.pop(s, ())
            fam.versions.load(seen)  # their version lists in one query, not one each
            for lb in seen:
                vs = fam.versions[lb]
                j = bisect.bisect_right(vs, s, key=_epoch_of) - 1
                if j < 0 or j == len(vs) - 1:
                    continue  # not a kept version (the index never holds one: a guard)
                if vs[j][0] <= prev_e:  # the previous generation sees it too: now its newest viewer
                    last_seen.setdefault(prev_e, set()).add(lb)
                    continue
                epoch, pb = vs.pop(j)
                dead.append((fam.ld, lb, epoch))
                if len(vs) == 1:
                    single.append((fam.ld, lb))
                if pb != ZERO:
                    freed += 1
                    fam.retained -= 1
                    self._to_free.append((fam, pb))
            self.db.conn.executemany("DELETE FROM blocks WHERE family=? AND lblock=? AND epoch=?", dead)
            self.db.conn.executemany("DELETE FROM kept WHERE family=? AND lblock=?", single)
            # What it was the oldest to see and did not free (seen by the next one too) is charged to
            # the next one: a count, O(1).
            moved = fam.owned.pop(s, 0) - freed
            if moved and next_e is not None:
                fam.owned[next_e] = fam.owned.get(next_e, 0) + moved
        ov = self.overlays.pop(g.sv, {})
        if ov:
            fam.retained -= len(ov)
            self._to_free.extend((fam, pb) for pb in ov.values())
            self.db.execute("DELETE FROM overlay WHERE sv=?", [g.sv])
        g.state, g.epoch, g.state_time = STATE_UNUSED, None, self._clock()
        g.create_time, g.guard, g.orig_signature, g.fault = None, False, None, FAULT_NONE
        if save:
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
            self._check_unheld(sv, g)  # type: ignore[attr-defined]  # holds.py (issue 14)
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
                        # the write first: its refusal (SRA full) comes before any change (engine._tx)
                        self._write_gen(sv, g, disklayout.MBR_SIGNATURE_OFFSET, lv.signature)
                        g.orig_signature = current
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

    # ---------------------------------------------------------------- state queries (B5)
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
            "consistency": self._consistency(g),  # type: ignore[attr-defined]  # sra_policy.py (issue 14)
            "holds": self._holds(g),  # type: ignore[attr-defined]  # holds.py (issue 14)
            "group": self._group_of_gen(g),  # type: ignore[attr-defined]  # groups.py (issue 14)
        }

    def generation_info(self, bv_ref: str | int, sv_name: str) -> dict:
        """One generation of a BV as ``query()`` gives it, without the others (a guard's or a hold's
        answer: its cost does not grow with the generations the BV holds)."""
        with self._state():
            bv = self._bv(bv_ref)
            sv = self.by_name.get(sv_name)
            if sv is None or sv.type != "SV" or sv.bv != bv.number:
                raise SnapLabError(E.NOT_FOUND, name=sv_name)
            return self._gen_info(sv)

    def query(self, bv_ref: str | int) -> dict:
        """``iSMsc_query``: the BV and, per SV of its set, generation, states, guard, link, data size."""
        with self._state():
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
        with self._state():
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
