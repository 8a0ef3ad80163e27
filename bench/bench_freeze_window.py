#!/usr/bin/env python3
"""Freeze window of an application-consistent snapshot (iSMsc_create -quiesce) with a 1 MiB dirty cache.

A host (the agent's Host and file system, in this process) with a 64 MiB BV formatted and mounted at
G: over gRPC to an in-process array (bench/fs_common.py), one program writing in G: (a process with a
file open there, so the hold stops a real writer). A repetition rewrites a 1 MiB file in G: and runs
the quiesce flow of agent/commands/quiesce.py (no hooks): hold the writers, flush, create the
snapshot (the array's create, in-process: the manager's routing hop is left out), release; the
freeze window is hold to release as the flow reports it (from the first writer stopped). Reference,
interleaved repetition by repetition: the same 1 MiB rewritten, flushed and snapshotted without a
freeze (what the snapshot costs anyway); the flush alone is shown as context.
Ratios: p50 window / p50 reference <= 1.5, p99 window / p99 reference <= 2 (timings; the tails of
both sides come from the same interleaved run, so a loaded machine stretches both).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import common as c
import control_common as cc
import fs_common as f

from snaplab.agent.commands.base import Ctx
from snaplab.agent.commands.quiesce import quiesce_and_create

WRITER = "import time\nwith open('writer.log', 'a', buffering=1) as f:\n    while True:\n        f.write('x' * 64 + '\\n'); time.sleep(0.005)\n"


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    reps = args.reps or (3 if args.quick else 60)
    rep = c.Report("bench_freeze_window", "freeze window of iSMsc_create -quiesce, 1 MiB dirty", args)
    with f.FsRig(64 * c.MiB, "freeze") as rig:
        host = rig.host
        assert host is not None
        g = rig.g
        writer = subprocess.Popen([sys.executable, "-c", WRITER], cwd=g)
        try:
            entry = SimpleNamespace(array=f.ARRAY, ld_number=next(  # as the volume list has it ("0000h")
                ld["number"] for ld in rig.engine.describe()["lds"] if ld["name"] == "bv001"))
            rig.run("iSMrc_flush", "-drv", "G:")
            windows, flushes, refs, totals = [], [], [], []
            for i in range(reps):
                (g / "dirty.bin").write_bytes(os.urandom(c.MiB))
                with host.command():
                    volume = next(v for v in host.disk(entry.array, entry.ld_number).volumes  # type: ignore[union-attr]
                                  if v.mount_points)
                    t = c.now()
                    host.fs.flush(volume)
                    flushes.append(c.now() - t)
                    rig.engine.create_labelled("bv001", rig.svs[i % 2])
                    refs.append(c.now() - t)
                (g / "dirty.bin").write_bytes(os.urandom(c.MiB))
                with host.command():
                    ctx = Ctx(name="iSMsc_create", args=[], host=host)
                    t = c.now()
                    _, q = quiesce_and_create(ctx, "bv001", entry, 10.0,  # type: ignore[arg-type]
                                              lambda label: rig.engine.create_labelled("bv001", rig.svs[i % 2],
                                                                                        consistency=label))
                    totals.append(c.now() - t)
                assert q.label == "application", q
                windows.append(q.frozen_ms / 1000)
        finally:
            os.kill(writer.pid, signal.SIGCONT)
            writer.kill()
            writer.wait()
    p50, p99 = cc.percentile(windows, 50), cc.percentile(windows, 99)
    ref, ref99 = c.median(refs), cc.percentile(refs, 99)
    rep.figure("freeze window (hold to release)", f"p50 {c.fmt_s(p50)}  p99 {c.fmt_s(p99)}  {c.spread(windows)}")
    rep.figure("whole quiesce flow (create included)", c.spread(totals))
    rep.figure("reference: flush of 1 MiB + create, no freeze", c.spread(refs))
    rep.figure("context: the flush alone", c.spread(flushes))
    rep.ratio("freeze_window_p50", p50 / ref, "<=", 1.5, "p50 freeze window / p50 flush + create of the same 1 MiB")
    rep.ratio("freeze_window_p99", p99 / ref99, "<=", 2.0, "p99 freeze window / p99 flush + create of the same 1 MiB")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
