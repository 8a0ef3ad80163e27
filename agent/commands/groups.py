"""SnapLab extension (issue 14, docs/extensions.md): the ``iSMsc_*`` commands on a consistency group, ``-cg NAME``.

``iSMsc_create -cg NAME [-cyclic]``, ``iSMsc_delete -cg NAME -sv -1 -svflg relgen``,
``iSMsc_restore -cg NAME -sv … [-derivsv keep|delete] [-nowait]``, ``iSMsc_svguard -cg NAME -sv …
(-mode set|cancel | -hold TAG | -release TAG)``, ``iSMsc_link -cg NAME -sv … -lvlist LV,LV… [-lvacc …]``,
``iSMsc_unlink -cg NAME -lvlist LV,LV…`` and ``iSMsc_query -cg NAME [-sv …] [-summary|-detail]``. A group
generation is named by its relative group generation (``-sv -1`` or ``.-1``, ``-svflg relgen``). Each is
one routed ``Group`` operation, which the array applies to every member at one instant, all or nothing.
The route is the host's CV, else one of the group's member BVs in the volume list (the manager's state
monitoring says which BVs a group has); the manager checks the host may reach every member.
snapshot.py hands a command line with ``-cg`` here, so without ``-cg`` every command is the guide's.
"""

from __future__ import annotations

from snaplab.agent.commands.snapshot_control import (
    ACCESS_MODES,
    MONITOR_TIMEOUT,
    Vol,
    choice,
    layout_options,
    print_lines,
    refuse_mounted,
    reread_disks,
    resolve,
    route,
    special_files,
    usage,
)

from snaplab.common import snapshot_layouts as formats
from snaplab.common.errors import E, Message
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import manager_pb2

from .base import CommandError, Ctx

EXT = "(SnapLab extension)"


def given(ctx: Ctx) -> bool:
    """Whether the command line names a consistency group (the extension's commands)."""
    return any(a.lower() == "-cg" for a in ctx.args)


def _gen(o: dict, *, required: bool = True) -> int:
    if "-sv" not in o:
        if "-svflg" in o:
            raise usage("-svflg needs -sv")
        if required:
            raise usage(f"-cg needs -sv GEN -svflg relgen {EXT}")
        return 0
    if o.get("-svflg", "relgen").lower() != "relgen":
        raise usage(f"-cg takes relative generations: -sv -1 -svflg relgen {EXT}")
    try:
        n = int(str(o["-sv"]).removeprefix("."))
    except ValueError:
        raise usage(f"relative generation {o['-sv']}") from None
    if n >= 0:
        raise usage(f"relative generation {o['-sv']}: -1 is the newest")
    return n


def _lvlist(o: dict) -> list[str]:
    if "-lvlist" not in o:
        raise usage(f"-cg needs -lvlist LV,LV,... {EXT}")
    lvs = [x.strip() for x in str(o["-lvlist"]).split(",") if x.strip()]
    if not lvs:
        raise usage("-lvlist names no LV")
    return lvs


# (host, group) -> the member BV its last operation went through: the agent is one long-lived process,
# so the state-monitoring look-up is made once; a refusal that says the route is stale drops it.
_ROUTES: dict[tuple[str, str], str] = {}
_STALE = (E.GROUP_NOT_FOUND.msg_id, E.VIA_NOT_TARGET.msg_id, E.NOT_IN_VOLLIST.msg_id, E.AC_DENIED.msg_id)


