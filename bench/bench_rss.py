#!/usr/bin/env python3
"""Array daemon RSS with 1 TiB of LDs provisioned and 1 GiB written vs the 150 MB limit.

The real daemon (``snaplab-array``, mTLS, glibc malloc defaults: no MALLOC_* tuning, as deployed) is
configured over gRPC as a lab array would be: 8 BVs of 64 GiB, each with a set of 8 SVs and an LV, plus
512 plain LDs of 1 GiB: 1 TiB of BV/LD capacity (the SVs and LVs add 4.5 TiB of thin virtual capacity),
593 LDs with the SDV. Then 1 GiB is written over gRPC from this process in 1 MiB chunks, spread out:
64 MiB per BV (1 MiB every 1.6 GiB, in four 16 MiB rounds with a snapshot before each of the last three, half of
each round overwriting the previous one, so the SRA holds copy-on-write data) and 1 MiB on each plain
LD; then every BV's written places and its oldest SV's first MiB are read back, with a Query
per BV and a Describe (monitoring and reads are part of a daemon's life too).

RSS (VmRSS from /proc/<pid>/status) is taken after the writes and reads, and again after a restart of
the daemon on that state (load + the same reads). Reference printed in the same run: the RSS of a
freshly started daemon with an empty array. Ratio = the larger of the two RSS figures / 150 MB
(150 * 10^6 bytes). Target: <= 1.0. Second ratio: the peak (VmHWM) of either life, through the writes,
/ 150 MB, target <= 1.0 too. Both are byte counts (deterministic targets: a miss exits 1).  --quick: 2 BVs of 1 GiB with 3 SVs, 16 LDs of 256 MiB, 32 MiB.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import common as c
import grpc_common as g

LIMIT = 150 * 10**6  # bytes
TARGET = 1.0


def settle_rss(pid: int, wait: float = 0.5) -> dict[str, int]:
    time.sleep(wait)  # let threads finish what they were doing
    return g.rss_of(pid)


def mb(n: int) -> str:
    return f"{n / 1e6:6.1f} MB ({n / c.MiB:6.1f} MiB)"


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    if args.quick:
        n_bv, bv_cap, n_sv, n_ld, ld_cap, per_bv, per_ld = 2, c.GiB, 3, 16, 256 * c.MiB, 8 * c.MiB, c.MiB
    else:
        n_bv, bv_cap, n_sv, n_ld, ld_cap, per_bv, per_ld = 8, 64 * c.GiB, 8, 512, c.GiB, 64 * c.MiB, c.MiB
    provisioned = n_bv * bv_cap + n_ld * ld_cap
    written = n_bv * per_bv + n_ld * per_ld
    rep = c.Report("bench_rss", "array daemon RSS with 1 TiB provisioned and 1 GiB written vs 150 MB", args)
    rep.line(f"{n_bv} BVs of {c.fmt_size(bv_cap)} with {n_sv} SVs and an LV each, {n_ld} LDs of "
             f"{c.fmt_size(ld_cap)}: {c.fmt_size(provisioned)} provisioned; {c.fmt_size(written)} to write")
    tmp = Path(tempfile.mkdtemp(prefix="snaplab-bench-rss-"))
    certs = g.BenchCerts(tmp / "certs")
    data = c.Data(args.seed, variants=8, size=c.MiB)
    try:
        # -- reference: an empty daemon --------------------------------------------------------------
        with g.start_array(tmp / "empty", certs) as empty:
            cl = empty.client("admin")
            cl.describe()
            cl.close()
            fresh = settle_rss(empty.pid)
        rep.figure("fresh daemon, empty array: VmRSS", mb(fresh["VmRSS"]))

        # -- the subject -------------------------------------------------------------------------------
        array = g.start_array(tmp / "state", certs)
        try:
            a = array.client("admin")
            t0 = c.now()
            a.set_licence(c.DSV, 1 << 50)
            a.bind_pool(0, c.BV_POOL, "basic", 1 << 45)
            a.bind_pool(1, c.SNAP_POOL, "dynamic", 1 << 45)
            a.build_sra(c.SNAP_POOL, 64 * c.GiB, sdv_name="SDV_BENCH")
            bvs = [f"BV{i:02d}" for i in range(n_bv)]
            lds = [f"LD{i:04d}" for i in range(n_ld)]
            svs: dict[str, list[str]] = {}
            for bv in bvs:
                a.bind_ld(bv, bv_cap, c.BV_POOL, "LX")
                svs[bv] = [x.name for x in a.add_generations(bv, c.SNAP_POOL, n_sv)]
                a.bind_lv(bv, bv.replace("BV", "LV"))
            for ld in lds:
                a.bind_ld(ld, ld_cap, c.BV_POOL, "LX")
            n_lds = len(a.describe().lds)
            rep.figure("provisioning over gRPC", f"{n_lds} LDs in {c.fmt_s(c.now() - t0)}")
            after_config = g.rss_of(array.pid)

            # 1 GiB written: per BV four rounds of 16 MiB (1 MiB chunks every 1 GiB), each round but the
            # first after a snapshot and overlapping half of the previous round
            t0 = c.now()
            total = 0
            rounds = 4
            per_round = per_bv // rounds
            n_chunks = per_round // c.MiB
            slots = n_chunks + (rounds - 1) * n_chunks // 2  # distinct 1 MiB places a BV gets written at
            stride = bv_cap // slots // c.MiB * c.MiB
            for bv in bvs:
                for r in range(rounds):
                    if r:
                        a.create(bv, svs[bv][r - 1])
                    for k in range(n_chunks):
                        off = (k + r * n_chunks // 2) * stride
                        total += a.write(bv, off, data.next(c.MiB))
            for ld in lds:
                total += a.write(ld, (int(ld[2:]) * 7919 % (ld_cap // per_ld)) * per_ld, data.next(per_ld))
            assert total == written, (total, written)
            rep.figure("writes over gRPC", f"{c.fmt_size(total)} in {c.fmt_s(c.now() - t0)}")
            sra = next(p for p in a.describe().pools if p.name == c.SNAP_POOL)
            rep.figure("SRA used (copy-on-write data held)", c.fmt_size(sra.sra_used))

            def reads(client) -> None:
                for bv in bvs:
                    for k in range(slots):
                        client.read(bv, k * stride, c.MiB)
                    client.read(svs[bv][0], 0, c.MiB)
                    client.query(bv)
                client.describe()

            reads(a)
            live = settle_rss(array.pid)
            a.close()
            array.stop()
            array.start()
            a = array.client("admin")
            reads(a)
            restarted = settle_rss(array.pid)
            a.close()
        finally:
            array.stop()

        rep.figure("after provisioning: VmRSS", mb(after_config["VmRSS"]))
        rep.figure("after writes and reads: VmRSS", mb(live["VmRSS"]))
        rep.figure("  peak during the run (VmHWM)", mb(live["VmHWM"]))
        rep.figure("  anonymous / file-backed", f"{live['RssAnon'] / 1e6:.1f} MB / {live['RssFile'] / 1e6:.1f} MB; "
                   f"{live['Threads']} threads")
        rep.figure("after a restart on that state + reads: VmRSS", mb(restarted["VmRSS"]))
        rep.figure("limit", mb(LIMIT))
        worst = max(live["VmRSS"], restarted["VmRSS"])
        rep.figure("RSS / fresh empty daemon's RSS", f"{worst / fresh['VmRSS']:.2f}x")
        # RSS is bytes, not time: a miss is the same on any machine (deterministic: fails the run).
        rep.ratio("daemon_rss", worst / LIMIT, "<=", TARGET,
                  "max(VmRSS after writes+reads, VmRSS after restart+reads) / 150 MB", deterministic=True)
        # The limit holds at every moment, not only at rest: the peak (VmHWM, since the daemon started)
        # covers the writes, the copy-on-write and the reads of the first life, the load of the second.
        peak = max(live["VmHWM"], restarted["VmHWM"])
        rep.ratio("daemon_peak_rss", peak / LIMIT, "<=", TARGET,
                  "max(VmHWM during writes+reads, VmHWM during restart+reads) / 150 MB", deterministic=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
