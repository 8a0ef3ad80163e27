#!/usr/bin/env python3
"""Web console: page load and event latency (event logged -> visible in the page) with 10,000 events in the log.

A lab of one array (``bv001`` with three generations, no hosts) is started in a temporary folder;
its event log is filled with N events (10,000; --quick 200) through the manager's ``LabEvent`` RPC
as the admin. Headless Chromium (Debian's ``chromium``, driven by Playwright: no browser download)
logs in to the console with the token ``snaplab console`` prints, then:

* page load: a new tab opens the console and is counted loaded when the snapshot tree and the event
  log (its newest 500 events) are drawn; medians of 5 (--quick 1). Target: under 1 s.
* event latency: one event is logged (``LabEvent``), and the time from just before that call until
  the page has drawn its row (the page stamps ``Date.now()`` per shown event); medians of 20
  (--quick 2). Target: under 0.5 s.

References measured in the same run: the ``Monitor`` RPC that feeds the page's state (what any
client pays for the data), a new tab loading one static file of the console (the browser's own
share), and the latency of a gRPC ``Watch`` stream seeing the same events (the
manager's own live feed, without the browser and the console's HTTP layer). Each target's ratio is
median / target (<= 1 passes). The browser is closed and the lab stopped at the end, also on errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common as c
import control_common as cc

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOAD_TARGET = 1.0
LATENCY_TARGET = 0.5

LAB = """\
[lab]
description = "bench_console: one array for the web console"

[[arrays]]
name = "Bench_Array"
ports = ["00h/00h P0"]
pools = [{ number = 0, kind = "basic", capacity = "4GiB" }, { number = 1, kind = "dynamic", capacity = "4GiB" }]
sra = [{ pool = 1, capacity = "64MiB" }]
lds = [{ number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 }]
generations = [{ bv = "bv001", pool = 1, count = 3 }]
licences = ["DynamicSnapVolume", "AccessControl"]
"""


def fill(target: str, pki: Path, count: int) -> None:
    """``count`` events in the log, four callers at once."""
    from snaplab.common.rpc import ClientTLS
    from snaplab.manager.client import ManagerClient
    from snaplab.v1 import manager_pb2

    def part(n: int, offset: int) -> None:
        with ManagerClient(target, ClientTLS.from_folder(pki, "admin")) as m:
            for i in range(n):
                req = manager_pb2.LabEventRequest(host=f"bench{offset + i:05d}", kind="host_started")
                m._call("LabEvent", req)

    share = [count // 4 + (1 if i < count % 4 else 0) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(part, n, sum(share[:i])) for i, n in enumerate(share)]:
            f.result()


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    events = 200 if args.quick else 10_000
    loads = args.reps or (1 if args.quick else 5)
    latencies = 2 if args.quick else 20
    rep = c.Report("bench_console", "web console page load and event latency", args)
    if not os.path.exists(CHROMIUM):
        rep.line(f"{CHROMIUM} is missing (README Setup installs Debian's chromium): nothing measured")
        return 1
    from playwright.sync_api import sync_playwright

    from snaplab.common.rpc import ClientTLS
    from snaplab.deploy.cli import main as snaplab_main
    from snaplab.manager.client import ManagerClient
    from snaplab.v1 import manager_pb2

    with cc.LabRun(LAB, "console") as lab, tempfile.TemporaryDirectory(prefix="slb-chromium-") as profile:
        target = lab.runtime["manager"]["target"]
        pki = lab.lab_dir / "pki"
        t0 = c.now()
        fill(target, pki, events)
        rep.figure(f"filled the log with {events} events", c.fmt_s(c.now() - t0))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # what a person runs; the token is not printed here
            assert snaplab_main(["--lab", str(lab.lab_dir), "console"]) == 0
        url = re.search(r"^console: (\S+)$", printed.getvalue(), re.M)[1]
        token = re.search(r"^token: +(\S+)$", printed.getvalue(), re.M)[1]
        assert url == lab.runtime["manager"]["console"]

        admin = ManagerClient(target, ClientTLS.from_folder(pki, "admin"))
        monitor = []
        for _ in range(loads):
            monitor.append(c.timed(admin.monitor))

        # the reference feed: a gRPC Watch from the newest event on
        last = admin.events(after_seq=max(0, events - 1))[-1].seq
        seen_grpc: dict[int, float] = {}
        stream = admin.watch(after_seq=last)

        def follow() -> None:
            for ev in stream:
                seen_grpc[ev.seq] = time.time()

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()

        pw = sync_playwright().start()
        ctx = None
        try:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, ignore_https_errors=True,
                bypass_csp=True,  # wait_for_function's predicates are evaluated strings
            )
            page = ctx.new_page()
            page.goto(url)
            page.fill("#token", token)
            page.click("#login-button")
            page.wait_for_selector("#tree tr[data-sv]", state="attached")
            page_loads, static_loads = [], []
            shown = min(500, events)
            for _ in range(loads):
                tab = ctx.new_page()
                t0 = c.now()
                tab.goto(url + "static/console.css")  # the browser's, TLS's and HTTP's share alone
                static_loads.append(c.now() - t0)
                tab.close()
                tab = ctx.new_page()
                t0 = c.now()
                tab.goto(url)
                tab.wait_for_selector("#tree tr[data-sv]", state="attached")
                tab.wait_for_function(f"document.querySelectorAll('#events tbody tr').length >= {shown}")
                page_loads.append(c.now() - t0)
                tab.close()
            page.wait_for_selector("#live.on")
            lat_page, lat_grpc = [], []
            for i in range(latencies):
                t_log = time.time()
                ev = admin._call("LabEvent", manager_pb2.LabEventRequest(host=f"latency{i:03d}", kind="host_started"))
                stamp = page.wait_for_function(f"window.snaplabSeen[{ev.seq}]").json_value()
                lat_page.append(stamp / 1000.0 - t_log)
                deadline = time.monotonic() + 5
                while ev.seq not in seen_grpc and time.monotonic() < deadline:
                    time.sleep(0.005)
                lat_grpc.append(seen_grpc.get(ev.seq, float("nan")) - t_log)
                time.sleep(0.1)
        finally:
            stream.cancel()
            if ctx is not None:
                ctx.close()
            pw.stop()
            admin.close()

    rep.figure("page load (tree + newest 500 events)", c.spread(page_loads))
    rep.figure("reference: Monitor RPC (the page's state)", c.spread(monitor))
    rep.figure("context: a new tab of one static file", c.spread(static_loads))
    rep.figure("event latency, logged -> shown in the page", c.spread(lat_page))
    rep.figure("reference: logged -> seen by a gRPC Watch", c.spread(lat_grpc))
    rep.ratio("page_load_vs_1s", c.median(page_loads) / LOAD_TARGET, "<=", 1.0,
              f"median page load {c.fmt_s(c.median(page_loads))} with {events} events in the log, / {LOAD_TARGET:g} s")
    rep.ratio("event_latency_vs_0.5s", c.median(lat_page) / LATENCY_TARGET, "<=", 1.0,
              f"median event latency {c.fmt_s(c.median(lat_page))}, / {LATENCY_TARGET:g} s "
              f"(gRPC Watch alone: {c.fmt_s(c.median(lat_grpc))})")
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
