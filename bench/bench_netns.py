#!/usr/bin/env python3
"""A lab on network namespaces (``snaplab lab up --network netns``) vs the loopback lab, same run.

The lab is bench_command's (one array, the manager, ``business01`` seeing ``bv001`` on port P0),
started by the ``snaplab`` console script as a process of its own, once as the loopback lab and once
with ``--network netns`` (every daemon in its namespace, the LAN and SAN bridges of deploy/netns.py),
alternated each repetition (order flipped). In each lab, the same probe process, run as host
business01 (its certificate) where that host is — inside its namespace (``ip netns exec``) on the
netns lab, on this machine's loopback otherwise — measures:

* routed control op latency: p50 of ``Manager.Route`` of a Query of bv001 through bv001 (what
  ``iSMsc_query -bv bv001 -bvflg ld`` sends; bench_routing's operation), 300 calls (--quick 30);
* block I/O throughput: MiB/s of 1 MiB ``Array.Read`` calls over bv001 (64 MiB; --quick 8 MiB),
  the host's SAN target (netns: its SAN port's address; loopback: the array's one target).

Targets: netns / loopback ops per second (1/p50) ≥ 0.8 (``netns_route``), MiB/s ≥ 0.8
(``netns_read``); lab up time netns / loopback ≤ 1.5 (``netns_up``). Medians of 3 repetitions
(--quick 1). Needs root (network namespaces); without, it says so and exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_command as bc
import common as c
import control_common as cc
from snaplab.deploy import netns

PROBE = r"""
import json, sys, time
from snaplab.common.rpc import ClientTLS, make_channel
from snaplab.san.array_client import ArrayClient
from snaplab.v1 import array_pb2, manager_pb2, manager_pb2_grpc
certs, host, manager, array, calls, mib = sys.argv[1:7]
tls = ClientTLS.from_folder(certs, host)
stub = manager_pb2_grpc.ManagerStub(make_channel(manager, tls))
req = manager_pb2.ControlRequest(via="bv001", query=array_pb2.QueryRequest(bv="bv001"))
for _ in range(10):
    stub.Route(req, timeout=30)
lat = []
for _ in range(int(calls)):
    t = time.perf_counter(); stub.Route(req, timeout=30); lat.append(time.perf_counter() - t)
lat.sort()
client = ArrayClient(array, tls)
client.read("bv001", 0, 1 << 20)
t = time.perf_counter()
for i in range(int(mib)):
    client.read("bv001", (i % 64) << 20, 1 << 20)
read_s = time.perf_counter() - t
print(json.dumps({"p50": lat[len(lat) // 2], "mib_s": int(mib) / read_s}))
"""


def up(folder: Path, labfile: Path, network: str) -> float:
    argv = [
        cc.console_script("snaplab"),
        "--lab",
        str(folder),
        "lab",
        "up",
        str(labfile),
        "--network",
        network,
    ]
    t0 = c.now()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    took = c.now() - t0
    if done.returncode != 0:
        raise SystemExit(f"lab up --network {network} failed: {done.stderr.strip()}")
    return took


def down(folder: Path) -> None:
    subprocess.run(
        [cc.console_script("snaplab"), "--lab", str(folder), "lab", "down"],
        capture_output=True,
        timeout=180,
        check=False,
    )


def probe(folder: Path, network: str, calls: int, mib: int) -> dict[str, float]:
    rt = json.loads((folder / "runtime.json").read_text())
    argv = [sys.executable, "-c", PROBE, str(folder / "pki"), bc.HOST, rt["manager"]["target"]]
    if network == "netns":
        from snaplab.deploy.folder import LabFolder

        plan = netns.saved(LabFolder(folder))
        assert plan is not None
        argv += [f"{plan.ports['P0']}:{netns.ARRAY_PORT}"]
        argv = [*netns.exec_prefix(plan.host(bc.HOST).ns), *argv]
    else:
        argv += [next(iter(rt["arrays"].values()))["target"]]
    done = subprocess.run(
        [*argv, str(calls), str(mib)], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"probe on the {network} lab failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    rep = c.Report("bench_netns", "netns lab vs loopback lab: routed op, block I/O, lab up", args)
    why = netns.missing_right()
    if why:
        rep.line(f"skipped: {why}")
        return 0
    reps = args.reps or (1 if args.quick else 3)
    calls, mib = (30, 8) if args.quick else (300, 64)
    base = Path(tempfile.mkdtemp(prefix="slb-netns-", dir="/tmp"))
    labfile = base / "lab.toml"
    labfile.write_text(bc.LAB)
    figures: dict[str, dict[str, list[float]]] = {
        n: {"up": [], "p50": [], "mib_s": []} for n in ("loopback", "netns")
    }
    rep.line(f"{reps} repetitions, alternated; {calls} routed calls and {mib} MiB read per lab")
    try:
        for r in range(reps):
            order = ("loopback", "netns") if r % 2 == 0 else ("netns", "loopback")
            for network in order:
                folder = base / f"{network}{r}"
                try:
                    figures[network]["up"].append(up(folder, labfile, network))
                    got = probe(folder, network, calls, mib)
                finally:
                    down(folder)
                figures[network]["p50"].append(got["p50"])
                figures[network]["mib_s"].append(got["mib_s"])
                rep.line(
                    f"  {network:8s} rep {r}: up {figures[network]['up'][-1]:.2f} s, route p50 "
                    f"{got['p50'] * 1e3:.2f} ms, read {got['mib_s']:.0f} MiB/s"
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in figures.items()}
    for n in ("loopback", "netns"):
        rep.figure(
            f"{n} median",
            f"up {med[n]['up']:.2f} s, route p50 {med[n]['p50'] * 1e3:.2f} ms, "
            f"read {med[n]['mib_s']:.0f} MiB/s",
        )
    rep.ratio(
        "netns_route",
        med["loopback"]["p50"] / med["netns"]["p50"],
        ">=",
        0.8,
        "routed ops/s (1/p50) netns / loopback",
    )
    rep.ratio(
        "netns_read",
        med["netns"]["mib_s"] / med["loopback"]["mib_s"],
        ">=",
        0.8,
        "block read MiB/s netns / loopback",
    )
    rep.ratio(
        "netns_up", med["netns"]["up"] / med["loopback"]["up"], "<=", 1.5, "lab up time netns / loopback"
    )
    rep.line(f"load average {os.getloadavg()[0]:.1f}")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
