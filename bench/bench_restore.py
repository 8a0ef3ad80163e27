#!/usr/bin/env python3
"""Restore with 1% of blocks differing vs a full-volume copy.

A 1 GiB BV, fully written (1 MiB writes), and a plain LD of the same size in the same array. One run:
create a snapshot, change 1% of the BV's 64 KiB blocks (scattered at random, one 64 KiB write each),
then time ``engine.restore`` + ``engine.wait(cond="active")`` (until the background copy is done);
delete the snapshot (untimed). Reference, timed between groups of 3 runs: an engine-level full-volume
copy, i.e. reading the whole BV with engine.read and writing it to the other LD with engine.write, in
4 MiB pieces (the restore worker's batch: 64 blocks). One untimed warm-up of each first.
Ratio = median(restore) / median(full copy). Target: <= 0.05.

Second restore (issue 12): the same run, then the same generation restored again at once (nothing
differs any more); both restores (+ wait) timed, and the blocks each copied (``restore_total``).
Ratios: median(second) / median(first) <= 0.1 (time), and blocks copied second / first <= 0.1
(deterministic).
"""

from __future__ import annotations

import random
import sys

import common as c

TARGET = 0.05
TARGET_SECOND = 0.1
COPY_CHUNK = 4 * c.MiB


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    if args.quick:
        cap, reps, per_copy = 16 * c.MiB, 3, 1
    else:
        cap, reps, per_copy = 1 * c.GiB, 7, 3
    reps = args.reps or reps  # full-volume copies; restores: per_copy times as many (they are cheap)
    fraction = 0.01
    blocks = cap // c.BLOCK
    changed = max(1, round(blocks * fraction))
    rep = c.Report("bench_restore", "restore of a 1%-changed BV vs an engine-level full-volume copy", args)
    rep.line("reference definition: full-volume copy = engine.read of the whole BV and engine.write of it "
             f"to another LD of the same size, in {c.fmt_size(COPY_CHUNK)} pieces, through the same engine")
    data = c.Data(args.seed)
    rng = random.Random(args.seed)
    with c.Lab("restore") as lab:
        e = lab.engine
        (sv,) = lab.bv("BV0", cap, svs=1)
        lab.ld("COPY0", cap)
        t0 = c.now()
        c.write_range(e, "BV0", 0, cap, data, chunk=c.MiB)
        rep.figure("setup: BV fully written", f"{c.fmt_size(cap)} = {blocks} blocks "
                   f"({c.fmt_s(c.now() - t0)})")
        rep.figure("blocks changed before each restore",
                   f"{changed} of {blocks} ({100 * changed / blocks:.2f}%), random, one 64 KiB write each")

        def restore_run(check: bool = False) -> float:
            e.create("BV0", sv)
            lbs = rng.sample(range(blocks), changed)
            before = {lb: e.read("BV0", lb * c.BLOCK, c.BLOCK) for lb in lbs} if check else {}
            for lb in lbs:
                e.write("BV0", lb * c.BLOCK, data.next(c.BLOCK)[::-1])
            t = c.now()
            e.restore("BV0", sv)
            e.wait("BV0", sv, cond="active")
            dt = c.now() - t
            if check:  # the restore really brought the snapshot's data back
                assert all(e.read("BV0", lb * c.BLOCK, c.BLOCK) == b for lb, b in before.items())
            e.delete("BV0", sv)
            return dt

        def restore_twice() -> tuple[float, float, int, int]:
            """(first time, second time, blocks the first copied, blocks the second copied)."""
            e.create("BV0", sv)
            for lb in rng.sample(range(blocks), changed):
                e.write("BV0", lb * c.BLOCK, data.next(c.BLOCK)[::-1])
            out = []
            for _ in range(2):
                t = c.now()
                total = e.restore("BV0", sv)["restore_total"]
                e.wait("BV0", sv, cond="active")
                out += [c.now() - t, total]
            e.delete("BV0", sv)
            return out[0], out[2], out[1], out[3]

        def full_copy() -> float:
            t = c.now()
            for off in range(0, cap, COPY_CHUNK):
                n = min(COPY_CHUNK, cap - off)
                e.write("COPY0", off, e.read("BV0", off, n))
            return c.now() - t

        restore_run(check=True), full_copy()  # warm-up (and a correctness check)
        times: dict[str, list[float]] = {"restore": [], "copy": []}
        for r in range(reps):
            for side in (("restore", "copy") if r % 2 == 0 else ("copy", "restore")):
                if side == "copy":
                    times["copy"].append(full_copy())
                else:
                    times["restore"] += [restore_run() for _ in range(per_copy)]
        rep.figure(f"restore ({changed} blocks differ) + wait", c.spread(times["restore"]))
        rep.figure(f"full-volume copy ({c.fmt_size(cap)})", c.spread(times["copy"]))
        mc = c.median(times["copy"])
        rep.figure("full-volume copy throughput", f"{cap / c.MiB / mc:.1f} MiB/s (median)")
        ratio = c.median(times["restore"]) / mc
        rep.ratio("restore_1pct", ratio, "<=", TARGET, "median restore time / median full-volume copy time")

        twice = [restore_twice() for _ in range(reps * per_copy)]
        rep.figure("first restore of a generation + wait", c.spread([x[0] for x in twice]))
        rep.figure("second restore of it at once + wait", c.spread([x[1] for x in twice]))
        rep.figure("blocks copied: first / second (each run)",
                   ", ".join(f"{x[2]}/{x[3]}" for x in twice))
        rep.ratio("restore_second_vs_first", c.median([x[1] for x in twice]) / c.median([x[0] for x in twice]),
                  "<=", TARGET_SECOND, "median second restore time / median first, same generation")
        rep.ratio("restore_second_blocks", sum(x[3] for x in twice) / max(1, sum(x[2] for x in twice)),
                  "<=", TARGET_SECOND, "blocks the second restore copied / the first", deterministic=True)

    if args.profile:
        # a fresh array whose restore worker thread is profiled too (cProfile follows one thread)
        tp = c.ThreadProfiles()
        tp.install()
        try:
            lab = c.Lab("restore-prof")
        finally:
            tp.uninstall()
        with lab:
            e = lab.engine
            (sv,) = lab.bv("BV0", cap, svs=1)
            c.write_range(e, "BV0", 0, cap, data, chunk=c.MiB)
            prof = c.Profiler()
            for _ in range(3):
                e.create("BV0", sv)
                for lb in rng.sample(range(blocks), changed):
                    e.write("BV0", lb * c.BLOCK, data.next(c.BLOCK)[::-1])
                with prof.on():
                    e.restore("BV0", sv)
                    e.wait("BV0", sv, cond="active")
                e.delete("BV0", sv)
            prof.report("restore + wait, calling thread")
            tp.report("restore worker (setup time included as idle wait)")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
