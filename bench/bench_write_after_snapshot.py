#!/usr/bin/env python3
"""Write throughput to a BV just after a snapshot vs with no snapshot.

Two arrays in this process, configured alike, each with one 8 GiB BV (one SV) whose first 256 MiB are
pre-written. A pass overwrites that region of both BVs in 1 MiB engine.write calls, in order, the two
BVs alternating write by write (so machine load hits both alike; who goes first alternates):
(a) BV with no snapshot: every block's head version is overwritten (redirect-on-write, the old
physical block is freed); (b) BV snapshotted right before the pass: every block is frozen, so the
first write to each keeps the old version for the snapshot (the copy-on-write path, charged to the
SRA); the snapshot is deleted (untimed) after the pass. Separate arrays, so each side pays its own
SQLite commits and WAL checkpoints. One untimed warm-up pass first. Per pass, MiB/s = region / summed
write time of that side. Ratio = median MiB/s (b) / median MiB/s (a). Target: >= 0.8.

The same is then measured on the partial-block path: a pass writes 4 KiB at 1 KiB into every 64 KiB
block of the region (not aligned, not a whole block): (a) merges into the head version, (b) must keep
the frozen block for the snapshot and merge the new bytes into a copy of it. Ratio
``write_after_snapshot_partial`` = median MiB/s (b) / median MiB/s (a), same target (timing targets,
reported; they fail the run only with --strict).
"""

from __future__ import annotations

import sys

import common as c

TARGET = 0.8
PARTIAL, PARTIAL_AT = 4 * c.KiB, c.KiB  # the partial-block writes: 4 KiB at 1 KiB into a block


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    if args.quick:
        cap, region, reps = 64 * c.MiB, 8 * c.MiB, 3
    else:
        cap, region, reps = 8 * c.GiB, 256 * c.MiB, 15
    reps = args.reps or reps
    chunk = c.MiB
    rep = c.Report("bench_write_after_snapshot", "BV write throughput right after a snapshot vs none", args)
    data = c.Data(args.seed)
    with c.Lab("write-nosnap") as la, c.Lab("write-snap") as lb:
        (_sva,) = la.bv("BV0", cap, svs=1)
        (svb,) = lb.bv("BV0", cap, svs=1)
        ea, eb = la.engine, lb.engine
        t0 = c.now()
        for e in (ea, eb):
            c.write_range(e, "BV0", 0, region, data, chunk=chunk)
        rep.figure("setup: 2 arrays, each BV / pre-written region",
                   f"{c.fmt_size(cap)} / {c.fmt_size(region)} ({c.fmt_s(c.now() - t0)})")
        whole = [(off, chunk) for off in range(0, region, chunk)]
        partial = [(off + PARTIAL_AT, PARTIAL) for off in range(0, region, c.BLOCK)]

        def one_pass(first: str, writes: list[tuple[int, int]],
                     lat: dict[str, list[float]] | None = None) -> dict[str, float]:
            """Do ``writes`` on both BVs, interleaved; (b) right after a create. Seconds per side."""
            eb.create("BV0", svb)
            spent = {"a": 0.0, "b": 0.0}
            order = (("a", ea), ("b", eb)) if first == "a" else (("b", eb), ("a", ea))
            try:
                for off, length in writes:
                    for side, e in order:
                        buf = data.next(length)
                        t = c.now()
                        e.write("BV0", off, buf)
                        dt = c.now() - t
                        spent[side] += dt
                        if lat is not None:
                            lat[side].append(dt)
            finally:
                eb.delete("BV0", svb)
            return spent

        def measure(writes: list[tuple[int, int]], what: str) -> float:
            """Passes of ``writes``, alternating who goes first; prints figures, returns the ratio b / a."""
            one_pass("a", writes)  # warm-up: data files and free lists reach their steady state
            size = sum(n for _o, n in writes)
            mbs: dict[str, list[float]] = {"a": [], "b": []}
            lat: dict[str, list[float]] = {"a": [], "b": []}
            for r in range(reps):
                spent = one_pass("a" if r % 2 == 0 else "b", writes, lat)
                for side in "ab":
                    mbs[side].append(size / c.MiB / spent[side])
            for k, label in (("a", "(a) no snapshot"), ("b", "(b) just after a create")):
                xs = sorted(mbs[k])
                rep.figure(f"{label}: MiB/s per pass",
                           f"min {xs[0]:.1f}  median {c.median(xs):.1f}  max {xs[-1]:.1f}  "
                           f"(n={len(xs)} passes of {c.fmt_size(size)})")
                rep.figure(f"{label}: {what} latency", c.spread(lat[k]))
            return c.median(mbs["b"]) / c.median(mbs["a"])

        rep.line("whole blocks: 1 MiB writes, aligned")
        ratio = measure(whole, "1 MiB write")
        rep.ratio("write_after_snapshot", ratio, ">=", TARGET, "median MiB/s after a snapshot / with none")
        rep.line(f"partial blocks: {c.fmt_size(PARTIAL)} at +{c.fmt_size(PARTIAL_AT)} in every 64 KiB block")
        ratio = measure(partial, f"{c.fmt_size(PARTIAL)} write")
        rep.ratio("write_after_snapshot_partial", ratio, ">=", TARGET,
                  "median MiB/s of partial-block writes after a snapshot / with none")

        if args.profile:
            prof = {"a": c.Profiler(), "b": c.Profiler()}
            eb.create("BV0", svb)
            for off, _n in whole:
                for side, e in (("a", ea), ("b", eb)):
                    buf = data.next(chunk)
                    with prof[side].on():
                        e.write("BV0", off, buf)
            eb.delete("BV0", svb)
            prof["a"].report("(a) 1 MiB writes, no snapshot")
            prof["b"].report("(b) 1 MiB writes right after a create")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
