#!/usr/bin/env python3
"""Mutation testing of the rule-bearing modules: does a one-line bug make the targeted tests fail?

    nice -n 19 python3 tools/mutate.py                                  # every configured module, 20 each
    nice -n 19 python3 tools/mutate.py --module agent/fs/holders.py --max 12
    nice -n 19 python3 tools/mutate.py --module array/snapshots.py --tests "tests/test_rules.py -k create"
    nice -n 19 python3 tools/mutate.py --module array/snapshots.py --only 68 --tests tests/test_rules.py
    python3 tools/mutate.py --list                                      # the modules and their tests

The mutants come from mutmut (PyPI, ``pip install -e '.[mutation]'``; its 2.x engine: operators swapped,
numbers and strings changed, ``return x`` -> ``return None``, keywords flipped, ...). For each module
a seeded sample of ``--max`` mutants is taken (all with ``--max 0``). The tree (``git ls-files``) is
copied into a temporary folder once; each mutant is written into the copy, the module's targeted
tests run there (``PYTHONPATH`` puts the copy first, so the daemons and commands the tests start
import the mutated code too), and the copy is put back. The checkout itself is never changed. A
mutant is *killed* when the tests fail (or time out), *survived* when they pass. The unmutated
tests must pass first. Not in CI: a mutant costs a test run (see docs/testing.md for the last
results and why each survivor is equivalent or which test now kills it).
"""

from __future__ import annotations

import argparse
import difflib
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The rule-bearing modules and the tests that hold their rules (a subset each: a mutant costs a run).
TARGETS: dict[str, str] = {
    "array/snapshots.py": "tests/test_snapshot_commands.py",
    "array/blockio.py": "tests/test_rules.py",
    "array/blockstore.py": "tests/test_rules.py tests/test_crash.py",
    "array/engine.py": "tests/test_rules.py",
    "manager/routing.py": "tests/test_manager.py",
    "agent/commands/snapshot.py": "tests/test_snapshot_commands.py",
    "agent/host/mounts.py": "tests/test_agent.py -k umount",
    "agent/fs/holders.py": "tests/test_agent.py -k umount_refused",
    "agent/fs/flush.py": "tests/test_filesystem.py",
}


def mutants(path: Path) -> list:
    from mutmut import Context, list_mutations  # the optional extra: '.[mutation]'

    return list(list_mutations(Context(source=path.read_text(), filename=str(path))))


def apply(source: str, mid: object, filename: str) -> str:
    from mutmut import Context, mutate

    new, count = mutate(Context(source=source, mutation_id=mid, filename=filename))
    assert count == 1, (mid, count)
    return new


def copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        if rel and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


def run_tests(copy: Path, tests: str, timeout: float) -> tuple[str, float]:
    """'pass', 'fail' or 'timeout', and the seconds it took."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *shlex.split(tests)]
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=timeout, start_new_session=True, check=False).returncode
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0
    return ("pass" if rc == 0 else "fail"), time.monotonic() - t0


def one_line_diff(old: str, new: str) -> str:
    d = [x for x in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
         if x[:1] in "+-" and not x.startswith(("+++", "---"))]
    return " | ".join(x.strip() for x in d)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", action="append", help="a module to mutate (repeatable; default: all configured)")
    p.add_argument("--tests", help="pytest arguments instead of the module's configured tests")
    p.add_argument("--max", type=int, default=20, help="mutants per module, a seeded sample (0: all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", type=int, action="append", metavar="N",
                   help="run mutant #N of the module (as printed; repeatable) instead of a sample")
    p.add_argument("--timeout", type=float, default=180, help="seconds per test run (over: killed)")
    p.add_argument("--list", action="store_true", help="print the modules and their tests, and exit")
    args = p.parse_args(argv)
    if args.list:
        for m, t in TARGETS.items():
            print(f"{m:<32} {t}")
        return 0
    modules = args.module or list(TARGETS)
    unknown = [m for m in modules if m not in TARGETS and not args.tests]
    if unknown:
        p.error(f"no tests configured for {', '.join(unknown)}: give --tests")
    totals = {"killed": 0, "survived": 0}
    survivors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="snaplab-mutate-") as tmp:
        copy = Path(tmp)
        copy_tree(copy)
        for module in modules:
            tests = args.tests or TARGETS[module]
            target = copy / module
            original = target.read_text()
            ids = mutants(target)
            k = min(args.max or len(ids), len(ids))
            chosen = sorted(args.only or random.Random(args.seed).sample(range(len(ids)), k))
            print(f"== {module}: {len(ids)} mutants, running {len(chosen)}; tests: {tests}", flush=True)
            base, secs = run_tests(copy, tests, args.timeout)
            if base != "pass":
                print(f"   the unmutated tests do not pass ({base}): fix that first", flush=True)
                return 2
            print(f"   unmutated: pass ({secs:.1f} s)", flush=True)
            try:
                for n in chosen:
                    mid = ids[n]
                    mutated = apply(original, mid, str(target))
                    target.write_text(mutated)
                    result, secs = run_tests(copy, tests, args.timeout)
                    target.write_text(original)
                    verdict = "survived" if result == "pass" else "killed"
                    totals[verdict] += 1
                    where = f"{module}:{mid.line_number + 1} #{n}"
                    change = one_line_diff(original, mutated)
                    print(f"   {verdict:<8} {where:<36} ({result}, {secs:.1f} s)  {change}", flush=True)
                    if verdict == "survived":
                        survivors.append(f"{where}  {change}")
            finally:
                target.write_text(original)
    done = totals["killed"] + totals["survived"]
    score = 100 * totals["killed"] / done if done else 0.0
    print(f"== score: {totals['killed']}/{done} killed ({score:.0f}%); survivors: {len(survivors)}")
    for s in survivors:
        print(f"   {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
