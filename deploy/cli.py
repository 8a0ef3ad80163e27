"""The ``snaplab`` command: start and stop a lab, run a host's commands in it, find a mounted drive's files."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import checkpoint_cli
from .errors import LabError
from .folder import LabFolder, default_lab_dir, default_lab_file

# `snaplab exec` is a command process like the bare commands, and its start-up is its cost: this
# module imports only what exec needs (argparse, the lab folder, the agent's thin client); the lab
# machinery (Lab, LabSpec, grpc plumbing, certificates) is imported by the subcommands that use it.
if TYPE_CHECKING:
    from .lab import Lab
    from .status import ProcessStatus

PROG = "snaplab"
EXIT_NOT_RUNNING = 3  # `lab status` of a lab that is not running (as LSB init scripts do)


class UsageError(Exception):
    """Bad command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``only="exec"``: build only exec's parser (``main`` saw the word), since building
    every subcommand costs a command process (``snaplab exec``) milliseconds it need not pay."""
    # --lab is accepted before or after the subcommand; the subcommand's copy must not reset it.
    lab_opt = _Parser(add_help=False)
    lab_opt.add_argument(
        "--lab",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="lab folder (default: $SNAPLAB_LAB, else ~/.snaplab/lab)",
    )
    p = _Parser(
        prog=PROG, description="SnapLab: a lab of an emulated disk array, its management server and hosts."
    )
    p.add_argument("--lab", metavar="DIR", help="lab folder (default: $SNAPLAB_LAB, else ~/.snaplab/lab)")
    sub = p.add_subparsers(
        dest="cmd",
        required=True,
        metavar="{lab,link,host,cluster,exec,path,export,deploy,pki,chaos,console}",
        parser_class=_Parser,
    )

    if only != "exec":
        lab = sub.add_parser("lab", help="start, inspect or stop the lab")
        lab_sub = lab.add_subparsers(
            dest="lab_cmd", required=True, metavar="{up,status,down,check,checkpoint,rollback,checkpoints}", parser_class=_Parser
        )
        up = lab_sub.add_parser(
            "up", parents=[lab_opt], help="start the lab (the guide's reference lab by default)"
        )
        up.add_argument(
            "labfile", nargs="?", metavar="LABFILE", help=f"lab file (default: {default_lab_file().name})"
        )
        up.add_argument("--fresh", action="store_true", help="wipe the lab folder's state and make the lab anew")
        up.add_argument("--no-setup", action="store_true", help="skip the lab file's [[setup]] commands")
        up.add_argument(
            "--network",
            choices=("loopback", "netns"),
            help="netns: every process in a network namespace of its own, on a LAN and a SAN (needs root; "
            "default: the lab file's [lab] network, else loopback)",
        )
        up.add_argument(
            "--keep-on-failure",
            action="store_true",
            help="leave the processes running if the start fails (to inspect)",
        )
        lab_sub.add_parser("status", parents=[lab_opt], help="show each process of the lab and its health")
        lab_sub.add_parser("down", parents=[lab_opt], help="stop every process of the lab")
        check = lab_sub.add_parser(
            "check", help="validate a lab file and summarise it, without starting anything"
        )
        check.add_argument("labfile", nargs="?", metavar="LABFILE")
        checkpoint_cli.add_parsers(lab_sub, lab_opt)

    if only != "exec":
        link = sub.add_parser("link", help="cut or restore a host's cables on a netns lab (ip link set … down|up)")
        link_sub = link.add_subparsers(
            dest="link_cmd", required=True, metavar="{down,up}", parser_class=_Parser
        )
        for name, text in (("down", "cut the host's LAN and/or SAN cables"), ("up", "restore them")):
            lp = link_sub.add_parser(name, parents=[lab_opt], help=text)
            lp.add_argument("host", metavar="HOST")
            lp.add_argument("--lan", action="store_true", help="the host's LAN cable (agent to manager)")
            lp.add_argument(
                "--san", action="append", default=[], metavar="PORT",
                help="the SAN cable to array port PORT (repeatable); neither option: every cable of the host",
            )
        host = sub.add_parser("host", help="stop, crash, boot or restart one host of a running lab")
        host_sub = host.add_subparsers(
            dest="host_cmd", required=True, metavar="{stop,kill,start,restart}", parser_class=_Parser
        )
        for name, text in (
            ("stop", "orderly shutdown: flush every mounted volume, then exit"),
            ("kill", "a crash: SIGKILL, nothing flushed"),
            ("start", "boot: the host's disks are discovered again (guide 3.9)"),
            ("restart", "stop (if it runs), then start"),
        ):
            hp = host_sub.add_parser(name, parents=[lab_opt], help=text)
            hp.add_argument("host", metavar="HOST")

        cl = sub.add_parser("cluster", help="the lab's clusters: status, planned move of a group")
        cl_sub = cl.add_subparsers(dest="cluster_cmd", required=True, metavar="{status,move,offline,online,check}", parser_class=_Parser)
        cs = cl_sub.add_parser("status", parents=[lab_opt], help="nodes, groups, owners and disk states")
        cs.add_argument("cluster", nargs="?", metavar="CLUSTER")
        cm = cl_sub.add_parser("move", parents=[lab_opt], help="planned move of a group to another node")
        cm.add_argument("group", metavar="GROUP")
        cm.add_argument("node", metavar="NODE")
        for name, text in (("offline", "take a group offline on its owner"), ("online", "bring it online again")):
            co = cl_sub.add_parser(name, parents=[lab_opt], help=text)
            co.add_argument("group", metavar="GROUP")
        cc = cl_sub.add_parser("check", parents=[lab_opt], help="differences of the nodes' lists and settings")
        cc.add_argument("cluster", metavar="CLUSTER")

    ex = sub.add_parser(
        "exec",
        parents=[lab_opt],
        help="run a command on a host (or on the management server: HOST 'manager')",
        description="Run COMMAND on HOST through its agent, e.g. 'snaplab exec business01 -- iSMvollist -cr'; "
        "HOST 'manager' runs the management server's console commands (iSMcfg, iSMview) or its shell (bash -c '…').",
    )
    ex.add_argument(
        "-i", "--stdin", action="store_true", help="pass standard input to the command (DISKPART scripts)"
    )
    ex.add_argument("host", metavar="HOST")
    ex.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")

    if only != "exec":
        path = sub.add_parser(
            "path", parents=[lab_opt], help="print the folder holding a mounted drive's files on a host"
        )
        path.add_argument("host", metavar="HOST")
        path.add_argument("mountpoint", metavar="MOUNTPOINT", help="drive letter (G:) or NTFS folder")

        export = sub.add_parser(
            "export",
            parents=[lab_opt],
            help="write a partition's file system (an SQLite archive) of an LD to a file, read as admin",
            description="Read partition PARTITION of LD (a BV, an SV, any LD) of ARRAY through the array as the "
            "lab's admin and write its file system to FILE: the SQLite database the partition holds (its "
            "header's page count; --whole: every byte of the partition). 'sqlite3 FILE -A --list' lists its files.",
        )
        export.add_argument("array", metavar="ARRAY")
        export.add_argument("ld", metavar="LD", help="LD name or number (0031h)")
        export.add_argument(
            "partition", metavar="PARTITION", type=int, help="partition number (DISKPART's, from 1)"
        )
        export.add_argument("file", metavar="FILE")
        export.add_argument("--whole", action="store_true", help="the whole partition, not only the database")
        _kit_parsers(sub, lab_opt)
        _chaos_parser(sub, lab_opt)

        sub.add_parser(
            "console",
            parents=[lab_opt],
            help="print the web console's address and its login token",
            description="Print where the manager serves the web console (HTTPS on loopback, the lab CA's "
            "certificate) and the token to log in with as the lab's admin. Keep the token secret.",
        )
    return p


def _kit_parsers(sub: argparse._SubParsersAction, lab_opt: argparse.ArgumentParser) -> None:
    """``snaplab deploy`` and ``snaplab pki``: kits for real machines (deploy/kits.py, deploy/README.md)."""
    dep = sub.add_parser("deploy", help="kits that run a lab file on real machines (systemd or compose)")
    dep_sub = dep.add_subparsers(
        dest="deploy_cmd", required=True, metavar="{render,configure}", parser_class=_Parser
    )
    render = dep_sub.add_parser(
        "render",
        help="write each machine's config files and systemd units, or a compose file",
        description="Write, for each machine of LABFILE's [[machines]], a folder to copy to the machine's "
        "PREFIX: the daemons' config files and (--target systemd) their units; --target compose writes "
        "DIR/compose.yaml.",
    )
    render.add_argument("labfile", metavar="LABFILE")
    render.add_argument("--target", required=True, choices=("systemd", "compose"))
    render.add_argument("dir", metavar="DIR", help="where the machines' folders are written")
    render.add_argument(
        "--prefix", default="/var/lib/snaplab", metavar="PREFIX", help="the kit's folder on each machine "
        "(default /var/lib/snaplab; {machine} stands for the machine's name)",
    )
    render.add_argument("--bin", metavar="DIR", help="where the snaplab-* programs are on the machines "
                        "(default: beside this snaplab's Python)")
    render.add_argument(
        "--image", default="snaplab:latest", help="the compose services' image (default snaplab:latest)"
    )
    conf = dep_sub.add_parser(
        "configure",
        parents=[lab_opt],
        help="apply the lab file's arrays and hosts through the running manager (as admin)",
        description="On the manager's machine, once its daemons run: the lab file's configuration through "
        "the manager, with the certificate admin in LAB/pki (--lab: the kit's prefix).",
    )
    conf.add_argument("labfile", metavar="LABFILE")

    pk = sub.add_parser("pki", help="the lab CA of a deployment; certificates for machines that join")
    pk_sub = pk.add_subparsers(dest="pki_cmd", required=True, metavar="{ca,issue}", parser_class=_Parser)
    ca = pk_sub.add_parser("ca", parents=[lab_opt], help="make a new lab CA (ca.crt, ca.key) in --pki")
    ca.add_argument("--pki", metavar="DIR", help="the CA's folder (default: LAB/pki)")
    issue = pk_sub.add_parser(
        "issue", parents=[lab_opt], help="issue a certificate from the lab CA",
        description="Issue NAME.crt/NAME.key (CN NAME, OU ROLE) from the CA in --pki into --out, with "
        "ca.crt.",
    )
    issue.add_argument("name", metavar="NAME", help="the array, host or 'manager'/'admin' it is for")
    issue.add_argument("--role", required=True, metavar="ROLE", help="array, manager, host or admin")
    issue.add_argument("--san", action="append", default=[], metavar="ADDR",
                       help="an IP address or DNS name the holder is dialled at (repeatable; needed for "
                       "array and manager)")
    issue.add_argument("--pki", metavar="DIR", help="the CA's folder (default: LAB/pki)")
    issue.add_argument("--out", metavar="DIR", help="where to write it (default: the CA's folder)")


def _chaos_parser(sub: argparse._SubParsersAction, lab_opt: argparse.ArgumentParser) -> None:
    ch = sub.add_parser("chaos", help="scripted failures at a daemon's gRPC boundary (deploy/chaos.py)")
    ch_sub = ch.add_subparsers(dest="chaos_cmd", required=True, metavar="{add,list,clear}", parser_class=_Parser)
    add = ch_sub.add_parser(
        "add",
        parents=[lab_opt],
        help="add a rule: delay, refuse or crash matching calls of one process",
        description="A rule for the calls of OPERATION on TARGET (array:NAME, manager, host:NAME): each matching "
        "call, from the Nth on, fires with probability P (drawn from --seed S, so a seeded rule fires on the same "
        "calls every run), at most COUNT times. OPERATION is a gRPC method (Create, Route, Run, ...), a routed "
        "operation of the manager or a host command (iSMsc_create, ...), or '*'.",
    )
    add.add_argument("--target", required=True, metavar="TARGET", help="array:NAME, manager or host:NAME")
    add.add_argument("--op", required=True, metavar="OPERATION", help="Create, Route, iSMsc_create, ... or '*'")
    add.add_argument("--probability", default="1", metavar="P", help="0 to 1 (default 1: every matching call)")
    add.add_argument(
        "--error", default="", metavar="ERROR", help="an iSM refusal (iSM31005) or a gRPC status (UNAVAILABLE, ...)"
    )
    add.add_argument("--latency", default="0", metavar="DURATION", help="delay each firing call (200ms, 1.5s)")
    add.add_argument("--crash", action="store_true", help="the daemon exits at once (status 70) when it fires")
    add.add_argument("--count", metavar="N", help="fire at most N times (default unlimited; --crash: 1)")
    add.add_argument("--nth", default="1", metavar="N", help="skip the first N-1 matching calls (default 1)")
    add.add_argument("--seed", metavar="S", help="seed of the rule's random draws (default: unseeded)")
    ch_sub.add_parser("list", parents=[lab_opt], help="the lab's rules and how often each fired")
    clear = ch_sub.add_parser("clear", parents=[lab_opt], help="remove every rule (or --id N)")
    clear.add_argument("--id", metavar="N", help="remove this rule only")


def cmd_chaos_add(args: argparse.Namespace) -> int:
    from . import chaos

    r = chaos.add_rule(
        _lab_dir(args),
        args.target,
        args.op,
        probability=args.probability,
        error=args.error,
        latency=args.latency,
        crash=args.crash,
        count=args.count,
        nth=args.nth,
        seed=args.seed,
    )
    print(f"chaos rule {r.id} added: {r.target} {r.op}: {r.action()} (probability {r.probability:g})")
    return 0


def cmd_chaos_list(args: argparse.Namespace) -> int:
    from . import chaos

    rules = chaos.list_rules(_lab_dir(args))
    if not rules:
        print("no chaos rules")
        return 0
    rows = [["ID", "TARGET", "OP", "PROBABILITY", "ACTION", "COUNT", "NTH", "SEED", "FIRED"]]
    rows += [[*chaos.describe_rule(c.rule), str(c.fired)] for c in rules]
    for line in _table(rows):
        print(line)
    return 0


def cmd_chaos_clear(args: argparse.Namespace) -> int:
    from . import chaos
    from .errors import LabError

    rule_id = None
    if args.id is not None:
        if not args.id.isdigit():
            from snaplab.common.errors import E, SnapLabError

            raise LabError(str(SnapLabError(E.CHAOS_NO_RULE, name=args.id)))
        rule_id = int(args.id)
    gone = chaos.clear_rules(_lab_dir(args), rule_id)
    print(f"chaos rules removed: {len(gone)}")
    return 0


def _subcommand(argv: list[str]) -> str | None:
    """The subcommand word of a command line (past a leading ``--lab DIR``), if it is a known one."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--lab":
            i += 2
        elif a.startswith("--lab="):
            i += 1
        else:
            return a if a in ("lab", "link", "host", "cluster", "exec", "path", "export", "deploy", "pki", "chaos", "console") else None
    return None


