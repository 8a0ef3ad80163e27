"""``iSMsc_*`` on the management server itself (SPEC B4): snapshot operations with admin rights.

The guide allows operating snapshots from the management server (asynchronously to business);
Cinder's NEC driver does all of its snapshot work so, over the server's shell. Each command is one
``Manager.Snapshot`` call as ``admin`` and prints the hosts' layouts (``snaplab/common/
snapshot_layouts.py``); the management server sees no disks, so every ``Special File`` is ``-``.
Names are LD names (``-bvflg ld``, ``-svflg ld|relgen|ld.relgen``): drive letters and volume names
belong to hosts.
"""

from __future__ import annotations

from typing import Any

from snaplab.common import snapshot_layouts as layouts
from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from ..messages import SC_DONE
from .options import Usage, parse_options

SV_FLAGS = ("ld", "relgen", "ld.relgen")
NO_SPECIAL: dict[str, str] = {}
WAIT_TIMEOUT = 600.0


def _done(command: str) -> str:
    m = SC_DONE[command]
    return f"{command}:Info: {m.msg_id}: {m.text}"


def _bv(o: dict[str, Any]) -> str:
    if "-bv" not in o:
        raise Usage("-bv is required")
    if o.get("-bvflg", "ld").lower() != "ld":
        raise Usage("-bvflg: the management server names volumes by LD name (ld)")
    return str(o["-bv"])


def _sv(o: dict[str, Any]) -> apb.SvRef | None:
    if "-sv" not in o:
        if "-svflg" in o:
            raise Usage("-svflg needs -sv")
        return None
    flag = o.get("-svflg", "ld").lower()
    if flag not in SV_FLAGS:
        raise Usage(f"-svflg {o['-svflg']}: give ld, relgen or ld.relgen")
    return apb.SvRef(sv=o["-sv"], svflg=flag)


def _query(client: ManagerClient, bv: str) -> apb.QueryReply:
    return client.snapshot(query=apb.QueryRequest(bv=bv), via=bv).query


def sc_create(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, ("-bv", "-bvflg", "-sv", "-svflg"), ("-cyclic",))
    bv, sv = _bv(o), _sv(o)
    if (sv is None) == ("-cyclic" not in o):
        raise Usage("give either -sv or -cyclic")
    gen = client.snapshot(create=apb.CreateRequest(bv=bv, sv=sv, cyclic="-cyclic" in o), via=bv).generation
    return [_done("iSMsc_create"), *layouts.generation_block(gen, NO_SPECIAL)]


def sc_delete(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, ("-bv", "-bvflg", "-sv", "-svflg"), ("-auto",))
    bv, sv = _bv(o), _sv(o)
    if (sv is None) == ("-auto" not in o):
        raise Usage("give either -sv or -auto")
    deleted = client.snapshot(delete=apb.DeleteRequest(bv=bv, sv=sv, auto="-auto" in o), via=bv).deleted
    if not deleted.deleted_sv:
        m = E.NOTHING_TO_DELETE
        return [f"iSMsc_delete:Notice: {m.msg_id}: {m.text.format(name=bv)}"]
    lines = [_done("iSMsc_delete")]
    gen = next((g for g in _query(client, bv).generations if g.sv == deleted.deleted_sv), None)
    return lines + (layouts.generation_block(gen, NO_SPECIAL) if gen is not None else [])


def sc_restore(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, ("-bv", "-bvflg", "-sv", "-svflg", "-derivsv"), ("-nowait",))
    bv, sv = _bv(o), _sv(o)
    if sv is None:
        raise Usage("-sv is required")
    derivsv = o.get("-derivsv", "keep").lower()
    if derivsv not in ("keep", "delete"):
        raise Usage("-derivsv: give keep or delete")
    gen = client.snapshot(restore=apb.RestoreRequest(bv=bv, sv=sv, derivsv=derivsv), via=bv).generation
    if "-nowait" not in o:
        wait = apb.WaitRequest(bv=bv, sv=apb.SvRef(sv=gen.sv, svflg="ld"), cond="active",
                               timeout_seconds=WAIT_TIMEOUT)
        gen = client.snapshot(wait=wait, via=bv, timeout=WAIT_TIMEOUT + 30).generation
    return [_done("iSMsc_restore"), *layouts.generation_block(gen, NO_SPECIAL)]


