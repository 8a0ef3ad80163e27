"""``iSMrc_pair``, ``iSMrc_replicate``, ``iSMrc_separate``, ``iSMrc_query`` on the management server (data replication).

Cinder's NEC driver clones a volume by pairing it (MV) with a new LD (RV), replicating, separating
and unpairing, polling ``iSMrc_query`` through shell pipelines that cut fixed prefixes: ``LD Name``
(7 characters), ``Sync State`` (10), ``Separate Diff`` (13), each label at the start of its line
after ``read`` strips the indentation, so no colon follows the labels, and no other line holds
one of those labels. Replication is a real copy of the bytes that runs in the array after the
command returns (``array/replication.py``: ``rpl/exec`` → ``rpl/sync``, ``separate``: ``sep/exec`` →
``separated``); ``-nowait``, ``-cprange``, ``-cpmode``, ``-rvacc`` and ``-rvuse`` are accepted and
change nothing (the commands never wait; the RV is usable at once after a separate).
"""

from __future__ import annotations

from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from .names import plain_name
from .options import Usage, need, parse_options

DONE = {  # success ids of these commands (the iSM31220-iSM31259 range of this lab)
    "iSMrc_pair": "iSM31236",
    "iSMrc_replicate": "iSM31237",
    "iSMrc_separate": "iSM31238",
}
PAIR_OPTS = ("-mv", "-mvflg", "-rv", "-rvflg")


def _pair(o: dict[str, Any]) -> tuple[str, str]:
    need(o, "-mv", "-rv")
    for flag in ("-mvflg", "-rvflg"):
        if o.get(flag, "ld").lower() != "ld":
            raise Usage(f"{flag}: give ld")
    return plain_name(o["-mv"]), plain_name(o["-rv"])


def _done(command: str) -> str:
    return f"{command}:Info: {DONE[command]}: {command} has normally terminated."


def rc_pair(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, (*PAIR_OPTS, "-force"), ("-pair", "-unpair"))
    if ("-pair" in o) == ("-unpair" in o):
        raise Usage("give -pair or -unpair")
    if "-force" in o and (o["-force"].lower() != "all" or "-unpair" not in o):
        raise Usage("-force all goes with -unpair")
    mv, rv = _pair(o)
    client.configure(pair_lds=apb.PairLds(mv=mv, rv=rv, unpair="-unpair" in o, force="-force" in o))
    return [_done("iSMrc_pair")]


def rc_replicate(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, (*PAIR_OPTS, "-cprange", "-cpmode"), ("-nowait",))
    mv, rv = _pair(o)
    client.configure(replicate_ld=apb.ReplicatePair(mv=mv, rv=rv))
    return [_done("iSMrc_replicate")]


def rc_separate(client: ManagerClient, args: list[str]) -> list[str]:
    o = parse_options(args, (*PAIR_OPTS, "-rvacc", "-rvuse"), ("-nowait",))
    mv, rv = _pair(o)
    client.configure(separate_ld=apb.ReplicatePair(mv=mv, rv=rv))
    return [_done("iSMrc_separate")]


def rc_query(client: ManagerClient, args: list[str]) -> list[str]:
    """``iSMrc_query -mv MV -mvflg ld | -rv RV -rvflg ld``: the pair of the volume, MV then RV."""
    o = parse_options(args, PAIR_OPTS)
    if ("-mv" in o) == ("-rv" in o):
        raise Usage("give -mv or -rv")
    role, name = ("MV", plain_name(o["-mv"])) if "-mv" in o else ("RV", plain_name(o["-rv"]))
    lds = {ld.name: ld for a in client.monitor().arrays for ld in a.state.lds}
    ld = lds.get(name)
    if ld is None:
        raise SnapLabError(E.NOT_FOUND, name=name)
    if ld.rpl_role != role:
        raise SnapLabError(E.RPL_NOT_PAIRED, name=name)
    mv, rv = (ld, lds[ld.rpl_partner]) if role == "MV" else (lds[ld.rpl_partner], ld)
    return [
        "MV Information",
        f"    LD Name        {mv.name}",
        f"    Type           {mv.format or '-'}",
        "",
        "RV Information",
        f"    LD Name        {rv.name}",
        f"    Type           {rv.format or '-'}",
        f"    Sync State     {rv.sync_state}",
        f"    Copy Progress  {rv.rpl_progress}%",
        f"    Separate Diff  {rv.rpl_diff // 1024}KB",
    ]


COMMANDS = {"iSMrc_pair": rc_pair, "iSMrc_replicate": rc_replicate, "iSMrc_separate": rc_separate,
            "iSMrc_query": rc_query}


def rc_usage(command: str) -> str:
    forms = {
        "iSMrc_pair": "(-pair | -unpair [-force all]) -mv MV -mvflg ld -rv RV -rvflg ld",
        "iSMrc_replicate": "-mv MV -mvflg ld -rv RV -rvflg ld [-nowait] [-cprange full] [-cpmode bg]",
        "iSMrc_separate": "-mv MV -mvflg ld -rv RV -rvflg ld [-rvacc ro|rw] [-rvuse complete|immediate] [-nowait]",
        "iSMrc_query": "-mv MV -mvflg ld | -rv RV -rvflg ld",
    }
    return f"Usage: {command} {forms[command]}   (on the management server)\n"