def _lab(args: argparse.Namespace, *, enter: bool = True) -> Lab:
    """The lab; on a netns lab this process first enters the manager's namespace (``enter``), the
    management console's machine, from where the lab's daemons are reached."""
    from .lab import Lab

    lab = Lab(_lab_dir(args))
    if enter:
        from . import netns

        netns.enter_lab(lab)
    return lab


def _folder(args: argparse.Namespace) -> LabFolder:
    """The lab folder alone (runtime.json, layout): what exec and path read, without the lab machinery."""
    return LabFolder(_lab_dir(args))


def _lab_dir(args: argparse.Namespace) -> Path:
    return Path(args.lab) if args.lab else default_lab_dir()


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _process_table(statuses: list[ProcessStatus], *, with_state: bool) -> list[str]:
    head = ["PROCESS", "NAME", "PID", *(["STATE"] if with_state else []), "ENDPOINT", "METRICS", "LOG"]
    rows = [head]
    for s in statuses:
        rows.append(
            [s.kind, s.name, str(s.pid), *([s.state] if with_state else []), s.endpoint, s.metrics or "-", s.log]
        )
    return _table(rows)


def _say(line: str) -> None:
    """Progress output: a reader that went away (``| head``) must not abort starting or stopping the lab."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        pass


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> int:
    # SIGTERM (e.g. a timeout killing us) must unwind like Ctrl-C, so the half-started lab is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    lab = _lab(args, enter=False)  # up makes the namespaces, then enters
    from .spec import LabSpec

    spec = LabSpec.load(args.labfile) if args.labfile else None
    if spec is None and args.fresh and lab.is_lab():
        spec = lab.spec()  # --fresh without a file: make the folder's own lab anew
    runtime = lab.up(
        spec,
        fresh=args.fresh,
        setup=not args.no_setup,
        keep_on_failure=args.keep_on_failure,
        report=_say,
        network=args.network,
    )
    statuses = lab.status()
    print(f"lab up: {runtime['source']}")
    for line in _process_table(statuses, with_state=False):
        print(line)
    print(
        f"run commands with: snaplab{_lab_flag(args)} exec HOST -- COMMAND;  stop with: snaplab{_lab_flag(args)} lab down"
    )
    return 0


def _lab_flag(args: argparse.Namespace) -> str:
    return f" --lab {args.lab}" if args.lab else ""


def cmd_status(args: argparse.Namespace) -> int:
    lab = _lab(args)
    rt = lab.read_runtime()
    if rt is None:
        strays = lab.strays()
        extra = (
            f" (but processes {', '.join(map(str, strays))} of it still run: snaplab lab down)"
            if strays
            else ""
        )
        print(f"no lab is running in {lab.folder}{extra}")
        return EXIT_NOT_RUNNING
    statuses = lab.status()
    healthy = sum(s.healthy for s in statuses)
    print(
        f"lab {lab.folder}: {rt.get('state', '?')}, started {rt.get('started', '?')} from {rt.get('source', '?')}"
    )
    for line in _process_table(statuses, with_state=True):
        print(line)
    net = rt.get("network")
    if net:
        print(f"network {net.get('mode')}: namespaces {', '.join(net.get('namespaces', []))}")
    print(f"{healthy} of {len(statuses)} processes healthy")
    console = rt.get("manager", {}).get("console")
    if console:
        print(f"web console: {console} (snaplab console prints its login token)")
    for u in lab.unflushed():  # caches a host kept at its last stop and has not taken back yet
        print(f"kept, not flushed: {u.lines()[0]}")
    return 0 if statuses and healthy == len(statuses) and rt.get("state") == "up" else 1


def cmd_down(args: argparse.Namespace) -> int:
    lab = _lab(args, enter=False)
    if not lab.folder.exists():
        print(f"no lab in {lab.folder}")
        return 0
    count = lab.down(report=lambda line: _say(f"  {line}"))
    print(
        f"lab in {lab.folder} is down ({count} processes stopped)"
        if count
        else f"no lab was running in {lab.folder}"
    )
    kept = lab.unflushed()
    for u in kept:  # a host could not flush its file-system cache: say what, and fail
        lines = u.lines()
        print(f"{PROG}: error: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(line, file=sys.stderr)
    if kept:
        print(
            f"{PROG}: 'snaplab lab up' takes the kept caches back; then flush them (iSMrc_flush)",
            file=sys.stderr,
        )
    return 1 if kept else 0


def cmd_host(args: argparse.Namespace) -> int:
    from . import lifecycle

    lab = _lab(args)
    act = {
        "stop": lifecycle.stop_host,
        "kill": lifecycle.kill_host,
        "start": lifecycle.start_host,
        "restart": lifecycle.restart_host,
    }[args.host_cmd]
    with lab.locked(f"host {args.host_cmd}"):
        act(lab, args.host, lambda line: _say(f"  {line}"))
    print(f"host {args.host}: {lifecycle.host_state(lab, lab.read_runtime() or {}, args.host)}")
    kept = [u for u in lab.unflushed() if u.host == args.host] if args.host_cmd in ("stop", "restart") else []
    for u in kept:  # the stop could not flush a file system: say what, and fail (as lab down does)
        lines = u.lines()
        print(f"{PROG}: error: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(line, file=sys.stderr)
    return 1 if kept else 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    from snaplab.common.errors import E, SnapLabError

    from . import failover

    lab = _lab(args)
    for c, nodes, groups in failover.cluster_status(lab, lab.spec(), args.cluster):
        quorum = f"witness {c.witness}" if c.quorum == "witness" else "node majority"
        up = sum(n.state == "running" for n in nodes.values()) + (1 if c.quorum == "witness" else 0)
        print(f"cluster {c.name}: quorum {quorum}, {up} of {c.votes()} votes (needs {c.quorum_size()})")
        rows = [["NODE", "STATE", "HEARTBEAT"]]
        rows += [
            [name, n.state, "never" if n.heartbeat_age is None else f"{n.heartbeat_age:.1f}s ago"]
            for name, n in nodes.items()
        ]
        for line in _table(rows):
            print(f"  {line}")
        rows = [["GROUP", "OWNER", "DISK", "MOUNT", "STATE"]]
        rows += [[g.name, g.owner, ld, mount, state] for g in groups for ld, mount, state in g.disks]
        for line in _table(rows):
            print(f"  {line}")
        for g in groups:
            if g.lost_signatures:  # the owner took the group over without importing its signatures
                lost = SnapLabError(E.SIGNATURES_LOST, name=f"{', '.join(g.lost_signatures)} of {g.name} on {g.owner}")
                print(f"  {g.name}: {lost}")
    return 0


def cmd_cluster_move(args: argparse.Namespace) -> int:
    from . import failover

    lab = _lab(args)
    with lab.locked(f"cluster move {args.group}"):
        before = failover.move_group(lab, lab.spec(), args.group, args.node, lambda line: _say(f"  {line}"))
    print(f"group {args.group}: moved from {before or '-'} to {args.node}")
    return 0


def cmd_cluster_onoff(args: argparse.Namespace) -> int:
    from . import failover

    lab = _lab(args)
    with lab.locked(f"cluster {args.cluster_cmd} {args.group}"):
        print(failover.group_on_off(lab, lab.spec(), args.group, online=args.cluster_cmd == "online"))
    return 0


def cmd_cluster_check(args: argparse.Namespace) -> int:
    from snaplab.common.errors import E

    from . import lifecycle
    from .cluster_check import differences

    lab = _lab(args)
    spec = lab.spec()
    c = next((x for x in spec.clusters if x.name == args.cluster), None)
    if c is None:
        raise lifecycle.refusal(E.CLUSTER_UNKNOWN, name=args.cluster)
    diffs = differences(lab, c)
    for line in diffs:
        print(f"{c.name}: {line}")
    print(f"cluster {c.name}: {len(diffs)} differences between {', '.join(c.nodes)}" if diffs else
          f"cluster {c.name}: the volume lists, CV definitions and iSMrpl.ini of {', '.join(c.nodes)} match")
    return 1 if diffs else 0


def cmd_check(args: argparse.Namespace) -> int:
    from .spec import LabSpec
    from .values import format_size

    spec = LabSpec.load(args.labfile or default_lab_file())
    print(f"{spec.source}: ok")
    if spec.network != "loopback":
        print(f"  network {spec.network}: every process in a namespace of its own (deploy/README.md)")
    for a in spec.arrays:
        print(
            f"  array {a.name} ({a.product_id or 'no product id'}): {len(a.ports)} ports, {len(a.pools)} pools "
            f"({format_size(a.physical_capacity)}), {len(a.lds)} LDs, "
            f"{sum(len(g.svs) for g in a.generations)} SVs, {len(a.lvs)} LVs"
        )
    for h in spec.hosts:
        print(f"  host {h.name} ({h.role}): ports {', '.join(h.ports) or '-'}")
    print(f"  {len(spec.access)} access assignments, {len(spec.setup)} setup commands")
    if [m.name for m in spec.machines] != ["lab"]:  # the file has [[machines]] (deploy kits)
        for m in spec.machines:
            print(f"  machine {m.name} ({m.address}): {', '.join(m.runs)}")
    for c in spec.clusters:
        quorum = f"witness {c.witness}" if c.quorum == "witness" else "node majority"
        print(
            f"  cluster {c.name}: nodes {', '.join(c.nodes)}; quorum {quorum} ({c.quorum_size()} of {c.votes()} votes); "
            f"heartbeat every {c.heartbeat_interval:g}s, timeout {c.heartbeat_timeout:g}s"
        )
        for g in c.groups:
            disks = ", ".join(f"{d.ld} {d.mount}" for d in g.disks)
            print(f"    group {g.name} on {g.owner}: {disks}" + (f"; {len(g.takeover)} takeover commands" if g.takeover else ""))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise UsageError(f"{PROG} exec: give the command after the host: {PROG} exec HOST -- COMMAND ARGS")
    lab = _folder(args)
    if (lab.folder / "netns.json").exists():  # a netns lab: the command runs on that machine's network
        from . import netns

        netns.enter_lab(lab, *(("manager", "manager") if args.host == "manager" else ("host", args.host)))
    if args.host == "manager":
        return _exec_manager(lab, argv)
    _require_host(lab, args.host)
    from snaplab.agent.cli import exec_command  # as deploy.setup_commands.run_command: the agent's client

    stdin = sys.stdin.read() if _reads_stdin(args, argv) else ""
    out, err, code = exec_command(lab.folder, args.host, argv, stdin=stdin)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    return code


def _reads_stdin(args: argparse.Namespace, argv: list[str]) -> bool:
    """``-i``, or a command that reads its input (a DISKPART script, FORMAT's answer) when that input
    is not a terminal (``echo list disk | snaplab exec HOST -- DISKPART``), as the console scripts do;
    a terminal is never read without ``-i`` (it would wait)."""
    if args.stdin:
        return True
    from snaplab.agent.cli import wants_stdin

    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".exe").removesuffix(".EXE")
    if not wants_stdin(name, argv[1:]):
        return False
    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError):  # no standard input at all
        return False


def _exec_manager(lab: LabFolder, argv: list[str]) -> int:
    if lab.read_runtime() is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    from .manager_shell import MANAGER_SHELLS, manager_shell

    if argv[0] in MANAGER_SHELLS:
        return manager_shell(lab.folder, argv)
    from snaplab.manager.console import run_console  # imported here: lab commands need no console code
    from snaplab.manager.console.commands import write_now

    out, err, code = run_console(argv, lab.folder, write=write_now)
    sys.stdout.write(out)
    sys.stdout.flush()
    sys.stderr.write(err)
    return code


def _require_host(lab: LabFolder, host: str) -> None:
    rt = lab.read_runtime() or _deployed_machine(lab)
    if rt is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    hosts = rt.get("hosts", {})
    if host not in hosts:
        known = ", ".join(["manager", *sorted(hosts)])
        raise LabError(f"the lab has no host {host!r} (hosts: {known})")


def _deployed_machine(lab: LabFolder) -> dict | None:
    """A machine of a deploy kit (``--lab`` its prefix): its ``machine.json`` names the hosts it runs."""
    try:
        import json

        return json.loads((lab.folder / "machine.json").read_text())
    except (OSError, ValueError):
        return None


def cmd_path(args: argparse.Namespace) -> int:
    lab = _folder(args)
    _require_host(lab, args.host)
    print(mount_path(lab, args.host, args.mountpoint))
    return 0


def mount_path(lab: LabFolder, host: str, mountpoint: str) -> str:
    """The folder on this machine that holds the files of ``mountpoint`` on ``host`` (the agent's
    layout, ``snaplab.agent.host.mount_path``); an error when nothing is mounted there now."""
    from snaplab.agent.cli import mounted_volume
    from snaplab.agent.host import mount_path as agent_mount_path

    path = Path(agent_mount_path(lab.folder, host, mountpoint))
    if not path.is_dir():
        raise LabError(f"nothing is mounted at {mountpoint} on {host} (no folder {path})")
    # The folder outlives a mount a fault took (a failed BV, a lost link): the host's own view decides.
    if mounted_volume(lab.folder, host, mountpoint) == "":
        raise LabError(f"nothing is mounted at {mountpoint} on {host} now (its disk failed or it was unmounted)")
    return str(path)


def cmd_export(args: argparse.Namespace) -> int:
    from snaplab.agent.fs.export import export_partition  # imported here: lab commands need no agent code

    from snaplab.common.rpc import ClientTLS
    from snaplab.san.array_client import ArrayClient

    lab = _lab(args)
    rt = lab.read_runtime()
    if rt is None:
        raise LabError(f"no lab is running in {lab.folder}; start one with: snaplab lab up")
    target = rt.get("arrays", {}).get(args.array, {}).get("target")
    if not target:
        raise LabError(
            f"the lab has no array {args.array!r} (arrays: {', '.join(sorted(rt.get('arrays', {})))})"
        )
    with ArrayClient(target, ClientTLS.from_folder(lab.pki, "admin")) as client:
        lds = {ld.name: ld for ld in client.describe().lds}
        ld = lds.get(args.ld) or next((x for x in lds.values() if x.number.lower() == args.ld.lower()), None)
        if ld is None:
            raise LabError(f"the array {args.array} has no LD {args.ld!r}")
        try:
            size = export_partition(
                lambda o, n: client.read(ld.name, o, n),
                ld.capacity,
                args.partition,
                Path(args.file),
                whole=args.whole,
                ld=(args.array, ld.number),
            )
        except ValueError as exc:
            raise LabError(f"{ld.name}: {exc}") from None
    print(f"wrote {args.file}: {size} bytes (partition {args.partition} of {ld.name} on {args.array})")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    from . import netns

    lab = _lab(args, enter=False)
    _require_host(lab, args.host)
    up = args.link_cmd == "up"
    with lab.locked(f"link {args.link_cmd} {args.host}"):
        changed = netns.set_links(lab, args.host, up=up, lan=args.lan, ports=args.san)
    print(f"{args.host}: {', '.join(changed)} {'restored' if up else 'cut'}")
    return 0


def cmd_deploy_render(args: argparse.Namespace) -> int:
    from .kits import render
    from .spec import LabSpec

    out = Path(args.dir)
    render(
        LabSpec.load(args.labfile), args.target, out, prefix=args.prefix,
        bin_dir=Path(args.bin).absolute() if args.bin else None, image=args.image, report=_say,
    )
    print(f"kit written in {out} (deploy/README.md: copy each machine's folder to its prefix)")
    return 0


def cmd_deploy_configure(args: argparse.Namespace) -> int:
    from .kits import configure_deployed
    from .spec import LabSpec

    configure_deployed(_lab_dir(args), LabSpec.load(args.labfile), _say)
    return 0


def _pki_dir(args: argparse.Namespace) -> Path:
    return Path(args.pki) if args.pki else LabFolder(_lab_dir(args)).pki


def cmd_pki_ca(args: argparse.Namespace) -> int:
    from .kit_pki import make_ca

    print(f"lab CA: {make_ca(_pki_dir(args))}")
    return 0


def cmd_pki_issue(args: argparse.Namespace) -> int:
    from .kit_pki import issue

    ca = _pki_dir(args)
    print(f"issued {issue(ca, args.name, args.role, args.san, Path(args.out) if args.out else ca)}")
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    from snaplab.common.errors import E

    lab = _folder(args)
    rt = lab.read_runtime()
    url = (rt or {}).get("manager", {}).get("console")
    token_file = lab.manager_state / "console.token"
    try:
        token = token_file.read_text(encoding="ascii").strip() if url else ""
    except (OSError, UnicodeDecodeError):
        token = ""
    if not url or not token:
        why = f"no lab runs in {lab.folder}" if rt is None else "the lab's manager serves none"
        m = E.CONSOLE_DOWN
        print(f"{PROG}: error: {m.msg_id}: {m.text.format(detail=why)}", file=sys.stderr)
        return 1
    print(f"console: {url}")
    print(f"token:   {token}")
    print(f"CA:      {lab.pki / 'ca.crt'} (the certificate is the lab's own: trust this CA, or accept it once)")
    return 0


_SUBCOMMAND_DESTS = ("lab_cmd", "host_cmd", "cluster_cmd", "deploy_cmd", "pki_cmd", "chaos_cmd", "link_cmd")

COMMANDS = {
    ("link", "down"): cmd_link,
    ("link", "up"): cmd_link,
    ("lab", "up"): cmd_up,
    ("lab", "status"): cmd_status,
    ("lab", "down"): cmd_down,
    ("lab", "check"): cmd_check,
    ("cluster", "status"): cmd_cluster_status,
    ("cluster", "move"): cmd_cluster_move,
    ("cluster", "offline"): cmd_cluster_onoff,
    ("cluster", "online"): cmd_cluster_onoff,
    ("cluster", "check"): cmd_cluster_check,
    ("host", "stop"): cmd_host,
    ("host", "kill"): cmd_host,
    ("host", "start"): cmd_host,
    ("host", "restart"): cmd_host,
    ("exec", None): cmd_exec,
    ("path", None): cmd_path,
    ("export", None): cmd_export,
    ("deploy", "render"): cmd_deploy_render,
    ("deploy", "configure"): cmd_deploy_configure,
    ("pki", "ca"): cmd_pki_ca,
    ("pki", "issue"): cmd_pki_issue,
    ("chaos", "add"): cmd_chaos_add,
    ("chaos", "list"): cmd_chaos_list,
    ("chaos", "clear"): cmd_chaos_clear,
    ("console", None): cmd_console,
    **checkpoint_cli.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser(_subcommand(sys.argv[1:] if argv is None else list(argv))).parse_args(argv)
        sub = next(
            (getattr(args, k) for k in _SUBCOMMAND_DESTS if hasattr(args, k)),
            None,
        )
        return COMMANDS[(args.cmd, sub)](args)
    except UsageError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    except LabError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback for the user; SNAPLAB_DEBUG=1 shows it
        if _is_client_error(exc):
            print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 1
        if os.environ.get("SNAPLAB_DEBUG"):
            raise
        print(
            f"{PROG}: error: unexpected {type(exc).__name__}: {exc} (SNAPLAB_DEBUG=1 shows details)",
            file=sys.stderr,
        )
        return 1


def _is_client_error(exc: Exception) -> bool:
    """A daemon's refusal (SnapLabClientError). Its module is imported lazily, by the subcommands that
    talk to daemons: when it is not loaded, the exception cannot be one."""
    mod = sys.modules.get("snaplab.common.rpc_errors")
    return mod is not None and isinstance(exc, mod.SnapLabClientError)


if __name__ == "__main__":
    sys.exit(main())
