"""The quorum witness of the lab's clusters (guide 3.10 (12): the witness is never on a BV; here it is
the management server): it hears every node's heartbeat and decides who may take a group over.

Votes: one per node and one for the witness. A node that claims a group and has been heard gets the
witness's vote, so with it a majority (2 of 3 in a two-node cluster), but only when the node holding
the group has not been heard for the cluster's heartbeat timeout: a node cut off from its partner
but still heard here (alive) keeps its group, so two nodes never both own it. The reservation at the
array (array/reservations.py) is then moved to the claimant in the same step, which is what fences
the old owner: its writes are refused from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

MIN_TIMEOUT = 0.5  # a node's timeout is its lab file's; never below this (a claim on a stale beat)


class Witness:
    """Last heartbeat per (cluster, node), in the manager's memory: a restarted manager hears every
    node again within one heartbeat interval, and grants nothing before a node has been silent for
    the whole timeout since the manager started."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._beats: dict[tuple[str, str], float] = {}
        self._down: set[tuple[str, str]] = set()

    def beat(self, cluster: str, node: str) -> bool:
        """Record a heartbeat; True when the node was counted down before (it is up again)."""
        key = (cluster, node)
        self._beats[key] = self._clock()
        if key in self._down:
            self._down.discard(key)
            return True
        return False

    def heard(self, cluster: str, node: str, timeout: float) -> bool:
        """Whether ``node`` was heard within ``timeout`` (or the manager is younger than that)."""
        timeout = max(timeout, MIN_TIMEOUT)
        now = self._clock()
        last = self._beats.get((cluster, node), self._started)
        return now - last <= timeout

    def age(self, cluster: str, node: str) -> float | None:
        """Seconds since ``node``'s last heartbeat (None: not heard since the manager started)."""
        last = self._beats.get((cluster, node))
        return None if last is None else max(0.0, self._clock() - last)

    def alive(self, cluster: str, nodes: Iterable[str], timeout: float) -> list[str]:
        return sorted(n for n in nodes if (cluster, n) in self._beats and self.heard(cluster, n, timeout))

    def mark_down(self, cluster: str, node: str) -> bool:
        """Count a silent node down (once): True the first time, for its event."""
        key = (cluster, node)
        if key in self._down:
            return False
        self._down.add(key)
        return True
