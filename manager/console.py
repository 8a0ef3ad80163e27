"""The management server's console commands, ``iSMcfg`` (configuration) and ``iSMview`` (monitoring).

They talk to the manager with the lab's ``admin`` certificate (``<lab>/pki/admin.crt``); the
manager's address comes from ``<lab>/runtime.json`` (``{"manager": {"target": "HOST:PORT"}}``)
unless given. ``run_console(argv, lab_dir)`` runs one command line and returns
``(stdout, stderr, exit status)``; the console scripts ``iSMcfg`` and ``iSMview`` do the same with
the lab folder ``$SNAPLAB_LAB`` (default ``~/.snaplab/lab``) and the manager ``$SNAPLAB_MANAGER``
if set. Formats and message ids: ``docs/manager.md``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import ClientTLS, SnapLabClientError
from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb

from .client import ManagerClient

PRODUCT_ID = "D1-10"  # the model iSMview shows for every emulated array
DEFAULT_LAB = "~/.snaplab/lab"
TIMEOUT = 30.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Usage(Exception):
    """A command line the command does not accept: iSM11100."""


# -- option parsing ------------------------------------------------------------------------------


def parse_options(
    args: list[str], values: tuple[str, ...] = (), flags: tuple[str, ...] = (), repeat: tuple[str, ...] = ()
) -> dict[str, Any]:
    """iSM-style options: ``-name value`` (values; those in ``repeat`` may repeat and give lists) and
    ``-flag``. Option names are case-insensitive; anything else is a usage error."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        key = args[i].lower()
        if key in values or key in repeat:
            if i + 1 >= len(args):
                raise Usage(f"{args[i]} needs a value")
            if key in repeat:
                out.setdefault(key, []).append(args[i + 1])
            elif key in out:
                raise Usage(f"{args[i]} given twice")
            else:
                out[key] = args[i + 1]
            i += 2
        elif key in flags:
            if key in out:
                raise Usage(f"{args[i]} given twice")
            out[key] = True
            i += 1
        else:
            raise Usage(f"unknown argument {args[i]}")
    return out


def need(opts: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if n not in opts]
    if missing:
        raise Usage(f"{' '.join(missing)} is required")


def parse_size(text: str) -> int:
    """``1GB``, ``512MB``, ``64KB``, ``1.5G``, ``4096`` (bytes); binary units (1KB = 1024 bytes)."""
    m = _SIZE.match(text)
    if not m:
        raise Usage(f"size {text!r}: give a number with KB, MB, GB or TB")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value != int(value) or value <= 0:
        raise Usage(f"size {text!r} is not a positive whole number of bytes")
    return int(value)


def parse_number(text: str, what: str) -> int:
    """An LD, pool, director or port number: decimal (``56``) or hex as iSM shows it (``0038h``, ``0x38``)."""
    t = text.strip().lower()
    try:
        if t.endswith("h"):
            return int(t.removesuffix("h"), 16)
        if t.startswith("0x"):
            return int(t, 0)
        return int(t, 10)
    except ValueError:
        raise Usage(f"{what} {text!r} is not a number (decimal, or hex like 0038h)") from None


def fmt_size(n: int) -> str:
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n / (1 << 20):.1f}MB" if n else "0.0MB"


# -- iSMcfg --------------------------------------------------------------------------------------

ARRAY_OPT = "-arrayname"


def _pool_ref(opts: dict[str, Any]) -> str:
    if "-poolnumber" in opts and "-poolname" in opts:
        raise Usage("give -poolnumber or -poolname, not both")
    if "-poolnumber" in opts:
        return str(parse_number(opts["-poolnumber"], "-poolnumber"))
    if "-poolname" in opts:
        return str(opts["-poolname"])
    raise Usage("-poolnumber is required")


def _path(opts: dict[str, Any]) -> dict[str, str]:
    if ("-portname" in opts) == ("-wwn" in opts):
        raise Usage("give -portname or -wwn")
    return {"port": opts.get("-portname", ""), "wwn": opts.get("-wwn", "")}


def _ld_ref(opts: dict[str, Any]) -> str:
    if "-ldname" in opts:
        return str(opts["-ldname"])
    if "-ldn" in opts:
        return f"{parse_number(opts['-ldn'], '-ldn'):04x}h"
    raise Usage("-ldname is required")


