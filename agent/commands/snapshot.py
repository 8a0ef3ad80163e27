"""The SnapControl snapshot commands (``iSMsc_*``): option forms, name resolution, control I/O, output.

Every command follows the same path (docs/architecture.md "Control I/O path"):

1. Options, iSM style (``-bv bv001 -bvflg ld``); a wrong or missing one is iSM11100.
2. The volume the operation acts on (the BV; the LV for link/unlink; the volume of linkinfo) is
   resolved through the host's volume list (``Host.resolve_ld``): by LD name (``ld``), drive letter or
   NTFS folder (``drv``) or mount-point volume name (``mvol``). An LD name the list does not have is
   sent as it is through the host's control volume (CV) when the list has one, else refused with
   iSM11703; a drive or volume name the list does not have is always iSM11703. SVs are never in a
   volume list (they are never assigned to a host), so SV names and relative generations are passed
   to the array as given.
3. Host-side checks: a mounted LV volume refuses link/unlink (iSM13680); a mounted BV volume refuses
   restore and an LV-BV link (iSM13681). The guide flushes and unmounts first (1.7, 2.2.1, 2.2.2.2).
4. The operation goes to the manager as ``Route(ControlRequest{array, via, op})`` issued through
   ``Host.control_via`` (the CV of the array, else the volume itself), with the host's layout options
   (iSMrpl.ini) for create, restore and link.
5. The success line ``<command>:Info: iSMnnnnn: <command> has normally terminated.`` and then the
   block of ``snaplab.agent.formats``; query and linkinfo print only their layout, as the real ones.

Success ids are the ones the manager's event log uses for the same operations; ``iSMsc_delete -auto``
finding the SV the next cyclic create will use already free prints the notice
``iSMsc_delete:Notice: iSM19030: There is no snapshot to delete. (BV)`` and exits 0.
"""

from __future__ import annotations

import time
from typing import Any

from snaplab.agent.commands.snapshot_control import (
    ACCESS_MODES,
    VOLUME_FLAGS,
    Vol,
    check_partitions,
    choice,
    family,
    flag,
    generation,
    layout_options,
    ld_name,
    monitor_family,
    need,
    pair,
    pick_generation,
    print_lines,
    refuse_mounted,
    reread_disks,
    resolve,
    route,
    special_files,
    svref,
    usage,
)
from snaplab.agent.vollist import VolEntry

from snaplab.common import snapshot_layouts as formats
from snaplab.common.errors import E, Message, Status
from snaplab.v1 import array_pb2 as pb

from . import groups
from .base import CommandError, Ctx, command
from .quiesce import deadline_of, quiesce_and_create

WAIT_SLICE = 600.0  # one routed Wait at most this long; a longer wait issues the next one
RPC_MARGIN = 30.0  # deadline of a routed Wait beyond its own timeout


def _done(cmd: str, msg_id: str) -> Message:
    return Message(msg_id, f"{cmd} has normally terminated.", Status.INTERNAL)


# The same ids as the manager's event log (snaplab.manager.messages.SC_DONE); a test keeps them equal.
DONE = {
    "iSMsc_create": _done("iSMsc_create", "iSM19010"),
    "iSMsc_delete": _done("iSMsc_delete", "iSM19011"),
    "iSMsc_restore": _done("iSMsc_restore", "iSM19012"),
    "iSMsc_wait": _done("iSMsc_wait", "iSM19013"),
    "iSMsc_svguard": _done("iSMsc_svguard", "iSM19014"),
    "iSMsc_link": _done("iSMsc_link", "iSM20020"),
    "iSMsc_unlink": _done("iSMsc_unlink", "iSM20030"),
}


# ============================================================================ the commands
def _bv_of(ctx: Ctx, o: dict[str, Any]) -> Vol:
    need(o, "-bv")
    return resolve(ctx, o["-bv"], flag(o, "-bvflg", VOLUME_FLAGS))


