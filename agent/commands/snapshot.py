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

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from snaplab.agent import formats
from snaplab.agent.vollist import VolEntry, VolumeList
from snaplab.common.errors import E, Message, SnapLabError, Status
from snaplab.common.rpc import SnapLabClientError
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import manager_pb2

from .base import CommandError, Ctx, command

log = logging.getLogger("snaplab.agent")

VOLUME_FLAGS = ("ld", "drv", "mvol")  # -bvflg, -lvflg, -volflg
SV_FLAGS = ("ld", "relgen", "ld.relgen")
ACCESS_MODES = ("rw", "ro", "nr", "na")
WAIT_SLICE = 600.0  # one routed Wait at most this long; a longer wait issues the next one
RPC_MARGIN = 30.0  # deadline of a routed Wait beyond its own timeout
MONITOR_TIMEOUT = 30.0

_ROUTE_ERRORS = (CommandError, SnapLabError, SnapLabClientError, grpc.RpcError)


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


def usage(detail: str) -> CommandError:
    return CommandError(E.USAGE, detail=detail)


# ============================================================================ options
def _flag(o: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """The value of a -xxflg option (default ``ld``), lower-cased and checked."""
    return _choice(o, key, allowed, "ld")


def _need(o: dict[str, Any], *keys: str) -> None:
    for k in keys:
        if k not in o:
            raise usage(f"{k} is required")


def _pair(o: dict[str, Any], vol: str, flg: str) -> None:
    """A -xxflg without its volume option is a syntax error."""
    if flg in o and vol not in o:
        raise usage(f"{flg} needs {vol}")


def _svref(o: dict[str, Any], *, bv_given: bool) -> pb.SvRef | None:
    _pair(o, "-sv", "-svflg")
    if "-sv" not in o:
        return None
    flg = _flag(o, "-svflg", SV_FLAGS)
    if flg == "relgen" and not bv_given:
        raise usage("-svflg relgen needs -bv")
    return pb.SvRef(sv=o["-sv"], svflg=flg)


def _choice(o: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
    if key not in o:
        if default is None:
            raise usage(f"{key} is required")
        return default
    value = str(o[key]).lower()
    if value not in allowed:
        raise usage(f"{key} {o[key]} (use {' | '.join(allowed)})")
    return value


# ============================================================================ resolution
@dataclass
class Vol:
    """A volume named on the command line: the LD name the array is given, this host's volume-list
    entry (None when it is addressed through a CV) and the (array, via) routes to try, in order."""

    name: str
    entry: VolEntry | None
    routes: list[tuple[str, str]] = field(default_factory=list)
    shown: VolEntry | None = None  # the partition's entry when named by drive or volume name

    @property
    def special_entry(self) -> VolEntry | None:
        return self.shown or self.entry

    @property
    def array(self) -> str:
        return self.routes[0][0] if self.routes else ""

    @property
    def via(self) -> str:
        return self.routes[0][1] if self.routes else ""


def _vollist(ctx: Ctx) -> VolumeList:
    vl = ctx.host.vollist()
    if vl is None:
        raise CommandError(E.VOLLIST_MISSING)
    return vl


def _msg_id(exc: BaseException) -> str:
    return getattr(exc, "msg_id", "") or ""


def _lookup(ctx: Ctx, name: str, flg: str) -> VolEntry | None:
    """This host's volume-list entry for ``name``; None when an LD name is not in the list."""
    try:
        entry = ctx.host.resolve_ld(name, flg)
    except (CommandError, SnapLabError) as exc:
        if flg == "ld" and _msg_id(exc) == E.NOT_IN_VOLLIST.msg_id:
            return None
        raise
    if entry is None and flg != "ld":
        raise CommandError(E.NOT_IN_VOLLIST, name=name)
    return entry


def _control_via(ctx: Ctx, array: str, entry: VolEntry) -> str:
    return ctx.host.control_via(array, entry) or entry.ld_name


def _resolve(ctx: Ctx, name: str, flg: str) -> Vol:
    """The volume an operation acts on (module docstring, step 2)."""
    entry = _lookup(ctx, name, flg)
    if entry is not None:
        ctx.host.stale_check(entry)
        vol = Vol(entry.ld_name, entry, [(entry.array, _control_via(ctx, entry.array, entry))])
        vol.shown = _partition_entry(ctx, name, flg)
        return vol
    cvs = [e for e in _vollist(ctx).disks() if e.definition == "control"]
    if not cvs:
        raise CommandError(E.NOT_IN_VOLLIST, name=name)
    return Vol(name, None, [(cv.array, cv.ld_name) for cv in cvs])


def _partition_entry(ctx: Ctx, name: str, flg: str) -> VolEntry | None:
    """The volume-list entry of the volume a drive or volume name names (``Special File`` shows it)."""
    if flg not in ("drv", "mvol"):
        return None
    vl = _vollist(ctx)
    found = vl.by_mount_point(name) if flg == "drv" else vl.by_volume(name)
    return found if found is not None and found.partition is not None else None


def _ld_name(ctx: Ctx, name: str, flg: str) -> tuple[str, VolEntry | None]:
    """A second volume of an operation (the BV of an LV-BV link): its LD name, and its entry when this
    host sees it; an LD name the list does not have is passed as it is."""
    entry = _lookup(ctx, name, flg)
    if entry is None:
        return name, None
    ctx.host.stale_check(entry)
    return entry.ld_name, _partition_entry(ctx, name, flg) or entry


def _route(
    ctx: Ctx, vol: Vol, op: str, request: Any, *, timeout: float | None = 60.0
) -> manager_pb2.ControlReply:
    """Route one operation; through a CV of several arrays, the first array that has the LD answers."""
    routes = vol.routes
    for i, (array, via) in enumerate(routes):
        try:
            reply = ctx.route(op, request, via=via, array=array, timeout=timeout)
        except _ROUTE_ERRORS as exc:
            err = CommandError.of(exc)
            if i + 1 < len(routes) and err.msg_id in (
                E.NOT_FOUND.msg_id,
                E.ARRAY_UNKNOWN.msg_id,
                E.CV_RULE.msg_id,
            ):
                continue
            raise err from None
        vol.routes = [(array, via)]  # later operations of this command go the same way
        return reply
    raise CommandError(E.NOT_IN_VOLLIST, name=vol.name)  # pragma: no cover - routes is never empty


# ============================================================================ host-side helpers
def _special(ctx: Ctx, array: str, *entries: VolEntry | None) -> dict[str, str]:
    """What ``Special File`` shows per LD name: the disk (``diskN``) of each LD this host's volume
    list has on ``array``; for a volume the user named by drive or volume name, that volume."""
    out: dict[str, str] = {}
    try:
        vl = _vollist(ctx)
    except (CommandError, SnapLabError):
        vl = None
    if vl is not None:
        for e in vl.disks():
            if not array or e.array == array:
                out.setdefault(e.ld_name, e.special_file)
    for e in entries:
        if e is not None:
            out[e.ld_name] = e.special_file
    return out


def _check_partitions(ctx: Ctx, entry: VolEntry | None) -> None:
    """Guide 3.1: when this host sees the LD Ready, SnapControl reads its disk layout itself and refuses
    a dynamic disk (iSM19051), a GPT disk unless the LD is WG and iSMrpl.ini allows GPT (iSM19052), and
    an LD with several partitions or logical drives unless iSMrpl.ini allows it (iSM19050); the array
    checks the same (A11) for LDs the host does not see."""
    if entry is None:
        return
    disk = ctx.host.disk(entry.array, entry.ld_number)
    layout = getattr(disk, "layout", None)
    if disk is None or layout is None or not getattr(disk, "ready", False):
        return
    opts = _layout(ctx)
    multi, gpt = opts.allow_multi_partition, opts.allow_gpt
    name = getattr(disk, "ld_name", "") or entry.ld_name
    if layout.dynamic:
        raise CommandError(E.DYNAMIC_DISK, name=name)
    if layout.scheme == "gpt" and (getattr(disk, "format", "") != "WG" or not gpt):
        raise CommandError(E.GPT_NOT_ALLOWED, name=name)
    if len(layout.volumes()) > 1 and not multi:
        raise CommandError(E.MULTI_PARTITION, name=name)


def _layout(ctx: Ctx) -> pb.LayoutOptions:
    """The host's iSMrpl.ini partition options (A11): ``Host.layout_options()`` gives
    (allow_multi_partition, allow_gpt); a LayoutOptions message is taken as it is."""
    got = ctx.host.layout_options()
    if isinstance(got, pb.LayoutOptions):
        return got
    multi, gpt = got
    return pb.LayoutOptions(allow_multi_partition=bool(multi), allow_gpt=bool(gpt))


def _mounted(ctx: Ctx, entry: VolEntry | None) -> list[str]:
    """Mount points mounted now on this host (the live mount table, not the volume list) for the
    volumes of ``entry``'s disk; [] when this host does not see the disk."""
    if entry is None:
        return []
    disk = ctx.host.disk(entry.array, entry.ld_number)
    if disk is None:
        return []
    return [mp for v in disk.volumes for mp in v.mount_points]


def _refuse_mounted(ctx: Ctx, entry: VolEntry | None, name: str, message: Message) -> None:
    points = _mounted(ctx, entry)
    if points:
        raise CommandError(message, name=f"{name} {' '.join(points)}")


def _scan(ctx: Ctx) -> None:
    """After a link or unlink the LV turns Ready / Not Ready: the host reads its disks again. This is
    ``Host.scan()`` (the view), not iSMrc_scan's ``rescan()``: nothing is brought online or automounted."""
    try:
        ctx.host.scan()
    except Exception:  # the array operation is done; a failed re-read is what iSMrc_scan is for
        log.exception("disk scan after %s failed", ctx.name)


def _print(ctx: Ctx, lines: list[str]) -> None:
    for line in lines:
        ctx.print(line)


# ============================================================================ array state for output
def _monitor_family(
    ctx: Ctx, array: str, *, bv: str = "", member: str = "", quiet: bool = True
) -> tuple[str, pb.QueryReply] | None:
    """(array, query) of the BV named ``bv`` or having ``member`` (SV or LV) from the manager's state
    monitoring (B5); None when there is none, or (``quiet``) when monitoring does not answer."""
    try:
        reply = ctx.host.manager.Monitor(manager_pb2.MonitorRequest(array=array), timeout=MONITOR_TIMEOUT)
    except _ROUTE_ERRORS as exc:
        if not quiet:
            raise CommandError.of(exc) from None
        log.info("monitor not available: %s", exc)
        return None
    for am in reply.arrays:
        for q in am.snapshots:
            names = {q.bv} | {g.sv for g in q.generations} | {x.lv for x in q.lvs}
            if (bv and q.bv == bv) or (member and member in names):
                return am.state.name, q
    return None


def _is_cv(ctx: Ctx, vol: Vol) -> bool:
    try:
        cv = _vollist(ctx).cv(vol.array)
    except (CommandError, SnapLabError):
        return False
    return cv is not None and cv.ld_name == vol.via


def _family(ctx: Ctx, vol: Vol, *, bv: str = "", member: str = "") -> pb.QueryReply | None:
    """The query of the BV an output needs: routed when the route allows it (through the CV, or the
    BV itself), else from state monitoring; None when neither answers (the output then says less)."""
    if bv and (_is_cv(ctx, vol) or vol.via == bv):
        try:
            return _route(ctx, vol, "query", pb.QueryRequest(bv=bv)).query
        except CommandError as exc:
            log.info("query of %s for output failed: %s", bv, exc)
    found = _monitor_family(ctx, vol.array, bv=bv, member=member)
    return found[1] if found else None


def _generation(q: pb.QueryReply | None, sv: str) -> pb.Generation | None:
    if q is None:
        return None
    return next((g for g in q.generations if g.sv == sv), None)


def pick_generation(q: pb.QueryReply, ref: pb.SvRef) -> pb.Generation:
    """The generation of a query that an SvRef names (iSM19021 not an SV of the BV, iSM19027 no such
    generation), as the array resolves it: a name, ``.-n`` / ``-n`` of the BV, or ``BV.-n``."""
    flg = ref.svflg or "ld"
    if flg == "ld":
        found = _generation(q, ref.sv)
        if found is None:
            raise CommandError(E.NOT_SV, name=ref.sv)
        return found
    rel = ref.sv
    if flg == "ld.relgen":
        base, dot, rel = ref.sv.rpartition(".")
        if not dot or not base:
            raise usage(f"-sv {ref.sv} is not BV.relgen")
        if base != q.bv:
            raise CommandError(E.NOT_SV, name=ref.sv)
    elif rel.startswith("."):
        rel = rel[1:]
    try:
        n = int(rel)
    except ValueError:
        raise usage(f"relative generation {ref.sv}") from None
    for g in q.generations:
        if g.has_relgen and g.relgen == n:
            return g
    raise CommandError(E.GEN_NOT_FOUND, name=ref.sv)


# ============================================================================ the commands
def _bv_of(ctx: Ctx, o: dict[str, Any]) -> Vol:
    _need(o, "-bv")
    return _resolve(ctx, o["-bv"], _flag(o, "-bvflg", VOLUME_FLAGS))


@command("iSMsc_create")
def sc_create(ctx: Ctx) -> int:
    """``iSMsc_create -bv BV -bvflg ld|drv|mvol (-sv SV -svflg ld|relgen|ld.relgen | -cyclic)``."""
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg"), ("-cyclic",))
    _pair(o, "-bv", "-bvflg")
    sv = _svref(o, bv_given="-bv" in o)
    if (sv is None) == ("-cyclic" not in o):
        raise usage("give either -sv or -cyclic")
    bv = _bv_of(ctx, o)
    _check_partitions(ctx, bv.entry)
    req = pb.CreateRequest(bv=bv.name, sv=sv, cyclic="-cyclic" in o, options=_layout(ctx))
    gen = _route(ctx, bv, "create", req).generation
    ctx.info(DONE["iSMsc_create"])
    _print(ctx, formats.generation_block(gen, _special(ctx, bv.array, bv.special_entry)))
    return 0


@command("iSMsc_delete")
def sc_delete(ctx: Ctx) -> int:
    """``iSMsc_delete -bv BV -bvflg … (-sv SV -svflg … | -auto)``."""
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg"), ("-auto",))
    _pair(o, "-bv", "-bvflg")
    sv = _svref(o, bv_given="-bv" in o)
    if (sv is None) == ("-auto" not in o):
        raise usage("give either -sv or -auto")
    bv = _bv_of(ctx, o)
    reply = _route(ctx, bv, "delete", pb.DeleteRequest(bv=bv.name, sv=sv, auto="-auto" in o)).deleted
    if not reply.deleted_sv:
        ctx.notice(E.NOTHING_TO_DELETE, name=bv.name)
        return 0
    ctx.info(DONE["iSMsc_delete"])
    gen = _generation(_family(ctx, bv, bv=bv.name), reply.deleted_sv)
    if gen is not None:
        _print(ctx, formats.generation_block(gen, _special(ctx, bv.array, bv.special_entry)))
    return 0


def _wait(ctx: Ctx, bv: Vol, sv: pb.SvRef, cond: str, limit: float | None) -> pb.Generation:
    """Route Wait until the generation reaches ``cond``, at most ``limit`` seconds (None: no limit)."""
    if sv.svflg != "ld":
        # Pin the generation by name: a relative generation may name another one while we wait.
        q = _route(ctx, bv, "query", pb.QueryRequest(bv=bv.name)).query
        sv = pb.SvRef(sv=pick_generation(q, sv).sv, svflg="ld")
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        left = WAIT_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
        span = max(min(WAIT_SLICE, left), 0.001)  # 0 would mean the array's default
        req = pb.WaitRequest(bv=bv.name, sv=sv, cond=cond, timeout_seconds=span)
        try:
            with ctx.host.released():  # other commands of this host may run meanwhile (P4 mounts the BV)
                return _route(ctx, bv, "wait", req, timeout=span + RPC_MARGIN).generation
        except CommandError as exc:
            more = deadline is None or time.monotonic() < deadline - 0.01
            if exc.msg_id != E.WAIT_TIMEOUT.msg_id or not more:
                raise


@command("iSMsc_restore")
def sc_restore(ctx: Ctx) -> int:
    """``iSMsc_restore -bv BV -bvflg … -sv SV -svflg … [-derivsv keep|delete] [-nowait]``.

    Without ``-nowait`` it returns when the restore has completed (the generation is ``snap/active``
    again); with it, at once (``rst/exec``), and ``iSMsc_wait -cond active`` awaits the end."""
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg", "-derivsv"), ("-nowait",))
    _pair(o, "-bv", "-bvflg")
    _need(o, "-bv", "-sv")
    sv = _svref(o, bv_given=True)
    derivsv = _choice(o, "-derivsv", ("keep", "delete"), "keep")
    bv = _bv_of(ctx, o)
    _refuse_mounted(ctx, bv.entry, bv.name, E.BV_MOUNTED)
    _check_partitions(ctx, bv.entry)
    req = pb.RestoreRequest(bv=bv.name, sv=sv, derivsv=derivsv, options=_layout(ctx))
    gen = _route(ctx, bv, "restore", req).generation
    if "-nowait" not in o and gen.state == formats.STATE_RESTORING:
        gen = _wait(ctx, bv, pb.SvRef(sv=gen.sv, svflg="ld"), "active", None)
    ctx.info(DONE["iSMsc_restore"])
    _print(ctx, formats.generation_block(gen, _special(ctx, bv.array, bv.special_entry)))
    return 0


@command("iSMsc_wait")
def sc_wait(ctx: Ctx) -> int:
    """``iSMsc_wait -cond active|deleted -bv BV -bvflg … -sv SV -svflg … [-limit SECONDS]``.

    Without ``-limit`` it waits as long as it takes; past the limit it fails with iSM19040."""
    o = ctx.options(("-cond", "-bv", "-bvflg", "-sv", "-svflg", "-limit"))
    _pair(o, "-bv", "-bvflg")
    _need(o, "-cond", "-bv", "-sv")
    cond = _choice(o, "-cond", ("active", "deleted"))
    limit = None
    if "-limit" in o:
        try:
            limit = float(o["-limit"])
        except ValueError:
            raise usage(f"-limit {o['-limit']}") from None
        if not limit >= 0 or limit == float("inf"):
            raise usage(f"-limit {o['-limit']}")
    sv = _svref(o, bv_given=True)
    assert sv is not None
    bv = _bv_of(ctx, o)
    gen = _wait(ctx, bv, sv, cond, limit)
    ctx.info(DONE["iSMsc_wait"])
    _print(ctx, formats.generation_block(gen, _special(ctx, bv.array, bv.special_entry)))
    return 0


@command("iSMsc_svguard")
def sc_svguard(ctx: Ctx) -> int:
    """``iSMsc_svguard -bv BV -bvflg … -sv SV -svflg … -mode set|cancel``."""
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg", "-mode"))
    _pair(o, "-bv", "-bvflg")
    _need(o, "-bv", "-sv", "-mode")
    mode = _choice(o, "-mode", ("set", "cancel"))
    sv = _svref(o, bv_given=True)
    bv = _bv_of(ctx, o)
    gen = _route(ctx, bv, "guard", pb.GuardRequest(bv=bv.name, sv=sv, on=mode == "set")).generation
    ctx.info(DONE["iSMsc_svguard"])
    _print(ctx, formats.generation_block(gen, _special(ctx, bv.array, bv.special_entry), guard=True))
    return 0


def _link_args(ctx: Ctx, o: dict[str, Any]) -> tuple[Vol, pb.SvRef | None, str, VolEntry | None]:
    _pair(o, "-lv", "-lvflg")
    _pair(o, "-bv", "-bvflg")
    _need(o, "-lv")
    sv = _svref(o, bv_given=True)  # -svflg relgen alone counts from the LV's BV, as the array does
    lv = _resolve(ctx, o["-lv"], _flag(o, "-lvflg", VOLUME_FLAGS))
    bv_name, bv_entry = "", None
    if "-bv" in o:
        bv_name, bv_entry = _ld_name(ctx, o["-bv"], _flag(o, "-bvflg", VOLUME_FLAGS))
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
    q = _family(ctx, lv, bv=_family_bv(sv, bv_name), member=lv.name)
    gen = _generation(q, target.target) if target is not None and target.kind == "sv" else None
    special = _special(ctx, lv.array, lv.special_entry, bv_entry)
    _print(
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
    [-lvacc rw|ro|nr|na]``: LV to an SV in snap/active, or LV to its BV."""
    o = ctx.options(("-lv", "-lvflg", "-sv", "-svflg", "-bv", "-bvflg", "-lvacc"))
    if "-sv" not in o and "-bv" not in o:
        raise usage("give -sv or -bv")
    mode = _choice(o, "-lvacc", ACCESS_MODES, "rw")
    lv, sv, bv_name, bv_entry = _link_args(ctx, o)
    _refuse_mounted(ctx, lv.entry, lv.name, E.LV_MOUNTED)
    if sv is None:
        _refuse_mounted(ctx, bv_entry, bv_name, E.BV_MOUNTED)  # the BV becomes reachable only through the LV
    req = pb.LinkRequest(lv=lv.name, sv=sv, bv=bv_name, mode=mode, options=_layout(ctx))
    info = _route(ctx, lv, "link", req).linkinfo
    _scan(ctx)
    ctx.info(DONE["iSMsc_link"])
    _link_output(ctx, lv, info, sv, bv_name, bv_entry, linked=True)
    return 0


@command("iSMsc_unlink")
def sc_unlink(ctx: Ctx) -> int:
    """``iSMsc_unlink -lv LV -lvflg … [-sv SV -svflg …] [-bv BV -bvflg ld]``."""
    o = ctx.options(("-lv", "-lvflg", "-sv", "-svflg", "-bv", "-bvflg"))
    lv, sv, bv_name, bv_entry = _link_args(ctx, o)
    _refuse_mounted(ctx, lv.entry, lv.name, E.LV_MOUNTED)
    info = _route(ctx, lv, "unlink", pb.UnlinkRequest(lv=lv.name, sv=sv, bv=bv_name)).linkinfo
    _scan(ctx)
    ctx.info(DONE["iSMsc_unlink"])
    _link_output(ctx, lv, info, sv, bv_name, bv_entry, linked=False)
    return 0


@command("iSMsc_query")
def sc_query(ctx: Ctx) -> int:
    """``iSMsc_query -bv BV -bvflg … [-sv SV -svflg …] [-summary | -detail]`` or
    ``iSMsc_query -sv SV -svflg ld|ld.relgen [-summary | -detail]``; the summary is the default."""
    o = ctx.options(("-bv", "-bvflg", "-sv", "-svflg"), ("-summary", "-detail"))
    if "-summary" in o and "-detail" in o:
        raise usage("give -summary or -detail, not both")
    _pair(o, "-bv", "-bvflg")
    sv = _svref(o, bv_given="-bv" in o)
    if "-bv" in o:
        bv = _bv_of(ctx, o)
    elif sv is None:
        raise usage("give -bv or -sv")
    elif sv.svflg == "ld.relgen":
        bv = _resolve(ctx, sv.sv.rpartition(".")[0], "ld")
    else:
        bv = _bv_of_sv(ctx, sv.sv)
    q = _route(ctx, bv, "query", pb.QueryRequest(bv=bv.name)).query
    svs = [pick_generation(q, sv).sv] if sv is not None else None
    special = _special(ctx, bv.array, bv.special_entry)
    layout = formats.query_detail if "-detail" in o else formats.query_summary
    _print(ctx, layout(q, special, svs))
    return 0


def _bv_of_sv(ctx: Ctx, sv: str) -> Vol:
    """The BV of an SV named alone: SVs are in no volume list, so state monitoring tells which."""
    found = _monitor_family(ctx, "", member=sv, quiet=False)
    if found is None or sv not in {g.sv for g in found[1].generations}:
        raise CommandError(E.NOT_FOUND, name=sv)
    array, q = found
    vol = _resolve(ctx, q.bv, "ld")
    if vol.entry is None:  # through a CV: the one of the array that has the SV first
        vol.routes.sort(key=lambda r: r[0] != array)
    return vol


@command("iSMsc_linkinfo")
def sc_linkinfo(ctx: Ctx) -> int:
    """``iSMsc_linkinfo -vol V -volflg ld|drv|mvol [-lcl]``."""
    o = ctx.options(("-vol", "-volflg"), ("-lcl",))
    _pair(o, "-vol", "-volflg")
    _need(o, "-vol")
    vol = _resolve(ctx, o["-vol"], _flag(o, "-volflg", VOLUME_FLAGS))
    info = _route(ctx, vol, "linkinfo", pb.VolumeRef(name=vol.name)).linkinfo
    destinations = None
    if info.type in ("SV", "LV", "BV"):
        bv = info.volume if info.type == "BV" else ""
        if info.type == "LV" and info.links and info.links[0].kind == "bv":
            bv = info.links[0].target
        q = _family(ctx, vol, bv=bv, member=info.volume)
        if q is not None:
            destinations = formats.destinations_of(q)
    _print(ctx, formats.linkinfo(info, _special(ctx, vol.array, vol.special_entry), destinations))
    return 0
