"""Issue 8 item 6: a refused write costs O(1), so a host flooding refused writes cannot stall the array.

The attack, through the real array daemon (mTLS): host ``intruder`` streams writes to an LD access
control does not give it, as fast as it can. Each was refused correctly, but the engine rolled back by
reloading its whole state under the global lock: 1.8 ms on an empty array, 73 ms at 49,152 blocks,
and every other caller queued behind it. Now a refusal that comes before any change costs only the
SQLite rollback (engine.py ``_tx``).

Shown, with ratios measured in this test on the same machine (so a loaded machine loads both sides):

* a refusal at 49,152 blocks takes about what it takes on an almost empty array (old: ~20x);
* while the intruder floods (from its own process, 2 streams of 50 refused writes a second: a rate
  that kept the old engine's lock busy all the time), another host's reads and the admin's
  ``Describe`` are answered within 3x of their latency with the intruder quiet (old: each call
  waited behind a 73 ms reload).

The large state is made by writing 49,152 block-map rows straight into ``array.db`` (over a sparse
data file) while the daemon is stopped: writing 3 GiB through the daemon would take minutes here, and
the daemon loads these rows as any state of its own (reads of the LD answer zeros, as its blocks hold).
"""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest
from snaplab.array.process import ArrayProcess, make_lab_certs

from snaplab.common.rpc_errors import SnapLabClientError
from snaplab.san.array_client import ArrayClient
from snaplab.san.blocks import BLOCK

pytestmark = pytest.mark.timeout(240)
TESTS = Path(__file__).resolve().parents[1]  # the flood runs as harness.refusal_flood from here

BLOCKS = 49_152  # the figure: 3 GiB of 64 KiB blocks
REFUSALS = 60  # refused writes timed per state
ROUNDS = 3  # quiet and flood phases alternate, so load that comes and goes hits both alike
CALLS = 15  # calls of each kind per phase
FLOODERS = 2  # the intruder's streams at once (its engine slots: servicer.CALLER_SLOTS)
# Refusals a second per stream. The old engine could not answer even this (a refusal held its lock
# 73 ms: two streams kept it busy all the time); an unpaced flood would measure how 2 cores split
# between three processes, not what a refusal costs the array.
FLOOD_RATE = 50
WWN = {"intruder": "10000000c9000001", "other": "10000000c9000002"}
DENIED = "iSM31042"  # access control: the LD is not given to this host


def _refuse(intruder: ArrayClient) -> None:
    try:
        intruder.write("other01", 0, b"\x66" * 4096)
    except SnapLabClientError as exc:
        assert exc.msg_id == DENIED, exc
    else:
        raise AssertionError("the intruder's write to an LD it is not given was done")


def _refusal_ms(intruder: ArrayClient) -> float:
    for _ in range(5):  # warm-up
        _refuse(intruder)
    times = []
    for _ in range(REFUSALS):
        t = time.perf_counter()
        _refuse(intruder)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _make_large(state: Path, ld_number: int) -> None:
    """BLOCKS blocks of LD ``ld_number``, as committed writes would leave them (daemon stopped)."""
    with sqlite3.connect(state / "array.db") as conn:
        conn.executemany(
            "INSERT INTO blocks(family, lblock, epoch, pblock) VALUES (?,?,1,?)",
            ((ld_number, lb, lb) for lb in range(BLOCKS)),
        )
        conn.execute("UPDATE families SET hw=? WHERE ld=?", [BLOCKS, ld_number])
    conn.close()
    with open(state / "data" / f"ld_{ld_number:04x}.dat", "r+b") as f:
        f.truncate(BLOCKS * BLOCK)