@command("iSMsc_create")
def sc_create(ctx: Ctx) -> int:
    """``iSMsc_create -bv BV -bvflg ld|drv|mvol (-sv SV -svflg ld|relgen|ld.relgen | -cyclic)
    [-quiesce [-deadline SECONDS]]``.

    ``-quiesce`` and ``-deadline`` are SnapLab's own extension (docs/extensions-sra-quiesce.md): an
    application-consistent snapshot (quiesce.py); without them the command is the guide's.
    ``-cg NAME [-cyclic]``: a consistency group, SnapLab's own too (groups.py)."""
    if groups.given(ctx):
        return groups.cg_create(ctx)
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg", "-deadline"), ("-cyclic", "-quiesce"))
    pair(o, "-bv", "-bvflg")
    sv = svref(o, bv_given="-bv" in o)
    if (sv is None) == ("-cyclic" not in o):
        raise usage("give either -sv or -cyclic")
    if "-deadline" in o and "-quiesce" not in o:
        raise usage("-deadline needs -quiesce (SnapLab extension)")
    deadline = deadline_of(ctx, o.get("-deadline")) if "-quiesce" in o else 0.0
    bv = _bv_of(ctx, o)
    check_partitions(ctx, bv.entry)

    def create(consistency: str = "") -> pb.Generation:
        req = pb.CreateRequest(bv=bv.name, sv=sv, cyclic="-cyclic" in o, options=layout_options(ctx),
                               consistency=consistency)
        return route(ctx, bv, "create", req).generation

    if "-quiesce" in o:
        gen, q = quiesce_and_create(ctx, bv.name, bv.entry, deadline, create)
        if q.label == "application":
            ctx.info(E.QUIESCED, ms=q.frozen_ms, name=bv.name)
        elif q.reason.startswith(("freeze hook exit", "thaw hook exit")):
            ctx.warning(E.QUIESCE_HOOK_FAILED, detail=f"{bv.name}: {q.reason}")
        else:
            ctx.warning(E.QUIESCE_DEADLINE, detail=f"{bv.name}: {q.reason}, deadline {deadline:g} s")
    else:
        gen = create()
    ctx.info(DONE["iSMsc_create"])
    print_lines(ctx, formats.generation_block(gen, special_files(ctx, bv.array, bv.special_entry)))
    return 0


@command("iSMsc_delete")
def sc_delete(ctx: Ctx) -> int:
    """``iSMsc_delete -bv BV -bvflg … (-sv SV -svflg … | -auto)``; ``-cg NAME`` (SnapLab extension): groups.py."""
    if groups.given(ctx):
        return groups.cg_delete(ctx)
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg"), ("-auto",))
    pair(o, "-bv", "-bvflg")
    sv = svref(o, bv_given="-bv" in o)
    if (sv is None) == ("-auto" not in o):
        raise usage("give either -sv or -auto")
    bv = _bv_of(ctx, o)
    reply = route(ctx, bv, "delete", pb.DeleteRequest(bv=bv.name, sv=sv, auto="-auto" in o)).deleted
    if not reply.deleted_sv:
        ctx.notice(E.NOTHING_TO_DELETE, name=bv.name)
        return 0
    ctx.info(DONE["iSMsc_delete"])
    gen = generation(family(ctx, bv, bv=bv.name), reply.deleted_sv)
    if gen is not None:
        print_lines(ctx, formats.generation_block(gen, special_files(ctx, bv.array, bv.special_entry)))
    return 0


def _wait(ctx: Ctx, bv: Vol, sv: pb.SvRef, cond: str, limit: float | None) -> pb.Generation:
    """Route Wait until the generation reaches ``cond``, at most ``limit`` seconds (None: no limit)."""
    if sv.svflg != "ld":
        # Pin the generation by name: a relative generation may name another one while we wait.
        q = route(ctx, bv, "query", pb.QueryRequest(bv=bv.name)).query
        sv = pb.SvRef(sv=pick_generation(q, sv).sv, svflg="ld")
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        left = WAIT_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
        span = max(min(WAIT_SLICE, left), 0.001)  # 0 would mean the array's default
        req = pb.WaitRequest(bv=bv.name, sv=sv, cond=cond, timeout_seconds=span)
        try:
            with ctx.host.released():  # other commands of this host may run meanwhile (P4 mounts the BV)
                return route(ctx, bv, "wait", req, timeout=span + RPC_MARGIN).generation
        except CommandError as exc:
            more = deadline is None or time.monotonic() < deadline - 0.01
            if exc.msg_id != E.WAIT_TIMEOUT.msg_id or not more:
                raise


