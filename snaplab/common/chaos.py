"""Chaos rules: the lab's scripted failures (issue 10), as data and as the decision one daemon makes per call.

A rule names a process (``array:NAME``, ``manager``, ``host:NAME``), an operation (a gRPC method
such as ``Create``, a routed op such as ``iSMsc_create``, a host command, or ``*``), and what happens
when it fires: a delay (``latency``), a refusal (``error``: an iSM id of the catalogue, answered with
that message's status and text as a real refusal is, or a gRPC status name such as ``UNAVAILABLE``,
answered without an iSM id as a transport failure is), or the daemon's death (``crash``).
``probability`` is drawn per matching call from a ``random.Random(seed)`` of the rule's own, so a
seeded rule fires on the same calls every run; ``nth`` skips the first N-1 matching calls and
``count`` bounds how many times it fires (a crash rule fires once unless told otherwise).

The rules live in one file of the lab, ``<lab>/run/chaos/rules.json``, written by ``snaplab chaos``
(atomically, under a lock); each daemon's :class:`ChaosEngine` re-reads it when it changes (one
``stat`` per call), so a rule reaches a running daemon at its next call, and a restarted daemon
finds the rules still there. Each firing is appended to the daemon's journal
``fired-<process>.jsonl`` in the same folder before it takes effect (a crash is recorded before the
daemon dies): the manager turns the journals into events of its log, and a daemon counts its own
past firings from its journal when it starts, so a crash rule does not fire again after a restart.

Pure Python (no grpc): the interceptors are in ``rpc_chaos``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import E, Message, SnapLabError, all_messages

log = logging.getLogger("snaplab.common.chaos")

RULES_FILE = "rules.json"
CRASH_EXIT = 70  # EX_SOFTWARE: what a crash rule makes the daemon exit with
MAX_LATENCY = 300.0  # seconds: a rule longer than any client's deadline would only hang the lab
MAX_RULES = 256
ANY_OP = "*"
# The transport failures a rule may answer with (a gRPC status name, no iSM id).
STATUS_ERRORS = (
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "INTERNAL",
    "UNKNOWN",
    "ABORTED",
    "CANCELLED",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "FAILED_PRECONDITION",
    "NOT_FOUND",
)
_TARGET = re.compile(r"(manager|(array|host):[A-Za-z0-9][A-Za-z0-9._-]{0,63})")
_OP = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}|\*")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s)?")


def catalogue_message(msg_id: str) -> Message | None:
    """The catalogue's refusal with this id (None: not a refusal of the catalogue)."""
    return next((m for m in all_messages() if m.msg_id == msg_id), None)


