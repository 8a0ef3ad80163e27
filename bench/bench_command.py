#!/usr/bin/env python3
"""``iSMsc_create`` as a whole command process vs a minimal Python process making one gRPC call.

A small lab is started with ``snaplab.deploy.lab.Lab.up`` (what ``snaplab lab up FILE --lab DIR`` does)
in a temporary folder: one array, the manager and the agent of host ``business01``, which sees
``bv001`` (64 MiB, WN, 4 SVs) by access control and has made its volume list (``iSMvollist -cr``).
The subject is ``iSMsc_create -bv bv001 -bvflg ld -cyclic`` run as an operator runs it: its console
script (beside this interpreter) as a process of its own with ``SNAPLAB_HOST=business01`` and
``SNAPLAB_LAB``, timed from spawn to exit. Before each one, untimed, ``iSMsc_delete -bv bv001 -bvflg ld
-auto`` frees the SV the cyclic create takes next, so every create succeeds.

The reference is ``python3 -c PROGRAM`` with the same interpreter and site-packages: import grpc and
the generated Echo stubs, make one ``Echo.Ping`` (256-byte payload) over a Unix socket to an Echo server
in another process (served insecurely, as the agent serves its commands), exit. The two alternate (order
flipped each repetition); medians of 20 each (--quick 2, no warm-up). Target: create / reference <= 2.

Context figures (same loop): ``python3 -c pass``, and the same create sent to the agent from this
process (``snaplab.agent.cli.exec_command``: the agent's and the daemons' share of the command, no
process start). ``--profile``: ``python3 -X importtime`` of the command's imports (the cumulative
import time of the heaviest modules) and a cProfile of one in-process create client call.
The lab is torn down (``Lab.down``) and removed at the end, also on errors.
"""

from __future__ import annotations

import subprocess
import sys

import common as c
import control_common as cc

TARGET = 2.0
HOST = "business01"
PAYLOAD = 256
CREATE = ["iSMsc_create", "-bv", "bv001", "-bvflg", "ld", "-cyclic"]
DELETE = ["iSMsc_delete", "-bv", "bv001", "-bvflg", "ld", "-auto"]

LAB = """\
[lab]
description = "bench_command: one host, one BV"

[[arrays]]
name = "Bench_Array"
ports = ["00h/00h P0"]
pools = [{ number = 0, kind = "basic", capacity = "16GiB" }, { number = 1, kind = "dynamic", capacity = "16GiB" }]
sra = [{ pool = 1, capacity = "2GiB", name = "SDV1" }]
lds = [{ number = "0030h", name = "bv001", format = "WN", capacity = "64MiB", pool = 0 }]
generations = [{ bv = "bv001", pool = 1, count = 4 }]
licences = ["DynamicSnapVolume", "AccessControl"]

[[hosts]]
name = "business01"
role = "business"
wwns = ["10:00:00:00:c9:2a:01:01"]
ports = ["P0"]

[[access]]
lds = ["bv001"]
ports = ["P0"]

[[setup]]
host = "business01"
commands = ["iSMvollist -cr"]
"""


def import_profile(lab: cc.LabRun, top: int = 25) -> None:
    """``python3 -X importtime`` of the create command: its heaviest imports (cumulative us)."""
    script = cc.console_script(CREATE[0])
    proc = subprocess.run([sys.executable, "-X", "importtime", script, *CREATE[1:]], capture_output=True,
                          text=True, env=lab.env(HOST), cwd=lab.lab_dir, timeout=120, check=False)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, raw = line[len("import time:"):].split("|")
        rows.append((int(cum_us), int(self_us), raw.rstrip()))
    top_level = min((len(r) - len(r.lstrip()) for _c, _s, r in rows), default=0)
    total = sum(cum for cum, _s, r in rows if len(r) - len(r.lstrip()) == top_level)
    print(f"--- profile: imports of the {CREATE[0]} process (python -X importtime; top-level total "
          f"{total / 1e3:.1f} ms; exit {proc.returncode})")
    print(f"{'cumulative ms':>14} {'self ms':>8}  module")
    for cum, self_us, raw in sorted(rows, reverse=True)[:top]:
        print(f"{cum / 1e3:14.1f} {self_us / 1e3:8.1f}  {raw.strip()}")
    print()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    reps = args.reps or (2 if args.quick else 20)
    rep = c.Report("bench_command", "iSMsc_create as a command process vs a minimal gRPC client process", args)
    rep.line(f"{reps} of each, alternated; command: {' '.join(CREATE)} on {HOST}; reference: python3 -c "
             f"(import grpc + Echo stubs, one Echo.Ping of {PAYLOAD} B over a Unix socket)")

    from snaplab.agent.cli import exec_command

    with cc.LabRun(LAB, "cmd") as lab:
        rep.line(f"lab up in {lab.up_seconds:.1f} s ({lab.lab_dir}); interpreter {sys.executable}")
        with cc.UnixEcho(lab.lab_dir / "echo") as echo:
            echo_cmd = [sys.executable, "-c", cc.ECHO_CLIENT, str(echo.socket), str(PAYLOAD)]
            pass_cmd = [sys.executable, "-c", "pass"]

            def spawn(cmd: list[str]) -> float:
                t = c.now()
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                                      stdin=subprocess.DEVNULL)
                dt = c.now() - t
                if proc.returncode != 0:
                    raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}: {proc.stderr[-2000:]}")
                return dt

            def create() -> float:
                lab.run(HOST, DELETE)  # untimed: frees the SV the next cyclic create takes
                dt, proc = lab.run(HOST, CREATE)
                assert "iSM19010" in proc.stdout, proc.stdout
                return dt

            def in_process() -> float:
                lab.run(HOST, DELETE)
                t = c.now()
                out, err, code = exec_command(lab.lab_dir, HOST, CREATE, timeout=60)
                dt = c.now() - t
                if code != 0:
                    raise RuntimeError(f"in-process create exited {code}: {out}{err}")
                return dt

            if not args.quick:  # warm-up: page cache, the agent's and daemons' first calls
                create()
                spawn(echo_cmd)
                spawn(pass_cmd)
            t_cmd: list[float] = []
            t_ref: list[float] = []
            t_pass: list[float] = []
            t_inproc: list[float] = []
            for k in range(reps):
                if k % 2:
                    t_ref.append(spawn(echo_cmd))
                    t_cmd.append(create())
                else:
                    t_cmd.append(create())
                    t_ref.append(spawn(echo_cmd))
                t_pass.append(spawn(pass_cmd))
                t_inproc.append(in_process())

            rep.figure(f"{CREATE[0]} process (spawn to exit)", c.spread(t_cmd))
            rep.figure("python3 -c: grpc + one Echo.Ping (reference)", c.spread(t_ref))
            rep.figure("context: python3 -c pass", c.spread(t_pass))
            rep.figure("context: the same create, in-process client", c.spread(t_inproc))
            m_cmd, m_ref = c.median(t_cmd), c.median(t_ref)
            rep.line(f"the command's process start-up and exit (its time less the in-process create): "
                     f"{c.fmt_s(m_cmd - c.median(t_inproc))}; the reference's: {c.fmt_s(m_ref)}")
            rep.ratio("command_create", m_cmd / m_ref, "<=", TARGET,
                      f"median {CREATE[0]} process {c.fmt_s(m_cmd)} / median python3 -c gRPC call {c.fmt_s(m_ref)}")
            if args.profile:
                import_profile(lab)
                lab.run(HOST, DELETE)
                c.profile(lambda: exec_command(lab.lab_dir, HOST, CREATE, timeout=60),
                          "one in-process create (this process: the client side only)", top=8)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