def sc_query(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, ("-bv", "-bvflg", "-sv", "-svflg"), ("-summary", "-detail"))
    if "-summary" in o and "-detail" in o:
        raise Usage("give -summary or -detail, not both")
    sv = _sv(o)
    if "-bv" in o:
        bv = _bv(o)
    elif sv is not None and sv.svflg == "ld":
        bv = _bv_of_sv(client, sv.sv)
    else:
        raise Usage("give -bv, or -sv SV -svflg ld")
    q = _query(client, bv)
    svs = None
    if sv is not None:
        svs = [_pick(q, sv).sv]
    layout = layouts.query_detail if "-detail" in o else layouts.query_summary
    return layout(q, NO_SPECIAL, svs)


def _pick(q: apb.QueryReply, sv: apb.SvRef) -> apb.Generation:
    if sv.svflg == "ld":
        found = next((g for g in q.generations if g.sv == sv.sv), None)
    else:
        rel = sv.sv.rpartition(".")[2] if sv.svflg == "ld.relgen" else sv.sv.removeprefix(".")
        try:
            n = int(rel)
        except ValueError:
            raise Usage(f"-sv {sv.sv}: not a relative generation") from None
        found = next((g for g in q.generations if g.has_relgen and g.relgen == n), None)
    if found is None:
        raise SnapLabError(E.NOT_FOUND, name=sv.sv)
    return found


def _bv_of_sv(client: ManagerClient, sv: str) -> str:
    """The BV of an SV named alone, from state monitoring (every BV's snapshot list)."""
    for a in client.monitor().arrays:
        for q in a.snapshots:
            if any(g.sv == sv for g in q.generations):
                return q.bv
    raise SnapLabError(E.NOT_FOUND, name=sv)


def _lv(o: dict[str, Any]) -> str:
    if "-lv" not in o:
        raise Usage("-lv is required")
    if o.get("-lvflg", "ld").lower() != "ld":
        raise Usage("-lvflg: the management server names volumes by LD name (ld)")
    return str(o["-lv"])


def sc_link(client: ManagerClient, args: list[str]) -> list[str]:
    """``iSMsc_link -lv LV -lvflg ld (-sv SV -svflg … | -bv BV -bvflg ld) [-lvacc rw|ro|nr|na]``
    (Cinder's volume from a snapshot links its LV ``-lvacc ro``); prints the success line."""
    o = parse_options(args, ("-lv", "-lvflg", "-sv", "-svflg", "-bv", "-bvflg", "-lvacc"))
    lv, sv = _lv(o), _sv(o)
    bv = _bv(o) if "-bv" in o else ""
    if sv is None and not bv:
        raise Usage("give -sv or -bv")
    req = apb.LinkRequest(lv=lv, sv=sv, bv=bv, mode=o.get("-lvacc", "rw").lower())
    client.snapshot(link=req, via=lv)
    return [_done("iSMsc_link")]


def sc_unlink(client: ManagerClient, args: list[str]) -> list[str]:
    """``iSMsc_unlink -lv LV -lvflg ld [-sv SV -svflg …] [-bv BV -bvflg ld]``; prints the success line."""
    o = parse_options(args, ("-lv", "-lvflg", "-sv", "-svflg", "-bv", "-bvflg"))
    lv, sv = _lv(o), _sv(o)
    client.snapshot(unlink=apb.UnlinkRequest(lv=lv, sv=sv, bv=_bv(o) if "-bv" in o else ""), via=lv)
    return [_done("iSMsc_unlink")]


COMMANDS = {"iSMsc_create": sc_create, "iSMsc_delete": sc_delete, "iSMsc_restore": sc_restore,
            "iSMsc_query": sc_query, "iSMsc_link": sc_link, "iSMsc_unlink": sc_unlink}


def sc_usage(command: str) -> str:
    forms = {
        "iSMsc_create": "-bv BV -bvflg ld (-sv SV -svflg ld|relgen|ld.relgen | -cyclic)",
        "iSMsc_delete": "-bv BV -bvflg ld (-sv SV -svflg … | -auto)",
        "iSMsc_restore": "-bv BV -bvflg ld -sv SV -svflg … [-derivsv keep|delete] [-nowait]",
        "iSMsc_link": "-lv LV -lvflg ld (-sv SV -svflg … | -bv BV -bvflg ld) [-lvacc rw|ro|nr|na]",
        "iSMsc_unlink": "-lv LV -lvflg ld [-sv SV -svflg …] [-bv BV -bvflg ld]",
        "iSMsc_query": "-bv BV -bvflg ld [-sv SV -svflg …] [-summary|-detail] | -sv SV -svflg ld [...]",
    }
    return f"Usage: {command} {forms[command]}   (on the management server; LD names only)\n"