def parse_duration(text: str) -> float:
    """``200ms``, ``1.5s``, ``2`` (seconds) -> seconds; iSM31335 for anything else or above MAX_LATENCY."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise SnapLabError(E.CHAOS_BAD_RULE, detail=f"latency {text!r} is not a duration like 200ms or 1.5s")
    value = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if value > MAX_LATENCY:
        raise SnapLabError(E.CHAOS_BAD_RULE, detail=f"latency {text} is above {MAX_LATENCY:g}s")
    return value


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


@dataclass(frozen=True)
class Rule:
    """One chaos rule as the rules file keeps it (see the module's docstring for each field)."""

    id: int
    target: str
    op: str
    probability: float = 1.0
    error: str = ""
    latency: float = 0.0
    crash: bool = False
    count: int | None = None  # None: unlimited (a crash rule: 1)
    nth: int = 1
    seed: int | None = None

    @property
    def limit(self) -> int | None:
        return 1 if self.crash and self.count is None else self.count

    def action(self) -> str:
        """What the rule does, in words: ``error iSM31005``, ``latency 200ms``, ``crash``."""
        parts = []
        if self.latency:
            parts.append(f"latency {format_duration(self.latency)}")
        if self.error:
            parts.append(f"error {self.error}")
        if self.crash:
            parts.append("crash")
        return " + ".join(parts) or "nothing"

    def check(self) -> Rule:
        """The rule if every field is in range; iSM31335 naming the field otherwise."""

        def bad(detail: str) -> SnapLabError:
            return SnapLabError(E.CHAOS_BAD_RULE, detail=detail)

        if not _TARGET.fullmatch(self.target):
            raise bad(f"target {self.target!r} is not array:NAME, manager or host:NAME")
        if not _OP.fullmatch(self.op):
            raise bad(f"operation {self.op!r} is not an operation name")
        if not (isinstance(self.probability, (int, float)) and 0.0 <= self.probability <= 1.0):
            raise bad(f"probability {self.probability!r} is not a number from 0 to 1")
        if self.error and not (self.error in STATUS_ERRORS or catalogue_message(self.error)):
            raise bad(f"error {self.error!r} is neither an iSM refusal of the catalogue nor one of "
                      f"{', '.join(STATUS_ERRORS)}")
        if not (math.isfinite(self.latency) and 0.0 <= self.latency <= MAX_LATENCY):
            raise bad(f"latency {self.latency!r} is not 0-{MAX_LATENCY:g} seconds")
        if not (self.error or self.latency or self.crash):
            raise bad("a rule needs --error, --latency or --crash")
        if self.count is not None and not 1 <= self.count <= 1_000_000_000:
            raise bad(f"count {self.count} is not 1-1000000000")
        if not 1 <= self.nth <= 1_000_000_000:
            raise bad(f"nth {self.nth} is not 1-1000000000")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise bad(f"seed {self.seed} is not 0-{2**63 - 1}")
        return self

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# -- the rules file ------------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """Write a file only this user may read (the lab folder's rule), whatever the caller's umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def journal_name(process: str) -> str:
    return f"fired-{process.replace(':', '_')}.jsonl"


class RulesFile:
    """``<dir>/rules.json``: ``{"next_id": n, "rules": [...]}``; ids are never reused, so a daemon's
    per-rule state (matches, firings, random draws) is never mistaken for another rule's."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / RULES_FILE

    def read(self) -> tuple[int, list[Rule]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 1, []
        except (OSError, ValueError) as exc:
            log.warning("chaos rules %s unreadable (%s): no rules", self.path, exc)
            return 1, []
        return int(data.get("next_id", 1)), [Rule.from_json(r) for r in data.get("rules", [])]

    def rules(self) -> list[Rule]:
        return self.read()[1]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, next_id: int, rules: list[Rule]) -> None:
        tmp = self.path.with_name(f".{RULES_FILE}.{os.getpid()}.tmp")
        text = json.dumps({"next_id": next_id, "rules": [asdict(r) for r in rules]}, indent=1) + "\n"
        write_private(tmp, text.encode())
        os.replace(tmp, self.path)

    def add(self, rule: Rule) -> Rule:
        """Store ``rule`` (checked) under the next id; returns it with its id."""
        with self._locked():
            next_id, rules = self.read()
            if len(rules) >= MAX_RULES:
                raise SnapLabError(E.CHAOS_BAD_RULE, detail=f"the lab has {MAX_RULES} rules already")
            stored = Rule(**{**asdict(rule), "id": next_id}).check()
            self._write(next_id + 1, [*rules, stored])
            return stored

    def clear(self, rule_id: int | None = None) -> list[Rule]:
        """Remove one rule (iSM31336 if there is none of that id) or all; returns what was removed."""
        with self._locked():
            next_id, rules = self.read()
            gone = [r for r in rules if rule_id is None or r.id == rule_id]
            if rule_id is not None and not gone:
                raise SnapLabError(E.CHAOS_NO_RULE, name=str(rule_id))
            self._write(next_id, [r for r in rules if r not in gone])
            return gone


# -- one daemon's decisions ----------------------------------------------------------------------


@dataclass
class Firing:
    """What a rule that fired makes of this call."""

    rule: Rule
    op: str
    latency: float
    error: SnapLabError | None  # an iSM refusal
    status: str  # or a transport failure: a gRPC status name ("" none)
    crash: bool


@dataclass
class _State:
    rng: random.Random
    matched: int = 0
    fired: int = 0


@dataclass
class ChaosEngine:
    """The rules of one process (``process``: ``array:NAME``, ``manager``, ``host:NAME``), re-read when
    the rules file changes. :meth:`decide` is thread-safe (the agent serves on a thread pool)."""

    folder: Path
    process: str
    on_fired: Any = None  # callable(Firing): the daemon's metrics
    _key: tuple[int, int, int] | None = None
    _rules: list[Rule] = field(default_factory=list)
    _states: dict[int, _State] = field(default_factory=dict)
    _fired_before: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.file = RulesFile(self.folder)
        self.journal = self.folder / journal_name(self.process)
        try:  # firings of an earlier life of this daemon count against each rule's limit
            for line in self.journal.read_text().splitlines():
                rid = json.loads(line).get("rule")
                self._fired_before[rid] = self._fired_before.get(rid, 0) + 1
        except (OSError, ValueError):
            pass

    def _reload(self) -> None:
        try:
            st = os.stat(self.file.path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key == self._key:
            return
        self._key = key
        self._rules = [r for r in self.file.rules() if r.target == self.process] if key else []
        live = {r.id for r in self._rules}
        for rid in [rid for rid in self._states if rid not in live]:
            del self._states[rid]
        for r in self._rules:
            if r.id not in self._states:
                rng = random.Random(r.seed) if r.seed is not None else random.Random()
                self._states[r.id] = _State(rng, fired=self._fired_before.get(r.id, 0))

    def decide(self, ops: tuple[str, ...], subject: str = "") -> Firing | None:
        """The firing of the first rule that fires for a call of operations ``ops`` (the method, and
        the routed op or command when there is one) on ``subject`` (the volume it names), if any.
        Every matching rule counts the call; each draws its probability only when it may fire."""
        with self._lock:
            self._reload()
            if not self._rules:
                return None
            chosen = None
            names = {o.lower() for o in ops}  # operation names match without regard to case
            for r in self._rules:
                if r.op != ANY_OP and r.op.lower() not in names:
                    continue
                st = self._states[r.id]
                st.matched += 1
                if chosen is not None or st.matched < r.nth:
                    continue
                if r.limit is not None and st.fired >= r.limit:
                    continue
                if st.rng.random() < r.probability:
                    st.fired += 1
                    chosen = r
            if chosen is None:
                return None
            firing = self._firing(chosen, ops, subject)
            self._record(firing)
        if self.on_fired is not None:
            self.on_fired(firing)
        return firing

    def _firing(self, r: Rule, ops: tuple[str, ...], subject: str) -> Firing:
        error = None
        status = ""
        if r.error in STATUS_ERRORS:
            status = r.error
        elif r.error:
            msg = catalogue_message(r.error)
            assert msg is not None  # checked when stored
            name = subject or "-"
            error = SnapLabError(msg, name=name, detail=name, licensed=name, physical=name, product=name)
        return Firing(r, ops[-1], r.latency, error, status, r.crash)

    def _record(self, f: Firing) -> None:
        line = {
            "time": time.time(),
            "process": self.process,
            "rule": f.rule.id,
            "op": f.op,
            "action": f.rule.action(),
        }
        log.warning("chaos rule %d fired on %s: %s (%s)", f.rule.id, f.op, f.rule.action(), self.process)
        try:
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (json.dumps(line) + "\n").encode())
            finally:
                os.close(fd)
        except OSError as exc:  # the rule still fires; only its event is lost
            log.warning("chaos journal %s not written: %s", self.journal, exc.strerror)


def crash_now(f: Firing) -> None:
    """A crash rule fired: say so in the daemon's log and die without cleaning up, as a crash does."""
    log.critical("chaos rule %d: crashing on %s", f.rule.id, f.op)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(CRASH_EXIT)