class Cfg:
    """One ``iSMcfg`` subcommand: its options and how they become a ConfigRequest (or a fault)."""

    def __init__(
        self,
        msg_id: str,
        values: tuple[str, ...],
        flags: tuple[str, ...] = (),
        repeat: tuple[str, ...] = (),
        summary: str = "",
    ) -> None:
        self.msg_id = msg_id
        self.values = (*values, ARRAY_OPT)
        self.flags = flags
        self.repeat = repeat
        self.summary = summary


SUBCOMMANDS: dict[str, Cfg] = {
    "poolbind": Cfg(
        "iSM04001",
        ("-poolnumber", "-poolname", "-pooltype", "-capacity"),
        summary="-poolnumber N -poolname NAME -pooltype basic|dynamic -capacity SIZE",
    ),
    "ldbind": Cfg(
        "iSM04002",
        ("-poolnumber", "-poolname", "-ldn", "-ldname", "-capacity", "-ldattr", "-osformat"),
        summary="-poolnumber N -ldname NAME -capacity SIZE [-ldn N] [-ldattr iv|cv|mv|rv] [-osformat WN]",
    ),
    "ldunbind": Cfg("iSM04003", ("-ldname", "-ldn"), summary="-ldname NAME | -ldn N"),
    "srabind": Cfg(
        "iSM04004",
        ("-poolnumber", "-poolname", "-capacity", "-sdvname", "-sdvn"),
        ("-extend",),
        summary="-poolnumber N -capacity SIZE [-sdvname NAME] [-sdvn N] [-extend]",
    ),
    "generationadd": Cfg(
        "iSM04005",
        ("-bvname", "-poolnumber", "-poolname", "-count"),
        repeat=("-svname",),
        summary="-bvname BV -poolnumber N [-count C] [-svname SV ...]",
    ),
    "generationdel": Cfg("iSM04006", ("-bvname", "-count"), summary="-bvname BV [-count C]"),
    "lvbind": Cfg("iSM04007", ("-bvname", "-lvn", "-lvname"), summary="-bvname BV -lvname LV [-lvn N]"),
    "lvunbind": Cfg("iSM04008", ("-ldname", "-ldn"), summary="-ldname LV | -ldn N"),
    "ldformat": Cfg(
        "iSM04009", ("-ldname", "-ldn", "-osformat"), summary="-ldname NAME -osformat WN|WG|LX|..."
    ),
    "portadd": Cfg(
        "iSM04010", ("-director", "-port", "-portname"), summary="-director N -port N -portname NAME"
    ),
    "arrayname": Cfg("iSM04011", ("-newname",), summary="-newname NAME"),
    "licenseadd": Cfg("iSM04012", ("-product", "-capacity"), summary="-product PRODUCT [-capacity SIZE]"),
    "licensedel": Cfg("iSM04013", ("-product",), summary="-product PRODUCT"),
    "hostadd": Cfg(
        "iSM04014",
        ("-hostname", "-platform"),
        repeat=("-wwn", "-portname"),
        summary="-hostname HOST [-wwn WWN ...] [-portname PORT ...] [-platform windows]",
    ),
    "accessadd": Cfg(
        "iSM04015", ("-ldname", "-ldn", "-portname", "-wwn"), summary="-ldname LD -portname PORT | -wwn WWN"
    ),
    "accessdel": Cfg(
        "iSM04016", ("-ldname", "-ldn", "-portname", "-wwn"), summary="-ldname LD -portname PORT | -wwn WWN"
    ),
    "faultset": Cfg("iSM04017", ("-kind", "-target"), summary="-kind KIND -target TARGET"),
    "faultclear": Cfg("iSM04018", ("-kind", "-target"), summary="-kind KIND -target TARGET"),
}


