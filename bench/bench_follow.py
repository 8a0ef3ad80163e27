#!/usr/bin/env python3
"""iSMview -event -follow: event latency (event logged -> line read from the follower) vs a gRPC Watch.

A lab of one array (no hosts) is started in a temporary folder; its log is filled with N events
(2,000; --quick 100: the follower's backlog is the last 10 of them). The management server's
``iSMview -event -follow`` runs as its own process (its console script, ``SNAPLAB_LAB`` set), and
one event at a time is logged (``LabEvent`` as the admin); its latency is the time from just before
that call until the follower's stdout gives that event's line. Events: 30 (--quick 5).

Reference measured in the same run: the latency of a gRPC ``Watch`` stream of the bench itself
seeing the same events (the manager's own live feed, without the follower's process, formatting and
pipe). Ratios: median follower latency / 1 s (the acceptance: an event within 1 s) <= 1, and the
follower's median over the Watch's (what the command adds), reported with target <= 5.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time

import common as c
import control_common as cc

TARGET = 1.0  # s: a follower sees an event within a second
OVERHEAD_TARGET = 5.0

LAB = """\
[lab]
description = "bench_follow: one array for the event log"

[[arrays]]
name = "Bench_Array"
ports = ["00h/00h P0"]
pools = [{ number = 0, kind = "basic", capacity = "1GiB" }]
lds = [{ number = "0030h", name = "bv001", capacity = "16MiB", pool = 0 }]
licences = ["AccessControl"]
"""


def _lines(fd: int, deadline: float, buf: bytearray) -> str | None:
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode(errors="replace")


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    fill_n = 100 if args.quick else 2000
    count = args.reps or (5 if args.quick else 30)
    rep = c.Report("bench_follow", "iSMview -event -follow latency vs a gRPC Watch", args)
    from snaplab.manager.client import ManagerClient

    from snaplab.common.rpc import ClientTLS
    from snaplab.v1 import manager_pb2

    with cc.LabRun(LAB, "follow") as lab:
        target = lab.runtime["manager"]["target"]
        admin = ManagerClient(target, ClientTLS.from_folder(lab.lab_dir / "pki", "admin"))
        try:
            t0 = c.now()
            for i in range(fill_n):
                admin._call("LabEvent", manager_pb2.LabEventRequest(host=f"fill{i:05d}", kind="host_started"))
            rep.figure(f"filled the log with {fill_n} events", c.fmt_s(c.now() - t0))
            last = admin.events(after_seq=max(0, fill_n - 5))[-1].seq
            env = {**os.environ, "SNAPLAB_LAB": str(lab.lab_dir)}
            env.pop("SNAPLAB_HOST", None)
            script = os.path.join(os.path.dirname(sys.executable), "iSMview")
            proc = subprocess.Popen(
                [script, "-event", "-follow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            assert proc.stdout is not None
            fd, buf = proc.stdout.fileno(), bytearray()
            seen_grpc: dict[str, float] = {}
            stream = admin.watch(after_seq=last)

            def watch() -> None:
                for ev in stream:
                    seen_grpc[f"{ev.source} {ev.text}"] = c.now()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                t0 = c.now()
                while (line := _lines(fd, time.monotonic() + 30, buf)) is not None:
                    if line.lstrip().startswith(f"{last} "):
                        break
                else:
                    raise RuntimeError("the follower showed no backlog")
                rep.figure("follower started, backlog shown", c.fmt_s(c.now() - t0))
                lat_follow, lat_grpc = [], []
                for i in range(count):
                    host = f"bfollow{i:03d}"
                    t = c.now()
                    admin._call("LabEvent", manager_pb2.LabEventRequest(host=host, kind="host_started"))
                    while (line := _lines(fd, time.monotonic() + 10, buf)) is not None and host not in line:
                        pass
                    if line is None:
                        raise RuntimeError(f"the follower did not show {host}")
                    lat_follow.append(c.now() - t)
                    deadline = time.monotonic() + 5
                    while not any(host in k for k in seen_grpc) and time.monotonic() < deadline:
                        time.sleep(0.001)
                    got = next((v for k, v in seen_grpc.items() if host in k), None)
                    if got is not None:
                        lat_grpc.append(got - t)
                    time.sleep(0.05)
            finally:
                stream.cancel()
                proc.send_signal(signal.SIGINT)
                try:
                    code = proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait(10)
            rep.figure("follower's exit status after Ctrl-C (SIGINT)", str(code))
        finally:
            admin.close()
    rep.figure("event latency, logged -> follower's line", c.spread(lat_follow))
    rep.figure("reference: logged -> seen by a gRPC Watch", c.spread(lat_grpc or [float("nan")]))
    rep.ratio(
        "follow_latency_vs_1s",
        c.median(lat_follow) / TARGET,
        "<=",
        1.0,
        f"(median {c.fmt_s(c.median(lat_follow))})",
    )
    if lat_grpc:
        rep.ratio(
            "follow_vs_watch",
            c.median(lat_follow) / max(c.median(lat_grpc), 1e-4),
            "<=",
            OVERHEAD_TARGET,
            "(what the command's process, formatting and pipe add)",
        )
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
