"""Control I/O routing (B3): may this host issue this snapshot operation through this volume?

Plain data in, a decision or a ``SnapLabError`` out; no gRPC here. The rules (SPEC §1 "Control
I/O", docs/architecture.md), checked in this order:

1. Only a host (certificate role ``host``) routes control I/O — else iSM31044.
2. The host is enrolled with the manager — else iSM31060.
3. Its path to the array is not broken (array fault ``path:<host>``) — else iSM19063.
4. ``via`` names an LD the host reaches through access control (one of its WWN or port paths is
   assigned to the LD) — else iSM31042. SVs and SDVs are never reachable.
5. If ``via`` is a control volume (LD type CV, or an IV/MV LD: the CV a host defines with
   ``iSMvollist -cvdef`` on an array that does not mark CVs, C3): every LD the operation names
   (BV, SV named by LD name, LV, the BV part of ``BV.-n`` with ``ld.relgen``, the volume of
   linkinfo) must exist (iSM19003) and be reachable by the host or paired with an LD it
   reaches — else iSM31061.
   Pairs: an LV with its BV and with the SVs of its BV; a BV with its SVs and its LVs. Pairing
   is not transitive (an LV does not pair with the other LVs of its BV).
   A consistency group's operation (SnapLab extension, issue 14) names every member BV (and the LVs
   of a group link or unlink), so the same rule applies to each of them.
6. Otherwise ``via`` must be the LD the operation acts on — the BV for create, delete, restore,
   wait, guard and query; the LV for link and unlink; the volume for linkinfo — else iSM31062;
   a BV linked to an LV is reachable only through that LV (iSM31043); an LV used this way must be
   Ready: linked, with access mode rw or ro (not nr/na) — else iSM31063. A group's operation not
   issued through a CV goes through one of its member BVs, and the host must reach every member
   (and LV) it names through access control — else iSM31042.

What the array itself checks (the SV belongs to the BV, the LV is built for the BV, states) is left
to the array, which refuses with its own message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity

from .state import HostRecord

# Operation kind -> the SnapControl command it is (event log "operation" column).
COMMANDS = {
    "create": "iSMsc_create",
    "delete": "iSMsc_delete",
    "restore": "iSMsc_restore",
    "wait": "iSMsc_wait",
    "guard": "iSMsc_svguard",
    "link": "iSMsc_link",
    "unlink": "iSMsc_unlink",
    "query": "iSMsc_query",
    "linkinfo": "iSMsc_linkinfo",
    "group": "iSMsc_create",  # SnapLab extension: a consistency group's operation (GROUP_COMMANDS)
}
# A consistency group's operation (ControlOp.group_op) -> the command it is (issue 14).
GROUP_COMMANDS = {
    "create": "iSMsc_create",
    "delete": "iSMsc_delete",
    "restore": "iSMsc_restore",
    "guard": "iSMsc_svguard",
    "link": "iSMsc_link",
    "unlink": "iSMsc_unlink",
    "query": "iSMsc_query",
}
BV_OPS = ("create", "delete", "restore", "wait", "guard", "query")
LV_OPS = ("link", "unlink")
READY_MODES = ("rw", "ro")
UNREACHABLE_TYPES = ("SV", "SDV")
# C3: an ordinary LD (IV) or a replication master (MV) may be defined as a host's CV.
CV_CANDIDATE_ATTRS = ("iv", "mv")


@dataclass(frozen=True)
class LdInfo:
    """One LD as routing needs it: type (IV, BV, SV, LV, SDV, CV), its BV (SV/LV), access paths."""

    name: str
    type: str
    bv: str = ""
    access: frozenset[str] = frozenset()
    attr: str = ""  # iv, cv, mv, rv

    @property
    def control_volume(self) -> bool:
        """A CV the array marks, or a CV candidate a host may define as its CV (C3)."""
        return self.type == "CV" or (self.type == "IV" and self.attr in CV_CANDIDATE_ATTRS)


@dataclass(frozen=True)
class ArrayView:
    """An array's configuration as routing needs it (from ``Describe``)."""

    name: str
    lds: Mapping[str, LdInfo] = field(default_factory=dict)
    host_paths: Mapping[str, frozenset[str]] = field(default_factory=dict)  # registered host -> its paths
    faults: frozenset[str] = frozenset()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # consistency group -> member BVs

    @classmethod
    def build(
        cls,
        name: str,
        lds: Iterable[LdInfo],
        host_paths: Mapping[str, Iterable[str]] | None = None,
        faults: Iterable[str] = (),
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> ArrayView:
        return cls(
            name,
            {ld.name: ld for ld in lds},
            {h: frozenset(p) for h, p in (host_paths or {}).items()},
            frozenset(faults),
            {g: tuple(m) for g, m in (groups or {}).items()},
        )

    def reaches(self, host: str, ld_name: str) -> bool:
        """Access control (A5) as the array keeps it: one of the paths the array registered for the
        host is assigned to the LD; SVs and SDVs never."""
        ld = self.lds.get(ld_name)
        if ld is None or ld.type in UNREACHABLE_TYPES:
            return False
        return bool(ld.access & self.host_paths.get(host, frozenset()))

    def partners(self, ld_name: str) -> set[str]:
        """The LDs paired with one: an LV's BV and that BV's SVs; a BV's SVs and LVs."""
        ld = self.lds.get(ld_name)
        if ld is None:
            return set()
        if ld.type == "LV" and ld.bv:
            return {ld.bv} | {x.name for x in self.lds.values() if x.type == "SV" and x.bv == ld.bv}
        if ld.type == "BV":
            return {x.name for x in self.lds.values() if x.type in ("SV", "LV") and x.bv == ld.name}
        return set()


@dataclass(frozen=True)
class ControlOp:
    """One snapshot operation as routing sees it (the names it carries)."""

    kind: str  # a key of COMMANDS
    bv: str = ""
    sv: str = ""
    svflg: str = "ld"
    lv: str = ""
    volume: str = ""  # linkinfo
    # a consistency group's operation (kind "group"): the group, its operation, members and LVs
    group: str = ""
    group_op: str = ""
    members: tuple[str, ...] = ()
    lvs: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        if self.kind == "group":
            return GROUP_COMMANDS.get(self.group_op, "iSMsc_create")
        return COMMANDS.get(self.kind, self.kind)

    @property
    def acts_on(self) -> str:
        """The LD the operation acts on: control I/O not issued through a CV must go to it."""
        if self.kind in LV_OPS:
            return self.lv
        if self.kind == "linkinfo":
            return self.volume
        return self.bv

    def named(self) -> list[str]:
        """Every LD name the operation names (relative generations name only their BV)."""
        names = [self.bv, self.lv, self.volume, *self.members, *self.lvs]
        flg = self.svflg or "ld"
        if self.sv and flg == "ld":
            names.append(self.sv)
        elif self.sv and flg == "ld.relgen":
            names.append(self.sv.rpartition(".")[0])
        out: list[str] = []
        for n in names:
            if n and n not in out:
                out.append(n)
        return out


@dataclass(frozen=True)
class ViaState:
    """The live link state of the ``via`` LD: an LV's link and mode; the LV a BV is linked to."""

    linked: bool = False
    mode: str = ""
    bv_linked_lv: str = ""


@dataclass(frozen=True)
class Decision:
    """How a routed operation was allowed: through the host's CV, or through the volume itself."""

    host: str
    via: str
    through: str  # "cv" or "volume"
    op: ControlOp


def check_caller(caller: Identity, host: HostRecord | None) -> HostRecord:
    """Rules 1 and 2: the caller is a host (iSM31044) and enrolled under its certificate name (iSM31060)."""
    if caller.role != "host":
        raise SnapLabError(E.CONTROL_DENIED, detail=f"{caller.role} {caller.name} cannot route control I/O")
    if host is None or host.name != caller.name:
        raise SnapLabError(E.NOT_ENROLLED, name=caller.name)
    return host


def check_route(
    caller: Identity,
    host: HostRecord | None,
    array: ArrayView,
    op: ControlOp,
    via: str,
    via_state: Callable[[str], ViaState],
) -> Decision:
    """Apply the routing rules (module docstring) or raise the ``SnapLabError`` of the first one broken.

    ``host`` is the caller's enrolment record (None if not enrolled); ``via_state`` is asked only
    when the rules need the live link state of ``via`` (a non-CV LV or BV)."""
    host = check_caller(caller, host)
    if op.kind not in COMMANDS:
        raise SnapLabError(E.BAD_ARGUMENT, detail=f"unknown operation {op.kind!r}")
    if f"path:{caller.name}" in array.faults:
        raise SnapLabError(E.PATH_FAILURE, name=caller.name)
    if not via:
        raise SnapLabError(E.BAD_ARGUMENT, detail="the volume for control I/O (via) is required")
    if not array.reaches(caller.name, via):
        raise SnapLabError(E.AC_DENIED, name=via)
    via_ld = array.lds[via]

    if via_ld.control_volume:
        reached = {n for n in array.lds if array.reaches(caller.name, n)}
        allowed = set(reached)
        for n in reached:
            allowed |= array.partners(n)
        for name in op.named():
            if name not in array.lds:
                raise SnapLabError(E.NOT_FOUND, name=name)
            if name not in allowed:
                raise SnapLabError(E.CV_RULE, name=name)
        return Decision(caller.name, via, "cv", op)

    target = op.acts_on
    if op.kind == "group":  # through one of its members, the host reaching every LD it names
        target = via if via in op.members else (op.members[0] if op.members else "")
        for name in op.named():
            if not array.reaches(caller.name, name):
                raise SnapLabError(E.AC_DENIED, name=name)
    if via != target:
        raise SnapLabError(E.VIA_NOT_TARGET, name=f"{via} for {target or op.command}")
    if via_ld.type == "LV":
        st = via_state(via)
        if not st.linked or st.mode not in READY_MODES:
            raise SnapLabError(E.VIA_NOT_READY, name=via)
    elif via_ld.type == "BV":
        st = via_state(via)
        if st.bv_linked_lv:
            raise SnapLabError(E.AC_BV_LINKED, name=via)
    return Decision(caller.name, via, "volume", op)
