#!/usr/bin/env python3
"""``iSMvollist -cr`` as a command process on a host that sees 1,024 LDs, against the 1 s target.

A lab generated here is started with ``snaplab.deploy.lab.Lab.up`` in a temporary folder: one array
with 1,024 + 1 small LDs (--lds N) (16 MiB, usage format WN): every 4th a BV with one SV, one CV (``attr = "cv"``),
the others plain IVs. Host ``many01`` is cabled to port P0, which access control gives the 1,024 LDs;
host ``one01`` to port P1, which gets the last LD only. Setup (DISKPART through the agent) gives every
16th of many01's disks one primary partition and formats 4 of those NTFS with drive letters, so the
list holds disks, partitions, volume names and mount points; then ``iSMvollist -cr`` once on each.
(Only every 16th: DISKPART's ``create partition`` makes the agent rescan every disk, ~0.3 s each time
with 1,024 LDs, so partitioning every 4th disk would make the set-up very long.)

Measured: ``iSMvollist -cr`` run as an operator runs it, its console script as a process of its own
(``SNAPLAB_HOST``, ``SNAPLAB_LAB``), spawn to exit; 7 runs (--quick 2, with 24 LDs instead of 1,024: more than one
request field's default 16 items, so the smoke test covers the batched ``ReadHeads`` scan)
alternated with the same command on ``one01`` (one LD: the fixed cost, printed as context) and with the
same command sent from this process (no process start: the agent's share). The agent reads the LDs
the array lists for the host (``Array.Disks``) and each one's partition table (block 0 and, where
there is one, the partition's boot sector), then writes the list. Ratio: median / the 1 s target
(<= 1). The lab is torn down and removed at the end, also on errors.

``--profile``: the same command in this process on a copy of many01's agent state (a ``Host`` with
its certificate, against the running array), under cProfile.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import common as c
import control_common as cc

TARGET_SECONDS = 1.0
MANY, ONE = "many01", "one01"
PART_EVERY = 16  # every 16th disk of many01 gets a partition (DISKPART rescans every disk after each one)
FORMATTED = 4  # partitions formatted NTFS with a drive letter
LETTERS = "GHIJKLMN"


def lab_text(n: int) -> str:
    lds, gens, names = [], [], []
    for i in range(n):
        name = f"ld{i:03d}"
        attr = ', attr = "cv"' if i == n - 1 else ""
        lds.append(f'  {{ number = "{i:04x}h", name = "{name}", format = "WN", capacity = "16MiB", pool = 0{attr} }},')
        names.append(name)
        if i % 4 == 0 and i != n - 1:
            gens.append(f'{{ bv = "{name}", pool = 1, count = 1 }}')
    lone = f"ld{n:03d}"
    lds.append(f'  {{ number = "{n:04x}h", name = "{lone}", format = "WN", capacity = "16MiB", pool = 0 }},')
    partitioned = list(range(1, n + 1, PART_EVERY))  # disk numbers: the host's disks follow the LD numbers
    script = []
    for k, disk in enumerate(partitioned):
        script += [f"select disk {disk}", "create partition primary"]
        if k < FORMATTED:
            script += [f"format fs=ntfs quick label=v{disk:03d}", f"assign letter={LETTERS[k]}"]
    out = [
        "[lab]",
        f'description = "bench_vollist: a host that sees {n} LDs, and one that sees 1"',
        "[[arrays]]",
        'name = "Bench_Array"',
        'ports = ["00h/00h P0", "00h/01h P1"]',
        'pools = [{ number = 0, kind = "basic", capacity = "64GiB" }, { number = 1, kind = "dynamic", capacity = "64GiB" }]',
        'sra = [{ pool = 1, capacity = "4GiB", name = "SDV1" }]',
        "lds = [", *lds, "]",
        "generations = [" + ", ".join(gens) + "]",
        'licences = ["DynamicSnapVolume", "AccessControl"]',
        "[[hosts]]", f'name = "{MANY}"', 'role = "business"', 'wwns = ["10:00:00:00:c9:2a:01:01"]', 'ports = ["P0"]',
        "[[hosts]]", f'name = "{ONE}"', 'role = "business"', 'wwns = ["10:00:00:00:c9:2a:02:01"]', 'ports = ["P1"]',
        "[[access]]", "lds = [" + ", ".join(f'"{x}"' for x in names) + "]", 'ports = ["P0"]',
        "[[access]]", f'lds = ["{lone}"]', 'ports = ["P1"]',
        "[[setup]]", f'host = "{MANY}"', 'commands = ["DISKPART"]', 'stdin = """\n' + "\n".join(script) + '\n"""',
        "[[setup]]", f'host = "{MANY}"', 'commands = ["iSMvollist -cr"]',
        "[[setup]]", f'host = "{ONE}"', 'commands = ["iSMvollist -cr"]',
    ]
    return "\n".join(out) + "\n"


def profile_in_process(lab: cc.LabRun) -> None:
    """cProfile ``iSMvollist -cr`` run by a Host in this process on a copy of many01's state."""
    from snaplab.agent.daemon import load_commands, run_command
    from snaplab.agent.host import Host

    src = lab.lab_dir / "hosts" / MANY
    tmp = Path(tempfile.mkdtemp(prefix="snaplab-bench-vollist-host-"))
    try:
        shutil.copytree(src / "etc", tmp / "etc")
        with sqlite3.connect(src / "host.db") as a, sqlite3.connect(tmp / "host.db") as b:
            a.backup(b)
        load_commands()
        host = Host(MANY, tmp, certs=lab.lab_dir / "pki", role="business", wwns=["10:00:00:00:c9:2a:01:01"],
                    ports=["P0"])
        try:
            with host.command():
                out, err, code = run_command(host, ["iSMvollist", "-cr"])  # warm-up: channels
            assert code == 0, out + err
            prof = c.Profiler()
            t = c.now()
            with prof.on(), host.command():
                out, err, code = run_command(host, ["iSMvollist", "-cr"])
            dt = c.now() - t
            assert code == 0, out + err
            prof.report(f"iSMvollist -cr of {MANY} in this process, {dt * 1e3:.0f} ms under the profiler")
        finally:
            host.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--lds", type=int, default=None, help="LDs the host sees (default 1024, the issue 12 target; --quick 24)")

    args = c.parse_args(__doc__.splitlines()[0], extra, argv=argv)
    n = args.lds or (24 if args.quick else 1024)
    reps = args.reps or (2 if args.quick else 7)
    rep = c.Report("bench_vollist", f"iSMvollist -cr as a command process on a host that sees {n} LDs", args)
    parts = len(range(1, n + 1, PART_EVERY))
    rep.line(f"{reps} runs each, alternated: {MANY} ({n} LDs, {parts} partitioned, "
             f"{min(FORMATTED, parts)} formatted and mounted), {ONE} (1 LD), and {MANY} "
             "from this process (no process start)")

    from snaplab.agent.cli import exec_command

    with cc.LabRun(lab_text(n), "vol") as lab:
        rep.line(f"lab up in {lab.up_seconds:.1f} s (configuration of {n + 1} LDs and setup; {lab.lab_dir})")
        cmd = ["iSMvollist", "-cr"]

        def listed() -> int:
            _dt, proc = lab.run(MANY, ["iSMvollist", "-a"])
            return sum(1 for line in proc.stdout.splitlines() if line.startswith("Bench_Array"))

        def in_process() -> float:
            t = c.now()
            out, err, code = exec_command(lab.lab_dir, MANY, cmd, timeout=120)
            dt = c.now() - t
            if code != 0:
                raise RuntimeError(f"in-process iSMvollist -cr exited {code}: {out}{err}")
            return dt

        lab.run(MANY, cmd)  # warm-up
        lab.run(ONE, cmd)
        t_many: list[float] = []
        t_one: list[float] = []
        t_inproc: list[float] = []
        for k in range(reps):
            order = ("many", "one") if k % 2 == 0 else ("one", "many")
            for who in order:
                if who == "many":
                    t_many.append(lab.run(MANY, cmd)[0])
                else:
                    t_one.append(lab.run(ONE, cmd)[0])
            t_inproc.append(in_process())
        entries = listed()
        rep.figure(f"iSMvollist -cr, {MANY} ({n} LDs; {entries} list entries)", c.spread(t_many))
        rep.figure(f"context: iSMvollist -cr, {ONE} (1 LD)", c.spread(t_one))
        rep.figure(f"context: {MANY} from this process (no spawn)", c.spread(t_inproc))
        m = c.median(t_many)
        per_ld = (m - c.median(t_one)) / max(n - 1, 1)
        rep.line(f"cost per additional LD: {c.fmt_s(per_ld)} (median {MANY} less median {ONE}, over {n - 1} LDs)")
        rep.ratio("vollist_cr", m / TARGET_SECONDS, "<=", 1.0,
                  f"median iSMvollist -cr on a host with {n} LDs {c.fmt_s(m)} / target {TARGET_SECONDS:g} s")
        if args.profile:
            profile_in_process(lab)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