@command("iSMsc_restore")
def sc_restore(ctx: Ctx) -> int:
    """``iSMsc_restore -bv BV -bvflg … -sv SV -svflg … [-derivsv keep|delete] [-nowait]``.

    Without ``-nowait`` it returns when the restore has completed (the generation is ``snap/active``
    again); with it, at once (``rst/exec``), and ``iSMsc_wait -cond active`` awaits the end.
    ``-cg NAME`` (SnapLab extension): every member or none, groups.py."""
    if groups.given(ctx):
        return groups.cg_restore(ctx)
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg", "-derivsv"), ("-nowait",))
    pair(o, "-bv", "-bvflg")
    need(o, "-bv", "-sv")
    sv = svref(o, bv_given=True)
    derivsv = choice(o, "-derivsv", ("keep", "delete"), "keep")
    bv = _bv_of(ctx, o)
    refuse_mounted(ctx, bv.entry, bv.name, E.BV_MOUNTED)
    check_partitions(ctx, bv.entry)
    req = pb.RestoreRequest(bv=bv.name, sv=sv, derivsv=derivsv, options=layout_options(ctx))
    gen = route(ctx, bv, "restore", req).generation
    if "-nowait" not in o and gen.state == formats.STATE_RESTORING:
        gen = _wait(ctx, bv, pb.SvRef(sv=gen.sv, svflg="ld"), "active", None)
    ctx.info(DONE["iSMsc_restore"])
    print_lines(ctx, formats.generation_block(gen, special_files(ctx, bv.array, bv.special_entry)))
    return 0


@command("iSMsc_wait")
def sc_wait(ctx: Ctx) -> int:
    """``iSMsc_wait -cond active|deleted -bv BV -bvflg … -sv SV -svflg … [-limit SECONDS]``.

    Without ``-limit`` it waits as long as it takes; past the limit it fails with iSM19040."""
    o = ctx.options(("-cond", "-bv", "-bvflg", "-sv", "-svflg", "-limit"))
    pair(o, "-bv", "-bvflg")
    need(o, "-cond", "-bv", "-sv")
    cond = choice(o, "-cond", ("active", "deleted"))
    limit = None
    if "-limit" in o:
        try:
            limit = float(o["-limit"])
        except ValueError:
            raise usage(f"-limit {o['-limit']}") from None
        if not limit >= 0 or limit == float("inf"):
            raise usage(f"-limit {o['-limit']}")
    sv = svref(o, bv_given=True)
    assert sv is not None
    bv = _bv_of(ctx, o)
    gen = _wait(ctx, bv, sv, cond, limit)
    ctx.info(DONE["iSMsc_wait"])
    print_lines(ctx, formats.generation_block(gen, special_files(ctx, bv.array, bv.special_entry)))
    return 0


