#!/usr/bin/env python3
"""Snapshot create and SV read latency with 256 generations vs 1.

Subject array: a 1 GiB BV with 257 SVs and a 256 MiB data region written (1 MiB writes); then 255
generations are made, each preceded by a rewrite of 1-4 MiB at random 1 MiB-aligned places in the
region (so every generation holds its own versions of some blocks). Reference array: the same BV
size, data region and sequence of rewrites, but one SV and no generation (same head data, same
number of writes). Both arrays are in this process, with the same pools and SRA.

create: the 256th generation (into SV256 or SV257, alternately; deleted, untimed, after each) vs the
only generation of the reference BV (created and deleted alike); interleaved op by op, median.

SV read latency (with 256 live generations: the 256th is created and kept): random 64 KiB and 1 MiB
reads (offsets 64 KiB-aligned, in the data region, the same offsets for every target) of the oldest
(SV001) and newest (SV256) generation vs of the only SV of the reference BV; interleaved, median.
Ratios = median(subject) / median(reference); targets: create <= 1.3, each read <= 1.3.
"""

from __future__ import annotations

import random
import sys

import common as c

TARGET = 1.3


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv,
                        extra=lambda p: p.add_argument("--gens", type=int, default=None,
                                                       help="generations of the subject BV (default 256)"))
    if args.quick:
        cap, region, gens, rewrite_max, creates, reads64, reads1m = 16 * c.MiB, 4 * c.MiB, 8, 2, 20, 30, 10
    else:
        cap, region, gens, rewrite_max, creates, reads64, reads1m = c.GiB, 256 * c.MiB, 256, 4, 150, 600, 200
    gens = args.gens or gens
    if args.reps:
        creates = reads64 = reads1m = args.reps
    rep = c.Report("bench_generations", f"create and SV read latency, {gens} generations vs 1", args)
    data = c.Data(args.seed)
    rng = random.Random(args.seed)
    with c.Lab("gens-many") as many, c.Lab("gens-one") as one:
        em, eo = many.engine, one.engine
        svs = many.bv("BV_MANY", cap, svs=gens + 1)
        (only,) = one.bv("BV_ONE", cap, svs=1)
        t0 = c.now()
        for e, bv in ((em, "BV_MANY"), (eo, "BV_ONE")):
            c.write_range(e, bv, 0, region, data, chunk=c.MiB)
        rewritten = 0
        for i in range(gens - 1):
            for _ in range(rng.randint(1, rewrite_max)):
                off = rng.randrange(region // c.MiB) * c.MiB
                buf = data.next(c.MiB)
                em.write("BV_MANY", off, buf)
                eo.write("BV_ONE", off, buf)
                rewritten += c.MiB
            em.create("BV_MANY", svs[i])
        sra = em.sra_info(c.SNAP_POOL)["used"]
        rep.figure("setup", f"{c.fmt_s(c.now() - t0)}: BV {c.fmt_size(cap)}, region {c.fmt_size(region)}, "
                   f"{gens - 1} generations, {rewritten // c.MiB} MiB rewritten between them, "
                   f"SRA used {sra / c.MiB:.0f} MiB")
        versions = sum(len(vs) for vs in em.families[em.ld("BV_MANY").number].versions.values())
        ref_versions = sum(len(vs) for vs in eo.families[eo.ld("BV_ONE").number].versions.values())
        rep.figure("block versions kept (subject / reference)", f"{versions} / {ref_versions}")

        # ---------------------------------------------------------------- create
        spare = svs[gens - 1 :]  # SV256 and SV257: the 256th generation goes into one of them
        ct: dict[str, list[float]] = {"many": [], "one": []}
        for r in range(creates + 1):  # round 0 is a warm-up
            sv = spare[r % len(spare)]
            for side in (("many", "one") if r % 2 == 0 else ("one", "many")):
                e, bv, target = (em, "BV_MANY", sv) if side == "many" else (eo, "BV_ONE", only)
                t = c.now()
                e.create(bv, target)
                dt = c.now() - t
                e.delete(bv, target)
                if r:
                    ct[side].append(dt)
        rep.figure(f"create of generation {gens} ({gens - 1} live)", c.spread(ct["many"]))
        rep.figure("create of the only generation (reference)", c.spread(ct["one"]))
        ok = rep.ratio("generations_create", c.median(ct["many"]) / c.median(ct["one"]), "<=", TARGET,
                       f"median create time, {gens} generations / 1")

        # ---------------------------------------------------------------- SV reads
        newest = spare[0]
        em.create("BV_MANY", newest)
        eo.create("BV_ONE", only)
        live = em.query("BV_MANY")["generations"]
        assert sum(1 for g in live if g["state"] == "snap/active") == gens
        targets = {"oldest": (em, svs[0]), "newest": (em, newest), "ref": (eo, only)}
        worst, worst_name = 0.0, ""
        for size, count in ((c.BLOCK, reads64), (c.MiB, reads1m)):
            offs = c.rng_offsets(rng, region, size, count + 1)
            lat: dict[str, list[float]] = {k: [] for k in targets}
            names = list(targets)
            for i, off in enumerate(offs):
                order = names[i % 3:] + names[: i % 3]  # rotate who goes first
                for k in order:
                    e, sv = targets[k]
                    t = c.now()
                    e.read(sv, off, size)
                    if i:  # the first offset is a warm-up
                        lat[k].append(c.now() - t)
            label = c.fmt_size(size)
            for k, what in (("oldest", "oldest SV (SV001)"), ("newest", f"newest SV (SV{gens:03d})"),
                            ("ref", "only SV of the 1-generation BV")):
                rep.figure(f"{label} read, {what}", c.spread(lat[k]))
            ref = c.median(lat["ref"])
            for k in ("oldest", "newest"):
                ratio = c.median(lat[k]) / ref
                name = f"read_{label.replace(' ', '').lower()}_{k}"
                if ratio > worst:
                    worst, worst_name = ratio, name
                rep.line(f"{name}: {ratio:.4f}")
        ok = rep.ratio("generations_read", worst, "<=", TARGET,
                       f"worst of the 4 SV read ratios ({worst_name}), {gens} generations / 1") and ok

        if args.profile:
            prof = c.Profiler()
            for _ in range(50):
                with prof.on():
                    em.create("BV_MANY", spare[1])
                em.delete("BV_MANY", spare[1])
            prof.report(f"create of generation {gens + 1} on the subject BV (deletes not profiled)")
            prof = c.Profiler()
            for off in c.rng_offsets(rng, region, c.MiB, 100):
                with prof.on():
                    em.read(svs[0], off, c.MiB)
            prof.report("1 MiB reads of the oldest SV")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
