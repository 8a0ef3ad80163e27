#!/usr/bin/env python3
"""Consistency group create of 5 BVs vs one single create and vs 5 single creates in sequence.

A lab (``snaplab.deploy.lab.Lab.up`` in a temporary folder): one array with five 16 MiB BVs of 4 SVs
each in consistency group ``DB`` (the lab file's ``groups``), the manager and host ``business01``,
which sees the five BVs and has its volume list. Subject: ``iSMsc_create -cg DB -cyclic`` as an
operator runs it (its console script, a process of its own, spawn to exit): one routed ``Group``
operation, the manager checking the host reaches every member, the array snapshotting all five in one
transaction. References, the guide's way, routed the same way through the manager: one
``iSMsc_create -bv DB_DATA_BV -bvflg ld -cyclic``, and the five BVs' creates one after the other.
The three alternate (order rotated each repetition); cyclic creates reuse the oldest generation, so
no clean-up is needed between them. Also the same three sent to the agent from this process
(``snaplab.agent.cli.exec_command``: no process start), as context and a second ratio.
Targets: group / one single <= 1.5 (command processes and in-process); group / five singles <= 1.
"""

from __future__ import annotations

import sys

import common as c
import control_common as cc

HOST = "business01"
BVS = ["DB_DATA_BV", "DB_REDO1_BV", "DB_REDO2_BV", "DB_CTL_BV", "DB_ARCHIVE_BV"]
GROUP = ["iSMsc_create", "-cg", "DB", "-cyclic"]
SINGLES = [["iSMsc_create", "-bv", bv, "-bvflg", "ld", "-cyclic"] for bv in BVS]
TARGET = 1.5

LAB = (
    """\
[lab]
description = "bench_group_create: one host, five BVs in a consistency group"

[[arrays]]
name = "Bench_Array"
ports = ["00h/00h P0"]
pools = [{ number = 0, kind = "basic", capacity = "4GiB" }, { number = 1, kind = "dynamic", capacity = "4GiB" }]
sra = [{ pool = 1, capacity = "1GiB", name = "SDV1" }]
"""
    + "lds = ["
    + ", ".join(f'{{ name = "{bv}", capacity = "16MiB", pool = 0 }}' for bv in BVS)
    + "]\n"
    + "generations = ["
    + ", ".join(f'{{ bv = "{bv}", pool = 1, count = 4 }}' for bv in BVS)
    + "]\n"
    + 'groups = [{ name = "DB", bvs = ['
    + ", ".join(f'"{bv}"' for bv in BVS)
    + "] }]\n"
    + """licences = ["DynamicSnapVolume", "AccessControl"]

[[hosts]]
name = "business01"
role = "business"
wwns = ["10:00:00:00:c9:2a:01:01"]
ports = ["P0"]

[[access]]
"""
    + "lds = ["
    + ", ".join(f'"{bv}"' for bv in BVS)
    + "]\n"
    + """ports = ["P0"]

[[setup]]
host = "business01"
commands = ["iSMvollist -cr"]
"""
)


def main(argv: list[str] | None = None) -> int:
    args = c.parse_args(__doc__.splitlines()[0], argv=argv)
    reps = args.reps or (2 if args.quick else 20)
    rep = c.Report("bench_group_create", "group create of 5 BVs vs single creates, through the manager", args)
    rep.line(
        f"{reps} of each, rotated; subject: {' '.join(GROUP)} on {HOST}; references: "
        f"{' '.join(SINGLES[0])}, and that for each of the {len(BVS)} BVs in turn"
    )

    from snaplab.agent.cli import exec_command

    with cc.LabRun(LAB, "cg") as lab:
        rep.line(f"lab up in {lab.up_seconds:.1f} s ({lab.lab_dir})")

        def process(argvs: list[list[str]]) -> float:
            total = 0.0
            for line in argvs:
                dt, proc = lab.run(HOST, line)
                assert "iSM19010" in proc.stdout, proc.stdout
                total += dt
            return total

        def in_process(argvs: list[list[str]]) -> float:
            t = c.now()
            for line in argvs:
                out, err, code = exec_command(lab.lab_dir, HOST, line, timeout=60)
                if code != 0:
                    raise RuntimeError(f"{' '.join(line)} exited {code}: {out}{err}")
            return c.now() - t

        kinds = {"group": [GROUP], "one": SINGLES[:1], "five": SINGLES}
        if not args.quick:  # warm-up: page cache, the agent's and daemons' first calls
            for argvs in kinds.values():
                process(argvs)
                in_process(argvs)
        t_proc: dict[str, list[float]] = {k: [] for k in kinds}
        t_in: dict[str, list[float]] = {k: [] for k in kinds}
        order = list(kinds)
        for r in range(reps):
            for k in order[r % 3 :] + order[: r % 3]:
                t_proc[k].append(process(kinds[k]))
                t_in[k].append(in_process(kinds[k]))
    for k, label in (
        ("group", "group create (5 BVs), command process"),
        ("one", "one single create, command process"),
        ("five", "five single creates in sequence, processes"),
    ):
        rep.figure(label, c.spread(t_proc[k]))
    for k, label in (
        ("group", "group create, sent to the agent in-process"),
        ("one", "one single create, in-process"),
        ("five", "five single creates, in-process"),
    ):
        rep.figure(label, c.spread(t_in[k]))
    g, one, five = (c.median(t_proc[k]) for k in kinds)
    gi, onei = c.median(t_in["group"]), c.median(t_in["one"])
    rep.ratio("group_vs_one_create", g / one, "<=", TARGET, "median group create / median one single create")
    rep.ratio(
        "group_vs_one_create_in_process",
        gi / onei,
        "<=",
        TARGET,
        "the same, sent to the agent from this process (no process start)",
    )
    rep.ratio(
        "group_vs_five_creates", g / five, "<=", 1.0, "median group create / median five single creates"
    )
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
