#!/usr/bin/env python3
"""Array daemon at scale: RSS flat in data written, and restart time, with 64 BVs x 1,024 generations.

The real daemon (``snaplab-array``, mTLS, glibc malloc defaults as deployed) gets over gRPC: 64 BVs of
``--gib``/64 GiB rounded up to a GiB, each with a set of 1,022 SVs (65,408 generations: LD numbers are
16 bits, 0000h-FFFFh, so 64 BVs, their 65,536 SVs and the SDV do not fit; 1,022 is the most that does). Then ``--gib``
GiB (default 64) are written over gRPC in 1 MiB writes by ``--clients`` client processes (each its own
BVs), in four quarters. Per BV the writes go to successive 1 MiB places, except every 8th, which
overwrites the place written 4 writes before (so the SRA holds copy-on-write data, 1/8 of what is
written); a cyclic snapshot (``create`` of the next SV) follows each write, or several in a row when a
BV gets fewer than 1,024 writes, so each quarter makes a quarter of the 65,536 generations.

VmRSS and VmHWM (/proc/<pid>/status) are sampled after each quarter (after a Query per BV). Flat: RSS
with all written / RSS at a quarter written <= 1.1 (10 % margin) (``scale_rss_flat``). The limit:
max(VmRSS at the end, VmRSS after restart) / 200 MB <= 1 (``scale_rss``), and the peak VmHWM of the
first life / 200 MB (``scale_peak_rss``); all byte counts (deterministic).

Then the daemon is stopped and started on that state ``--reps`` times (default 5): process start to
serving (its ready file; and to the first successful Query of the last BV over mTLS from this process);
median and spread vs the 2 s target (``scale_restart``), and VmRSS after each restart + a Query per BV.
Reference printed in the same run: the same start of a daemon on an empty state.

The state lives in a temporary folder (``--dir``, default the system's) deleted at the end, on a
failure and on Ctrl-C too (``--keep DIR``: moved into DIR after a complete run). --quick: 4 BVs of
1 GiB, 16 SVs each, 32 MiB, one writer, 1 restart.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common as c
import grpc_common as g

LIMIT = 200 * 10**6  # bytes (the 200 MB)
FLAT = 1.1  # RSS at the end / RSS at a quarter
RESTART_TARGET = 2.0  # seconds


def _extra(p) -> None:
    p.add_argument("--gib", type=float, default=64.0, help="GiB written in total (default 64)")
    p.add_argument("--bvs", type=int, default=64, help="BVs (default 64)")
    p.add_argument("--gens", type=int, default=1022, help="SVs per BV (1,022: the most 64 BVs can have)")
    p.add_argument("--clients", type=int, default=4, help="writer processes")
    p.add_argument("--dir", default=None, type=existing_folder, help="where the temporary state folder goes")
    p.add_argument("--keep", default=None, type=keep_folder, metavar="DIR",
                   help="after a complete run, move the state and certificates into DIR (state/, certs/) "
                        "instead of deleting them: restarts can be timed again without rewriting the data")


def _place(k: int) -> int:
    """The 1 MiB place of a BV's k-th write: successive places, every 8th write overwrites k-4's."""
    if k % 8 == 7:
        return _place(k - 4)
    return k - k // 8


def _writer(target: str, certs: str, bvs: list[str], svs: dict[str, list[str]], k0: int, k1: int,
            snaps: list[int], seed: int) -> tuple[int, float]:
    """Client process: writes k0..k1-1 of each of its BVs, with the snapshots after each."""
    from snaplab.common.rpc import ClientTLS
    from snaplab.san.array_client import ArrayClient

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
    cl = ArrayClient(target, ClientTLS.from_folder(certs, "admin"))
    data = c.Data(seed, variants=8, size=c.MiB)
    total, t0 = 0, time.perf_counter()
    try:
        for k in range(k0, k1):
            for bv in bvs:
                total += cl.write(bv, _place(k) * c.MiB, data.next(c.MiB))
                for j in range(snaps[k], snaps[k + 1]):
                    cl.create(bv, svs[bv][j % len(svs[bv])])
    finally:
        cl.close()
    return total, time.perf_counter() - t0


def _warm(_: int) -> None:
    import snaplab.san.array_client  # noqa: F401 - imported before the timed writes


def mb(n: int) -> str:
    return f"{n / 1e6:6.1f} MB"


def existing_folder(text: str) -> str:
    """``--dir``: a folder that exists (argparse prints a one-line usage error otherwise)."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def keep_folder(text: str) -> str:
    """``--keep``: an existing folder without a state/ or certs/ (checked before the long run)."""
    existing_folder(text)
    for part in ("state", "certs"):
        if os.path.exists(os.path.join(text, part)):
            raise argparse.ArgumentTypeError(f"{text} already has {part}/")
    return text


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], _extra, argv=argv)
    if args.quick:
        args.gib, args.bvs, args.gens, args.clients = 1 / 32, 4, 16, 1
        args.reps = args.reps or 1
    reps = args.reps or 5
    n_bv, n_gen = args.bvs, args.gens
    per_bv = max(4, int(args.gib * 1024) // n_bv)  # 1 MiB writes per BV
    per_bv -= per_bv % 4
    bv_cap = -(-per_bv * c.MiB // c.GiB) * c.GiB
    written = per_bv * n_bv * c.MiB
    # snapshots after write k: snaps[k] .. snaps[k+1]-1 (n_gen spread evenly over the writes)
    snaps = [k * n_gen // per_bv for k in range(per_bv + 1)]
    rep = c.Report("bench_scale", f"array RSS and restart with {n_bv} BVs x {n_gen} generations, "
                   f"{c.fmt_size(written)} written", args)
    rep.line(f"{n_bv} BVs of {c.fmt_size(bv_cap)}, {n_gen} SVs each ({n_bv * n_gen} generations); "
             f"{per_bv} x 1 MiB writes per BV (every 8th overwrites), {args.clients} writer processes")
    tmp = Path(tempfile.mkdtemp(prefix="snaplab-bench-scale-", dir=args.dir))
    old_int = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    array = None
    try:
        certs = g.BenchCerts(tmp / "certs")
        # -- reference: start of a daemon on an empty state ------------------------------------------
        empty_starts = []
        empty = g.start_array(tmp / "empty", certs)
        empty.stop()
        for _ in range(reps):
            t0 = c.now()
            empty.start()
            cl = empty.client("admin")
            cl.describe()
            empty_starts.append(c.now() - t0)
            cl.close()
            empty.stop()
        shutil.rmtree(tmp / "empty", ignore_errors=True)

        array = g.start_array(tmp / "state", certs)
        a = array.client("admin")
        t0 = c.now()
        a.set_licence(c.DSV, 1 << 50)
        a.bind_pool(0, c.BV_POOL, "basic", 1 << 45)
        a.bind_pool(1, c.SNAP_POOL, "dynamic", 1 << 45)
        a.build_sra(c.SNAP_POOL, max(16 * c.GiB, written), sdv_name="SDV_SCALE")
        bvs = [f"BV{i:02d}" for i in range(n_bv)]
        svs: dict[str, list[str]] = {}
        for bv in bvs:
            a.bind_ld(bv, bv_cap, c.BV_POOL, "LX")
            svs[bv] = [x.name for x in a.add_generations(bv, c.SNAP_POOL, n_gen)]
        rep.figure("provisioning over gRPC", f"{n_bv} BVs, {n_bv * n_gen} SVs in {c.fmt_s(c.now() - t0)}")
        samples: list[tuple[str, dict[str, int]]] = [("provisioned, nothing written", g.rss_of(array.pid))]

        def queries(client) -> None:
            for bv in bvs:
                client.query(bv)

        groups = [bvs[i :: args.clients] for i in range(args.clients)]
        total, t_write = 0, 0.0
        # (an executor, not a Pool: a writer that dies raises BrokenProcessPool instead of hanging)
        with ProcessPoolExecutor(args.clients, mp_context=mp.get_context("spawn")) as pool:
            list(pool.map(_warm, range(args.clients)))  # the processes start (and import) before the clock
            for q in range(4):
                k0, k1 = q * per_bv // 4, (q + 1) * per_bv // 4
                t0 = c.now()
                res = [f.result() for f in [
                    pool.submit(_writer, array.target, str(certs.folder), grp, {b: svs[b] for b in grp}, k0, k1,
                                snaps, args.seed + i) for i, grp in enumerate(groups) if grp]]
                dt = c.now() - t0
                t_write += dt
                n = sum(r[0] for r in res)
                total += n
                queries(a)
                time.sleep(0.5)
                samples.append((f"{q + 1}/4 written ({c.fmt_size(total)})", g.rss_of(array.pid)))
                rep.figure(f"quarter {q + 1}: writes + snapshots", f"{c.fmt_size(n)} in {c.fmt_s(dt)} "
                           f"({n / c.MiB / dt:.0f} MiB/s)")
        assert total == written, (total, written)
        rep.figure("all writes", f"{c.fmt_size(total)} in {c.fmt_s(t_write)}, "
                   f"{n_bv * n_gen} snapshots")
        info = a.query(bvs[0])
        rep.figure("generations of BV00", str(len([x for x in info.generations if x.state])) if hasattr(
            info, "generations") else "?")
        sra = next(p for p in a.describe().pools if p.name == c.SNAP_POOL)
        rep.figure("SRA used (copy-on-write data held)", c.fmt_size(sra.sra_used))
        du = sum(f.stat().st_blocks * 512 for f in (tmp / "state").rglob("*") if f.is_file())
        rep.figure("state on disk", c.fmt_size(du))
        a.close()
        for label, s in samples:
            rep.figure(f"{label}: VmRSS / VmHWM", f"{mb(s['VmRSS'])} / {mb(s['VmHWM'])}")
        live = samples[-1][1]
        array.stop()

        # -- restarts ---------------------------------------------------------------------------------
        to_ready, to_rpc, rss_after = [], [], []
        for _ in range(reps):
            t0 = c.now()
            array.start()
            t1 = c.now()
            cl = array.client("admin")
            cl.query(bvs[-1])
            t2 = c.now()
            to_ready.append(t1 - t0)
            to_rpc.append(t2 - t0)
            queries(cl)
            cl.close()
            time.sleep(0.5)
            rss_after.append(g.rss_of(array.pid))
            array.stop()
        array = None
        rep.figure("restart: start to ready file", f"median {c.fmt_s(c.median(to_ready))} {c.spread(to_ready)}")
        rep.figure("restart: start to first Query served", f"median {c.fmt_s(c.median(to_rpc))} {c.spread(to_rpc)}")
        rep.figure("reference: empty state, start to first RPC",
                   f"median {c.fmt_s(c.median(empty_starts))} {c.spread(empty_starts)}")
        worst_after = max(s["VmRSS"] for s in rss_after)
        rep.figure("after restart + a Query per BV: VmRSS (max)", f"{mb(worst_after)}; VmHWM max "
                   f"{mb(max(s['VmHWM'] for s in rss_after))}")

        quarter = samples[1][1]["VmRSS"]
        rep.ratio("scale_rss_flat", live["VmRSS"] / quarter, "<=", FLAT,
                  "VmRSS with all written / VmRSS at 1/4 written", deterministic=not args.quick)
        rep.ratio("scale_rss", max(live["VmRSS"], worst_after) / LIMIT, "<=", 1.0,
                  "max(VmRSS at the end, VmRSS after restart) / 200 MB", deterministic=not args.quick)
        rep.ratio("scale_peak_rss", live["VmHWM"] / LIMIT, "<=", 1.0,
                  "VmHWM of the writing life / 200 MB", deterministic=not args.quick)
        rep.ratio("scale_restart", c.median(to_rpc) / RESTART_TARGET, "<=", 1.0,
                  "median start to first Query served / 2 s")
        if args.keep:
            for part in ("state", "certs"):
                shutil.move(tmp / part, Path(args.keep) / part)
            rep.line(f"state kept in {args.keep} (state/, certs/)")
    except KeyboardInterrupt:
        print("interrupted: removing the state", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, old_int)
        if array is not None:
            try:
                array.stop()
            except Exception as exc:  # noqa: BLE001 - the folder goes whatever happened
                print(f"stopping the daemon: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