@pytest.fixture
def array(tmp_path: Path) -> Iterator[ArrayProcess]:
    certs = make_lab_certs(tmp_path / "certs", [("array", "array"), ("admin", "admin"),
                                                 *((h, "host") for h in WWN)])
    with ArrayProcess(tmp_path / "state", certs=certs, log_path=tmp_path / "array.log") as proc:
        with proc.client("admin") as admin:
            admin.set_licence("AccessControl")
            admin.bind_pool(0, "Pool0", "basic", 8 << 30)
            admin.bind_ld("bulk01", BLOCKS * BLOCK, "Pool0", "WN")
            admin.bind_ld("other01", 64 << 20, "Pool0", "WN")
            for host, wwn in WWN.items():
                admin.register_host(host, [wwn], [])
            admin.assign_access("bulk01", wwn=WWN["intruder"])
            admin.assign_access("other01", wwn=WWN["other"])
            admin.write("other01", 0, b"\x42" * (64 << 10))
        yield proc


class Flood:
    """The intruder's refused writes, as fast as it can, from its own process (harness/refusal_flood.py)."""

    def __init__(self, proc: ArrayProcess) -> None:
        self.cmd = [sys.executable, "-m", "harness.refusal_flood", proc.target, str(proc.certs), "intruder",
                    "other01", str(FLOODERS), str(FLOOD_RATE)]
        self.count = 0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(self.cmd, cwd=TESTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "flooding"
        time.sleep(0.5)  # the flood is under way before anything is measured
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        out, err = self.proc.communicate("", timeout=60)
        assert self.proc.returncode == 0, err[-2000:]
        self.count += int(out.split()[-1])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _measure(others: dict[str, Callable[[], object]], into: dict[str, list[float]]) -> None:
    for _ in range(CALLS):
        for name, call in others.items():  # interleaved, so every kind sees the same moments
            t = time.perf_counter()
            call()
            into[name].append(time.perf_counter() - t)


def test_a_refusal_costs_the_same_on_a_large_array_and_stalls_nobody(array: ArrayProcess) -> None:
    with array.client("intruder") as intruder:
        small = _refusal_ms(intruder)
    with array.client("admin") as admin:
        bulk = int(next(x.number for x in admin.describe().lds if x.name == "bulk01").rstrip("h"), 16)
    array.stop()
    _make_large(array.state_dir, bulk)
    array.start()
    with array.client("admin") as admin:
        assert admin.read("bulk01", (BLOCKS - 1) * BLOCK, BLOCK) == bytes(BLOCK)  # the daemon holds them
    with array.client("intruder") as intruder:
        large = _refusal_ms(intruder)
    report = [(f"refused write: {small:.2f} ms at ~0 blocks, {large:.2f} ms at {BLOCKS} blocks "
              f"({large / small:.2f}x)")]

    other = array.client("other")
    admin = array.client("admin")
    others: dict[str, Callable[[], object]] = {
        "other Read 64 KiB": lambda: other.read("other01", 0, 64 << 10),
        "admin Describe": lambda: admin.describe(),
    }
    quiet: dict[str, list[float]] = {k: [] for k in others}
    flooded: dict[str, list[float]] = {k: [] for k in others}
    flood = Flood(array)
    try:
        _measure(others, quiet)  # warm-up: channels, caches
        quiet = {k: [] for k in others}
        for _ in range(ROUNDS):
            _measure(others, quiet)
            with flood:
                _measure(others, flooded)
    finally:
        flood.close()
        other.close()
        admin.close()
    assert flood.count >= ROUNDS * CALLS, f"the flood hardly ran: {flood.count} refusals"
    for name in others:
        base, under = statistics.median(quiet[name]), statistics.median(flooded[name])
        report.append(f"{name}: quiet {base * 1e3:.2f} ms, flooded {under * 1e3:.2f} ms ({under / base:.2f}x)")
    report.append(f"{flood.count} refused writes during the flood phases")
    print("\n".join(report))
    assert array.running
    # A reload per refusal made this ~20x; the gRPC round trip dominates both now (noise: up to ~2x).
    assert large <= 5 * small, "\n".join(report)
    for name in others:
        # 3x: the old engine made each call wait behind a 73 ms reload (~20x); on 2 loaded cores
        # the flood's own CPU alone costs the others about 2x
        assert statistics.median(flooded[name]) <= 3 * statistics.median(quiet[name]), "\n".join(report)
