"""Proto ↔ engine conversion for the array service: the only module that knows both shapes.

Requests become plain keyword arguments for ``ArrayEngine`` methods and engine dicts become
messages. Conventions of the contract: an empty string means "not given"; an LD number that is
absent or negative means "the first free one"; a zero timeout means "the default".
"""

from __future__ import annotations

import math
from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2 as pb

DEFAULT_WAIT_SECONDS = 60.0
INT64_MAX = (1 << 63) - 1  # the contract's sizes are int64: a sum beyond it is shown as this (saturated)


def bad(detail: str) -> SnapLabError:
    return SnapLabError(E.BAD_ARGUMENT, detail=detail)


def opt(value: str) -> str | None:
    """An optional string field: empty means not given."""
    return value or None


def _number(msg: Any, field: str = "number") -> int | None:
    if not msg.HasField(field):
        return None
    n = getattr(msg, field)
    return None if n < 0 else n


def _non_negative(value: int, what: str) -> int:
    if value < 0:
        raise bad(f"{what} must not be negative")
    return value


# -- configuration ---------------------------------------------------------------------------


def config_call(request: pb.ConfigRequest) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """(engine method name, args, kwargs) for one configuration operation (ops are named as the methods)."""
    op = request.WhichOneof("op")
    if op is None:
        raise bad("ConfigRequest names no operation")
    m = getattr(request, op)
    if op == "set_array_name":
        return op, (m.name,), {}
    if op == "add_port":
        if not 0 <= m.director < 256 or not 0 <= m.port < 256:
            raise bad("director and port numbers are 0-255")
        if not m.name:
            raise bad("port name is required")
        return op, (m.director, m.port, m.name), {}
    if op == "bind_pool":
        return op, (_non_negative(m.number, "pool number"), m.name, m.kind, m.capacity), {}
    if op == "bind_ld":
        return op, (m.name, m.capacity, m.pool, m.format), {"number": _number(m), "attr": m.attr or "iv"}
    if op == "unbind_ld":
        return op, (m.ld,), {}
    if op == "build_sra":
        return (
            op,
            (m.pool, m.capacity),
            {"sdv_name": opt(m.sdv_name), "number": _number(m), "extend": m.extend},
        )
    if op == "add_generations":
        numbers = list(m.numbers)
        if any(n < 0 for n in numbers):
            raise bad("LD numbers must not be negative")
        return op, (m.bv, m.pool, m.count), {"sv_names": list(m.sv_names) or None, "numbers": numbers or None}
    if op == "delete_generations":
        return op, (m.bv, m.count), {}
    if op == "bind_lv":
        return op, (m.bv, m.name), {"number": _number(m)}
    if op == "set_licence":
        return op, (m.product, _non_negative(m.capacity, "licensed capacity")), {}
    if op == "remove_licence":
        return op, (m.product,), {}
    if op == "register_host":
        if not m.name:
            raise bad("host name is required")
        return op, (m.name, list(m.wwns), list(m.ports), m.platform or "windows", list(m.initiators)), {}
    if op in ("assign_access", "unassign_access"):
        return op, (m.ld,), {"port": opt(m.port), "wwn": opt(m.wwn), "initiator": opt(m.initiator)}
    if op == "set_format":
        return op, (m.ld, m.format), {}
    if op == "rename_ld":
        return op, (m.ld, m.name), {}
    if op == "expand_ld":
        return op, (m.ld, m.capacity), {}
    if op == "pair_lds":
        if m.unpair:
            return "unpair_lds", (m.mv, m.rv), {"force": m.force}
        return op, (m.mv, m.rv), {}
    if op in ("replicate_ld", "separate_ld"):
        return op, (m.mv, m.rv), {}
    if op == "set_sra_policy":  # SnapLab extension (issue 14)
        return op, (required(m.pool, "pool"), opt(m.policy)), {
            "warn": list(m.warn_percents) if m.set_warn else None,
            "queue_timeout": m.queue_timeout_seconds or None,
        }
    if op == "group_define":  # SnapLab extension (issue 14): consistency groups
        return op, (required(m.name, "name"), list(m.bvs)), {}
    if op == "group_remove":
        return op, (required(m.name, "name"),), {}
    if op == "set_io_limit":
        upper = m.upper if m.HasField("upper") else None
        lower = m.lower if m.HasField("lower") else None
        return op, (m.ld,), {"upper": upper, "lower": lower, "report": m.report}
    raise bad(f"unknown configuration operation {op}")  # pragma: no cover - the oneof is exhaustive


def config_reply(made: list[dict], removed: list[str]) -> pb.ConfigReply:
    """The reply of a configuration operation: LDs it made (as ``describe()`` dicts) and names it removed."""
    return pb.ConfigReply(lds=[ld_msg(d) for d in made], names=removed)


