"""Shared helpers for the SnapLab benchmarks (bench/bench_*.py).

Rules every benchmark keeps (see bench/README.md):

* it measures its subject and its reference in the same run, interleaved where possible, and takes
  medians of several repetitions (the machine is shared and noisy);
* it prints its figures, one ``RATIO`` line per target and PASS/FAIL against it, plus one
  machine-readable ``BENCHRESULT {json}`` line per ratio that ``bench/run_all.py`` collects;
* a target is *deterministic* when its figure does not depend on the machine's speed (bytes, blocks,
  pages, counts: ``ratio(..., deterministic=True)``); the others are timings. A missed deterministic
  target is a bug, not noise: the script then exits 1 in every mode (``--quick`` included, so the CI
  smoke test fails). A missed timing target exits 0 unless ``--strict`` is given (then 1);
* ``--quick`` runs tiny sizes (the CI smoke test, tests/test_bench_smoke.py, uses it);
* ``--profile`` adds a cProfile of the measured operation (top functions by own and cumulative time);
* it works in temporary directories and removes them.

The scripts are run as ``python3 bench/<script>.py`` (this folder is then on ``sys.path``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Self

from snaplab.array.engine import ArrayEngine

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
BLOCK = 64 * KiB  # the engine's block size (snaplab.array.blockstore.BLOCK)

DSV = "DynamicSnapVolume"
BV_POOL = "BenchPool"  # pool 0: the BVs and plain LDs
SNAP_POOL = "SnapPool"  # pool 1: the SVs and the SRA (its SDV)
POOL_CAPACITY = 1 << 50  # 1 PiB each: the array is thin, and every SV counts a BV's capacity in its pool
SRA_CAPACITY = 64 * GiB

now = time.perf_counter


# ==================================================================== command line
def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: proves the script runs (CI smoke test)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--reps", type=int, default=None, help="repetitions per side (default: per benchmark)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random offsets and data")
    p.add_argument("--profile", action="store_true",
                   help="after measuring, cProfile the measured operation and print where the time goes")
    p.add_argument("--raw-malloc", action="store_true",
                   help="keep glibc's default malloc tuning (see pin_malloc): noisier MiB-sized operations")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    args.malloc = "glibc defaults (--raw-malloc)" if args.raw_malloc else pin_malloc()
    return args


def pin_malloc() -> str:
    """Stop glibc from handing freed heap back to the OS and re-faulting it on the next allocation.

    With glibc's defaults, MiB-sized buffers (an engine.read of 1 MiB makes three) are served either
    from already-mapped heap (~60 us per 1 MiB read here) or from freshly mapped pages that fault in
    one by one (~1.1 ms, page faults being slow in a VM), depending on what else the heap holds at
    that moment. That bimodal noise has nothing to do with what the benchmarks compare, so by default
    the mmap threshold, trim threshold and top pad are pinned (the env vars MALLOC_MMAP_THRESHOLD_,
    MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_ do the same). Returns a description for the header.
    """
    from snaplab.common.memory import set_malloc

    ok = set_malloc(32 * MiB, 512 * MiB, 64 * MiB)
    return ("glibc pinned: mmap threshold 32 MiB, trim threshold 512 MiB, top pad 64 MiB" if ok
            else "defaults (mallopt unavailable)")


# ==================================================================== statistics and formatting
def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


def spread(xs: list[float]) -> str:
    """min / median / max of a sample, as a compact text (seconds shown in a suitable unit)."""
    return f"min {fmt_s(min(xs))}  median {fmt_s(median(xs))}  max {fmt_s(max(xs))}  (n={len(xs)})"


def fmt_s(sec: float) -> str:
    if sec < 1e-3:
        return f"{sec * 1e6:.1f} us"
    if sec < 1.0:
        return f"{sec * 1e3:.3f} ms"
    return f"{sec:.3f} s"


def fmt_size(n: int) -> str:
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"


def timed(fn: Callable[..., object], *args: object, **kw: object) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = now()
    fn(*args, **kw)
    return now() - t0


# ==================================================================== data
class Data:
    """Reproducible non-zero block contents. Byte 510-511 is never 55 AA, so no written block 0 looks
    like an MBR: snapshot operations then see an unpartitioned disk, as intended here."""

    def __init__(self, seed: int, variants: int = 8, size: int = MiB):
        rng = random.Random(seed)
        self.rng = rng
        self.bufs = []
        for _ in range(variants):
            b = bytearray(rng.randbytes(size))
            b[510:512] = b"\0\0"
            self.bufs.append(bytes(b))
        self._i = 0

    def next(self, length: int) -> bytes:
        """A buffer of ``length`` bytes (<= the variant size), a different variant each call."""
        self._i = (self._i + 1) % len(self.bufs)
        return self.bufs[self._i][:length]


def write_range(engine: ArrayEngine, ld: str, start: int, length: int, data: Data, *, chunk: int = MiB,
                stride: int | None = None) -> int:
    """Write ``length`` bytes from ``start`` in ``chunk``-byte engine.write calls; with ``stride``, one
    chunk every ``stride`` bytes (spread over the volume). Returns the bytes written."""
    step = stride or chunk
    written, off = 0, start
    while written < length:
        n = min(chunk, length - written)
        engine.write(ld, off, data.next(n))
        written += n
        off += step
    return written


# ==================================================================== the lab array
class Lab:
    """A licensed array in a temporary directory: pool 0 (BVs), pool 1 with the SRA (the SVs' pool).

    ``with Lab() as lab: lab.bv("BV0", 8 * GiB, svs=4)``; the directory is removed on exit.
    """

    def __init__(self, label: str = "lab", *, sra: int = SRA_CAPACITY):
        self.dir = tempfile.mkdtemp(prefix=f"snaplab-bench-{label}-")
        try:
            self.engine = ArrayEngine(self.dir, name=f"Bench_{label}"[:32])
            e = self.engine
            e.bind_pool(0, BV_POOL, "dynamic", POOL_CAPACITY)
            e.bind_pool(1, SNAP_POOL, "dynamic", POOL_CAPACITY)
            e.set_licence(DSV, 2 * POOL_CAPACITY)
            e.build_sra(SNAP_POOL, sra, sdv_name="SDV_BENCH")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def bv(self, name: str, capacity: int, svs: int = 1) -> list[str]:
        """Bind an LD, give it ``svs`` SVs in the snapshot pool (it becomes a BV); returns the SV names
        (``<name>_SV01``, ... in set order)."""
        e = self.engine
        e.bind_ld(name, capacity, BV_POOL, "LX")
        out = []
        while len(out) < svs:  # in slices: each generationadd is one transaction
            n = min(64, svs - len(out))
            out += [sv.name for sv in e.add_generations(name, SNAP_POOL, count=n)]
        return out

    def ld(self, name: str, capacity: int) -> None:
        """A plain LD (IV) in pool 0."""
        self.engine.bind_ld(name, capacity, BV_POOL, "LX")

    def disk_usage(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.dir):
            for f in files:
                try:
                    total += os.stat(os.path.join(root, f)).st_blocks * 512
                except OSError:
                    pass
        return total

    def close(self) -> None:
        try:
            self.engine.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ==================================================================== report
def _load() -> str:
    try:
        a, b, c = os.getloadavg()
        return f"{a:.2f} {b:.2f} {c:.2f}"
    except OSError:
        return "n/a"


class Report:
    """Prints a benchmark's header, figures, ratio lines and verdict; ``finish()`` is the exit code."""

    def __init__(self, bench: str, title: str, args: argparse.Namespace):
        self.bench, self.args = bench, args
        self.results: list[dict] = []
        self._t0, self._c0 = now(), time.process_time()
        mode = "quick" if args.quick else "full"
        print(f"== {bench}: {title}")
        print(f"   mode {mode}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
              f"load average (1/5/15 min) at start: {_load()}")
        print(f"   malloc: {getattr(args, 'malloc', 'not set')}")
        sys.stdout.flush()

    def line(self, text: str = "") -> None:
        print(f"   {text}" if text else "")
        sys.stdout.flush()

    def figure(self, label: str, value: str) -> None:
        print(f"   {label:<46} {value}")
        sys.stdout.flush()

    def ratio(self, metric: str, value: float, op: str, target: float, what: str = "", *,
              deterministic: bool = False) -> bool:
        """Record one ratio against its target (``op`` is "<=" or ">="). ``deterministic``: the figure
        is a count (bytes, blocks), the same on any machine, so missing it fails the run (see above)."""
        if op not in ("<=", ">="):
            raise ValueError(op)
        ok = value <= target if op == "<=" else value >= target
        verdict = "PASS" if ok else "FAIL"
        if what:
            print(f"   {metric}: {what}")
        kind = " deterministic" if deterministic else ""
        print(f"RATIO {metric} = {value:.4f} (target {op} {target:g}) {verdict}{kind}")
        self.results.append({"bench": self.bench, "metric": metric, "ratio": round(value, 6), "op": op,
                             "target": target, "pass": ok, "quick": bool(self.args.quick),
                             "deterministic": deterministic})
        print("BENCHRESULT " + json.dumps(self.results[-1]))
        sys.stdout.flush()
        return ok

    def finish(self) -> int:
        wall, cpu = now() - self._t0, time.process_time() - self._c0
        print(f"   load average at end: {_load()}; wall {wall:.1f} s, this process's CPU {cpu:.1f} s "
              f"({100 * cpu / wall if wall else 0:.0f}% of one core)")
        ok = all(r["pass"] for r in self.results) and bool(self.results)
        missed = [r["metric"] for r in self.results if r["deterministic"] and not r["pass"]]
        why = (f" (deterministic target missed: {', '.join(missed)}: exit 1)" if missed
               else "" if ok or not self.args.strict else " (--strict: exit 1)")
        print(f"== {self.bench}: {'PASS' if ok else 'FAIL'}{why}")
        sys.stdout.flush()
        return 1 if missed or (self.args.strict and not ok) else 0


# ==================================================================== profiling
class Profiler:
    """cProfile limited to the measured calls: ``with prof.on(): op()``; then ``prof.report(title)``
    prints the top functions by cumulative and by own time. (cProfile follows the calling thread only.)"""

    def __init__(self) -> None:
        self.prof = cProfile.Profile()
        self.calls = 0

    @contextmanager
    def on(self) -> Iterator[None]:
        self.calls += 1
        self.prof.enable()
        try:
            yield
        finally:
            self.prof.disable()

    def report(self, title: str, *, top: int = 25) -> None:
        for key in ("cumulative", "tottime"):
            s = io.StringIO()
            pstats.Stats(self.prof, stream=s).strip_dirs().sort_stats(key).print_stats(top)
            text = s.getvalue()
            i = text.find("   ncalls")  # drop pstats' preamble
            print(f"--- profile: {title} ({self.calls} profiled calls; sorted by {key})")
            print((text[i:] if i >= 0 else text).rstrip() + "\n")
        sys.stdout.flush()


class ThreadProfiles:
    """cProfile every thread started while installed (e.g. the engine's restore worker, which starts
    with the ArrayEngine): ``tp.install(); lab = Lab(); tp.uninstall()``; later ``tp.report()``.
    A thread's profile covers its whole life, idle waits included (they show as ``wait``)."""

    def __init__(self) -> None:
        self.profs: dict[str, cProfile.Profile] = {}

    def _hook(self, frame: object, event: str, arg: object) -> None:
        prof = cProfile.Profile()
        self.profs[threading.current_thread().name] = prof
        prof.enable()  # replaces this hook for the thread

    def install(self) -> None:
        threading.setprofile(self._hook)

    def uninstall(self) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]

    def report(self, title: str, *, top: int = 25) -> None:
        for name, prof in self.profs.items():
            for key in ("cumulative", "tottime"):
                s = io.StringIO()
                pstats.Stats(prof, stream=s).strip_dirs().sort_stats(key).print_stats(top)
                text = s.getvalue()
                i = text.find("   ncalls")
                print(f"--- profile: {title}, thread {name!r} (sorted by {key})")
                print((text[i:] if i >= 0 else text).rstrip() + "\n")
        sys.stdout.flush()


def profile(fn: Callable[[], object], title: str, *, top: int = 25) -> None:
    """cProfile one call of ``fn()`` and print where the time goes."""
    p = Profiler()
    with p.on():
        fn()
    p.report(title, top=top)


def rng_offsets(rng: random.Random, region: int, length: int, count: int, align: int = BLOCK) -> list[int]:
    """``count`` random offsets, multiples of ``align``, such that [off, off+length) lies in [0, region)."""
    slots = (region - length) // align + 1
    return [rng.randrange(slots) * align for _ in range(count)]
