#!/usr/bin/env python3
"""Generation delete must cost what it frees, not the BV's history (issue 12).

(1) ``engine.create(cyclic=True)`` on a full SV set: a BV with 1,024 SVs, all live, 1 GiB written
before the first snapshot and 1 MiB rewritten after each (so each generation holds 1 MiB in the
SRA); the cyclic create deletes the oldest generation and reuses its SV, both in the one timed call.
After each, 1 MiB is rewritten (untimed) so the state stays the same. Reference: a named create on
an empty 64 MiB BV with one free SV in the same array (bench_snapshot_create's reference), its
generation deleted again untimed (that delete is no part of a named create into a free SV).
Alternated call by call. Ratio = median(cyclic) / median(named). Target: <= 1.5.

(2) ``engine.delete`` of the oldest of two generations that holds k blocks in the SRA (k = 16, 64,
256, 1,024), on a BV with 1 GiB written before (history) and on one with only the 1,024 blocks the
rounds overwrite; rounds alternate BVs and sizes. Printed: the least-squares line t = a + b*k per BV
and its r^2. Ratios: worst median(history) / median(no history) over the sizes <= 1.3 (flat in
history); r^2 of the fit on the history BV >= 0.9 (linear in blocks freed).
"""

from __future__ import annotations

import sys

import common as c

TARGET_CYCLIC = 1.5
TARGET_FLAT = 1.3
TARGET_R2 = 0.9


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(a, b, r^2) of the least-squares line y = a + b*x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    if args.quick:
        gens, history, piece, reps, sizes, del_reps = 16, 4 * c.MiB, 4 * c.BLOCK, 5, [1, 2, 4, 8], 3
    else:
        gens, history, piece, reps, sizes, del_reps = 1024, 1 * c.GiB, 1 * c.MiB, 40, [16, 64, 256, 1024], 7
    reps = args.reps or reps
    rep = c.Report("bench_delete", "cyclic create on a full SV set, delete cost vs blocks freed", args)
    data = c.Data(args.seed)
    with c.Lab("delete") as lab:
        e = lab.engine
        # ---------------------------------------------------------------- (1) cyclic create
        cap = max(8 * c.GiB if not args.quick else 64 * c.MiB, 2 * history)
        lab.bv("FULL", cap, svs=gens)
        (empty_sv,) = lab.bv("EMPTY", 64 * c.MiB if not args.quick else 8 * c.MiB, svs=1)
        t0 = c.now()
        c.write_range(e, "FULL", 0, history, data, chunk=c.MiB)
        pos = 0

        def rewrite() -> None:
            nonlocal pos
            e.write("FULL", pos, data.next(piece))
            pos = (pos + piece) % history

        for _ in range(gens):
            e.create("FULL", cyclic=True)
            rewrite()
        rep.figure("setup: full SV set", f"{gens} generations, {c.fmt_size(history)} written before them, "
                   f"{c.fmt_size(piece)} rewritten after each ({c.fmt_s(c.now() - t0)})")
        times: dict[str, list[float]] = {"cyclic": [], "named": []}
        for r in range(reps + 1):
            for side in (("cyclic", "named") if r % 2 == 0 else ("named", "cyclic")):
                if side == "cyclic":
                    t = c.now()
                    e.create("FULL", cyclic=True)
                    dt = c.now() - t
                    rewrite()
                else:
                    t = c.now()
                    e.create("EMPTY", empty_sv)
                    dt = c.now() - t
                    e.delete("EMPTY", empty_sv)
                if r:  # round 0 is the warm-up
                    times[side].append(dt)
        live = sum(1 for g in e.query("FULL")["generations"] if g["relgen"])
        rep.figure(f"cyclic create, full set ({live} live)", c.spread(times["cyclic"]))
        rep.figure("named create, empty BV (reference)", c.spread(times["named"]))
        rep.ratio("cyclic_create_full_set", c.median(times["cyclic"]) / c.median(times["named"]), "<=",
                  TARGET_CYCLIC, "median cyclic create on the full set (its delete included) / named create on an empty BV")
        if args.profile:
            prof = c.Profiler()
            for _ in range(20):
                with prof.on():
                    e.create("FULL", cyclic=True)
                rewrite()
            prof.report("cyclic create on the full set")
        for bv in ("FULL", "EMPTY"):  # the arrays' memory back before part 2
            for g in e.query(bv)["generations"]:
                if g["relgen"]:
                    e.delete(bv, g["sv"])

        # ---------------------------------------------------------------- (2) delete vs blocks freed
        top = max(sizes)
        hist_svs = lab.bv("HIST", max(history, top * c.BLOCK) + top * c.BLOCK, svs=2)
        bare_svs = lab.bv("BARE", top * c.BLOCK, svs=2)
        c.write_range(e, "HIST", 0, max(history, top * c.BLOCK), data, chunk=c.MiB)
        c.write_range(e, "BARE", 0, top * c.BLOCK, data, chunk=c.MiB)
        dels: dict[tuple[str, int], list[float]] = {}

        def round_of(bv: str, svs: list[str], k: int) -> float:
            e.create(bv, svs[0])
            for off in range(0, k * c.BLOCK, c.MiB):
                e.write(bv, off, data.next(min(c.MiB, k * c.BLOCK - off)))
            e.create(bv, svs[1])
            held = next(g["data_size"] for g in e.query(bv)["generations"] if g["sv"] == svs[0])
            assert held == k * c.BLOCK, (bv, k, held)
            t = c.now()
            e.delete(bv, svs[0])
            dt = c.now() - t
            e.delete(bv, svs[1])
            return dt

        round_of("HIST", hist_svs, sizes[0]), round_of("BARE", bare_svs, sizes[0])  # warm-up
        for r in range(del_reps):
            for k in sizes if r % 2 == 0 else reversed(sizes):
                for bv, svs in ((("HIST", hist_svs), ("BARE", bare_svs)) if r % 2 == 0
                                else (("BARE", bare_svs), ("HIST", hist_svs))):
                    dels.setdefault((bv, k), []).append(round_of(bv, svs, k))
        flat = 0.0
        for k in sizes:
            rep.figure(f"delete freeing {k} blocks, {c.fmt_size(history)} history", c.spread(dels[("HIST", k)]))
            rep.figure(f"delete freeing {k} blocks, no history", c.spread(dels[("BARE", k)]))
            flat = max(flat, c.median(dels[("HIST", k)]) / c.median(dels[("BARE", k)]))
        fits = {}
        for bv in ("HIST", "BARE"):
            a, b, r2 = _fit([float(k) for k in sizes], [c.median(dels[(bv, k)]) for k in sizes])
            fits[bv] = r2
            rep.figure(f"fit {bv}: t = a + b*k", f"a {c.fmt_s(a)}, b {b * 1e6:.2f} us/block, r^2 {r2:.3f}")
        rep.ratio("delete_flat_in_history", flat, "<=", TARGET_FLAT,
                  "worst median delete time with history / without, over the sizes")
        rep.ratio("delete_linear_in_freed", fits["HIST"], ">=", TARGET_R2,
                  "r^2 of delete time against blocks freed (history BV)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