@command("iSMsc_svguard")
def sc_svguard(ctx: Ctx) -> int:
    """``iSMsc_svguard -bv BV -bvflg … -sv SV -svflg … -mode set|cancel``.

    SnapLab extensions (docs/extensions.md): ``-hold TAG`` / ``-release TAG`` instead of ``-mode`` (a
    named hold, holds.py of the array); ``-cg NAME`` (groups.py)."""
    if groups.given(ctx):
        return groups.cg_svguard(ctx)
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg", "-mode", "-hold", "-release"))
    pair(o, "-bv", "-bvflg")
    need(o, "-bv", "-sv")
    if sum(k in o for k in ("-mode", "-hold", "-release")) != 1:
        raise usage("give -mode set|cancel, or -hold TAG / -release TAG (SnapLab extension)")
    hold, release = o.get("-hold", ""), o.get("-release", "")
    mode = choice(o, "-mode", ("set", "cancel")) if "-mode" in o else ""
    sv = svref(o, bv_given=True)
    bv = _bv_of(ctx, o)
    req = pb.GuardRequest(bv=bv.name, sv=sv, on=mode == "set", hold=hold, release=release)
    gen = route(ctx, bv, "guard", req).generation
    ctx.info(DONE["iSMsc_svguard"])
    print_lines(
        ctx, formats.generation_block(gen, special_files(ctx, bv.array, bv.special_entry), guard=True)
    )
    if hold or release:  # only when the extension is used: the guide's output otherwise
        ctx.print(f"      Holds      : {', '.join(gen.holds) or '-'} ({len(gen.holds)})")
    return 0


def _link_args(ctx: Ctx, o: dict[str, Any]) -> tuple[Vol, pb.SvRef | None, str, VolEntry | None]:
    pair(o, "-lv", "-lvflg")
    pair(o, "-bv", "-bvflg")
    need(o, "-lv")
    sv = svref(o, bv_given=True)  # -svflg relgen alone counts from the LV's BV, as the array does
    lv = resolve(ctx, o["-lv"], flag(o, "-lvflg", VOLUME_FLAGS))
    bv_name, bv_entry = "", None
    if "-bv" in o:
        bv_name, bv_entry = ld_name(ctx, o["-bv"], flag(o, "-bvflg", VOLUME_FLAGS))
    return lv, sv, bv_name, bv_entry


def _family_bv(sv: pb.SvRef | None, bv_name: str) -> str:
    if bv_name:
        return bv_name
    if sv is not None and sv.svflg == "ld.relgen":
        return sv.sv.rpartition(".")[0]
    return ""


def _link_output(
    ctx: Ctx,
    lv: Vol,
    info: pb.LinkInfo,
    sv: pb.SvRef | None,
    bv_name: str,
    bv_entry: VolEntry | None,
    *,
    linked: bool,
) -> None:
    target = info.links[0] if info.links else None
    q = family(ctx, lv, bv=_family_bv(sv, bv_name), member=lv.name)
    gen = generation(q, target.target) if target is not None and target.kind == "sv" else None
    special = special_files(ctx, lv.array, lv.special_entry, bv_entry)
    print_lines(
        ctx,
        formats.link_block(
            info,
            special,
            linked=linked,
            target=target,
            generation=gen,
            bv_state=q.state if q is not None else "",
        ),
    )


@command("iSMsc_link")
def sc_link(ctx: Ctx) -> int:
    """``iSMsc_link -lv LV -lvflg ld|drv|mvol (-sv SV -svflg … [-bv BV -bvflg ld] | -bv BV -bvflg …)
    [-lvacc rw|ro|nr|na]``: LV to an SV in snap/active, or LV to its BV. ``-cg`` (SnapLab extension): groups.py."""
    if groups.given(ctx):
        return groups.cg_link(ctx)
    o = ctx.options(("-lv", "-lvflg", "-sv", "-svflg", "-bv", "-bvflg", "-lvacc"))
    if "-sv" not in o and "-bv" not in o:
        raise usage("give -sv or -bv")
    mode = choice(o, "-lvacc", ACCESS_MODES, "rw")
    lv, sv, bv_name, bv_entry = _link_args(ctx, o)
    refuse_mounted(ctx, lv.entry, lv.name, E.LV_MOUNTED)
    if sv is None:
        refuse_mounted(ctx, bv_entry, bv_name, E.BV_MOUNTED)  # the BV becomes reachable only through the LV
    req = pb.LinkRequest(lv=lv.name, sv=sv, bv=bv_name, mode=mode, options=layout_options(ctx))
    info = route(ctx, lv, "link", req).linkinfo
    reread_disks(ctx)
    ctx.info(DONE["iSMsc_link"])
    _link_output(ctx, lv, info, sv, bv_name, bv_entry, linked=True)
    return 0