def _config_request(sub: str, o: dict[str, Any]) -> dict[str, Any]:
    """The ConfigRequest fields of a configuration subcommand."""
    if sub == "poolbind":
        need(o, "-poolnumber", "-poolname", "-pooltype", "-capacity")
        return {
            "bind_pool": apb.BindPool(
                number=parse_number(o["-poolnumber"], "-poolnumber"),
                name=o["-poolname"],
                kind=o["-pooltype"].lower(),
                capacity=parse_size(o["-capacity"]),
            )
        }
    if sub == "ldbind":
        need(o, "-ldname", "-capacity")
        number = {"number": parse_number(o["-ldn"], "-ldn")} if "-ldn" in o else {}
        return {
            "bind_ld": apb.BindLd(
                name=o["-ldname"],
                capacity=parse_size(o["-capacity"]),
                pool=_pool_ref(o),
                format=o.get("-osformat", "WN").upper(),
                attr=o.get("-ldattr", "iv").lower(),
                **number,
            )
        }
    if sub in ("ldunbind", "lvunbind"):
        return {"unbind_ld": apb.UnbindLd(ld=_ld_ref(o))}
    if sub == "srabind":
        need(o, "-capacity")
        number = {"number": parse_number(o["-sdvn"], "-sdvn")} if "-sdvn" in o else {}
        return {
            "build_sra": apb.BuildSra(
                pool=_pool_ref(o),
                capacity=parse_size(o["-capacity"]),
                sdv_name=o.get("-sdvname", ""),
                extend=bool(o.get("-extend")),
                **number,
            )
        }
    if sub == "generationadd":
        need(o, "-bvname")
        names = o.get("-svname", [])
        count = parse_number(o["-count"], "-count") if "-count" in o else max(1, len(names))
        if names and len(names) != count:
            raise Usage("give one -svname per generation (or none for automatic names)")
        return {
            "add_generations": apb.AddGenerations(
                bv=o["-bvname"], pool=_pool_ref(o), count=count, sv_names=names
            )
        }
    if sub == "generationdel":
        need(o, "-bvname")
        count = parse_number(o["-count"], "-count") if "-count" in o else 1
        return {"delete_generations": apb.DeleteGenerations(bv=o["-bvname"], count=count)}
    if sub == "lvbind":
        need(o, "-bvname", "-lvname")
        number = {"number": parse_number(o["-lvn"], "-lvn")} if "-lvn" in o else {}
        return {"bind_lv": apb.BindLv(bv=o["-bvname"], name=o["-lvname"], **number)}
    if sub == "ldformat":
        need(o, "-osformat")
        return {"set_format": apb.SetFormat(ld=_ld_ref(o), format=o["-osformat"].upper())}
    if sub == "portadd":
        need(o, "-director", "-port", "-portname")
        return {
            "add_port": apb.AddPort(
                director=parse_number(o["-director"], "-director"),
                port=parse_number(o["-port"], "-port"),
                name=o["-portname"],
            )
        }
    if sub == "arrayname":
        need(o, "-newname")
        return {"set_array_name": apb.SetArrayName(name=o["-newname"])}
    if sub == "licenseadd":
        need(o, "-product")
        capacity = parse_size(o["-capacity"]) if "-capacity" in o else 0
        return {"set_licence": apb.SetLicence(product=o["-product"], capacity=capacity)}
    if sub == "licensedel":
        need(o, "-product")
        return {"remove_licence": apb.RemoveLicence(product=o["-product"])}
    if sub == "hostadd":
        need(o, "-hostname")
        return {
            "register_host": apb.RegisterHost(
                name=o["-hostname"],
                wwns=o.get("-wwn", []),
                ports=o.get("-portname", []),
                platform=o.get("-platform", "windows").lower(),
            )
        }
    if sub in ("accessadd", "accessdel"):
        field, cls = (
            ("assign_access", apb.AssignAccess)
            if sub == "accessadd"
            else ("unassign_access", apb.UnassignAccess)
        )
        return {field: cls(ld=_ld_ref(o), **_path(o))}
    raise Usage(f"unknown subcommand {sub}")  # pragma: no cover - SUBCOMMANDS and this list match


def _ld_line(ld: apb.Ld) -> str:
    return f"  {ld.type + ':' + ld.name:<36} {ld.number}  {ld.format or '-':<2}  {fmt_size(ld.capacity):>8}  {ld.pool}"


def cfg_usage() -> str:
    lines = ["Usage: iSMcfg SUBCOMMAND [OPTIONS] [-arrayname ARRAY]"]
    lines += [f"  iSMcfg {name} {c.summary}" for name, c in SUBCOMMANDS.items()]
    return "\n".join(lines) + "\n"