def made_ld_names(result: Any) -> list[str]:
    """Names of the LDs a configuration method returned (an LD, a list of LDs, or something else)."""
    items = result if isinstance(result, list) else [result]
    return [x.name for x in items if hasattr(x, "name") and hasattr(x, "capacity")]


# -- snapshot operations ---------------------------------------------------------------------


def sv_args(ref: pb.SvRef) -> tuple[str | None, str]:
    """(sv_ref, svflg) of an SvRef; svflg defaults to ``ld``."""
    return opt(ref.sv), ref.svflg or "ld"


def layout_kwargs(options: pb.LayoutOptions) -> dict[str, bool]:
    return {"allow_multi": options.allow_multi_partition, "allow_gpt": options.allow_gpt}


def required(value: str, what: str) -> str:
    if not value:
        raise bad(f"{what} is required")
    return value


def create_call(r: pb.CreateRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sv, flg = sv_args(r.sv)
    return (required(r.bv, "bv"), sv, flg), {"cyclic": r.cyclic, **layout_kwargs(r.options)}


def delete_call(r: pb.DeleteRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sv, flg = sv_args(r.sv)
    return (required(r.bv, "bv"), sv, flg), {"auto": r.auto}


def restore_call(r: pb.RestoreRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sv, flg = sv_args(r.sv)
    return (required(r.bv, "bv"), required(sv or "", "sv"), flg), {
        "derived": r.derivsv or "keep",
        **layout_kwargs(r.options),
    }


def wait_call(r: pb.WaitRequest, time_remaining: float | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Wait arguments; the timeout is the request's (default 60 s), never beyond the RPC's deadline."""
    t = r.timeout_seconds
    if not math.isfinite(t) or t < 0:
        raise bad("timeout_seconds must be a non-negative number")
    timeout = t or DEFAULT_WAIT_SECONDS
    if time_remaining is not None:
        timeout = max(0.0, min(timeout, time_remaining))
    sv, flg = sv_args(r.sv)
    return (required(r.bv, "bv"), required(sv or "", "sv"), flg), {
        "cond": r.cond or "active",
        "timeout": timeout,
    }


def guard_call(r: pb.GuardRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sv, flg = sv_args(r.sv)
    return (required(r.bv, "bv"), required(sv or "", "sv"), flg), {"on": r.on}


def link_call(r: pb.LinkRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sv, flg = sv_args(r.sv)
    return (required(r.lv, "lv"), sv, flg), {
        "bv_ref": opt(r.bv),
        "mode": r.mode or "rw",
        **layout_kwargs(r.options),
    }


def unlink_call(r: pb.UnlinkRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    sv, flg = sv_args(r.sv)
    return (required(r.lv, "lv"), sv, flg), {"bv_ref": opt(r.bv)}


# -- replies ---------------------------------------------------------------------------------


def generation_msg(d: dict) -> pb.Generation:
    rel = d.get("relgen")
    return pb.Generation(
        sv=d["sv"],
        sv_number=d["sv_number"],
        bv=d["bv"],
        format=d["format"],
        has_relgen=rel is not None,
        relgen=rel or 0,
        attribute=d["attribute"],
        state=d["state"],
        state_time=d["state_time"],
        create_time=d["create_time"],
        guard=d["guard"],
        link=d["link"],
        lv=d["lv"],
        lv_mode=d["lv_mode"],
        data_size=d["data_size"],
        restore_total=d["restore_total"],
        restore_done=d["restore_done"],
        pool=d["pool"],
        consistency=d.get("consistency", ""),
        holds=d.get("holds", []),
        group=d.get("group", ""),
    )


def query_msg(d: dict) -> pb.QueryReply:
    return pb.QueryReply(
        bv=d["bv"],
        bv_number=d["bv_number"],
        format=d["format"],
        state=d["state"],
        reserve_area=d["reserve_area"],
        generations=[generation_msg(g) for g in d["generations"]],
        lvs=[pb.LvState(lv=x["lv"], link=x["link"], mode=x["mode"]) for x in d["lvs"]],
        bv_link_lv=d["bv_link_lv"],
    )


def linkinfo_msg(d: dict) -> pb.LinkInfo:
    return pb.LinkInfo(
        volume=d["volume"],
        type=d["type"],
        format=d["format"],
        state=d["state"],
        link_lost=bool(d.get("link_lost", False)),
        links=[
            pb.LinkEntry(lv=x["lv"], target=x["target"], kind=x["kind"], mode=x["mode"]) for x in d["links"]
        ],
    )


def ld_msg(d: dict) -> pb.Ld:
    return pb.Ld(
        number=d["number"],
        name=d["name"],
        type=d["type"],
        format=d["format"],
        capacity=d["capacity"],
        pool=d["pool"],
        attr=d["attr"],
        access=d["access"],
        bv=d["bv"],
        reserved_by=d.get("reserved_by", ""),
        rpl_partner=d.get("rpl_partner", ""),
        sync_state=d.get("sync_state", ""),
        rpl_role=d.get("rpl_role", ""),
        io_limit=d.get("io_limit", ""),
        rpl_progress=d.get("rpl_progress", 0),
        rpl_diff=_int64(d.get("rpl_diff", 0)),
    )


_POOL_SIZES = ("capacity", "sra_capacity", "sra_used", "used")


def _int64(n: int) -> int:
    return min(n, INT64_MAX)


def array_state_msg(d: dict) -> pb.ArrayState:
    return pb.ArrayState(
        name=d["name"],
        product_id=d.get("product_id", ""),
        physical_capacity=_int64(d["physical_capacity"]),
        ports=[pb.Port(director=p["director"], port=p["port"], name=p["name"]) for p in d["ports"]],
        pools=[pb.Pool(**{k: _int64(v) if k in _POOL_SIZES else v for k, v in p.items()}) for p in d["pools"]],
        lds=[ld_msg(x) for x in d["lds"]],
        licences=d["licences"],
        faults=d["faults"],
        hosts=[
            pb.Host(name=h["name"], wwns=h["wwns"], ports=h["ports"], platform=h["platform"],
                    initiators=h.get("initiators", []))
            for h in d["hosts"]
        ],
        events=[pb.ArrayEvent(**e) for e in d.get("events", [])],
        groups=[pb.GroupInfo(name=g["name"], bvs=g["bvs"]) for g in d.get("groups", [])],
    )


def routing_state_msg(d: dict) -> pb.ArrayState:
    """A routing Describe's answer (routing_view.py): the view, or only its version when unchanged."""
    head = {"name": d["name"], "product_id": d["product_id"], "routing_version": d["routing_version"]}
    if d.get("unchanged"):
        return pb.ArrayState(**head, unchanged=True)
    return pb.ArrayState(
        **head,
        lds=[pb.Ld(name=x["name"], type=x["type"], attr=x["attr"], access=x["access"], bv=x["bv"]) for x in d["lds"]],
        faults=d["faults"],
        hosts=[pb.Host(name=h["name"], wwns=h["wwns"], ports=h["ports"], initiators=h["initiators"]) for h in d["hosts"]],
        groups=[pb.GroupInfo(name=g["name"], bvs=g["bvs"]) for g in d["groups"]],
    )


# -- consistency groups (SnapLab extension, issue 14; groups.py) ------------------------------------
GROUP_OPS = ("create", "delete", "restore", "guard", "link", "unlink", "query")


def group_call(r: pb.GroupRequest) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """(engine method, args, kwargs) of a GroupRequest."""
    name = required(r.group, "group")
    op = r.WhichOneof("op")
    if op is None:
        raise bad("GroupRequest names no operation")
    m = getattr(r, op)
    kw: dict[str, Any] = {"expect": list(r.members) or None}
    if op == "create":
        return "group_create", (name,), {**kw, "cyclic": m.cyclic, **layout_kwargs(m.options)}
    if op == "unlink":
        return "group_unlink", (name, list(m.lvs)), kw
    if op == "query":
        return "group_query", (name, m.gen), kw
    if m.gen >= 0:
        raise bad("gen must be a relative generation (-1 the newest)")
    if op == "delete":
        return "group_delete", (name, m.gen), kw
    if op == "restore":
        derived = m.derivsv or "keep"
        if derived not in ("keep", "delete"):
            raise bad(f"-derivsv {derived}")
        return "group_restore", (name, m.gen), {**kw, "derived": derived, **layout_kwargs(m.options)}
    if op == "guard":
        given = [m.set, m.cancel, bool(m.hold), bool(m.release)]
        if sum(given) != 1:
            raise bad("give exactly one of set, cancel, hold, release")
        return "group_guard", (name, m.gen), {**kw, "on": True if m.set else (False if m.cancel else None),
                                               "hold": m.hold, "release": m.release}
    if op == "link":
        return "group_link", (name, m.gen, list(m.lvs)), {**kw, "mode": m.mode or "rw", **layout_kwargs(m.options)}
    raise bad(f"unknown group operation {op}")  # pragma: no cover - the oneof is exhaustive


def group_reply(d: dict) -> pb.GroupReply:
    return pb.GroupReply(
        group=d["group"],
        bvs=d["bvs"],
        generations=[pb.GroupGeneration(relgen=g["relgen"], create_time=g["create_time"],
                                        members=[generation_msg(x) for x in g["members"]], missing=g["missing"])
                     for g in d["generations"]],
        links=[linkinfo_msg(x) for x in d["links"]],
    )
