#!/usr/bin/env python3
"""Snapshot create must not depend on the data a BV holds.

Subject: ``engine.create`` (named SV) on an 8 GiB BV with 1 GiB written (1 MiB engine.write calls, one
every 8th MiB, spread over the whole BV). Reference: the same on an empty 64 MiB BV. Each BV lives in
its own array (same configuration: pools, SRA, one BV with the same number of SVs), both in this
process. Rounds of: create SV1..SVn on both BVs, interleaved op by op (only the create is timed),
then delete them all; the side that goes first alternates. Ratio = median(subject) / median(reference).
Target: <= 1.2.
"""

from __future__ import annotations

import sys

import common as c

TARGET = 1.2


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    if args.quick:
        big_cap, written, stride, small_cap, svs, rounds = 64 * c.MiB, 8 * c.MiB, 8 * c.MiB, 8 * c.MiB, 2, 5
    else:
        big_cap, written, stride, small_cap, svs, rounds = 8 * c.GiB, 1 * c.GiB, 8 * c.MiB, 64 * c.MiB, 4, 60
    rounds = args.reps or rounds
    rep = c.Report("bench_snapshot_create", "snapshot create, big written BV vs empty small BV", args)
    data = c.Data(args.seed)
    with c.Lab("create-big") as big, c.Lab("create-small") as small:
        big_svs = big.bv("BV_BIG", big_cap, svs=svs)
        small_svs = small.bv("BV_SMALL", small_cap, svs=svs)
        t0 = c.now()
        n = c.write_range(big.engine, "BV_BIG", 0, written, data, chunk=c.MiB, stride=stride)
        rep.figure("setup: written to the big BV", f"{c.fmt_size(n)} in 1 MiB writes every "
                   f"{c.fmt_size(stride)} ({c.fmt_s(c.now() - t0)})")
        rep.figure("big BV / small BV", f"{c.fmt_size(big_cap)} with {c.fmt_size(n)} written / "
                   f"{c.fmt_size(small_cap)} empty; {svs} SVs each")

        sides = {"big": (big.engine, "BV_BIG", big_svs), "small": (small.engine, "BV_SMALL", small_svs)}
        times: dict[str, list[float]] = {"big": [], "small": []}
        # one untimed warm-up round on each side
        for e, bv, names in sides.values():
            for sv in names:
                e.create(bv, sv)
            for sv in names:
                e.delete(bv, sv)
        for r in range(rounds):
            order = ("big", "small") if r % 2 == 0 else ("small", "big")
            for i in range(svs):
                for side in order:
                    e, bv, names = sides[side]
                    t = c.now()
                    e.create(bv, names[i])
                    times[side].append(c.now() - t)
            for side in order:
                e, bv, names = sides[side]
                for sv in names:
                    e.delete(bv, sv)

        rep.figure(f"create on the big BV ({c.fmt_size(n)} written)", c.spread(times["big"]))
        rep.figure(f"create on the empty {c.fmt_size(small_cap)} BV (reference)", c.spread(times["small"]))
        ratio = c.median(times["big"]) / c.median(times["small"])
        rep.ratio("snapshot_create", ratio, "<=", TARGET, "median create time, big written BV / empty BV")

        if args.profile:
            e, bv, names = sides["big"]
            prof = c.Profiler()
            for _ in range(20):
                for sv in names:
                    with prof.on():
                        e.create(bv, sv)
                for sv in names:
                    e.delete(bv, sv)
            prof.report("create on the big BV (deletes not profiled)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
