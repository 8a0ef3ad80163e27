"""``iSMioc setlimit`` on the management server: an LD's I/O limits, stored by the array and shown by iSMview.

Cinder's NEC driver sets QoS as ``iSMioc setlimit -ldname NAME [-upperlimit N] [-lowerlimit N]
[-upperreport on|off]`` (and unbinds the LD it just made when this fails). SnapLab keeps the values
and shows them (``I/O Limit`` in ``iSMview -all``'s LD Detail blocks); it does not throttle I/O.
"""

from __future__ import annotations

from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from .names import plain_name
from .options import Usage, need, parse_number, parse_options

DONE_ID = "iSM31239"


def run_ioc(client: ManagerClient, args: list[str]) -> list[str]:
    if not args or args[0].lower() != "setlimit":
        raise Usage("give setlimit")
    o = parse_options(args[1:], ("-ldname", "-upperlimit", "-lowerlimit", "-upperreport", "-arrayname"))
    need(o, "-ldname")
    if not any(k in o for k in ("-upperlimit", "-lowerlimit", "-upperreport")):
        raise Usage("give -upperlimit, -lowerlimit or -upperreport")
    limits = {k[1:6]: parse_number(o[k], k) for k in ("-upperlimit", "-lowerlimit") if k in o}
    report = o.get("-upperreport", "").lower()
    if report not in ("", "on", "off"):
        raise Usage("-upperreport: give on or off")
    client.configure(o.get("-arrayname", ""), set_io_limit=apb.SetIoLimit(
        ld=plain_name(o["-ldname"]), report=report, **limits))
    return [f"iSMioc:Info: {DONE_ID}: iSMioc setlimit has normally terminated."]


def ioc_usage() -> str:
    return "Usage: iSMioc setlimit -ldname LD [-upperlimit N] [-lowerlimit N] [-upperreport on|off]\n"
