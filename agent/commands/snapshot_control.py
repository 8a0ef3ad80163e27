"""How an iSMsc_* command reaches the array: options, the volumes it names, host-side checks, routing.

Also the array state its output shows (the BV's query, routed or from state monitoring); the steps
are listed in snapshot.py's docstring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

from snaplab.agent.vollist import VolEntry, VolumeList
from snaplab.common.errors import E, Message, SnapLabError
from snaplab.common.rpc import SnapLabClientError
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import manager_pb2

from .base import CommandError, Ctx

log = logging.getLogger("snaplab.agent")

VOLUME_FLAGS = ("ld", "drv", "mvol")  # -bvflg, -lvflg, -volflg
SV_FLAGS = ("ld", "relgen", "ld.relgen")
ACCESS_MODES = ("rw", "ro", "nr", "na")
MONITOR_TIMEOUT = 30.0

_ROUTE_ERRORS = (CommandError, SnapLabError, SnapLabClientError, grpc.RpcError)
# What a route of several says when its array does not have the LD: the next route is tried.
PROBE_MISSES = (E.NOT_FOUND.msg_id, E.ARRAY_UNKNOWN.msg_id, E.CV_RULE.msg_id)


def usage(detail: str) -> CommandError:
    return CommandError(E.USAGE, detail=detail)


# ============================================================================ options
def flag(o: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """The value of a -xxflg option (default ``ld``), lower-cased and checked."""
    return choice(o, key, allowed, "ld")


def need(o: dict[str, Any], *keys: str) -> None:
    for k in keys:
        if k not in o:
            raise usage(f"{k} is required")


def pair(o: dict[str, Any], vol: str, flg: str) -> None:
    """A -xxflg without its volume option is a syntax error."""
    if flg in o and vol not in o:
        raise usage(f"{flg} needs {vol}")


def svref(o: dict[str, Any], *, bv_given: bool) -> pb.SvRef | None:
    pair(o, "-sv", "-svflg")
    if "-sv" not in o:
        return None
    flg = flag(o, "-svflg", SV_FLAGS)
    if flg == "relgen" and not bv_given:
        raise usage("-svflg relgen needs -bv")
    return pb.SvRef(sv=o["-sv"], svflg=flg)


def choice(o: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
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
    try:
        return ctx.host.control_via(array, entry) or entry.ld_name
    except CommandError as err:
        if err.msg_id == E.VIA_NOT_READY.msg_id:
            # Not Ready because the array reports a failure of the volume (a BV failure, an SRA
            # failure): that failure is the message, not "Not Ready".
            disk = ctx.host.disk(entry.array, entry.ld_number)
            if disk is not None and disk.failed and disk.error.startswith("iSM"):
                raise CommandError.of(SnapLabClientError(grpc.StatusCode.DATA_LOSS, disk.error)) from None
        raise


def resolve(ctx: Ctx, name: str, flg: str) -> Vol:
    """The volume an operation acts on (snapshot.py's docstring, step 2)."""
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


def ld_name(ctx: Ctx, name: str, flg: str) -> tuple[str, VolEntry | None]:
    """A second volume of an operation (the BV of an LV-BV link): its LD name, and its entry when this
    host sees it; an LD name the list does not have is passed as it is."""
    entry = _lookup(ctx, name, flg)
    if entry is None:
        return name, None
    ctx.host.stale_check(entry)
    return entry.ld_name, _partition_entry(ctx, name, flg) or entry


def route(
    ctx: Ctx, vol: Vol, op: str, request: Any, *, timeout: float | None = 60.0
) -> manager_pb2.ControlReply:
    """Route one operation; through a CV of several arrays, the first array that has the LD answers."""
    routes = vol.routes
    for i, (array, via) in enumerate(routes):
        try:
            reply = ctx.route(op, request, via=via, array=array, timeout=timeout, probe=i + 1 < len(routes))
        except _ROUTE_ERRORS as exc:
            err = CommandError.of(exc)
            if i + 1 < len(routes) and err.msg_id in PROBE_MISSES:
                continue
            raise err from None
        vol.routes = [(array, via)]  # later operations of this command go the same way
        return reply
    raise CommandError(E.NOT_IN_VOLLIST, name=vol.name)  # pragma: no cover - routes is never empty


# ============================================================================ host-side helpers
def special_files(ctx: Ctx, array: str, *entries: VolEntry | None) -> dict[str, str]:
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


def check_partitions(ctx: Ctx, entry: VolEntry | None) -> None:
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
    opts = layout_options(ctx)
    multi, gpt = opts.allow_multi_partition, opts.allow_gpt
    name = getattr(disk, "ld_name", "") or entry.ld_name
    if layout.dynamic:
        raise CommandError(E.DYNAMIC_DISK, name=name)
    if layout.scheme == "gpt" and (getattr(disk, "format", "") != "WG" or not gpt):
        raise CommandError(E.GPT_NOT_ALLOWED, name=name)
    if len(layout.volumes()) > 1 and not multi:
        raise CommandError(E.MULTI_PARTITION, name=name)


def layout_options(ctx: Ctx) -> pb.LayoutOptions:
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


def refuse_mounted(ctx: Ctx, entry: VolEntry | None, name: str, message: Message) -> None:
    points = _mounted(ctx, entry)
    if points:
        raise CommandError(message, name=f"{name} {' '.join(points)}")


def reread_disks(ctx: Ctx) -> None:
    """After a link or unlink the LV turns Ready / Not Ready: the host reads its disks again. This is
    ``Host.scan()`` (the view), not iSMrc_scan's ``rescan()``: nothing is brought online or automounted."""
    try:
        ctx.host.scan()
    except Exception:  # the array operation is done; a failed re-read is what iSMrc_scan is for
        log.exception("disk scan after %s failed", ctx.name)


def print_lines(ctx: Ctx, lines: list[str]) -> None:
    for line in lines:
        ctx.print(line)


# ============================================================================ array state for output
def monitor_family(
    ctx: Ctx, array: str, *, bv: str = "", member: str = "", quiet: bool = True
) -> tuple[str, pb.QueryReply] | None:
    """(array, query) of the BV named ``bv`` or having ``member`` (SV or LV) from the manager's state
    monitoring (B5); None when there is none, or (``quiet``) when monitoring does not answer."""
    try:
        reply = ctx.host.manager.Monitor(manager_pb2.MonitorRequest(array=array), timeout=MONITOR_TIMEOUT)
    except _ROUTE_ERRORS as exc:
        if not quiet:
            raise CommandError.of(exc, manager=ctx.host.manager_target) from None
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


def family(ctx: Ctx, vol: Vol, *, bv: str = "", member: str = "") -> pb.QueryReply | None:
    """The query of the BV an output needs: routed when the route allows it (through the CV, or the
    BV itself), else from state monitoring; None when neither answers (the output then says less)."""
    if bv and (_is_cv(ctx, vol) or vol.via == bv):
        try:
            return route(ctx, vol, "query", pb.QueryRequest(bv=bv)).query
        except CommandError as exc:
            log.info("query of %s for output failed: %s", bv, exc)
    found = monitor_family(ctx, vol.array, bv=bv, member=member)
    return found[1] if found else None


def generation(q: pb.QueryReply | None, sv: str) -> pb.Generation | None:
    if q is None:
        return None
    return next((g for g in q.generations if g.sv == sv), None)


def pick_generation(q: pb.QueryReply, ref: pb.SvRef) -> pb.Generation:
    """The generation of a query that an SvRef names (iSM19021 not an SV of the BV, iSM19027 no such
    generation), as the array resolves it: a name, ``.-n`` / ``-n`` of the BV, or ``BV.-n``."""
    flg = ref.svflg or "ld"
    if flg == "ld":
        found = generation(q, ref.sv)
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
