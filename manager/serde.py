"""Proto ↔ domain conversion for the manager: the only manager module that knows both shapes."""

from __future__ import annotations

from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2, manager_pb2

from .routing import ArrayView, ControlOp, LdInfo, ViaState
from .state import EventRecord, HostDefinition, HostRecord

# ControlRequest's oneof field -> (routing kind, Array RPC method).
OPS = {
    "create": ("create", "Create"),
    "delete": ("delete", "Delete"),
    "restore": ("restore", "Restore"),
    "wait": ("wait", "Wait"),
    "guard": ("guard", "Guard"),
    "link": ("link", "Link"),
    "unlink": ("unlink", "Unlink"),
    "query": ("query", "Query"),
    "linkinfo": ("linkinfo", "LinkInfoOf"),
    "group": ("group", "Group"),  # SnapLab extension (issue 14): consistency groups
}
# Array RPC reply type -> ControlReply field.
_REPLY_FIELD = {
    array_pb2.Generation: "generation",
    array_pb2.DeleteReply: "deleted",
    array_pb2.LinkInfo: "linkinfo",
    array_pb2.QueryReply: "query",
    array_pb2.GroupReply: "group",
}


def control_op(request: manager_pb2.ControlRequest) -> tuple[ControlOp, str, object]:
    """(routing view of the operation, Array RPC method, the array request message)."""
    field = request.WhichOneof("op")
    if field is None:
        raise SnapLabError(E.BAD_ARGUMENT, detail="ControlRequest names no operation")
    kind, method = OPS[field]
    m = getattr(request, field)
    if field == "linkinfo":
        return ControlOp(kind, volume=m.name), method, m
    if field == "group":
        gop = m.WhichOneof("op") or ""
        lvs = tuple(getattr(m, gop).lvs) if gop in ("link", "unlink") else ()
        return ControlOp(kind, group=m.group, group_op=gop, members=tuple(m.members), lvs=lvs), method, m
    sv = getattr(m, "sv", None)
    return (
        ControlOp(
            kind,
            bv=getattr(m, "bv", ""),
            sv=sv.sv if sv is not None else "",
            svflg=(sv.svflg if sv is not None else "") or "ld",
            lv=getattr(m, "lv", ""),
        ),
        method,
        m,
    )


def control_reply(reply: object) -> manager_pb2.ControlReply:
    out = manager_pb2.ControlReply()
    getattr(out, _REPLY_FIELD[type(reply)]).CopyFrom(reply)
    return out


def array_view(state: array_pb2.ArrayState) -> ArrayView:
    return ArrayView.build(
        state.name,
        [LdInfo(ld.name, ld.type, ld.bv, frozenset(ld.access), ld.attr) for ld in state.lds],
        {h.name: {f"wwn:{w.lower()}" for w in h.wwns} | {f"port:{p}" for p in h.ports}
         | {f"iqn:{i.lower()}" for i in h.initiators} for h in state.hosts},
        state.faults,
        {g.name: tuple(g.bvs) for g in state.groups},
    )


def via_state(info: array_pb2.LinkInfo) -> ViaState:
    if info.type == "LV":
        mode = info.links[0].mode if info.links else ""
        return ViaState(linked=info.state == "link", mode=mode)
    bv_lv = next((x.lv for x in info.links if x.kind == "bv"), "")
    return ViaState(linked=info.state == "link", bv_linked_lv=bv_lv)


def host_msg(rec: HostRecord, heartbeat_age: float | None = None) -> manager_pb2.HostInfo:
    """``heartbeat_age``: seconds since the cluster witness heard the node (None: never, or not a node)."""
    return manager_pb2.HostInfo(
        heartbeat_age=-1.0 if heartbeat_age is None else heartbeat_age,
        name=rec.name,
        role=rec.role,
        platform=rec.platform,
        wwns=list(rec.wwns),
        ports=list(rec.ports),
        cluster=rec.cluster,
        cluster_role=rec.cluster_role,
        enrolled=rec.enrolled,
    )


def host_definition(array: str, h: array_pb2.Host) -> HostDefinition:
    """A host as an array registered it, as a definition on that array."""
    return HostDefinition(array, h.name, tuple(w.lower() for w in h.wwns), tuple(h.ports), h.platform or "windows")


def registered_as(h: array_pb2.Host | None, d: HostDefinition) -> bool:
    """Whether the array's registration of the host is its definition."""
    return (
        h is not None
        and {w.lower() for w in h.wwns} == set(d.wwns)
        and set(h.ports) == set(d.ports)
        and (h.platform or "windows") == d.platform
    )


