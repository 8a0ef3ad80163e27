"""Enrolment (B2): a host's WWNs and cabling are the lab's definition of it, never what its request claims.

Plain data in, a record or a ``SnapLabError`` out; no gRPC here. A host is defined per array by
the configuration: a lab file's ``[[hosts]]`` (``snaplab lab up`` sends them through the manager
as admin), an admin's ``iSMcfg hostadd`` (both: ``Configure(register_host)``, kept in manager.db),
or an admin's registration made on the array itself. An Enrol request is checked in this order:

1. A WWN it claims belongs to another host (enrolled, defined or registered) — iSM19004.
2. The host (its certificate name) has no definition on any array — iSM31068.
3. It claims WWNs, or ports, that differ from its definitions — iSM31069, naming the difference.
   A host that claims none of them takes its definition as it is.

The host is then registered with each array as defined there, and enrolled with the union of its
definitions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from snaplab.common.errors import E, SnapLabError

from .state import HostDefinition, HostRecord

MAX_NAMED = 4  # differences a refusal names


@dataclass(frozen=True)
class Claim:
    """What an Enrol request says about the host's HBAs and cabling."""

    host: str
    wwns: frozenset[str]
    ports: frozenset[str]

    @classmethod
    def of(cls, host: str, wwns: Iterable[str], ports: Iterable[str]) -> Claim:
        return cls(host, frozenset(w.lower() for w in wwns), frozenset(ports))


def check(
    claim: Claim, definitions: list[HostDefinition], others: Iterable[tuple[str, frozenset[str]]]
) -> None:
    """Rules 1-3 above. ``others``: (host name, WWNs) of every other host the manager or an array knows."""
    for name, wwns in others:
        taken = claim.wwns & wwns
        if taken:
            raise SnapLabError(E.ALREADY_EXISTS, name=f"WWN {min(taken)} of {name}")
    if not definitions:
        raise SnapLabError(E.HOST_NOT_DEFINED, name=claim.host)
    wwns = {w for d in definitions for w in d.wwns}
    ports = {p for d in definitions for p in d.ports}
    differences = []
    if claim.wwns and claim.wwns != wwns:
        differences += [f"WWN {w} is not its HBA" for w in sorted(claim.wwns - wwns)]
        differences += [f"WWN {w} is missing" for w in sorted(wwns - claim.wwns)]
    if claim.ports and claim.ports != ports:
        differences += [f"port {p} is not cabled to it" for p in sorted(claim.ports - ports)]
        differences += [f"port {p} is missing" for p in sorted(ports - claim.ports)]
    if differences:
        more = len(differences) - MAX_NAMED
        named = "; ".join(differences[:MAX_NAMED]) + (f"; {more} more" if more > 0 else "")
        raise SnapLabError(E.HOST_MISMATCH, detail=f"{claim.host}: {named}")


def record(host: str, definitions: list[HostDefinition]) -> HostRecord:
    """The enrolled host's WWNs, ports and platform: the union of its definitions (role is set apart)."""
    wwns: list[str] = []
    ports: list[str] = []
    for d in definitions:
        wwns += [w for w in d.wwns if w not in wwns]
        ports += [p for p in d.ports if p not in ports]
    platform = definitions[0].platform if definitions else "windows"
    return HostRecord(host, "", platform, tuple(wwns), tuple(ports))
