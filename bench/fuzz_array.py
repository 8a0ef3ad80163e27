#!/usr/bin/env python3
"""Array fuzz soak: tests/security/test_fuzz_array.py's harness for many requests (default 10,000).

    python3 bench/fuzz_array.py                       # 10,000 hostile requests (~5-8 min on 2 cores)
    python3 bench/fuzz_array.py --requests 50000 --seed 42
    python3 bench/fuzz_array.py --quick               # 200 requests (seconds)

The real array daemon (mTLS) on a small lab; every Array RPC gets requests drawn by Hypothesis
(tests/harness/fuzz_proto.py, seeded): bytes that are no message, truncated and bit-flipped
encodings, and well-formed messages with hostile values (names it knows mixed with empty, huge,
control-character and non-ASCII ones, integers at and past every boundary, NaN, deep repeated
fields), as admin, manager, registered and unknown hosts and a certificate of role array. Then:
health, the log (tracebacks, lines per request), the metadata's invariants after a graceful stop,
the state after a restart, a backup procedure, RSS growth (see tests/harness/fuzz_array.py).

Prints a progress line per 1,000 requests and a summary (requests, undecodable ones, daemon
deaths, tracebacks, log lines, RSS before/after, the answers by status). Not a benchmark (no
ratio; run_all.py does not run it). Exit status 1 on any problem. The work folder is removed
unless --keep or a problem.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

# The harness is test support: it lives in tests/harness/ (a package on the tests folder's path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import fuzz_array  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=10_000, help="requests to send (default 10,000)")
    p.add_argument("--seconds", type=float, default=3600, help="stop sending after this long (default 3600)")
    p.add_argument("--quick", action="store_true", help="200 requests: proves the script runs")
    p.add_argument("--seed", type=int, default=None, help="replay a run (default: random, printed)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (state, daemon log)")
    args = p.parse_args(argv)
    requests = 200 if args.quick else args.requests
    work = Path(tempfile.mkdtemp(prefix="snaplab-fuzz-array-"))
    ok = False
    try:
        stats, problems, seed = fuzz_array.run(work, requests=requests, seconds=args.seconds, seed_value=args.seed)
        print(stats.summary())
        print(f"seed {seed}; by method: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.by_method.items())))
        for line in problems[:50]:
            print(f"PROBLEM {line}")
        ok = not problems
        print(f"== fuzz_array: {'PASS' if ok else f'FAIL ({len(problems)} problems)'}")
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work folder kept: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
