#!/usr/bin/env python3
"""Lab rollback (issue 10 part 3) vs starting the lab anew: what resetting a lab between tests costs.

The guide's reference lab (deploy/default_lab.toml: one array, the manager, four agents, its setup
commands) is started with ``snaplab.deploy.lab.Lab.up`` in a temporary folder and checkpoint
``bench`` is taken. Rounds alternate:

- rollback after 64 MiB changed (--quick 4 MiB): business01 writes that much in new files on G:
  and flushes them (the volume's blocks and the host's cache both change), then
  ``snaplab.deploy.checkpoints.rollback`` is timed;
- the reference, in the same run: ``Lab.down`` + ``Lab.up(fresh=True)`` (``snaplab lab down`` and
  ``snaplab lab up --fresh``), which is how a lab was reset before checkpoints; the checkpoint is
  taken again afterwards (not timed).

Then the fixture's cost (the pytest plugin's ``lab`` fixture rolls back before each test):
rollback with nothing changed and with little changed (one small file written and flushed, one
snapshot created), 10 each (--quick 3), timed in process as the fixture calls it, and for context
``snaplab lab rollback`` as a command (its process start included).

(--quick: the reference is the lab's first start, ``lab up`` in a new folder, so the smoke test
starts one lab.) Targets: median rollback after 64 MiB / median down + up --fresh <= 0.2; median fixture rollback
(nothing or little changed) <= 0.5 s. Medians of 3 rounds per side (--quick 1). The lab is stopped
and its folder removed at the end, also on errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import common as c
import control_common as cc

TARGET_RATIO = 0.2
TARGET_FIXTURE_S = 0.5
CHUNK = 4 * c.MiB


def _change(lab_dir: Path, total: int, seed: int) -> None:
    """``total`` bytes of new files on business01's G:, flushed to the volume."""
    g = lab_dir / "hosts" / "business01" / "mnt" / "G"
    data = c.Data(seed, variants=4, size=CHUNK)
    for i in range(max(1, total // CHUNK)):
        (g / f"bench-{seed}-{i:03d}.bin").write_bytes(data.next(min(CHUNK, total)))
    _cmd(lab_dir, "business01", "iSMrc_flush", "-drv", "G:")


def _cmd(lab_dir: Path, host: str, *argv: str) -> None:
    env = {**os.environ, "SNAPLAB_HOST": host, "SNAPLAB_LAB": str(lab_dir)}
    proc = subprocess.run(
        [cc.console_script(argv[0]), *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{host}> {' '.join(argv)} failed: {proc.stdout}{proc.stderr}")


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--changed-mib", type=int, default=None, help="MiB changed before the timed rollback")

    args = c.parse_args(__doc__.splitlines()[0], extra, argv)
    rep = c.Report("bench_checkpoint", "lab rollback vs lab down + up --fresh", args)
    changed = (args.changed_mib or (4 if args.quick else 64)) * c.MiB
    rounds = args.reps or (1 if args.quick else 3)
    fixture_n = 3 if args.quick else 10

    from snaplab.deploy import checkpoints
    from snaplab.deploy.folder import default_lab_file
    from snaplab.deploy.lab import Lab, LabSpec

    text = default_lab_file().read_text(encoding="utf-8")
    run = cc.LabRun(text, "ckpt")
    try:
        run.start()
        lab_dir = run.lab_dir
        rep.figure("lab up (the default lab, first start)", c.fmt_s(run.up_seconds))
        checkpoints.take(lab_dir, "bench")
        rollbacks, fresh, undone = [], [], []
        for r in range(rounds):
            _change(lab_dir, changed, seed=r + 1)
            t0 = c.now()
            replies = checkpoints.rollback_parts(lab_dir, "bench")
            rollbacks.append(c.now() - t0)
            undone.append(replies)
            if args.quick:  # the smoke test's time: the first start is the reference (a new folder's up)
                fresh.append(run.up_seconds)
                continue
            lab = Lab(lab_dir)
            t0 = c.now()
            lab.down()
            lab.up(LabSpec.load(default_lab_file()), fresh=True)
            fresh.append(c.now() - t0)
            checkpoints.take(lab_dir, "bench")
        rep.figure(f"rollback after {c.fmt_size(changed)} changed", c.spread(rollbacks))
        rep.figure("lab up (--quick)" if args.quick else "lab down + lab up --fresh", c.spread(fresh))
        last = undone[-1]
        for key in sorted(last):
            rep.figure(f"  {key} undid", f"{last[key].changes} changes, {last[key].bytes} bytes copied back")

        nothing, little = [], []
        for i in range(fixture_n):
            t0 = c.now()
            checkpoints.rollback(lab_dir, "bench")
            nothing.append(c.now() - t0)
            g = lab_dir / "hosts" / "business01" / "mnt" / "G"
            (g / f"little-{i}.txt").write_text("a test's few bytes\n" * 10)
            _cmd(lab_dir, "business01", "iSMrc_flush", "-drv", "G:")
            _cmd(lab_dir, "business01", "iSMsc_create", "-bv", "bv001", "-bvflg", "ld", "-cyclic")
            t0 = c.now()
            checkpoints.rollback(lab_dir, "bench")
            little.append(c.now() - t0)
        cli = []
        for _ in range(max(1, fixture_n // 3)):
            t0 = c.now()
            subprocess.run(
                [cc.console_script("snaplab"), "--lab", str(lab_dir), "lab", "rollback", "bench"],
                check=True,
                capture_output=True,
                timeout=120,
            )
            cli.append(c.now() - t0)
        rep.figure("fixture rollback, nothing changed", c.spread(nothing))
        rep.figure("fixture rollback, a file and a snapshot", c.spread(little))
        rep.figure("`snaplab lab rollback` command (context)", c.spread(cli))

        rep.ratio(
            "rollback_vs_fresh_up",
            c.median(rollbacks) / c.median(fresh),
            "<=",
            TARGET_RATIO,
            f"rollback after {c.fmt_size(changed)} / lab down + up --fresh (medians)",
        )
        fixture = c.median(nothing + little)
        rep.ratio(
            "fixture_rollback_seconds",
            fixture / TARGET_FIXTURE_S,
            "<=",
            1.0,
            f"median fixture rollback {c.fmt_s(fixture)} / {TARGET_FIXTURE_S} s budget",
        )
    finally:
        run.stop()
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
