"""``iSMcfg``: the configuration subcommands, each one Configure request to the manager as admin."""

from __future__ import annotations

from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from .groups import GROUP_SUBCOMMANDS, run_group_cfg
from .ldsets import LDSET_SUBCOMMANDS, run_ldset
from .names import NAME_OPTS, plain_name
from .options import Usage, fmt_size, need, parse_number, parse_options, parse_size

ARRAY_OPT = "-arrayname"
GiB = 1 << 30
CV_CAPACITY = 64 << 20  # a CV bound without -capacity (Cinder's cvbind): a small LD, control I/O only


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


def gb_capacity(text: str, unit: str = "gb") -> int:
    """``ldbind``/``ldexpand -capacity``: a bare number is in ``-unit`` (GB by default, as Cinder passes it)."""
    if text.strip().isdigit():
        units = {"gb": GiB, "mb": 1 << 20, "tb": 1 << 40}
        if unit.lower() not in units:
            raise Usage(f"-unit {unit!r}: give gb, mb or tb")
        value = int(text) * units[unit.lower()]
        if value <= 0:
            raise Usage(f"capacity {text!r} is not positive")
        return value
    return parse_size(text)


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
        ("-poolnumber", "-poolname", "-ldn", "-ldname", "-capacity", "-ldattr", "-osformat", "-unit"),
        ("-immediate",),
        summary="-poolnumber N (-ldname NAME | -ldn N) -capacity SIZE|GB [-unit gb|mb|tb] [-ldattr iv|cv|mv|rv]"
        " [-osformat WN] [-immediate]",
    ),
    "ldexpand": Cfg(
        "iSM31221", ("-ldn", "-ldname", "-capacity", "-unit"),
        summary="(-ldn N | -ldname NAME) -capacity SIZE|GB [-unit gb|mb|tb]",
    ),
    "nickname": Cfg(
        "iSM31220", ("-ldn", "-ldname", "-newname"), ("-immediate",),
        summary="(-ldn N | -ldname NAME) -newname NAME [-immediate]",
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
    # SnapLab extension (issue 14, docs/extensions-sra-quiesce.md): what a write does when the SRA is full
    "srapolicy": Cfg(
        "iSM31285",
        ("-poolnumber", "-poolname", "-policy", "-warn", "-queuetimeout"),
        summary="-poolnumber N [-policy auto-delete|fail-writes|invalidate-all|queue] [-warn PCT,PCT...|none]"
        " [-queuetimeout SECONDS]   (SnapLab extension)",
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
        attr = o.get("-ldattr", "iv").lower()
        if "-ldname" not in o and "-ldn" not in o:
            raise Usage("-ldname or -ldn is required")
        if "-capacity" not in o and attr != "cv":
            raise Usage("-capacity is required")
        number = {"number": parse_number(o["-ldn"], "-ldn")} if "-ldn" in o else {}
        # An LD bound by number only is named after it until a nickname gives it one (Cinder's way).
        name = o.get("-ldname") or f"LD{parse_number(o['-ldn'], '-ldn'):04X}"
        capacity = gb_capacity(o["-capacity"], o.get("-unit", "gb")) if "-capacity" in o else CV_CAPACITY
        return {
            "bind_ld": apb.BindLd(
                name=name,
                capacity=capacity,
                pool=_pool_ref(o),
                format=o.get("-osformat", "WN").upper(),
                attr=attr,
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
    if sub == "srapolicy":
        return {"set_sra_policy": _sra_policy(o)}
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
    if sub == "ldexpand":
        need(o, "-capacity")
        return {"expand_ld": apb.ExpandLd(ld=_ld_ref(o), capacity=gb_capacity(o["-capacity"], o.get("-unit", "gb")))}
    if sub == "nickname":
        need(o, "-newname")
        return {"rename_ld": apb.RenameLd(ld=_ld_ref(o), name=o["-newname"])}
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


def _sra_policy(o: dict[str, Any]) -> apb.SetSraPolicy:
    """``iSMcfg srapolicy``: only what is given changes (the array checks the values: iSM31278)."""
    if not any(k in o for k in ("-policy", "-warn", "-queuetimeout")):
        raise Usage("give -policy, -warn or -queuetimeout")
    m = apb.SetSraPolicy(pool=_pool_ref(o), policy=o.get("-policy", "").lower())
    if "-warn" in o:
        text = str(o["-warn"]).strip().lower()
        m.set_warn = True
        if text != "none":
            for part in text.split(","):
                if not part.strip().rstrip("%").isdigit():
                    raise Usage(f"-warn {o['-warn']!r}: give percentages like 70,90 or none")
                m.warn_percents.append(int(part.strip().rstrip("%")))
    if "-queuetimeout" in o:
        try:
            m.queue_timeout_seconds = float(o["-queuetimeout"])
        except ValueError:
            raise Usage(f"-queuetimeout {o['-queuetimeout']!r}") from None
        if not m.queue_timeout_seconds > 0:
            raise Usage(f"-queuetimeout {o['-queuetimeout']!r}: give a positive number of seconds")
    return m


def sra_policy_line(p: apb.Pool) -> str:
    warn = ",".join(f"{w}%" for w in p.sra_warn_percents) or "none"
    return f"  Pool: {p.name}  SRA Full Policy: {p.sra_policy}  Warning Thresholds: {warn}  " \
           f"Queue Timeout: {p.sra_queue_timeout_seconds:g} s"


def _ld_line(ld: apb.Ld) -> str:
    return f"  {ld.type + ':' + ld.name:<36} {ld.number}  {ld.format or '-':<2}  {fmt_size(ld.capacity):>8}  {ld.pool}"


def cfg_usage() -> str:
    lines = ["Usage: iSMcfg SUBCOMMAND [OPTIONS] [-arrayname ARRAY]"]
    lines += [f"  iSMcfg {name} {c.summary}" for name, c in SUBCOMMANDS.items()]
    lines += [f"  iSMcfg {name} {summary}" for name, (_, _, summary) in LDSET_SUBCOMMANDS.items()]
    lines += [f"  iSMcfg {name} {summary}" for name, (_, _, summary) in GROUP_SUBCOMMANDS.items()]
    return "\n".join(lines) + "\n"


def run_cfg(client: ManagerClient, args: list[str]) -> list[str]:
    """``iSMcfg SUBCOMMAND OPTIONS``: the lines to print on success; refusals raise."""
    if not args:
        raise Usage("give a subcommand")
    sub = args[0].lower()
    if sub in LDSET_SUBCOMMANDS:
        return run_ldset(client, sub, args[1:], ARRAY_OPT)
    if sub in GROUP_SUBCOMMANDS:  # SnapLab extension (issue 14): consistency groups
        return run_group_cfg(client, sub, args[1:], ARRAY_OPT)
    spec = SUBCOMMANDS.get(sub)
    if spec is None:
        raise Usage(f"unknown subcommand {args[0]}")
    o = parse_options(args[1:], spec.values, spec.flags, spec.repeat)
    for key in NAME_OPTS:
        if key in o:
            o[key] = plain_name(o[key])
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
    if sub == "srapolicy":
        ref = request["set_sra_policy"].pool
        pools = client.monitor(array).arrays[0].state.pools
        lines += [sra_policy_line(p) for p in pools if ref in (p.name, str(p.number))]
    lines += [_ld_line(ld) for ld in reply.lds]
    lines += [f"  Removed: {name}" for name in reply.names]
    return lines


# -- iSMview -------------------------------------------------------------------------------------


