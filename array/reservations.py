"""Persistent reservations of cluster shared disks (SCSI-3 PR, "write exclusive"): one owner host per BV.

A cluster shared disk (guide 3.10 (11): a BV, never an SV or LV) may carry a reservation naming the
one host whose writes it accepts: the cluster's owner node. Another host's write fails like a disk
error (iSM31190, RESERVATION_CONFLICT in SCSI) at the array, checked in the same transaction as the
write, so once a reservation moves not one more block of the old owner lands: split-brain cannot
corrupt the disk even while the old owner is alive, cut off from its cluster and still writing.
Reads stay open to every host the access control gives the disk (each node keeps its volume list,
3.10 (9)); the agents refuse a mount of a disk another node owns (iSM31193), from ``Disks``'
``reserved_by``. Only the manager and an admin set or move a reservation; the table ``reservations``
in array.db keeps them across restarts (A12).
"""

from __future__ import annotations

from typing import Any

from snaplab.common.errors import E, SnapLabError

from .model import LD


class ReservationsMixin:
    """A mixin of ``ArrayEngine`` (engine.py): ``self.reservations`` maps a BV's LD number to its owner."""

    reservations: dict[int, str]  # BV number -> owner host (the engine's _load builds it)

    def _read_reservations(self, q: Any) -> dict[int, str]:
        return dict(q("SELECT ld, host FROM reservations").fetchall())

    def set_reservation(self, ref: str | int, owner: str) -> str:
        """Reserve the BV ``ref`` for host ``owner`` (moving it from whoever held it), or release it
        (``owner`` empty). Returns the previous owner ("" none). iSM31191 for an LD that is not a BV,
        iSM31007 for a host not registered, iSM31192 for one access control does not give the BV."""
        with self._tx():
            ld = self.ld(ref)
            if ld.type != "BV":
                raise SnapLabError(E.RESERVE_NOT_BV, name=f"{ld.name} is an {ld.type}")
            previous = self.reservations.get(ld.number, "")
            if not owner:
                self.db.execute("DELETE FROM reservations WHERE ld=?", [ld.number])
                self.reservations.pop(ld.number, None)
                return previous
            if owner not in self.hosts:
                raise SnapLabError(E.HOST_NOT_FOUND, name=owner)
            if not self.reaches(owner, ld):
                raise SnapLabError(E.RESERVE_NO_PATH, name=f"{owner}: {ld.name}")
            self.db.execute("INSERT OR REPLACE INTO reservations VALUES (?,?)", [ld.number, owner])
            self.reservations[ld.number] = owner
            return previous

    def reservation_of(self, ld: LD) -> str:
        """The host that owns ``ld``'s reservation, or ""."""
        return self.reservations.get(ld.number, "")

    def _check_reservation(self, target: LD, host: str) -> None:
        """A write of ``host`` to ``target`` (the BV a write reaches): refused unless unreserved or its own."""
        owner = self.reservations.get(target.number)
        if owner is not None and owner != host:
            raise SnapLabError(E.RESERVATION_CONFLICT, name=target.name)

    def _drop_reservation(self, number: int) -> None:
        """An LD that is unbound loses its reservation (in the unbinding transaction)."""
        self.db.execute("DELETE FROM reservations WHERE ld=?", [number])
        self.reservations.pop(number, None)
