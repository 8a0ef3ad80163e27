"""SnapLab extension (issue 14): pools' SRA-full policies and warning thresholds, consistency labels, events.

The guide's array has one behaviour when the SRA is full: the write deletes snapshots (A6). That
stays the default (``auto-delete``); a pool may instead ``fail-writes`` (the BV's write is refused,
snapshots kept: E-Series' failBaseWrites), ``invalidate-all`` (every snapshot sharing the SRA becomes
unreadable and frees its space: Hitachi's PSUE) or ``queue`` (the write waits up to the pool's timeout
for space, then fails: dm-thin's queue_if_no_space; the wait is the service's, servicer.Write, so it
holds no engine thread). Warning thresholds (percent of the SRA used) log one event per upward
crossing. The array's own events (these, and each snapshot an SRA-full write deletes) are kept in
array.db and shown in ``ArrayState.events``; the manager copies them into its event log.
docs/extensions-sra-quiesce.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from snaplab.common.errors import E, Message, SnapLabError

from .model import FAULT_SRA, LD, STATE_FAULT, Gen, Restore

log = logging.getLogger("snaplab.array")

POLICIES = ("auto-delete", "fail-writes", "invalidate-all", "queue")
DEFAULT_POLICY = "auto-delete"  # the guide's behaviour (A6)
DEFAULT_QUEUE_TIMEOUT = 60.0  # dm-thin's no_space_timeout
MAX_QUEUE_TIMEOUT = 3600.0
MAX_THRESHOLDS = 8
EVENTS_KEPT = 200
CONSISTENCY_LABELS = ("application", "crash")


@dataclass(frozen=True)
class SraPolicy:
    policy: str = DEFAULT_POLICY
    warn: tuple[int, ...] = ()
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT


def create_tables(db: Any) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS sra_policies (pool INTEGER PRIMARY KEY, policy TEXT, warn TEXT,"
               " queue_timeout REAL)")
    db.execute("CREATE TABLE IF NOT EXISTS gen_consistency (sv INTEGER PRIMARY KEY, epoch INTEGER,"
               " label TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS array_events (seq INTEGER PRIMARY KEY, time TEXT,"
               " classification TEXT, msg_id TEXT, text TEXT)")


def read_state(q: Any) -> dict:
    """The part of the engine's memory state these extensions keep (engine._read_state)."""
    policies = {
        pool: SraPolicy(policy, tuple(int(x) for x in warn.split(",") if x), timeout)
        for pool, policy, warn, timeout in q("SELECT pool, policy, warn, queue_timeout FROM sra_policies")
    }
    labels = {sv: (epoch, label) for sv, epoch, label in q("SELECT sv, epoch, label FROM gen_consistency")}
    events = [
        {"seq": r[0], "time": r[1], "classification": r[2], "msg_id": r[3], "text": r[4]}
        for r in q("SELECT seq, time, classification, msg_id, text FROM array_events"
                   " ORDER BY seq DESC LIMIT ?", [EVENTS_KEPT])
    ][::-1]
    return {"sra_policies": policies, "gen_labels": labels, "array_events": events}


def parse_thresholds(values: list[int]) -> tuple[int, ...]:
    if len(values) > MAX_THRESHOLDS or any(not 1 <= v <= 100 for v in values):
        detail = f"thresholds {values}: at most {MAX_THRESHOLDS}, each 1-100"
        raise SnapLabError(E.SRA_POLICY_BAD, detail=detail)
    return tuple(sorted(set(values)))


