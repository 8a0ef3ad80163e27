#!/usr/bin/env python3
"""Crash soak: the harness of tests/test_crash.py for many kills (default 200).

    python3 bench/soak_crash.py                # 200 SIGKILLs of the array daemon (~3-4 min)
    python3 bench/soak_crash.py --kills 1000 --seed 42
    python3 bench/soak_crash.py --quick        # 5 kills (seconds)

Each cycle: a worker process does acknowledged writes (1 B-3 MiB, unaligned, streamed in chunks) and
snapshot operations (create named/cyclic, delete, guard, restore + wait, link/unlink, RW writes through
the LVs) against the real daemon over mTLS, journalling each op before and after (fsync); the daemon is
SIGKILLed after a random 20-300 ms; it is restarted and every BV, SV and LV is compared with the model
rebuilt from the journal (the in-flight op may have happened, not happened, or, for a write, happened for
a prefix of its chunks), and the engine invariants are checked. See tests/harness/crash_harness.py.

Half the kills (``--commit-share``) are placed inside the commit window: the daemon runs with the
commit-pause debug hook (array/durability.py), which stops a transaction once its data is synced and
before its COMMIT; the harness kills it there.

Prints one progress line per kill and a final summary (kills, share inside the commit window, ops
acknowledged, verifications, failures, acknowledged writes lost). Not a benchmark (no ratio; run_all.py does not run it). Exit status 1 if any failure, 0
otherwise. By default it goes on after a failure (resynchronising its model from the array) to count
them all; --stop-on-failure stops at the first. The work folder is removed unless --keep or a failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

# The harness is test support: it lives in tests/harness/ (a package on the tests folder's path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness import crash_harness as ch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=200, help="SIGKILLs of the daemon (default 200)")
    p.add_argument("--quick", action="store_true", help="5 kills: proves the script runs")
    p.add_argument("--seed", type=int, default=None, help="replay a run (default: random, printed)")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failure")
    p.add_argument("--keep", action="store_true", help="keep the work folder (journals, logs, state)")
    p.add_argument("--progress", type=int, default=1, metavar="N", help="a progress line every N kills")
    p.add_argument("--dir", default=None, help="work folder (default: a new temporary one)")
    p.add_argument("--commit-share", type=float, default=0.5, metavar="F",
                   help="share of kills placed inside the commit window (default 0.5)")
    args = p.parse_args(argv)
    kills = 5 if args.quick else args.kills
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="snaplab-soak-crash-"))
    failed = True
    with ch.CrashHarness(root, seed=args.seed, stop_on_failure=args.stop_on_failure,
                         commit_share=args.commit_share) as h:
        try:
            stats = h.run(kills, progress_every=args.progress)
            failed = bool(stats.failures)
        except ch.CrashFailure as exc:
            print(f"soak_crash: stopped: {exc}")
        print("== soak_crash: " + h.summary())
        s = h.stats
        lost = "0" if not s.failures else f"see the {len(s.failures)} failures"
        print(f"== soak_crash: kills {s.kills}, inside the commit window {s.commit_kills} "
              f"({100 * s.commit_kills / max(1, s.kills):.0f}%), acknowledged writes {s.writes_acked}, "
              f"acknowledged writes lost {lost}")
        for f in h.stats.failures[:20]:
            print(f"   failure: {f.splitlines()[0][:400]}")
    print(f"== soak_crash: {'FAIL' if failed else 'PASS'}" + (f" (work folder kept: {root})" if failed or args.keep else ""))
    if not failed and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