def _vol(ctx: Ctx, group: str) -> Vol:
    """How this host issues the group's operation: its CV(s), else one of the members it sees."""
    vl = ctx.host.vollist()
    if vl is None:
        raise CommandError(E.VOLLIST_MISSING)
    cvs = [e for e in vl.disks() if e.definition == "control"]
    if cvs:
        return Vol(group, None, [(cv.array, cv.ld_name) for cv in cvs])
    member = _ROUTES.get((ctx.host.name, group))
    if member is not None and vl.by_ld(member) is not None:
        return resolve(ctx, member, "ld")
    try:
        reply = ctx.host.manager.Monitor(manager_pb2.MonitorRequest(), timeout=MONITOR_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the manager's own refusal or its absence, as any command's
        raise CommandError.of(exc, manager=ctx.host.manager_target) from None
    for am in reply.arrays:
        for g in am.state.groups:
            if g.name != group:
                continue
            for bv in g.bvs:
                if vl.by_ld(bv, am.state.name) is not None:
                    _ROUTES[(ctx.host.name, group)] = bv
                    return resolve(ctx, bv, "ld")
    raise CommandError(E.GROUP_NOT_FOUND, name=group)


def _group(ctx: Ctx, vol: Vol, group: str, **op: object) -> pb.GroupReply:
    request = pb.GroupRequest(group=group, **op)  # type: ignore[arg-type]
    key = (ctx.host.name, group)
    try:
        return route(ctx, vol, "group", request).group
    except CommandError as exc:
        if vol.entry is None or _ROUTES.pop(key, None) is None or exc.msg_id not in _STALE:
            raise
    fresh = _vol(ctx, group)  # the remembered member was one no more: look the group up again
    vol.routes, vol.entry, vol.name = fresh.routes, fresh.entry, fresh.name
    return route(ctx, vol, "group", request).group


def _done(ctx: Ctx, command: str) -> None:
    from .snapshot import DONE  # the guide's success lines: a group's operation ends as the command does

    ctx.info(DONE[command])


def _blocks(ctx: Ctx, vol: Vol, reply: pb.GroupReply, *, guard: bool = False) -> None:
    special = special_files(ctx, vol.array)
    for g in reply.generations:
        ctx.print(f"   CG:{reply.group}  {EXT}")
        ctx.print(f"      Generation : {g.relgen}")
        ctx.print(f"      Create Time: {g.create_time or '-'}")
        if g.missing:
            ctx.print(f"      Missing    : {', '.join(g.missing)}")
        for m in g.members:
            print_lines(ctx, formats.generation_block(m, special, guard=guard))
            if guard and m.holds:
                ctx.print(f"      Holds      : {', '.join(m.holds)} ({len(m.holds)})")


def cg_create(ctx: Ctx) -> int:
    o = ctx.options(("-cg",), ("-cyclic",))
    vol = _vol(ctx, o["-cg"])
    reply = _group(
        ctx, vol, o["-cg"], create=pb.GroupCreate(cyclic="-cyclic" in o, options=layout_options(ctx))
    )
    _done(ctx, "iSMsc_create")
    _blocks(ctx, vol, reply)
    return 0


def cg_delete(ctx: Ctx) -> int:
    o = ctx.options(("-cg", "-sv", "-svflg"))
    gen = _gen(o)
    vol = _vol(ctx, o["-cg"])
    reply = _group(ctx, vol, o["-cg"], delete=pb.GroupGen(gen=gen))
    _done(ctx, "iSMsc_delete")
    _blocks(ctx, vol, reply)
    return 0


def cg_restore(ctx: Ctx) -> int:
    o = ctx.options(("-cg", "-sv", "-svflg", "-derivsv"), ("-nowait",))
    gen = _gen(o)
    derivsv = choice(o, "-derivsv", ("keep", "delete"), "keep")
    group = o["-cg"]
    vol = _vol(ctx, group)
    vl = ctx.host.vollist()
    for bv in _group(ctx, vol, group, query=pb.GroupGen(gen=gen)).bvs:  # the guide unmounts each BV first
        entry = vl.by_ld(bv, vol.array) if vl is not None else None
        refuse_mounted(ctx, entry, bv, E.BV_MOUNTED)
    req = pb.GroupRestore(gen=gen, derivsv=derivsv, options=layout_options(ctx))
    reply = _group(ctx, vol, group, restore=req)
    if "-nowait" not in o:  # each member's copy awaited as iSMsc_restore awaits one (a routed Wait)
        from .snapshot import _wait

        done = []
        for m in reply.generations[0].members:
            if m.state == formats.STATE_RESTORING:
                m = _wait(ctx, resolve(ctx, m.bv, "ld"), pb.SvRef(sv=m.sv, svflg="ld"), "active", None)
            done.append(m)
        del reply.generations[0].members[:]
        reply.generations[0].members.extend(done)
    _done(ctx, "iSMsc_restore")
    _blocks(ctx, vol, reply)
    return 0


def cg_svguard(ctx: Ctx) -> int:
    o = ctx.options(("-cg", "-sv", "-svflg", "-mode", "-hold", "-release"))
    gen = _gen(o)
    if sum(k in o for k in ("-mode", "-hold", "-release")) != 1:
        raise usage("give one of -mode set|cancel, -hold TAG, -release TAG")
    guard = pb.GroupGuard(gen=gen, hold=o.get("-hold", ""), release=o.get("-release", ""))
    if "-mode" in o:
        mode = choice(o, "-mode", ("set", "cancel"))
        guard.set, guard.cancel = mode == "set", mode == "cancel"
    vol = _vol(ctx, o["-cg"])
    reply = _group(ctx, vol, o["-cg"], guard=guard)
    _done(ctx, "iSMsc_svguard")
    _blocks(ctx, vol, reply, guard=True)
    return 0


def _lv_entries(ctx: Ctx, vol: Vol, lvs: list[str], message: Message) -> None:
    vl = ctx.host.vollist()
    for lv in lvs:
        refuse_mounted(ctx, vl.by_ld(lv, vol.array) if vl is not None else None, lv, message)


def _links(ctx: Ctx, vol: Vol, reply: pb.GroupReply, *, linked: bool) -> None:
    special = special_files(ctx, vol.array)
    gens = {m.sv: m for g in reply.generations for m in g.members}
    for info in reply.links:
        target = info.links[0] if info.links else None
        gen = gens.get(target.target) if target is not None else None
        print_lines(ctx, formats.link_block(info, special, linked=linked, target=target, generation=gen))


def cg_link(ctx: Ctx) -> int:
    o = ctx.options(("-cg", "-sv", "-svflg", "-lvlist", "-lvacc"))
    gen = _gen(o)
    lvs = _lvlist(o)
    mode = choice(o, "-lvacc", ACCESS_MODES, "rw")
    vol = _vol(ctx, o["-cg"])
    _lv_entries(ctx, vol, lvs, E.LV_MOUNTED)
    req = pb.GroupLink(gen=gen, lvs=lvs, mode=mode, options=layout_options(ctx))
    reply = _group(ctx, vol, o["-cg"], link=req)
    reread_disks(ctx)
    _done(ctx, "iSMsc_link")
    _links(ctx, vol, reply, linked=True)
    return 0


def cg_unlink(ctx: Ctx) -> int:
    o = ctx.options(("-cg", "-lvlist"))
    lvs = _lvlist(o)
    vol = _vol(ctx, o["-cg"])
    _lv_entries(ctx, vol, lvs, E.LV_MOUNTED)
    reply = _group(ctx, vol, o["-cg"], unlink=pb.GroupUnlink(lvs=lvs))
    reread_disks(ctx)
    _done(ctx, "iSMsc_unlink")
    _links(ctx, vol, reply, linked=False)
    return 0


def cg_query(ctx: Ctx) -> int:
    o = ctx.options(("-cg", "-sv", "-svflg"), ("-summary", "-detail"))
    if "-summary" in o and "-detail" in o:
        raise usage("give -summary or -detail, not both")
    gen = _gen(o, required=False)
    vol = _vol(ctx, o["-cg"])
    reply = _group(ctx, vol, o["-cg"], query=pb.GroupGen(gen=gen))
    print_lines(ctx, query_lines(reply, special_files(ctx, vol.array), detail="-detail" in o))
    return 0


def query_lines(reply: pb.GroupReply, special: dict[str, str], *, detail: bool) -> list[str]:
    """``iSMsc_query -cg``: the group, then each group generation (newest first) with its members."""
    lines = [
        f"Consistency Group Information  {EXT}",
        f"    CG Name                 : {reply.group}",
        f"    Members                 : {', '.join(reply.bvs)}",
        "",
    ]
    if not detail:
        lines.append(f"    {'Generation':<10} {'Create Time':<19} Member SVs (State)")
        for g in reply.generations:
            members = " ".join(f"{m.sv}({m.state})" for m in g.members)
            missing = f" missing: {','.join(g.missing)}" if g.missing else ""
            lines.append(f"    {g.relgen:<10} {g.create_time:<19} {members}{missing}")
        return lines
    for g in reply.generations:
        lines += [f"Group Generation {g.relgen}", f"    Create Time             : {g.create_time}"]
        if g.missing:
            lines.append(f"    Missing                 : {', '.join(g.missing)}")
        for m in g.members:
            lines.append(f"    BV:LD Name              : {m.bv}")
            lines += formats.detail_sv_block(m, m.format, special)
        lines.append("")
    return lines
