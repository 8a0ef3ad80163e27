"""The routing view (issue 12): what the manager's control-I/O routing needs of the array, versioned.

The manager re-reads its routing view of an array at most once a second. A full ``Describe`` is
O(LDs) to build (65,536 SVs: about a second of the array's CPU), so the view is its own answer:
LD names, types, BVs, access paths and attributes, the hosts' paths, faults and consistency groups,
with a version. Asked with the version it already holds, the array answers "unchanged" in O(1).

The version changes whenever a statement changes a table the view is read from: temporary SQLite
triggers (this connection's, never stored in array.db) call back into the engine, so no code path
that changes those tables can forget to. A transaction that rolls back still moved the version: the
manager then reads a view equal to the one it had, which costs a read and nothing else. The version
starts with a nonce of this engine instance, so a restart or a reopened state never repeats one.
"""

from __future__ import annotations

import secrets
from typing import Any

from .store import Db

# table -> the statements that change what the view shows (lds: only the columns it shows; an LV's
# signature or link state changes with every link and is not the view's)
WATCHED = {
    "lds": ("INSERT", "DELETE", "UPDATE OF name, type, bv, attr"),
    "access": ("INSERT", "DELETE", "UPDATE"),
    "hosts": ("INSERT", "DELETE", "UPDATE"),
    "faults": ("INSERT", "DELETE", "UPDATE"),
    "cgroups": ("INSERT", "DELETE", "UPDATE"),
}
_CHANGED_FN = "snaplab_routing_changed"


class RoutingViewMixin:
    """``routing_view(known)`` of the engine; ``_watch_routing_tables()`` once its database is open."""

    db: Db
    _routing_nonce: str
    _routing_changes: int

    def _watch_routing_tables(self) -> None:
        self._routing_nonce = secrets.token_hex(4)
        self._routing_changes = 0

        def changed() -> None:
            self._routing_changes += 1

        self.db.conn.create_function(_CHANGED_FN, 0, changed)
        for table, events in WATCHED.items():
            for i, event in enumerate(events):
                self.db.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS routing_{table}_{i} AFTER {event} ON main.{table}"
                    f" BEGIN SELECT {_CHANGED_FN}(); END"
                )

    @property
    def routing_version(self) -> str:
        return f"{self._routing_nonce}.{self._routing_changes}"

    def routing_view(self, known_version: str = "") -> dict[str, Any]:
        """The view and its version; only the version (``unchanged``) when ``known_version`` is it."""
        with self._state():  # type: ignore[attr-defined]
            version = self.routing_version
            head = {"name": self.name, "product_id": self.product_id, "routing_version": version}  # type: ignore[attr-defined]
            if known_version == version:
                return {**head, "unchanged": True}
            lds = self.lds  # type: ignore[attr-defined]
            return {
                **head,
                "lds": [
                    {"name": x.name, "type": x.type, "attr": x.attr,
                     "access": sorted(self.access.get(x.number, ())),  # type: ignore[attr-defined]
                     "bv": lds[x.bv].name if x.bv is not None and x.bv in lds else ""}
                    for x in sorted(lds.values(), key=lambda x: x.number)
                ],
                "hosts": [{"name": h.name, "wwns": h.wwns, "ports": h.ports, "initiators": h.initiators}
                          for h in sorted(self.hosts.values(), key=lambda h: h.name)],  # type: ignore[attr-defined]
                "faults": sorted(f"{k}:{t}" for k, t in self.faults),  # type: ignore[attr-defined]
                "groups": self.group_list(),  # type: ignore[attr-defined]
            }
