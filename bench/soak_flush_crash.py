#!/usr/bin/env python3
"""Flush crash soak: the harness of tests/test_flush_crash.py for many kills (default 60).

    python3 bench/soak_flush_crash.py                 # 60 SIGKILLs of the agent mid-flush (~4 min)
    python3 bench/soak_flush_crash.py --kills 200 --seed 42
    python3 bench/soak_flush_crash.py --quick         # 3 kills (seconds)

Each cycle changes the files of G: (a real agent daemon, array and manager: real processes, mTLS),
runs ``iSMrc_flush -drv G:`` and SIGKILLs the agent inside the flush's page writes: two kills in three
at a pause the debug hook ``flush_pause_at`` places (after K pages of the free-page write, of the
journal, or of the in-place write; so the kill lands inside that window every time), one in three
after a random delay. The agent is restarted and verified: G: holds exactly the last completed flush
or the killed one, no file flushed before is lost (sha256), ``CHKDSK G:`` finds no problems. See
tests/harness/flush_crash.py.

Prints one line per kill and the summary (kills per placement, outcomes, journal replays, files
checked and lost). Not a benchmark (no ratio; run_all.py does not run it). Exit status 1 if any
failure or any lost file. The work folder is removed unless --keep or a failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

# The harness is test support: it lives in tests/harness/ (a package on the tests folder's path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness.flush_crash import FlushCrashHarness  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=60, help="SIGKILLs of the agent (default 60)")
    p.add_argument("--quick", action="store_true", help="3 kills: proves the script runs")
    p.add_argument("--seed", type=int, default=None, help="replay a run (default: random, printed)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, state)")
    p.add_argument("--dir", default=None, help="work folder (default: a new temporary one)")
    args = p.parse_args(argv)
    kills = 3 if args.quick else args.kills
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="snaplab-soak-flush-"))
    with FlushCrashHarness(root, seed=args.seed) as h:
        print(f"== soak_flush_crash: {kills} kills, seed {h.seed}, work folder {root}", flush=True)
        stats = h.run(kills, progress=lambda i, line: print(f"   kill {i:3d}: {line}", flush=True))
    failed = bool(stats.failures) or stats.files_lost > 0
    print("== soak_flush_crash: " + stats.summary())
    for f in stats.failures[:20]:
        print(f"   failure: {f.splitlines()[0][:400]}")
    print(
        f"== soak_flush_crash: {'FAIL' if failed else 'PASS'}"
        + (f" (work folder kept: {root})" if failed or args.keep else "")
    )
    if not failed and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