def run_cfg(client: ManagerClient, args: list[str]) -> list[str]:
    """``iSMcfg SUBCOMMAND OPTIONS``: the lines to print on success; refusals raise."""
    if not args:
        raise Usage("give a subcommand")
    sub = args[0].lower()
    spec = SUBCOMMANDS.get(sub)
    if spec is None:
        raise Usage(f"unknown subcommand {args[0]}")
    o = parse_options(args[1:], spec.values, spec.flags, spec.repeat)
    array = o.get(ARRAY_OPT, "")
    lines: list[str] = []
    if sub in ("faultset", "faultclear"):
        need(o, "-kind", "-target")
        call = client.inject_fault if sub == "faultset" else client.clear_fault
        state = call(o["-kind"], o["-target"], array=array)
        lines.append(f"iSMcfg:Info: {spec.msg_id}: iSMcfg {sub} has normally terminated.")
        lines += [f"  Fault: {f}" for f in state.faults]
        return lines
    request = _config_request(sub, o)
    if sub == "lvunbind":  # lvunbind unbinds only LVs (the array's unbind takes any LD)
        ref = request["unbind_ld"].ld
        state = client.monitor(array).arrays[0].state
        ld = next((x for x in state.lds if ref in (x.name, x.number)), None)
        if ld is None:
            raise SnapLabError(E.NOT_FOUND, name=ref)
        if ld.type != "LV":
            raise SnapLabError(E.NOT_LV, name=ld.name)
    reply = client.configure(array, **request)
    lines.append(f"iSMcfg:Info: {spec.msg_id}: iSMcfg {sub} has normally terminated.")
    lines += [_ld_line(ld) for ld in reply.lds]
    lines += [f"  Removed: {name}" for name in reply.names]
    return lines


# -- iSMview -------------------------------------------------------------------------------------


def view_usage() -> str:
    return (
        "Usage: iSMview -d                      disk array list\n"
        "       iSMview -all ARRAY              array properties, ports, pools, LDs, access, licences, faults\n"
        "       iSMview -snap [ARRAY]           snapshot list of every BV\n"
        "       iSMview -host                   servers registered to the management server\n"
        "       iSMview -event [-after N] [-limit N]   event log\n"
    )


def disk_array_list(reply: mpb.MonitorReply) -> list[str]:
    """``iSMview -d`` (SPEC §8)."""
    lines = [
        "--- Disk Array List ---",
        f"{'Product ID':<17} {'Disk Array Name':<33} {'Resource State':<15} Monitoring",
    ]
    for a in reply.arrays:
        lines.append(f"{PRODUCT_ID:<17} {a.state.name:<33} {a.resource_state:<15} {a.monitoring}")
    return lines


def _pool_name_to_number(state: apb.ArrayState) -> dict[str, int]:
    return {p.name: p.number for p in state.pools}


