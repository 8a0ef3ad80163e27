"""State changes the manager notices on the arrays (B6): vanished snapshots, faults, an array going silent.

The manager has no background poller: it compares what it sees whenever it reads an array (Monitor,
routed queries, fault operations) with what it saw last, and logs the differences. Its own
operations update the baseline by what they did (the SV a create made, the one a delete took), so
only changes made elsewhere are reported, and a change made elsewhere just before one of ours is not
lost. A generation the array says it deleted itself (its own event iSM31281, copied into the log)
is logged by that event only, never once more as vanished: each change is logged exactly once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

from snaplab.common.errors import E
from snaplab.v1 import array_pb2

from .messages import M
from .state import ManagerState

log = logging.getLogger("snaplab.manager")

LIVE_STATES = ("snap/active", "rst/exec", "snap/fault")
SOURCE = "manager"
# The array's own event of a generation an SRA-full write deleted: "POOL: SV of BV[ (guarded)]".
_AUTO_DELETED = re.compile(r": (\S+) of (\S+?)(?: \(guarded\))?\)?$")


class Observer:
    """Remembers per array the live generations of each BV and the fault list; thread-safe."""

    def __init__(self, state: ManagerState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._gens: dict[tuple[str, str], dict[str, str]] = {}  # (array, bv) -> {sv: create_time}
        self._faults: dict[str, frozenset[str]] = {}
        self._reachable: dict[str, bool] = {}
        self._explained: dict[tuple[str, str], set[str]] = {}  # (array, bv) -> SVs the array's events name

    def reset(self) -> None:
        """Forget what was seen (a lab rollback): the next readings are the new baselines."""
        with self._lock:
            self._gens.clear()
            self._faults.clear()

    def _event(self, classification: str, msg_id: str, text: str, operation: str = "monitor") -> None:
        try:
            self.state.log_event(SOURCE, classification, operation, msg_id, text)
        except Exception:  # the event log must never break the request that noticed something
            log.exception("cannot log event")

    # -- snapshots -----------------------------------------------------------------------------
    def query_seen(self, array: str, reply: array_pb2.QueryReply) -> list[tuple[str, str]]:
        """Compare a BV's live generations with the last ones seen; return those gone (not by us,
        not explained by an event of the array): (sv, create_time). ``report_gone`` logs them."""
        now = {g.sv: g.create_time for g in reply.generations if g.state in LIVE_STATES}
        key = (array, reply.bv)
        with self._lock:
            before = self._gens.get(key)
            self._gens[key] = now
            if before is None:
                self._explained.pop(key, None)
                return []
            return [(sv, created) for sv, created in before.items() if now.get(sv) != created]

    def report_gone(self, array: str, bv: str, gone: list[tuple[str, str]]) -> None:
        """Log the vanished generations ``query_seen`` returned, but those the array's own events
        named meanwhile (they are in the log already)."""
        with self._lock:
            explained = self._explained.pop((array, bv), set())
        for sv, created in gone:
            if sv in explained:
                continue
            self._event(
                "NOTICE",
                M.SNAPSHOT_GONE.msg_id,
                M.SNAPSHOT_GONE.text.format(detail=f"{array}: {bv} {sv} created {created}"),
            )

    def ours(self, array: str, bv: str, sv: str, create_time: str | None) -> None:
        """The manager itself made (``create_time``) or deleted (None) the generation of ``sv``:
        the baseline takes it, so the next reading reports only what changed elsewhere."""
        with self._lock:
            gens = self._gens.get((array, bv))
            if gens is None:
                return
            if create_time is None:
                gens.pop(sv, None)
            else:
                gens[sv] = create_time

    def forget(self, array: str, bv: str) -> None:
        """The manager changed the BV's generations in a way it does not follow one by one (a
        restore deleting the newer ones, generations added or deleted): the next reading is the
        new baseline."""
        with self._lock:
            self._gens.pop((array, bv), None)

    # -- faults --------------------------------------------------------------------------------
    def faults_seen(self, array: str, faults: Iterable[str], *, ours: bool = False) -> None:
        """Report faults that appeared or went away since the last reading (``ours``: just set by us)."""
        now = frozenset(faults)
        with self._lock:
            before = self._faults.get(array)
            self._faults[array] = now
        if before is None or ours:
            return
        for f in sorted(now - before):
            self._event("WARNING", M.FAULT_SEEN.msg_id, M.FAULT_SEEN.text.format(detail=f"{array}: {f}"))
        for f in sorted(before - now):
            self._event("NOTICE", M.FAULT_GONE.msg_id, M.FAULT_GONE.text.format(detail=f"{array}: {f}"))

    # -- the array's own events (SnapLab extension, issue 14: SRA-full deletions, thresholds) ------
    def array_events_seen(self, array: str, events: Iterable[array_pb2.ArrayEvent]) -> None:
        """Copy into the event log the array's events not copied before (kept in manager.db, so a
        manager restart copies none twice). An array whose numbering went back (its state was reset)
        is copied from its start again."""
        events = list(events)
        if not events:
            return
        with self._lock:
            last = self.state.array_event_seen(array)
            if events[-1].seq < last:
                last = 0
            new = [e for e in events if e.seq > last]
            if not new:
                return
            for e in new:
                cls = e.classification if e.classification in ("ERROR", "WARNING", "NOTICE", "INFO") else "NOTICE"
                self._event(cls, e.msg_id, f"{array}: {e.text}")
                if e.msg_id == E.SRA_AUTO_DELETED.msg_id and (m := _AUTO_DELETED.search(e.text)):
                    self._explained.setdefault((array, m[2]), set()).add(m[1])
            try:
                self.state.set_array_event_seen(array, new[-1].seq)
            except Exception:
                log.exception("cannot remember the array's events")

    # -- reachability --------------------------------------------------------------------------
    def reachability(self, array: str, ok: bool) -> None:
        """Report an array that stopped answering, and one that answers again."""
        with self._lock:
            before = self._reachable.get(array)
            self._reachable[array] = ok
        if before is None and ok or before == ok:
            return
        if ok:
            self._event("NOTICE", M.ARRAY_BACK.msg_id, M.ARRAY_BACK.text.format(name=array))
        else:
            self._event("WARNING", E.ARRAY_UNREACHABLE.msg_id, E.ARRAY_UNREACHABLE.text.format(name=array))
