"""The lab's clusters at the array: each group's shared disks reserved for the node that owns it.

The reservation (array/reservations.py) is the one record of who owns a group: the array enforces it
on every write, so it is also what ``snaplab cluster status`` reads back.
"""

from __future__ import annotations

from typing import Any

from snaplab.common.rpc import ClientTLS, SnapLabClientError
from snaplab.san.array_client import ArrayClient

from .errors import LabError, one_line
from .folder import LabFolder, Report
from .spec import ClusterSpec, GroupSpec, LabSpec


def array_client(lab: LabFolder, runtime: dict[str, Any], array: str) -> ArrayClient:
    return ArrayClient(
        runtime["arrays"][array]["target"], ClientTLS.from_folder(lab.pki, "admin"), timeout=30
    )


def reserve_groups(lab: LabFolder, spec: LabSpec, runtime: dict[str, Any], report: Report) -> None:
    """At the making of a lab: every group's disks reserved for its owner (lab file order)."""
    for c in spec.clusters:
        for g in c.groups:
            set_owner(lab, runtime, g, g.owner, where=f"{spec.source}:clusters[{c.name}].groups[{g.name}]")
        if c.groups:
            report(f"cluster {c.name}: {', '.join(f'{g.name} on {g.owner}' for g in c.groups)}")


def set_owner(lab: LabFolder, runtime: dict[str, Any], g: GroupSpec, node: str, *, where: str = "") -> None:
    """Move the reservation of each of the group's disks to ``node``."""
    for d in g.disks:
        try:
            with array_client(lab, runtime, d.array) as a:
                a.set_reservation(d.ld, node)
        except SnapLabClientError as exc:
            raise LabError(
                f"{where or g.name}: reserving {d.ld} for {node} failed: {one_line(exc)}"
            ) from None


def owner_of(lab: LabFolder, runtime: dict[str, Any], g: GroupSpec) -> str:
    """Who owns the group now: the reservation of its first disk ("" when released)."""
    d = g.disks[0]
    with array_client(lab, runtime, d.array) as a:
        return next((x.reserved_by for x in a.describe().lds if x.name == d.ld), "")


def group_of(spec: LabSpec, name: str) -> tuple[ClusterSpec, GroupSpec] | None:
    for c in spec.clusters:
        for g in c.groups:
            if g.name == name:
                return c, g
    return None
