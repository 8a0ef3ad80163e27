"""The benchmarks run: every bench/bench_*.py in --quick mode exits 0 and prints its ratio line.

Speed itself is never asserted here (a timed test on a shared machine is noise): the figures come from
``python3 bench/run_all.py``. This only proves the scripts and the runner keep working (a few seconds).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))
# run_all.py itself is exercised on one cheap in-process script: the control-path ones (bench_command,
# bench_routing, bench_vollist) start whole labs of daemons, which the per-script tests already cover.
RUN_ALL_SCRIPT = next((s for s in SCRIPTS if s.stem == "bench_generations"), SCRIPTS[0] if SCRIPTS else None)
RATIO = re.compile(r"^RATIO \S+ = \d+\.\d+ \(target (<=|>=) [\d.]+\) (PASS|FAIL)( deterministic)?$", re.MULTILINE)
DET_FAIL = re.compile(r"^RATIO (\S+) = .* FAIL deterministic$", re.MULTILINE)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, check=False)


def test_benchmarks_found() -> None:
    assert SCRIPTS, "no bench/bench_*.py"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_benchmark_quick(script: Path) -> None:
    """Runs, prints its ratios, and meets every deterministic target (byte and block counts are the
    same on any machine and at any size: a miss is a bug, and the script exits 1 for it)."""
    proc = _run(str(script), "--quick")
    missed = DET_FAIL.findall(proc.stdout)
    assert not missed, f"deterministic target(s) missed: {missed}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert RATIO.search(proc.stdout), proc.stdout + proc.stderr


def test_deterministic_miss_fails_the_run_timing_miss_does_not(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/common.py's Report: a missed timing target exits 0 (1 only with --strict); a missed
    deterministic one exits 1 in every mode, and says so in its RATIO and BENCHRESULT lines."""
    sys.path.insert(0, str(BENCH))
    try:
        import common as bench_common
    finally:
        sys.path.remove(str(BENCH))
    for strict in (False, True):
        rep = bench_common.Report("bench_t", "t", argparse.Namespace(quick=True, strict=strict))
        rep.ratio("timing", 2.0, "<=", 1.0)
        assert rep.finish() == (1 if strict else 0)
        rep = bench_common.Report("bench_t", "t", argparse.Namespace(quick=True, strict=strict))
        rep.ratio("timing", 0.5, "<=", 1.0)
        rep.ratio("bytes", 2.0, "<=", 1.0, deterministic=True)
        assert rep.finish() == 1
    out = capsys.readouterr().out
    assert DET_FAIL.findall(out) == ["bytes", "bytes"]
    assert '"metric": "bytes", "ratio": 2.0, "op": "<=", "target": 1.0, "pass": false' in out
    assert '"deterministic": true' in out and "deterministic target missed: bytes: exit 1" in out


def test_run_all_quick() -> None:
    assert RUN_ALL_SCRIPT is not None
    proc = _run(str(BENCH / "run_all.py"), "--quick", "--only", RUN_ALL_SCRIPT.stem)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "===== summary" in proc.stdout
    row = rf"^{re.escape(RUN_ALL_SCRIPT.name)}\s+\S+\s+\d+\.\d+\s+(<=|>=) \S+\s+(PASS|FAIL)"
    assert re.search(row, proc.stdout, re.MULTILINE), proc.stdout


def test_soak_crash_runs() -> None:
    """bench/soak_crash.py (not a benchmark: no ratio) runs as a script and passes a couple of kills."""
    proc = _run(str(BENCH / "soak_crash.py"), "--kills", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "== soak_crash: PASS" in proc.stdout, proc.stdout
    assert re.search(r"kills 2; operations acknowledged \d+", proc.stdout), proc.stdout


def test_fuzz_array_runs() -> None:
    """bench/fuzz_array.py (not a benchmark: no ratio) runs as a script and passes a short run."""
    proc = _run(str(BENCH / "fuzz_array.py"), "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "== fuzz_array: PASS" in proc.stdout, proc.stdout
    assert re.search(r"^200 requests \(\d+ undecodable\)", proc.stdout, re.MULTILINE), proc.stdout
