"""``iSMcfg`` LD sets (Cinder's attach/detach): the real product's LD sets expressed as SnapLab's access control.

An LD set ``TYPE:NAME`` is the array's server record ``NAME`` (platform from TYPE: ``LX`` linux,
``WN``/``WG`` windows, …) whose paths are its WWPNs; putting an LD into the set assigns the LD to
each of those WWNs (access control by WWN, SPEC A5), taking it out unassigns them. Every
subcommand checks everything first and then makes one change per path, so a refusal leaves the
configuration as it was.
"""

from __future__ import annotations

import re
from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from .names import plain_name
from .options import Usage, need, parse_options

TYPE_PLATFORM = {"LX": "linux", "WN": "windows", "WG": "windows", "NX": "hpux", "CX": "solaris", "AX": "aix"}
PLATFORM_FORMAT = {"linux": "LX", "windows": "WN", "hpux": "NX", "solaris": "CX", "aix": "AX"}
_WWPN = re.compile(r"^[0-9A-Fa-f]{4}(-?[0-9A-Fa-f]{4}){3}$")

LDSET_SUBCOMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "addldset": ("iSM31223", ("-ldset", "-type"), "-ldset TYPE:NAME -type fc"),
    "addldsetpath": ("iSM31224", ("-ldset", "-path"), "-ldset TYPE:NAME -path XXXX-XXXX-XXXX-XXXX"),
    "addldsetld": ("iSM31225", ("-ldset", "-ldname", "-lun"), "-ldset TYPE:NAME -ldname LD [-lun N]"),
    "delldsetld": ("iSM31226", ("-ldset", "-ldname"), "-ldset TYPE:NAME -ldname LD"),
}


def _ldset(text: str) -> tuple[str, str]:
    """(name, platform) of ``TYPE:NAME``."""
    kind, sep, name = text.partition(":")
    if not sep or not name or kind.upper() not in TYPE_PLATFORM:
        raise Usage(f"-ldset {text!r}: give TYPE:NAME with TYPE one of {', '.join(TYPE_PLATFORM)}")
    return name, TYPE_PLATFORM[kind.upper()]


def wwn_of_path(path: str) -> str:
    """Cinder's ``-path 1000-0000-C900-0001`` as SnapLab's WWN ``10:00:00:00:c9:00:00:01``."""
    if not _WWPN.match(path):
        raise Usage(f"-path {path!r}: give a WWPN of 16 hex digits (XXXX-XXXX-XXXX-XXXX)")
    digits = path.replace("-", "").lower()
    return ":".join(digits[i : i + 2] for i in range(0, 16, 2))


def _state(client: ManagerClient, array: str) -> apb.ArrayState:
    return client.monitor(array).arrays[0].state


def _host(state: apb.ArrayState, name: str) -> apb.Host:
    h = next((x for x in state.hosts if x.name == name), None)
    if h is None:
        raise SnapLabError(E.HOST_NOT_FOUND, name=name)
    return h


def run_ldset(client: ManagerClient, sub: str, args: list[str], array_opt: str) -> list[str]:
    msg_id, values, _ = LDSET_SUBCOMMANDS[sub]
    o: dict[str, Any] = parse_options(args, (*values, array_opt))
    need(o, *[v for v in values if v not in ("-lun",)])
    array = o.get(array_opt, "")
    name, platform = _ldset(o["-ldset"])
    state = _state(client, array)
    if sub == "addldset":
        if o["-type"].lower() != "fc":
            raise Usage("-type: only fc LD sets (access control by WWN) are emulated")
        if any(h.name == name for h in state.hosts):
            raise SnapLabError(E.LDSET_EXISTS, name=name)
        client.configure(array, register_host=apb.RegisterHost(name=name, platform=platform))
    elif sub == "addldsetpath":
        h = _host(state, name)
        wwn = wwn_of_path(o["-path"])
        if wwn not in h.wwns:
            wwns = [*h.wwns, wwn]
            client.configure(array, register_host=apb.RegisterHost(name=name, wwns=wwns, ports=list(h.ports),
                                                                   platform=h.platform))
    else:
        h = _host(state, name)
        o["-ldname"] = plain_name(o["-ldname"])
        ld = next((x for x in state.lds if x.name == o["-ldname"]), None)
        if ld is None:
            raise SnapLabError(E.NOT_FOUND, name=o["-ldname"])
        if not h.wwns:
            raise SnapLabError(E.LDSET_NO_PATH, name=name)
        paths = [f"wwn:{w}" for w in h.wwns]
        if sub == "addldsetld":
            if all(p in ld.access for p in paths):
                raise SnapLabError(E.LDSET_HAS_LD, name=f"{ld.name} in {name}")
            want = PLATFORM_FORMAT[h.platform]
            if ld.type == "IV" and ld.format != want:
                # An LD Cinder bound for an LX set takes the set's OS type (no generation exists on an IV).
                client.configure(array, set_format=apb.SetFormat(ld=ld.name, format=want))
            for w in h.wwns:
                if f"wwn:{w}" not in ld.access:
                    client.configure(array, assign_access=apb.AssignAccess(ld=ld.name, wwn=w))
        else:
            if not any(p in ld.access for p in paths):
                raise SnapLabError(E.LDSET_NO_LD, name=f"{ld.name} in {name}")
            for w in h.wwns:
                if f"wwn:{w}" in ld.access:
                    client.configure(array, unassign_access=apb.UnassignAccess(ld=ld.name, wwn=w))
    return [f"iSMcfg:Info: {msg_id}: iSMcfg {sub} has normally terminated."]
