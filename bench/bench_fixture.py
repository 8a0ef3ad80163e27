#!/usr/bin/env python3
"""The pytest plugin's ``lab`` fixture: its overhead per test (a rollback to the starting checkpoint).

An inner pytest session (a process of its own, on a project with no conftest: only the installed
plugin) runs N tests on the reference lab (``--quick`` 3, else 12) that each change the lab the way
a test does: 1 MiB written to G:, ``iSMrc_flush``, ``iSMrc_umount``, ``iSMsc_create -cyclic``,
``iSMrc_mount``. pytest's own ``--durations`` gives each test's setup time: for ``lab`` that is
the plugin's reset (chaos rules cleared, the whole lab rolled back). The first test's setup also
starts the session's lab and is left out. Target: median setup / 0.5 s <= 1 (issue 10).

Context, same session (not in ``--quick``): the setup of a fixture that makes a fresh lab per test
with ``lab_factory()`` (what a suite without checkpoints pays: a new lab, as ``down`` + ``up
--fresh``), 3 tests; the rollback / fresh ratio is printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import common as c

TARGET_S = 0.5

TESTS = '''
    import pytest

    MiB = 1 << 20


    def change(lab, k):
        lab.host("business01").write_file(f"G:/data/{k}.bin", bytes([k % 256]) * MiB)
        for line in ("iSMrc_flush -drv G:", "iSMrc_umount -drv G:",
                     "iSMsc_create -bv bv001 -bvflg ld -cyclic", "iSMrc_mount -drv G:"):
            lab.run("business01", line).check()


    @pytest.mark.parametrize("k", range({n}))
    def test_rolled_back(lab, k):
        assert [g.sv for g in lab.array().query("bv001").live] == ["sv001_01"]
        change(lab, k)


    @pytest.fixture
    def fresh(lab_factory):
        return lab_factory()


    @pytest.mark.parametrize("k", range({fresh}))
    def test_fresh(fresh, k):
        change(fresh, k)
'''

DURATION = re.compile(r"^(\d+\.\d+)s setup\s+\S+::(test_\w+)\[(\d+)\]$", re.MULTILINE)


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    n = args.reps or (3 if args.quick else 12)
    fresh = 0 if args.quick else 3
    rep = c.Report("bench_fixture", "the lab fixture's overhead per test (rollback) in a pytest session", args)
    rep.line(f"{n} tests on `lab` (the first, which starts the lab, left out), {fresh} on a fresh lab_factory() lab")
    work = Path(tempfile.mkdtemp(prefix="snlb", dir="/tmp"))  # short: the agents' socket paths
    try:
        proj = work / "proj"
        proj.mkdir()
        (proj / "pytest.ini").write_text("[pytest]\n")
        (proj / "test_overhead.py").write_text(textwrap.dedent(TESTS.replace("{n}", str(n)).replace("{fresh}", str(fresh))))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in ("SNAPLAB_LAB", "SNAPLAB_HOST")}
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        t = c.now()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--durations=0",
             "--durations-min=0", f"--snaplab-base={work}", "-p", "no:randomly"],
            cwd=proj, env=env, capture_output=True, text=True, timeout=900, check=False,
        )
        wall = c.now() - t
        if proc.returncode != 0:
            print(proc.stdout[-4000:] + proc.stderr[-2000:])
            raise SystemExit(f"bench_fixture: the inner session failed (exit {proc.returncode})")
        setups: dict[str, dict[int, float]] = {}
        for secs, test, k in DURATION.findall(proc.stdout):
            setups.setdefault(test, {})[int(k)] = float(secs)
        rolled = [s for k, s in sorted(setups.get("test_rolled_back", {}).items()) if k > 0]
        if len(rolled) < n - 1:
            raise SystemExit(f"bench_fixture: found {len(rolled)} setup durations in:\n{proc.stdout[-3000:]}")
        first = setups["test_rolled_back"].get(0, 0.0)
        rep.figure("session: wall", f"{wall:.1f} s")
        rep.figure("first test's setup (starts the lab)", f"{first:.2f} s")
        rep.figure("`lab` setup per test (rollback)", c.spread(rolled))
        m = c.median(rolled)
        if fresh:
            f = list(setups.get("test_fresh", {}).values())
            rep.figure("context: fresh lab per test (lab_factory)", c.spread(f))
            rep.figure("context: rollback / fresh lab (medians)", f"{m / c.median(f):.3f}")
        rep.ratio("fixture_rollback_vs_0.5s", m / TARGET_S, "<=", 1.0,
                  f"median `lab` setup {c.fmt_s(m)} / {TARGET_S} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
