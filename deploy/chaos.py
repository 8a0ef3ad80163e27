"""`snaplab chaos add|list|clear` as a Python API: the lab's chaos rules, checked against the lab (issue 10).

    from snaplab.deploy import chaos
    rule = chaos.add_rule(lab_dir, "host:business01", "iSMsc_create", error="iSM31005", count=1)
    chaos.list_rules(lab_dir)      # [ChaosRule(rule=Rule(id=1, ...), fired=0)]
    chaos.clear_rules(lab_dir)     # all (or rule_id=1)

Targets are the lab's processes: ``array:NAME`` (an array of the lab file), ``manager``,
``host:NAME`` (a host of the lab file). Operations (``op``), matched without regard to case, or
``*`` (every call of the target):

- array: the Array service's methods (``Create``, ``Query``, ``Read``, ``Write``, ``Lookup``, …);
  ``Query`` and ``LinkInfoOf`` also name each look-up of the manager's ``Lookup`` stream, which is
  how the manager's routed queries and link checks reach the array;
- manager: the Manager service's methods (``Route``, ``Snapshot``, ``Enrol``, …) and the routed
  SnapControl operations a ``Route``/``Snapshot`` carries (``iSMsc_create``, ``iSMsc_query``, …);
- host: the Agent service's methods (``Run``, ``Status``) and the host's commands (``iSMsc_create``,
  ``iSMrc_mount``, …), which are ``Run`` calls.

Rules reach running daemons through the lab's rules file (snaplab/common/chaos.py) at their next
call; ``lab up`` starts a lab without rules. Refusals are :class:`ChaosRuleError` (a ``LabError``
with the iSM id: iSM31335 a bad field, iSM31336 no such rule, iSM31337 no such process, iSM31338
no such operation of the target).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from snaplab.common.chaos import ANY_OP, STATUS_ERRORS, RulesFile, Rule, parse_duration
from snaplab.common.errors import E, SnapLabError

from .errors import LabError
from .folder import LabFolder

TARGET_KINDS = ("array", "manager", "host")


class ChaosRuleError(LabError):
    """A chaos request refused: one iSM line (``msg_id`` is its id)."""

    def __init__(self, err: SnapLabError) -> None:
        super().__init__(str(err))
        self.msg_id = err.msg_id
        self.text = err.text


@dataclass(frozen=True)
class ChaosRule:
    """A stored rule and how many times it has fired so far (all daemons' journals)."""

    rule: Rule
    fired: int = 0


@cache
def operations(kind: str) -> frozenset[str]:
    """The operation names of a target kind (lower case), for checking a rule's ``op``."""
    from snaplab.v1 import agent_pb2, array_pb2, manager_pb2

    def methods(module: object, service: str) -> set[str]:
        return set(module.DESCRIPTOR.services_by_name[service].methods_by_name)  # type: ignore[attr-defined]

    if kind == "array":
        names = methods(array_pb2, "Array")
    elif kind == "manager":
        from snaplab.manager.routing import COMMANDS

        names = methods(manager_pb2, "Manager") | set(COMMANDS.values())
    else:
        from snaplab.agent.commands import base
        from snaplab.agent.daemon import load_commands

        load_commands()
        names = methods(agent_pb2, "Agent") | set(base.COMMANDS)
    return frozenset(n.lower() for n in names)


def _lab(lab_dir: Path | str) -> LabFolder:
    lab = LabFolder(lab_dir)
    if not lab.lab_file.is_file():
        raise LabError(f"no lab in {lab.folder} (make one with: snaplab lab up)")
    return lab


def _check_target(lab: LabFolder, target: str, op: str) -> None:
    from .spec import LabSpec

    kind, _, name = target.partition(":")
    spec = LabSpec.load(lab.lab_file)
    known = {
        "array": {a.name for a in spec.arrays},
        "host": {h.name for h in spec.hosts},
    }
    if kind not in TARGET_KINDS or (kind == "manager") != (not name) or (name and name not in known[kind]):
        raise ChaosRuleError(SnapLabError(E.CHAOS_BAD_TARGET, name=target))
    if op != ANY_OP and op.lower() not in operations(kind):
        raise ChaosRuleError(SnapLabError(E.CHAOS_BAD_OP, name=f"{op} of {target}"))


def add_rule(
    lab_dir: Path | str,
    target: str,
    op: str,
    *,
    probability: float | str = 1.0,
    error: str = "",
    latency: float | str = 0.0,
    crash: bool = False,
    count: int | str | None = None,
    nth: int | str = 1,
    seed: int | str | None = None,
) -> Rule:
    """Store a rule for ``target``'s ``op`` (see the module's docstring); returns it with its id.
    String values are parsed as the command line gives them (``latency="200ms"``)."""
    lab = _lab(lab_dir)
    _check_target(lab, target, op)
    try:
        rule = Rule(
            id=0,
            target=target,
            op=op,
            probability=_number(probability, "probability", float),
            error=error.upper() if error.upper() in STATUS_ERRORS else error,
            latency=parse_duration(latency) if isinstance(latency, str) else float(latency),
            crash=crash,
            count=None if count is None else _number(count, "count", int),
            nth=_number(nth, "nth", int),
            seed=None if seed is None else _number(seed, "seed", int),
        )
        return RulesFile(lab.chaos).add(rule.check())
    except SnapLabError as exc:
        raise ChaosRuleError(exc) from None


def _number(value: object, what: str, kind: type) -> object:
    if isinstance(value, bool):
        raise SnapLabError(E.CHAOS_BAD_RULE, detail=f"{what} {value!r} is not a number")
    if isinstance(value, (int, float)) and not (kind is int and isinstance(value, float)):
        return kind(value)
    try:
        return kind(str(value).strip())
    except ValueError:
        raise SnapLabError(E.CHAOS_BAD_RULE, detail=f"{what} {value!r} is not a{'n integer' if kind is int else ' number'}") from None


def fired_counts(lab: LabFolder) -> dict[int, int]:
    """Rule id -> firings, from every daemon's journal."""
    counts: dict[int, int] = {}
    for path in lab.chaos.glob("fired-*.jsonl"):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                rid = int(json.loads(line)["rule"])
            except (ValueError, KeyError, TypeError):
                continue
            counts[rid] = counts.get(rid, 0) + 1
    return counts


def list_rules(lab_dir: Path | str) -> list[ChaosRule]:
    lab = _lab(lab_dir)
    fired = fired_counts(lab)
    return [ChaosRule(r, fired.get(r.id, 0)) for r in RulesFile(lab.chaos).rules()]


def clear_rules(lab_dir: Path | str, rule_id: int | None = None) -> list[Rule]:
    """Remove one rule or all of them; returns what was removed (iSM31336 for an unknown id)."""
    lab = _lab(lab_dir)
    try:
        return RulesFile(lab.chaos).clear(rule_id)
    except SnapLabError as exc:
        raise ChaosRuleError(exc) from None


def describe_rule(r: Rule) -> list[str]:
    """The columns ``snaplab chaos list`` shows of a rule."""
    return [
        str(r.id),
        r.target,
        r.op,
        f"{r.probability:g}",
        r.action(),
        "-" if r.limit is None else str(r.limit),
        str(r.nth),
        "-" if r.seed is None else str(r.seed),
    ]
