"""Checking the array after a crash: read every BV, SV and LV as admin and compare them with the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .crash_model import ACTIVE, BLOCK, DELETED, ID, RESTORING, MiB, Model


class CrashFailure(AssertionError):
    pass


def _first_diff(a: bytes | None, b: bytes | None) -> str:
    if a is None or b is None:
        return f"{'missing' if a is None else len(a)} vs {'missing' if b is None else len(b)}"
    if len(a) != len(b):
        return f"length {len(a)} vs {len(b)}"
    i = next(i for i in range(len(a)) if a[i] != b[i])
    j = i
    while j < len(a) and a[j] != b[j]:
        j += 1
    return f"first difference at byte {i} (block {i // BLOCK}, {j - i}+ bytes differ)"


@dataclass
class Observed:
    bvs: dict[str, bytes]
    gens: dict[str, dict]  # sv -> state, guard, lv, relgen, data (None if refused NOT_READY)
    links: dict[str, tuple[str, str] | None]
    lv_data: dict[str, bytes | None]
    bv_link_lv: dict[str, str]
    sra: dict[str, tuple[int, int]]  # pool -> (sra_used, sum of live data_size)


def observe(client: Any, m: Model) -> Observed:
    from snaplab.common.rpc import SnapLabClientError

    def read(ld: str, cap: int) -> bytes | None:
        try:
            return client.read(ld, 0, cap, chunk_size=4 * MiB)
        except SnapLabClientError as exc:
            if exc.msg_id == ID["NOT_READY"]:
                return None
            raise

    obs = Observed({}, {}, {}, {}, {}, {})
    for b in m.bvs.values():
        q = client.query(b.name)
        obs.bv_link_lv[b.name] = q.bv_link_lv
        for g in q.generations:
            obs.gens[g.sv] = {"state": g.state, "guard": g.guard, "lv": g.lv if g.link == "link" else "",
                              "relgen": g.relgen if g.has_relgen else None, "size": g.data_size, "data": None}
        obs.bvs[b.name] = read(b.name, b.cap)  # type: ignore[assignment]
        for sv in b.svs:
            obs.gens[sv]["data"] = read(sv, b.cap)
        info = client.linkinfo(b.lv)
        obs.links[b.lv] = (info.links[0].kind, info.links[0].target) if info.state == "link" else None
        obs.lv_data[b.lv] = read(b.lv, b.cap)
    return obs


def mismatches(m: Model, o: Observed) -> list[str]:
    """How the observed array differs from the model (empty: it matches)."""
    out = []
    for b in m.bvs.values():
        if o.bvs.get(b.name) != b.data:
            out.append(f"{b.name}: data differs: {_first_diff(o.bvs.get(b.name), b.data)}")
        want_order = m.live_gens(b.name)
        for sv in b.svs:
            g, og = m.gens[sv], o.gens.get(sv)
            if og is None:
                out.append(f"{sv}: missing from Query")
                continue
            st = m.state(sv)
            ok_states = {ACTIVE, RESTORING} if st == RESTORING else {st}
            if og["state"] not in ok_states:
                out.append(f"{sv}: state {og['state']}, model {st}")
                continue
            if g.live:
                if og["guard"] != g.guard:
                    out.append(f"{sv}: guard {og['guard']}, model {g.guard}")
                if og["data"] != g.data:
                    out.append(f"{sv}: data differs: {_first_diff(og['data'], g.data)}")
                rel = -1 - want_order.index(sv)
                if og["relgen"] != rel:
                    out.append(f"{sv}: relgen {og['relgen']}, model {rel}")
                want_lv = m.sv_link(sv) or ""
                if og["lv"] != want_lv:
                    out.append(f"{sv}: linked to {og['lv']!r}, model {want_lv!r}")
            elif og["data"] is not None:
                out.append(f"{sv}: not live but readable")
        lk = m.links[b.lv]
        if o.links.get(b.lv) != lk:
            out.append(f"{b.lv}: link {o.links.get(b.lv)}, model {lk}")
        else:
            want = None if lk is None else m.content(*lk)
            if o.lv_data.get(b.lv) != want:
                out.append(f"{b.lv}: data differs: {_first_diff(o.lv_data.get(b.lv), want)}")
        want_bv_lv = m.bv_link(b.name) or ""
        if o.bv_link_lv.get(b.name) != want_bv_lv:
            out.append(f"{b.name}: linked to LV {o.bv_link_lv.get(b.name)!r}, model {want_bv_lv!r}")
    return out


def model_from_observed(m: Model, o: Observed) -> Model:
    """Resynchronise after a failure (soak mode keeps going): the model becomes what the array holds."""
    n = m.copy()
    for b in n.bvs.values():
        b.data = o.bvs[b.name]
        b.restoring = None
        for sv in b.svs:
            og, g = o.gens[sv], n.gens[sv]
            g.live = og["state"] != DELETED
            g.data, g.guard = (og["data"], og["guard"]) if g.live else (None, False)
            if og["state"] == RESTORING:
                b.restoring = sv
        n.links[b.lv] = o.links[b.lv]
        live = sorted((sv for sv in b.svs if n.gens[sv].live), key=lambda sv: o.gens[sv]["relgen"])
        for sv in live:  # relgen -k: oldest first gets the smallest order
            n.counter += 1
            n.gens[sv].order = n.counter
    return n
