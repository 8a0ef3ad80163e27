#!/usr/bin/env python3
"""``snaplab exec HOST -- CMD`` vs the bare command process ``CMD`` on the same host.

A small lab is started with ``snaplab.deploy.lab.Lab.up`` in a temporary folder (the lab of
bench_command.py: one array, the manager, host ``business01`` seeing ``bv001``). The command is
``iSMvollist -cr`` (it changes nothing, so every run does the same work). Timed, spawn to exit:

* subject: ``snaplab --lab DIR exec business01 -- iSMvollist -cr``, the ``snaplab`` console script
  beside this interpreter as a process of its own;
* reference: ``iSMvollist -cr``, its console script as a process of its own (``SNAPLAB_HOST``,
  ``SNAPLAB_LAB``): the same request to the same agent, without the lab tool around it.

Both do the same agent call, so the difference is what ``snaplab exec`` adds: its imports, its
argument parsing and the runtime check. The two alternate (order flipped each repetition); medians of
20 each (--quick 2). Context, same loop: ``python3 -c pass``. Target: median exec / median bare <= 1.2.
``--profile``: ``python3 -X importtime`` of the ``snaplab exec`` process (heaviest imports).
"""

from __future__ import annotations

import subprocess
import sys

import bench_command as bc
import common as c
import control_common as cc

TARGET = 1.2
HOST = bc.HOST
CMD = ["iSMvollist", "-cr"]


def import_profile(argv: list[str], env: dict[str, str], top: int = 20) -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True,
                          env=env, timeout=120, check=False, stdin=subprocess.DEVNULL)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, raw = line[len("import time:"):].split("|")
        rows.append((int(cum_us), int(self_us), raw.rstrip()))
    print(f"--- profile: imports of the snaplab exec process (python -X importtime; exit {proc.returncode})")
    print(f"{'cumulative ms':>14} {'self ms':>8}  module")
    for cum, self_us, raw in sorted(rows, reverse=True)[:top]:
        print(f"{cum / 1e3:14.1f} {self_us / 1e3:8.1f}  {raw.strip()}")
    print()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    reps = args.reps or (2 if args.quick else 20)
    rep = c.Report("bench_exec", "snaplab exec HOST -- CMD vs the bare command process", args)
    rep.line(f"{reps} of each, alternated; command: {' '.join(CMD)} on {HOST}")

    with cc.LabRun(bc.LAB, "exec") as lab:
        rep.line(f"lab up in {lab.up_seconds:.1f} s ({lab.lab_dir}); interpreter {sys.executable}")
        env = lab.env(HOST)
        exec_cmd = [cc.console_script("snaplab"), "--lab", str(lab.lab_dir), "exec", HOST, "--", *CMD]
        bare_cmd = [cc.console_script(CMD[0]), *CMD[1:]]
        pass_cmd = [sys.executable, "-c", "pass"]

        def spawn(cmd: list[str]) -> float:
            t = c.now()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env,
                                  cwd=lab.lab_dir, stdin=subprocess.DEVNULL)
            dt = c.now() - t
            if proc.returncode != 0:
                raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}: {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
            return dt

        if not args.quick:
            spawn(exec_cmd), spawn(bare_cmd), spawn(pass_cmd)
        t_exec: list[float] = []
        t_bare: list[float] = []
        t_pass: list[float] = []
        for k in range(reps):
            if k % 2:
                t_bare.append(spawn(bare_cmd))
                t_exec.append(spawn(exec_cmd))
            else:
                t_exec.append(spawn(exec_cmd))
                t_bare.append(spawn(bare_cmd))
            t_pass.append(spawn(pass_cmd))
        rep.figure(f"snaplab exec {HOST} -- {' '.join(CMD)} (spawn to exit)", c.spread(t_exec))
        rep.figure(f"{' '.join(CMD)} console script (reference)", c.spread(t_bare))
        rep.figure("context: python3 -c pass", c.spread(t_pass))
        m_exec, m_bare = c.median(t_exec), c.median(t_bare)
        rep.ratio("exec_vs_bare", m_exec / m_bare, "<=", TARGET,
                  f"median snaplab exec {c.fmt_s(m_exec)} / median bare command {c.fmt_s(m_bare)}")
        if args.profile:
            import_profile(exec_cmd, env)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
