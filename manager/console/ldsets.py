"""``iSMcfg`` LD sets (Cinder's attach/detach): the real product's LD sets expressed as SnapLab's access control.

An LD set ``TYPE:NAME`` is the array's server record ``NAME`` (platform from TYPE: ``LX`` linux,
``WN``/``WG`` windows, …) whose paths are its WWPNs (``-type fc``, ``addldsetpath``) or its iSCSI
initiator names (``-type iscsi``, ``addldsetinitiator``); putting an LD into the set assigns the LD
to each of those paths (access control by WWN or initiator, SPEC A5), taking it out unassigns them.
A set holds paths of one kind only: the kind of its first path. Every subcommand checks everything
first and then makes one change per path, so a refusal leaves the configuration as it was.
"""

from __future__ import annotations

import re
from typing import Any

from snaplab.common.errors import E, SnapLabError
from snaplab.common.validation import INITIATOR_NAME
from snaplab.v1 import array_pb2 as apb

from ..client import ManagerClient
from .names import plain_name
from .options import Usage, need, parse_options

TYPE_PLATFORM = {"LX": "linux", "WN": "windows", "WG": "windows", "NX": "hpux", "CX": "solaris", "AX": "aix"}
PLATFORM_FORMAT = {"linux": "LX", "windows": "WN", "hpux": "NX", "solaris": "CX", "aix": "AX"}
_WWPN = re.compile(r"^[0-9A-Fa-f]{4}(-?[0-9A-Fa-f]{4}){3}$")

LDSET_SUBCOMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "addldset": ("iSM31223", ("-ldset", "-type"), "-ldset TYPE:NAME -type fc|iscsi"),
    "addldsetpath": ("iSM31224", ("-ldset", "-path"), "-ldset TYPE:NAME -path XXXX-XXXX-XXXX-XXXX"),
    "addldsetinitiator": ("iSM31240", ("-ldset", "-initiatorname"), "-ldset TYPE:NAME -initiatorname IQN"),
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


def initiator_of(text: str) -> str:
    """An iSCSI initiator name as the array keeps it (lower case: RFC 3722 compares them so)."""
    if len(text) > 223 or not INITIATOR_NAME.fullmatch(text):
        raise Usage(f"-initiatorname {text!r}: give an iSCSI name (iqn.YYYY-MM.domain[:id] or eui. and 16 hex digits)")
    return text.lower()


def set_paths(h: apb.Host) -> list[dict[str, str]]:
    """The set's paths as AssignAccess/UnassignAccess fields: its WWNs, or its initiators."""
    return [{"wwn": w} for w in h.wwns] + [{"initiator": i} for i in h.initiators]


def _access_path(p: dict[str, str]) -> str:
    return f"wwn:{p['wwn']}" if "wwn" in p else f"iqn:{p['initiator']}"


def _reregister(client: ManagerClient, array: str, h: apb.Host, wwns: list[str], initiators: list[str]) -> None:
    client.configure(array, register_host=apb.RegisterHost(
        name=h.name, wwns=wwns, ports=list(h.ports), platform=h.platform, initiators=initiators))


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
        if o["-type"].lower() not in ("fc", "iscsi"):
            raise Usage("-type: give fc or iscsi")
        if any(h.name == name for h in state.hosts):
            raise SnapLabError(E.LDSET_EXISTS, name=name)
        client.configure(array, register_host=apb.RegisterHost(name=name, platform=platform))
    elif sub == "addldsetpath":
        h = _host(state, name)
        wwn = wwn_of_path(o["-path"])
        if h.initiators:
            raise SnapLabError(E.LDSET_OTHER_TYPE, name=name)
        if wwn not in h.wwns:
            _reregister(client, array, h, [*h.wwns, wwn], [])
    elif sub == "addldsetinitiator":
        h = _host(state, name)
        initiator = initiator_of(o["-initiatorname"])
        if h.wwns:
            raise SnapLabError(E.LDSET_OTHER_TYPE, name=name)
        if initiator not in h.initiators:
            _reregister(client, array, h, [], [*h.initiators, initiator])
    else:
        h = _host(state, name)
        o["-ldname"] = plain_name(o["-ldname"])
        ld = next((x for x in state.lds if x.name == o["-ldname"]), None)
        if ld is None:
            raise SnapLabError(E.NOT_FOUND, name=o["-ldname"])
        paths = set_paths(h)
        if not paths:
            raise SnapLabError(E.LDSET_NO_PATH, name=name)
        if sub == "addldsetld":
            if all(_access_path(p) in ld.access for p in paths):
                raise SnapLabError(E.LDSET_HAS_LD, name=f"{ld.name} in {name}")
            want = PLATFORM_FORMAT[h.platform]
            if ld.type == "IV" and ld.format != want:
                # An LD Cinder bound for an LX set takes the set's OS type (no generation exists on an IV).
                client.configure(array, set_format=apb.SetFormat(ld=ld.name, format=want))
            for p in paths:
                if _access_path(p) not in ld.access:
                    client.configure(array, assign_access=apb.AssignAccess(ld=ld.name, **p))
        else:
            if not any(_access_path(p) in ld.access for p in paths):
                raise SnapLabError(E.LDSET_NO_LD, name=f"{ld.name} in {name}")
            for p in paths:
                if _access_path(p) in ld.access:
                    client.configure(array, unassign_access=apb.UnassignAccess(ld=ld.name, **p))
    return [f"iSMcfg:Info: {msg_id}: iSMcfg {sub} has normally terminated."]
