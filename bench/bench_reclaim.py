#!/usr/bin/env python3
"""Space after deleting every generation vs before any snapshot (issue 12).

A 256 MiB BV fully written (1 MiB writes); the space its data file occupies (``st_blocks``, what
the file system holds for it) is the reference. Then 8 generations, each followed by a rewrite of a
different quarter of the BV (so the SRA holds 512 MiB and the file grows), and some overwrites with
no snapshot in between; then every generation is deleted and the file's space measured again. The
same cycle is run 3 times on the same BV (each must end where the first did). Ratio = worst space
after the deletes / space before any snapshot; target <= 1.1 (deterministic: a block count).
The space is given back in the background after each delete (array/reclaim.py): measured once
``engine.reclaim_settle`` says it is done; the deletes' time and the reclaim's further time are
printed. The file's apparent size (its high-water mark) is printed as context: it does not shrink.
"""

from __future__ import annotations

import os
import sys

import common as c

TARGET = 1.1


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    cap, gens, cycles = (4 * c.MiB, 4, 2) if args.quick else (256 * c.MiB, 8, 3)
    cycles = args.reps or cycles
    rep = c.Report("bench_reclaim", "data file space after deleting every generation vs before any", args)
    data = c.Data(args.seed)
    with c.Lab("reclaim") as lab:
        e = lab.engine
        svs = lab.bv("BV0", cap, svs=gens)
        c.write_range(e, "BV0", 0, cap, data, chunk=c.MiB)
        path = e.families[e.ld("BV0").number].path

        def space() -> tuple[int, int]:
            st = os.stat(path)
            return st.st_blocks * 512, st.st_size

        before, _ = space()
        rep.figure("space before any snapshot", f"{c.fmt_size(before)} ({cap // c.BLOCK} blocks written)")
        quarter = cap // 4
        worst = 0.0
        for cycle in range(cycles):
            for i, sv in enumerate(svs):
                e.create("BV0", sv)
                off = (i % 4) * quarter
                c.write_range(e, "BV0", off, quarter, data, chunk=c.MiB)
                c.write_range(e, "BV0", off, c.MiB, data, chunk=c.MiB)  # rewritten again: no new snapshot
            peak, _ = space()
            t = c.now()
            for sv in svs:
                e.delete("BV0", sv)
            dt = c.now() - t
            assert e.reclaim_settle(timeout=300), "the reclaimer did not finish"
            dr = c.now() - t - dt
            after, size = space()
            worst = max(worst, after / before)
            rep.figure(f"cycle {cycle + 1}: with {gens} generations", c.fmt_size(peak))
            rep.figure(f"cycle {cycle + 1}: after deleting them all", f"{c.fmt_size(after)}; deletes "
                       f"{c.fmt_s(dt)}, background reclaim {c.fmt_s(dr)} more (file size {c.fmt_size(size)})")
        rep.ratio("reclaim_after_delete_all", worst, "<=", TARGET,
                  "worst data file space after deleting every generation / before any snapshot", deterministic=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
