"""``iSMcfg cgadd / cgdel / cglist``: consistency groups (SnapLab extension, issue 14; docs/extensions.md).

A consistency group is a named set of BVs of one array that ``iSMsc_create -cg`` and the other
``-cg`` commands snapshot, restore, guard and link at one instant (the array's groups.py). Each BV
is in one group at most; a BV's own generations and commands are unaffected by its group.
"""

from __future__ import annotations

from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from .options import Usage, need, parse_options

EXT = "(SnapLab extension)"
GROUP_SUBCOMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "cgadd": ("iSM31273", ("-cgname", "-ldname"), f"-cgname NAME -ldname BV,BV,...   {EXT}"),
    "cgdel": ("iSM31274", ("-cgname",), f"-cgname NAME   {EXT}"),
    "cglist": ("", (), f"   {EXT}"),
}


def run_group_cfg(client: ManagerClient, sub: str, args: list[str], array_opt: str) -> list[str]:
    msg_id, values, _ = GROUP_SUBCOMMANDS[sub]
    o = parse_options(args, (*values, array_opt), ())
    array = o.get(array_opt, "")
    if sub == "cglist":
        lines = [f"Consistency Groups  {EXT}"]
        for a in client.monitor(array).arrays:
            lines += [f"  {a.state.name}  CG:{g.name:<32} {', '.join(g.bvs)}" for g in a.state.groups]
        return lines
    need(o, "-cgname")
    if sub == "cgadd":
        need(o, "-ldname")
        bvs = [x.strip() for x in str(o["-ldname"]).split(",") if x.strip()]
        if not bvs:
            raise Usage("-ldname names no BV")
        client.configure(array, group_define=apb.GroupDefine(name=o["-cgname"], bvs=bvs))
        done = [f"  CG:{o['-cgname']}  {', '.join(bvs)}"]
    else:
        client.configure(array, group_remove=apb.GroupRemove(name=o["-cgname"]))
        done = [f"  Removed: CG:{o['-cgname']}"]
    return [f"iSMcfg:Info: {msg_id}: iSMcfg {sub} has normally terminated.", *done]