class SraPolicyMixin:
    """A mixin of ``ArrayEngine`` (engine.py); blockio.py asks it what an SRA-full write does."""

    # -- configuration (iSMcfg srapolicy, the lab file's pools[].sra_policy) -------------------
    def set_sra_policy(self, pool: int | str, policy: str | None = None, *, warn: list[int] | None = None,
                       queue_timeout: float | None = None) -> SraPolicy:
        with self._tx():
            p = self._pool(pool)
            old = self._sra_policy(p.number)
            if policy is not None and policy not in POLICIES:
                raise SnapLabError(E.SRA_POLICY_BAD, detail=f"policy {policy} (one of {', '.join(POLICIES)})")
            if queue_timeout is not None and not 0 < queue_timeout <= MAX_QUEUE_TIMEOUT:
                detail = f"queue timeout {queue_timeout} (0-{MAX_QUEUE_TIMEOUT:.0f} s)"
                raise SnapLabError(E.SRA_POLICY_BAD, detail=detail)
            new = SraPolicy(
                policy or old.policy,
                old.warn if warn is None else parse_thresholds(warn),
                old.queue_timeout if queue_timeout is None else float(queue_timeout),
            )
            self.db.execute("INSERT OR REPLACE INTO sra_policies VALUES (?,?,?,?)",
                            [p.number, new.policy, ",".join(map(str, new.warn)), new.queue_timeout])
            self.sra_policies[p.number] = new
            self._sra_levels.pop(p.number, None)  # new thresholds: crossings are counted anew
            return new

    @property
    def _sra_levels(self) -> dict[int, int]:
        """Per pool, the highest threshold reported (memory only, not reset by a reload)."""
        return self.__dict__.setdefault("_sra_level_map", {})

    def _sra_policy(self, pool: int) -> SraPolicy:
        return self.sra_policies.get(pool, SraPolicy())

    def _sra_policy_info(self, pool: int) -> dict:
        pol = self._sra_policy(pool)
        return {"sra_policy": pol.policy, "sra_warn_percents": list(pol.warn),
                "sra_queue_timeout_seconds": pol.queue_timeout}

    def sra_queue_timeout(self, ld_ref: str | int) -> float:
        """How long a write to this BV may wait for space (the queue policy of its SVs' pool)."""
        with self._state():
            pool = self._sv_pool(self.ld(ld_ref).number)
            return self._sra_policy(pool).queue_timeout if pool is not None else 0.0

    # -- what a write does when the SRA has no room (blockio._commit_head_blocks) ----------------
    def _sra_no_room(self, bv: LD, pool: int, restoring: Restore | None) -> None:
        """Make room by the pool's policy, or refuse the write. Returns once something was freed."""
        pol = self._sra_policy(pool).policy
        pname = self.pools[pool].name
        if pol == "fail-writes" or (pol == "queue" and restoring is not None):  # a restore's copy cannot wait
            log.warning("SRA of %s full: write to %s refused (policy %s)", pname, bv.name, pol)
            raise SnapLabError(E.SRA_FULL_WRITE_REFUSED, name=bv.name)
        if pol == "queue":
            raise SnapLabError(E.SRA_FULL_QUEUED, name=bv.name)
        if pol == "invalidate-all":
            running = {r.sv for r in self.restores.values()}
            gens = [g for x in self.lds.values() if x.type == "SV" and x.pool == pool
                    and (g := self.gens[x.number]).live and g.epoch is not None and g.sv not in running]
            if not gens:
                raise SnapLabError(E.SRA_FULL, name=pname)
            for g in gens:
                self._invalidate_gen(g)
            self._array_event("WARNING", E.SRA_INVALIDATED,
                              detail=f"{pname}: {len(gens)} snapshots, by a write to {bv.name}")
            return
        victim = self._sra_full_victim(bv, restoring)  # blockio.py: oldest unguarded, then guarded
        if victim is None:
            raise SnapLabError(E.SRA_FULL, name=pname)
        sv = self.lds[victim.sv]
        self._array_event("WARNING", E.SRA_AUTO_DELETED,
                          detail=f"{pname}: {sv.name} of {bv.name}{' (guarded)' if victim.guard else ''}")
        self._auto_delete(victim)

    def _invalidate_gen(self, g: Gen) -> None:
        """Drop the generation's data but keep it listed as failed (snap/fault, unreadable: iSM19061)
        until deleted or re-created, as Hitachi keeps a suspended pair."""
        created, guard = g.create_time, g.guard
        self._delete_gen(g)
        g.state, g.fault, g.state_time = STATE_FAULT, FAULT_SRA, self._clock()
        g.create_time, g.guard = created, guard
        self._save_gen(g)

    # -- warning thresholds ----------------------------------------------------------------------
    def _sra_watch(self, pool: int | None) -> None:
        """After a write that grew the SRA: one event per threshold crossed upwards since the last
        look (the level re-arms when usage falls below it)."""
        if pool is None:
            return
        warn = self._sra_policy(pool).warn
        if not warn:
            return
        cap = self._sra_capacity(pool)
        pct = 100 * self._sra_used(pool) / cap if cap else 0.0
        level = max((t for t in warn if pct >= t), default=0)
        levels = self._sra_levels
        before = levels.get(pool, 0)  # after a restart a threshold still exceeded is reported once more
        levels[pool] = level
        if level <= before:
            return
        name = self.pools[pool].name
        self._array_event("WARNING", E.SRA_THRESHOLD, detail=f"{name}: {pct:.0f}% used, threshold {level}%")

    # -- consistency labels (iSMsc_create -quiesce) ------------------------------------------------
    def create_labelled(self, *args: Any, consistency: str = "", **kwargs: Any) -> dict:
        """``create`` that also records the generation's consistency label, in one transaction."""
        if consistency and consistency not in CONSISTENCY_LABELS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"consistency {consistency}")
        with self._tx():
            info = self.create(*args, **kwargs)
            if consistency:
                sv = self.ld(info["sv"])
                g = self.gens[sv.number]
                self.db.execute("INSERT OR REPLACE INTO gen_consistency VALUES (?,?,?)",
                                [sv.number, g.epoch, consistency])
                self.gen_labels[sv.number] = (g.epoch, consistency)
                info["consistency"] = consistency
            return info

    def _consistency(self, g: Gen) -> str:
        """The label of the generation as it is now ("" if it was not created with one)."""
        epoch, label = self.gen_labels.get(g.sv, (None, ""))
        return label if g.live and g.epoch is not None and epoch == g.epoch else ""

    # -- the array's own events ------------------------------------------------------------------
    def _array_event(self, classification: str, msg: Message, **fields: object) -> None:
        """Log an event in the current transaction (it is kept only if the transaction commits)."""
        text = msg.text.format(**fields)
        seq = (self.array_events[-1]["seq"] if self.array_events else 0) + 1
        row = self.db.execute("SELECT MAX(seq) FROM array_events").fetchone()
        seq = max(seq, (row[0] or 0) + 1)
        now = self._clock()
        self.db.execute("INSERT INTO array_events VALUES (?,?,?,?,?)",
                        [seq, now, classification, msg.msg_id, text])
        self.db.execute("DELETE FROM array_events WHERE seq <= ?", [seq - EVENTS_KEPT])
        self.array_events.append({"seq": seq, "time": now, "classification": classification,
                                  "msg_id": msg.msg_id, "text": text})
        del self.array_events[:-EVENTS_KEPT]
        log.warning("event %s: %s", msg.msg_id, text)

    def events(self) -> list[dict]:
        with self._state():
            return list(self.array_events)
