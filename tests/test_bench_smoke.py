"""The benchmarks run: every bench/bench_*.py in --quick mode exits 0 and prints its ratio line.

Speed itself is never asserted here (a timed test on a shared machine is noise): the figures come from
``python3 bench/run_all.py``. This only proves the scripts and the runner keep working (a few seconds).
"""

from __future__ import annotations

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
RATIO = re.compile(r"^RATIO \S+ = \d+\.\d+ \(target (<=|>=) [\d.]+\) (PASS|FAIL)$", re.MULTILINE)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, check=False)


def test_benchmarks_found() -> None:
    assert SCRIPTS, "no bench/bench_*.py"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_benchmark_quick(script: Path) -> None:
    proc = _run(str(script), "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert RATIO.search(proc.stdout), proc.stdout + proc.stderr


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
