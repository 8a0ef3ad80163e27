#!/usr/bin/env python3
"""Failover time of a cluster group (kill of the owner to the new owner serving writes) vs the heartbeat timeout.

A lab is started with ``snaplab.deploy.lab.Lab.up`` in a temporary folder: one array, the manager
(the cluster's quorum witness) and two cluster nodes, ``node01`` and ``node02``, sharing ``bv001``
(group ``GRP``, mounted as G: by its owner) with a heartbeat timeout T (3 s; --quick 1 s) and the
default heartbeat interval T/5. Each repetition: the owner writes a file on G: and flushes it, its
agent is SIGKILLed (``snaplab host kill``: a crash), and the time is measured until the other node
serves writes: its G: holds the flushed file and a write of its own to bv001 is accepted by the array
(the reservation moved to it). The killed node is then started again (it rejoins as standby) and the
next repetition kills the new owner, so the group goes back and forth. Medians of 5 (--quick 1).

The reference is the configured heartbeat timeout itself: no failover can be quicker than noticing the
owner is gone, so the ratio says what detection, the witness's decision, the reservation move and the
takeover (rescan, signature import, mount, volume list) add. Target: median / T <= 1.5.
The lab is torn down (``Lab.down``) and removed at the end, also on errors.
"""

from __future__ import annotations

import os
import sys
import time

import common as c
import control_common as cc

TARGET = 1.5
NODES = ("node01", "node02")

LAB = """\
[lab]
description = "bench_failover: a two-node cluster on one BV"

[[arrays]]
name = "Bench_Array"
ports = ["00h/00h P_BIZ"]
pools = [{{ number = 0, kind = "basic", capacity = "4GiB" }}, {{ number = 1, kind = "dynamic", capacity = "4GiB" }}]
sra = [{{ pool = 1, capacity = "64MiB" }}]
lds = [{{ number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 }}]
generations = [{{ bv = "bv001", pool = 1, count = 1 }}]
licences = ["DynamicSnapVolume", "AccessControl"]

[[access]]
ld = "bv001"
port = "P_BIZ"

[[hosts]]
name = "node01"
role = "business"
wwns = ["10:00:00:00:c9:00:00:01"]
ports = ["P_BIZ"]

[[hosts]]
name = "node02"
role = "standby"
wwns = ["10:00:00:00:c9:00:00:02"]
ports = ["P_BIZ"]

[[clusters]]
name = "BENCH"
nodes = ["node01", "node02"]
heartbeat_timeout = {timeout}

[[clusters.groups]]
name = "GRP"
owner = "node01"
disks = [{{ ld = "bv001", mount = "G:" }}]

[[setup]]
host = "node01"
commands = ["DISKPART"]
stdin = \"\"\"
select disk 1
create partition primary
format fs=ntfs quick label=bv001
assign letter=G
\"\"\"

[[setup]]
host = "node01"
commands = ["iSMvollist -cr", "iSMrc_flush -drv G:"]

[[setup]]
host = "node02"
commands = ["iSMvollist -cr"]
"""


def serving(lab: cc.LabRun, node: str, name: str, payload: bytes) -> bool:
    """``node`` has G: with the flushed file, and the array accepts its own write to bv001."""
    from snaplab.common.rpc import ClientTLS, SnapLabClientError
    from snaplab.san.array_client import ArrayClient

    f = lab.lab_dir / "hosts" / node / "mnt" / "G" / name
    try:
        if f.read_bytes() != payload:
            return False
    except OSError:
        return False
    target = lab.runtime["arrays"]["Bench_Array"]["target"]
    with ArrayClient(target, ClientTLS.from_folder(lab.lab_dir / "pki", node), timeout=5) as a:
        block = a.read("bv001", 63 * c.MiB, 512)
        try:
            a.write("bv001", 63 * c.MiB, block)
        except SnapLabClientError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    reps = args.reps or (1 if args.quick else 5)
    timeout = 1.0 if args.quick else 3.0
    rep = c.Report("bench_failover", "failover time (kill to the new owner serving writes) vs the heartbeat timeout", args)
    rep.line(f"{reps} failovers, alternating direction; heartbeat timeout {timeout:g} s, interval {timeout / 5:g} s")

    from snaplab.agent.cli import exec_command
    from snaplab.deploy import lifecycle

    times: list[float] = []
    with cc.LabRun(LAB.format(timeout=timeout), "fo") as lab:
        rep.line(f"lab up in {lab.up_seconds:.1f} s ({lab.lab_dir})")
        owner, standby = NODES
        for i in range(reps):
            name, payload = f"r{i}.bin", os.urandom(64 * c.KiB)
            (lab.lab_dir / "hosts" / owner / "mnt" / "G" / name).write_bytes(payload)
            out, err, code = exec_command(lab.lab_dir, owner, ["iSMrc_flush", "-drv", "G:"], timeout=60)
            if code != 0:
                raise SystemExit(f"flush on {owner} failed: {err or out}")
            t0 = c.now()
            lifecycle.kill_host(lab.lab, owner)
            while not serving(lab, standby, name, payload):
                if c.now() - t0 > 10 * timeout + 20:
                    raise SystemExit(f"{standby} did not take the group over")
                time.sleep(0.02)
            took = c.now() - t0
            times.append(took)
            rep.figure(f"failover {i + 1}: {owner} killed -> {standby} serving", c.fmt_s(took))
            lifecycle.start_host(lab.lab, owner)  # rejoins as standby
            owner, standby = standby, owner
    med = c.median(times)
    rep.figure("median failover time", f"{c.fmt_s(med)} (spread {c.spread(times)})")
    rep.figure("heartbeat timeout (reference)", c.fmt_s(timeout))
    rep.ratio("failover_vs_heartbeat_timeout", med / timeout, "<=", TARGET,
              "median kill-to-serving time / configured heartbeat timeout")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