def event_msg(ev: EventRecord) -> manager_pb2.Event:
    return manager_pb2.Event(
        seq=ev.seq,
        time=ev.time,
        source=ev.source,
        classification=ev.classification,
        operation=ev.operation,
        msg_id=ev.msg_id,
        text=ev.text,
    )


def config_text(request: array_pb2.ConfigRequest) -> str:
    """A configuration operation as one line for the event log: ``bind_pool number=0 name=Pool0 …``
    (numbers always shown, empty strings and false flags left out)."""
    op = request.WhichOneof("op")
    if op is None:
        return "(no operation)"
    m = getattr(request, op)
    parts = [op]
    for f in m.DESCRIPTOR.fields:
        value = getattr(m, f.name)
        if f.is_repeated:
            if value:
                parts.append(f"{f.name}={','.join(str(v) for v in value)}")
        elif f.has_presence and not m.HasField(f.name):
            continue
        elif isinstance(value, bool):
            if value:
                parts.append(f.name)
        elif isinstance(value, str):
            if value:
                parts.append(f"{f.name}={value}")
        else:
            parts.append(f"{f.name}={value}")
    return " ".join(parts)


def op_text(op: ControlOp) -> str:
    """The operation's arguments in the command's own option style, for the event log."""
    parts = []
    if op.kind == "group":
        parts.append(f"-cg {op.group}")
        if op.lvs:
            parts.append(f"-lvlist {','.join(op.lvs)}")
    if op.kind in ("link", "unlink") and op.lv:
        parts.append(f"-lv {op.lv}")
    if op.bv:
        parts.append(f"-bv {op.bv}")
    if op.sv:
        parts.append(f"-sv {op.sv} -svflg {op.svflg}")
    if op.volume:
        parts.append(f"-vol {op.volume}")
    return " ".join(parts)


# describe_control's answers by (request bytes, rpc, array): a host repeats the same few requests,
# and each routed op is described twice (before and after routing). Cleared when full.
_DESCRIBED: dict[tuple[bytes, str, str], tuple[str, str]] = {}
_DESCRIBED_MAX = 4096


def describe_control(
    request: manager_pb2.ControlRequest, rpc: str = "Route", array: str = ""
) -> tuple[str, str]:
    """(command name, argument text) of a ControlRequest for the event log (``rpc`` names one without an op;
    ``array``: the array it went to, when the request left it to the manager)."""
    key = (request.SerializeToString(deterministic=True), rpc, array)
    got = _DESCRIBED.get(key)
    if got is None:
        got = _describe_control(request, rpc, array)
        if len(_DESCRIBED) >= _DESCRIBED_MAX:
            _DESCRIBED.clear()
        _DESCRIBED[key] = got
    return got


def _describe_control(request: manager_pb2.ControlRequest, rpc: str, array: str) -> tuple[str, str]:
    field = request.WhichOneof("op")
    if field is None:
        return rpc, f"via {request.via or '-'}"
    op = control_op(request)[0]
    m = getattr(request, field)
    flags = []
    for name in ("cyclic", "auto"):
        if getattr(m, name, False):
            flags.append(f"-{name}")
    if field == "guard":
        flags.append("-mode set" if m.on else "-mode cancel")
    if field == "wait":
        flags.append(f"-cond {m.cond or 'active'}")
    if field == "link":
        flags.append(f"-lvacc {m.mode or 'rw'}")
    if field == "group":
        flags += group_flags(m)
    where = f"{array or request.array}:" if array or request.array else ""
    text = " ".join(x for x in (op_text(op), *flags) if x)
    return op.command, f"{text} via {where}{request.via or '-'}"


def group_flags(m: array_pb2.GroupRequest) -> list[str]:
    """A consistency group's operation as its command's options, for the event log (issue 14)."""
    op = m.WhichOneof("op")
    if op is None:
        return []
    g = getattr(m, op)
    flags = [f"-sv {g.gen} -svflg relgen"] if getattr(g, "gen", 0) else []
    if op == "create" and g.cyclic:
        flags.append("-cyclic")
    if op == "guard":
        flags.append(f"-hold {g.hold}" if g.hold else f"-release {g.release}" if g.release
                     else "-mode set" if g.set else "-mode cancel")
    if op == "link":
        flags.append(f"-lvacc {g.mode or 'rw'}")
    return flags
