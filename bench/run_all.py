#!/usr/bin/env python3
"""Run every benchmark (bench/bench_*.py) one after the other and print a summary table.

    python3 bench/run_all.py                 # full sizes (minutes)
    python3 bench/run_all.py --quick         # tiny sizes (seconds): proves the scripts run
    python3 bench/run_all.py --strict        # exit 1 when a target is missed
    python3 bench/run_all.py --only restore  # only scripts whose name contains "restore"
    python3 bench/run_all.py -- --raw-malloc # arguments after -- go to every script

Each script's output is shown as it runs; the table collects its ``BENCHRESULT`` lines. A script
that exits non-zero (other than for a missed target) or prints no ratio is an ERROR. A missed
deterministic target (a byte or block count, marked ``"deterministic": true``; the result column
shows ``FAIL (det)``) fails the run in every mode; a missed timing target only with --strict.
run_all exits 1 on an ERROR or a deterministic FAIL whatever --strict says. Any new bench/bench_*.py is picked up without changes here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(only: list[str] | None = None) -> list[Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(o in s.stem for o in only)]
    return scripts


def parse_results(output: str) -> list[dict]:
    """The ``BENCHRESULT {json}`` lines of a script's output."""
    out = []
    for line in output.splitlines():
        if line.startswith("BENCHRESULT "):
            try:
                out.append(json.loads(line[len("BENCHRESULT "):]))
            except json.JSONDecodeError:
                pass
    return out


def run_script(script: Path, args: list[str], timeout: float | None) -> tuple[int, str, float]:
    """Run one script, echoing its output live; returns (exit code, output, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    assert proc.stdout is not None
    try:
        deadline = None if timeout is None else t0 + timeout
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
            if deadline is not None and time.perf_counter() > deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        rc = proc.wait(timeout=None if deadline is None else max(1.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        lines.append(f"run_all: {script.name} killed after {timeout} s\n")
        rc = -9
    return rc, "".join(lines), time.perf_counter() - t0


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthru: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthru = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description="Run every bench/bench_*.py and summarise.")
    p.add_argument("--quick", action="store_true", help="tiny sizes (each script's --quick)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--only", action="append", metavar="SUBSTR",
                   help="only scripts whose name contains SUBSTR (repeatable)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per script")
    args = p.parse_args(argv)

    scripts = discover(args.only)
    if not scripts:
        print("run_all: no benchmark matched", file=sys.stderr)
        return 1
    script_args = (["--quick"] if args.quick else []) + (["--strict"] if args.strict else []) + passthru
    print(f"run_all: {len(scripts)} benchmark(s), mode {'quick' if args.quick else 'full'}; "
          f"{os.cpu_count()} CPUs; load average at start: {load()}")
    rows: list[tuple[str, str, str, str, str, str]] = []
    errors = failures = det_failures = 0
    total0 = time.perf_counter()
    for script in scripts:
        print(f"\n##### {script.name}")
        sys.stdout.flush()
        rc, output, secs = run_script(script, script_args, args.timeout)
        results = parse_results(output)
        for r in results:
            det = bool(r.get("deterministic"))
            verdict = "PASS" if r["pass"] else ("FAIL (det)" if det else "FAIL")
            failures += not r["pass"]
            det_failures += det and not r["pass"]
            rows.append((script.name, r["metric"], f"{r['ratio']:.4f}", f"{r['op']} {r['target']:g}",
                         verdict, f"{secs:.1f} s"))
        # exit 1 for a missed target is the script's verdict, not an error of the script
        target_fail = rc == 1 and any(not r["pass"] for r in results)
        if not results or (rc != 0 and not target_fail):
            errors += 1
            why = "no ratio printed" if not results else f"exit code {rc}"
            rows.append((script.name, "-", "-", "-", f"ERROR ({why})", f"{secs:.1f} s"))

    head = ("script", "metric", "ratio", "target", "result", "time")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print(f"\n===== summary ({'quick' if args.quick else 'full'} mode; load average at end: {load()}; "
          f"total {time.perf_counter() - total0:.1f} s)")
    for row in (head, tuple("-" * w for w in widths), *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    if args.quick:
        print("(quick mode: tiny sizes, the timing ratios say nothing about their targets; deterministic ones must hold)")
    print(f"targets: {len(rows) - failures - errors} PASS, {failures} FAIL "
          f"({det_failures} deterministic); scripts in ERROR: {errors}")
    if errors or det_failures:
        return 1
    return 1 if (args.strict and failures) else 0


if __name__ == "__main__":
    sys.exit(main())