@command("iSMsc_unlink")
def sc_unlink(ctx: Ctx) -> int:
    """``iSMsc_unlink -lv LV -lvflg … [-sv SV -svflg …] [-bv BV -bvflg ld]``; ``-cg`` (SnapLab extension): groups.py."""
    if groups.given(ctx):
        return groups.cg_unlink(ctx)
    o = ctx.options(("-lv", "-lvflg", "-sv", "-svflg", "-bv", "-bvflg"))
    lv, sv, bv_name, bv_entry = _link_args(ctx, o)
    refuse_mounted(ctx, lv.entry, lv.name, E.LV_MOUNTED)
    info = route(ctx, lv, "unlink", pb.UnlinkRequest(lv=lv.name, sv=sv, bv=bv_name)).linkinfo
    reread_disks(ctx)
    ctx.info(DONE["iSMsc_unlink"])
    _link_output(ctx, lv, info, sv, bv_name, bv_entry, linked=False)
    return 0


@command("iSMsc_query")
def sc_query(ctx: Ctx) -> int:
    """``iSMsc_query -bv BV -bvflg … [-sv SV -svflg …] [-summary | -detail]`` or
    ``iSMsc_query -sv SV -svflg ld|ld.relgen [-summary | -detail]``; the summary is the default.
    ``-cg NAME`` (SnapLab extension): groups.py."""
    if groups.given(ctx):
        return groups.cg_query(ctx)
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg"), ("-summary", "-detail"))
    if "-summary" in o and "-detail" in o:
        raise usage("give -summary or -detail, not both")
    pair(o, "-bv", "-bvflg")
    sv = svref(o, bv_given="-bv" in o)
    if "-bv" in o:
        bv = _bv_of(ctx, o)
    elif sv is None:
        raise usage("give -bv or -sv")
    elif sv.svflg == "ld.relgen":
        bv = resolve(ctx, sv.sv.rpartition(".")[0], "ld")
    else:
        bv = _bv_of_sv(ctx, sv.sv)
    q = route(ctx, bv, "query", pb.QueryRequest(bv=bv.name)).query
    svs = [pick_generation(q, sv).sv] if sv is not None else None
    special = special_files(ctx, bv.array, bv.special_entry)
    layout = formats.query_detail if "-detail" in o else formats.query_summary
    print_lines(ctx, layout(q, special, svs))
    return 0


def _bv_of_sv(ctx: Ctx, sv: str) -> Vol:
    """The BV of an SV named alone: SVs are in no volume list, so state monitoring tells which."""
    found = monitor_family(ctx, "", member=sv, quiet=False)
    if found is None or sv not in {g.sv for g in found[1].generations}:
        raise CommandError(E.NOT_FOUND, name=sv)
    array, q = found
    vol = resolve(ctx, q.bv, "ld")
    if vol.entry is None:  # through a CV: the one of the array that has the SV first
        vol.routes.sort(key=lambda r: r[0] != array)
    return vol


@command("iSMsc_linkinfo")
def sc_linkinfo(ctx: Ctx) -> int:
    """``iSMsc_linkinfo -vol V -volflg ld|drv|mvol [-lcl]``."""
    o = ctx.options(("-vol", "-volflg"), ("-lcl",))
    pair(o, "-vol", "-volflg")
    need(o, "-vol")
    vol = resolve(ctx, o["-vol"], flag(o, "-volflg", VOLUME_FLAGS))
    info = route(ctx, vol, "linkinfo", pb.VolumeRef(name=vol.name)).linkinfo
    destinations = None
    if info.type in ("SV", "LV", "BV"):
        bv = info.volume if info.type == "BV" else ""
        if info.type == "LV" and info.links and info.links[0].kind == "bv":
            bv = info.links[0].target
        q = family(ctx, vol, bv=bv, member=info.volume)
        if q is not None:
            destinations = formats.destinations_of(q)
    print_lines(ctx, formats.linkinfo(info, special_files(ctx, vol.array, vol.special_entry), destinations))
    return 0
