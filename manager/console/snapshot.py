"""``iSMsc_*`` on the management server itself (SPEC B4): snapshot operations with admin rights.

The guide allows operating snapshots from the management server (asynchronously to business);
Cinder's NEC driver does all of its snapshot work so, over the server's shell. Each command is one
``Manager.Snapshot`` call as ``admin`` and prints the hosts' layouts (``snaplab/common/
snapshot_layouts.py``); the management server sees no disks, so every ``Special File`` is ``-``.
Names are LD names (``-bvflg ld``, ``-svflg ld|relgen|ld.relgen``): drive letters and volume names
belong to hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from snaplab.common import snapshot_layouts as layouts
from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from ..messages import SC_DONE
from .options import Usage, parse_options

SV_FLAGS = ("ld", "relgen", "ld.relgen")
PROGRESS_STEP = 0.5  # seconds a restore's progress waits between looks
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


def sc_restore(
    client: ManagerClient, args: list[str], progress: Callable[[str], None] | None = None
) -> list[str]:
    """``iSMsc_restore``; without ``-nowait`` it waits for the copy, showing its progress: written
    at once to ``progress`` (a console that streams), else as lines before the result."""
    o = parse_options(args, ("-bv", "-bvflg", "-sv", "-svflg", "-derivsv"), ("-nowait",))
    bv, sv = _bv(o), _sv(o)
    if sv is None:
        raise Usage("-sv is required")
    derivsv = o.get("-derivsv", "keep").lower()
    if derivsv not in ("keep", "delete"):
        raise Usage("-derivsv: give keep or delete")
    gen = client.snapshot(restore=apb.RestoreRequest(bv=bv, sv=sv, derivsv=derivsv), via=bv).generation
    lines: list[str] = []
    if "-nowait" not in o:
        show = progress or lines.append
        gen = _follow_restore(client, bv, gen, lambda line: show(line if progress is None else line + "\n"))
    return [*lines, _done("iSMsc_restore"), *layouts.generation_block(gen, NO_SPECIAL)]


def progress_line(gen: apb.Generation) -> str:
    """``Restore Progress : 42% (105/250 blocks)``: how much of the copy the array has done."""
    total = max(gen.restore_total, 0)
    done = min(max(gen.restore_done, 0), total) if total else 0
    pct = 100 if total == 0 or gen.state != layouts.STATE_RESTORING else done * 100 // total
    return f"Restore Progress : {pct}% ({done if pct < 100 else total}/{total} blocks)"


def _follow_restore(
    client: ManagerClient, bv: str, gen: apb.Generation, show: Callable[[str], None]
) -> apb.Generation:
    """Wait for the restore to end (the array copies at its rate), showing its progress each time
    the figure moves, 100% last. It looks through state monitoring, which the event log does not
    record, so a long restore leaves one event, not one per look."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    last = ""
    while True:
        line = progress_line(gen)
        if line != last:
            show(line)
            last = line
        if gen.state != layouts.STATE_RESTORING:
            return gen
        if time.monotonic() >= deadline:
            raise SnapLabError(E.WAIT_TIMEOUT, name=gen.sv)
        time.sleep(PROGRESS_STEP)
        gen = _monitored(client, bv, gen)


def _monitored(client: ManagerClient, bv: str, gen: apb.Generation) -> apb.Generation:
    """The generation as state monitoring shows it now (the one before if the BV is not shown)."""
    for a in client.monitor().arrays:
        for q in a.snapshots:
            if q.bv == bv:
                return next((g for g in q.generations if g.sv == gen.sv), gen)
    return gen


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