def array_detail(a: mpb.ArrayMonitor) -> list[str]:
    """``iSMview -all ARRAY``: the design is in docs/manager.md."""
    s = a.state
    lines = [
        "--- Disk Array Detail ---",
        f"Disk Array Name    : {s.name}",
        f"Product ID         : {PRODUCT_ID}",
        f"Resource State     : {a.resource_state}",
        f"Monitoring         : {a.monitoring}",
        f"Physical Capacity  : {fmt_size(s.physical_capacity)}",
        f"Target             : {a.target}",
        "",
        "--- Port List ---",
        f"{'Port No.':<10} Port Name",
    ]
    lines += [f"{p.director:02x}h/{p.port:02x}h{'':<3} {p.name}" for p in s.ports]
    lines += [
        "",
        "--- Pool List ---",
        f"{'Pool No.':<9} {'Pool Name':<24} {'Type':<8} {'Capacity':>10} {'SRA Capacity':>13} {'SRA Used':>10}",
    ]
    for p in s.pools:
        sra = (fmt_size(p.sra_capacity), fmt_size(p.sra_used)) if p.sra_capacity else ("-", "-")
        lines.append(
            f"{p.number:04x}h{'':<4} {p.name:<24} {p.kind:<8} {fmt_size(p.capacity):>10} {sra[0]:>13} {sra[1]:>10}"
        )
    pool_no = _pool_name_to_number(s)
    lines += [
        "",
        "--- Logical Disk List ---",
        f"{'LDN':<6} {'LD Name':<32} {'Type':<5} {'OS Type':<7} {'Capacity':>10} {'Pool No.':<8} {'Attr':<4} BV",
    ]
    for ld in s.lds:
        pool = f"{pool_no[ld.pool]:04x}h" if ld.pool in pool_no else ld.pool
        lines.append(
            f"{ld.number:<6} {ld.name:<32} {ld.type:<5} {ld.format or '-':<7} {fmt_size(ld.capacity):>10}"
            f" {pool:<8} {ld.attr:<4} {ld.bv or '-'}"
        )
    lines += ["", "--- Access Control List ---", f"{'LD Name':<32} Path"]
    for ld in s.lds:
        for path in ld.access:
            kind, _, value = path.partition(":")
            lines.append(f"{ld.name:<32} {kind.upper()} {value}")
    lines += ["", "--- Host List ---", f"{'Host Name':<24} {'Platform':<9} WWN / Port"]
    for h in s.hosts:
        paths = [*(f"WWN {w}" for w in h.wwns), *(f"PORT {p}" for p in h.ports)]
        lines.append(f"{h.name:<24} {h.platform:<9} {', '.join(paths) or '-'}")
    lines += ["", "--- License List ---", f"{'Product':<24} State"]
    lines += [f"{product:<24} {s.licences[product]}" for product in sorted(s.licences)]
    lines += ["", "--- Fault List ---", f"{'Kind':<16} Target"]
    for f in s.faults:
        kind, _, target = f.partition(":")
        lines.append(f"{kind:<16} {target}")
    if not s.faults:
        lines.append("(none)")
    return lines


def snapshot_list(a: mpb.ArrayMonitor) -> list[str]:
    """``iSMview -snap``: per BV, every SV with generation, state, time, guard and link (B5)."""
    lines = [f"--- Snapshot List ({a.state.name}) ---"]
    for q in a.snapshots:
        lines.append(f"BV:{q.bv} ({q.bv_number}) {q.format}  State:{q.state}  Reserve Area:{q.reserve_area}")
        lines.append(
            f"  {'Generation':<10} {'SV Name':<32} {'State':<13} {'Time':<19} {'Guard':<5} {'Link':<6} LV"
        )
        for g in q.generations:
            gen = str(g.relgen) if g.has_relgen else "-"
            lines.append(
                f"  {gen:<10} {g.sv:<32} {g.state:<13} {g.state_time or '-':<19} {'on' if g.guard else 'off':<5}"
                f" {g.link:<6} {g.lv or '-'}"
            )
    return lines


def host_list(reply: mpb.MonitorReply) -> list[str]:
    lines = [
        "--- Server List ---",
        f"{'Server Name':<24} {'Role':<9} {'Platform':<9} {'Cluster':<16} {'Enrolled':<19} WWN / Port",
    ]
    for h in reply.hosts:
        cluster = f"{h.cluster}({h.cluster_role})" if h.cluster else "-"
        paths = [*(f"WWN {w}" for w in h.wwns), *(f"PORT {p}" for p in h.ports)]
        lines.append(
            f"{h.name:<24} {h.role:<9} {h.platform:<9} {cluster:<16} {h.enrolled:<19} {', '.join(paths) or '-'}"
        )
    return lines


def event_line(e: mpb.Event) -> str:
    """SPEC §8 message-log layout: ``Mon Date hh:mm:ss host function-id classification command : iSMyyyyy : text``."""
    try:
        when = datetime.strptime(e.time, "%Y/%m/%d %H:%M:%S").strftime("%a %b %d %H:%M:%S")
    except ValueError:
        when = e.time
    op = e.operation or "-"
    return f"{when} {e.source} {op[:5]} {e.classification} {op} : {e.msg_id or '-'} : {e.text}"


