#!/usr/bin/env python3
"""Fuzz soak of the lab's services: 10,000 requests each to the manager, an agent's socket and the command lines.

    python3 bench/fuzz_services.py                       # 10,000 per service (about 10-20 min)
    python3 bench/fuzz_services.py --requests 50000 --seed 7
    python3 bench/fuzz_services.py --quick               # 300 per service (a minute)
    python3 bench/fuzz_services.py --only manager,agent

Starts the guide's reference lab (``snaplab lab up``, deploy/default_lab.toml) in a temporary folder
and, per service, sends seeded fuzz requests (tests/harness/fuzz_inputs.py: garbage bytes, mutated
and adversarial protobuf, odd command lines; nothing that could legitimately change what the backup
procedure needs), then audits (tests/harness/fuzz_services.py): daemon deaths, tracebacks in
replies and logs, log lines beyond one per request, errors without an iSM id, RSS growth of every
daemon, and the guide's backup procedure 2.2.1 run afterwards. The command lines go through the
command processes' ``main`` in one worker process (``--requests`` of them) and ``--spawns`` as
console scripts of their own.

Prints one block per service and a final PASS/FAIL line. Not a benchmark (no ratio; run_all.py does
not run it). Exit status 1 on any failure. The lab folder is removed unless --keep or a failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

# The harness is test support: it lives in tests/ (labtools and the harness package).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness.fuzz_services import (
    Audit,
    backup_procedure,
    fuzz_agent,
    fuzz_command_lines,
    fuzz_manager,
)
from labtools import LabRun

SERVICES = ("manager", "agent", "commands")
RSS_LIMIT = 64 * 1000 * 1000  # bytes a daemon may grow by during one service's run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=10_000, help="requests per service (default 10000)")
    p.add_argument(
        "--spawns", type=int, default=200, help="command lines run as processes of their own (default 200)"
    )
    p.add_argument("--quick", action="store_true", help="300 requests and 10 spawns per service")
    p.add_argument("--seed", type=int, default=1, help="seed of the inputs (default 1)")
    p.add_argument(
        "--only", default=",".join(SERVICES), help=f"services, comma-separated (default {','.join(SERVICES)})"
    )
    p.add_argument(
        "--host", default="test01", help="the host whose agent and commands are fuzzed (default test01)"
    )
    p.add_argument("--keep", action="store_true", help="keep the lab folder (its daemons are stopped)")
    args = p.parse_args(argv)
    requests, spawns = (300, 10) if args.quick else (args.requests, args.spawns)
    only = [s for s in args.only.split(",") if s]
    root = Path(tempfile.mkdtemp(prefix="snaplab-fuzz-"))
    scratch = root / "scratch"
    scratch.mkdir()
    run = LabRun(root)
    failed = False
    try:
        t0 = time.monotonic()
        up = run("lab", "up", timeout=300)
        if up.returncode != 0:
            print(f"fuzz_services: lab up failed:\n{up.stdout}{up.stderr}")
            return 1
        print(
            f"fuzz_services: reference lab up in {time.monotonic() - t0:.1f} s ({run.folder}); seed {args.seed}"
        )
        lab = run.folder
        for i, service in enumerate(only):
            audit = Audit.start(lab)
            seed = args.seed * 100 + i
            budget = max(600.0, requests * 0.5)
            if service == "manager":
                out = fuzz_manager(lab, requests=requests, seconds=budget, seed=seed)
            elif service == "agent":
                out = fuzz_agent(
                    lab, args.host, requests=requests, seconds=budget, seed=seed, scratch=scratch
                )
            elif service == "commands":
                out = fuzz_command_lines(
                    lab,
                    args.host,
                    requests=requests,
                    spawns=spawns,
                    seconds=budget,
                    seed=seed,
                    scratch=scratch,
                )
            else:
                print(f"fuzz_services: unknown service {service!r} (one of {', '.join(SERVICES)})")
                return 2
            problems, figures = audit.after(out.requests, rss_limit=RSS_LIMIT)
            procedure = backup_procedure(lab, root)
            bad = out.problems + problems + procedure
            failed = failed or bool(bad)
            print(f"== {out.summary()}")
            print(
                f"   deaths {figures['deaths']}, tracebacks in replies {sum('traceback' in x for x in out.problems)}, "
                f"tracebacks in logs {figures['tracebacks_in_logs']}, errors without an iSM id "
                f"{sum('iSM id' in x for x in out.problems)}"
            )
            print(f"   log lines {figures['log_lines']}")
            print(f"   RSS growth (MB) {figures['rss_growth_mb']}")
            print(f"   backup procedure 2.2.1 afterwards: {'passed' if not procedure else 'FAILED'}")
            for line in bad[:20]:
                print(f"   problem: {line}")
    finally:
        run.teardown()
    print(
        f"== fuzz_services: {'FAIL' if failed else 'PASS'}"
        + (f" (lab folder kept: {root})" if failed or args.keep else "")
    )
    if not failed and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