def run_view(client: ManagerClient, args: list[str]) -> list[str]:
    if not args:
        raise Usage("give -d, -all ARRAY, -snap, -host or -event")
    mode = args[0].lower()
    rest = args[1:]
    if mode == "-d":
        parse_options(rest)
        return disk_array_list(client.monitor())
    if mode == "-all":
        if len(rest) != 1:
            raise Usage("-all needs the disk array name")
        return array_detail(client.monitor(rest[0]).arrays[0])
    if mode == "-snap":
        if len(rest) > 1:
            raise Usage("-snap takes at most one disk array name")
        lines: list[str] = []
        for a in client.monitor(rest[0] if rest else "").arrays:
            lines += snapshot_list(a)
        return lines
    if mode == "-host":
        parse_options(rest)
        return host_list(client.monitor())
    if mode == "-event":
        o = parse_options(rest, ("-after", "-limit"))
        after = parse_number(o["-after"], "-after") if "-after" in o else 0
        limit = parse_number(o["-limit"], "-limit") if "-limit" in o else 0
        return [event_line(e) for e in client.events(after, limit)]
    raise Usage(f"unknown option {args[0]}")


# -- entry points ----------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[ManagerClient, list[str]], list[str]], Callable[[], str]]] = {
    "ismcfg": (run_cfg, cfg_usage),
    "ismview": (run_view, view_usage),
}


def manager_target(lab_dir: Path) -> str:
    """The manager's HOST:PORT from ``<lab>/runtime.json``."""
    path = lab_dir / "runtime.json"
    try:
        target = json.loads(path.read_text())["manager"]["target"]
    except FileNotFoundError:
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"{path} does not exist; is the lab up?") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"{path} has no manager target") from None
    if not isinstance(target, str) or not target:
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"{path} has no manager target")
    return target


def _client(lab_dir: Path, target: str | None) -> ManagerClient:
    pki = lab_dir / "pki"
    try:
        tls = ClientTLS.from_folder(pki, "admin")
    except OSError:
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"no admin certificate in {pki}") from None
    return ManagerClient(target or manager_target(lab_dir), tls, timeout=TIMEOUT)


def run_console(argv: list[str], lab_dir: str | Path, *, target: str | None = None) -> tuple[str, str, int]:
    """Run one console command line (``argv[0]`` is ``iSMcfg`` or ``iSMview``); returns (stdout, stderr, status)."""
    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1] if argv else ""
    if name.lower().endswith(".exe"):
        name = name[:-4]
    entry = COMMANDS.get(name.lower())
    if entry is None:
        return "", f"'{name}' is not recognized as an internal or external command.\n", 9009
    run, usage = entry
    args = list(argv[1:])
    if args and args[0].lower() in ("-h", "-help", "--help", "-?"):
        return usage(), "", 0
    client: ManagerClient | None = None
    try:
        client = _client(Path(lab_dir).expanduser(), target)
        lines = run(client, args)
        return "".join(line + "\n" for line in lines), "", 0
    except Usage as exc:
        usage_text = E.USAGE.text.format(detail=str(exc))
        return "", f"{name}:Error: {E.USAGE.msg_id}: {usage_text}\n{usage()}", 1
    except SnapLabError as exc:
        return "", f"{name}:Error: {exc.msg_id}: {exc.text}\n", 1
    except SnapLabClientError as exc:
        msg_id: str | None = exc.msg_id
        text = exc.text
        if not msg_id:
            if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                msg_id = E.MANAGER_UNREACHABLE.msg_id
                text = E.MANAGER_UNREACHABLE.text.format(name=client.target if client else "-")
            else:
                msg_id, text = E.INTERNAL.msg_id, E.INTERNAL.text.format(detail=exc.details or exc.code.name)
        return "", f"{name}:Error: {msg_id}: {text}\n", 1
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        return (
            "",
            f"{name}:Error: {E.INTERNAL.msg_id}: {E.INTERNAL.text.format(detail=type(exc).__name__)}\n",
            1,
        )
    finally:
        if client is not None:
            client.close()


def _main(command: str) -> int:
    lab = os.environ.get("SNAPLAB_LAB") or DEFAULT_LAB
    out, err, code = run_console(
        [command, *sys.argv[1:]], lab, target=os.environ.get("SNAPLAB_MANAGER") or None
    )
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def main_cfg() -> int:
    """Console script ``iSMcfg``."""
    return _main("iSMcfg")


def main_view() -> int:
    """Console script ``iSMview``."""
    return _main("iSMview")
