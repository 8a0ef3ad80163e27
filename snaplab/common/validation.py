"""The limits and character rules of every string a request carries, for every service, in one table.

Each string field of a request message (array, manager and agent contracts, nested messages
included) has a ``Rule``: a length limit, a character rule and, for repeated fields, a count limit.
``check_request`` applies them to a decoded request and raises ``SnapLabError`` (iSM19005) naming
the field (real numbers, i.e. timeouts, must be finite and not negative: iSM19001);
``rpc_validation`` runs it on every request before any servicer sees it. ``shown`` is the bounded,
escaped form in which a string may appear in a message, a log line or the event log.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from .errors import E, SnapLabError

SHOWN_CHARS = 40  # how much of a refused value a message repeats
DEFAULT_MAX_ITEMS = 1024  # repeated fields without a limit of their own

_WWN = re.compile(r"[0-9A-Fa-f]{2}(?:[:-]?[0-9A-Fa-f]{2}){7}")
# iSCSI names (RFC 3720 3.2.6.3): iqn.YYYY-MM.reversed.domain[:anything] or eui. and 16 hex digits
# (case-insensitive: RFC 3722 compares them folded to lower case, the array keeps them so).
INITIATOR_NAME = re.compile(r"iqn\.\d{4}-\d{2}\.[A-Za-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?|eui\.[0-9A-Fa-f]{16}", re.IGNORECASE)
# Certificate CNs (pki._NAME): a host is named by its certificate.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def shown(value: str, limit: int = SHOWN_CHARS, *, total: int | None = None, unit: str = "characters") -> str:
    """``value`` as it may be quoted: control and other unprintable characters escaped (``\\n``,
    ``\\x00``, ``\\u200b``), at most ``limit`` characters of it, and the length when cut (``total``:
    the size of the whole, in ``unit``, when ``value`` is already a cut piece of it)."""
    length = len(value) if total is None else max(total, len(value))
    head = value[:limit]
    text = head if head.isprintable() else head.encode("unicode_escape").decode("ascii")[:limit]
    if length > limit or total is not None:
        return f"{text}...({length} {unit})"
    return text


def _token(value: str) -> str | None:
    """Printable, without blanks: names and keywords."""
    if value.isprintable() and " " not in value:
        return None
    bad = next(c for c in value if not c.isprintable() or c == " ")
    return "a blank is not allowed" if bad == " " else f"character {shown(bad)} is not allowed"


def _pattern(regex: re.Pattern[str], form: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if regex.fullmatch(value) else f"{shown(value)!r} is not {form}"

    return check


def _no_nul(value: str) -> str | None:
    return "character \\x00 is not allowed" if "\x00" in value else None


@dataclass(frozen=True)
class Rule:
    """What one string field may hold: at most ``max_len`` characters that pass ``chars``
    (None or a reason), and at most ``max_items`` values when repeated. Empty is always allowed
    here: whether a field is required is the operation's business."""

    max_len: int
    chars: Callable[[str], str | None] = _token
    max_items: int = 16

    def check(self, path: str, value: str) -> None:
        if len(value) > self.max_len:
            raise SnapLabError(
                E.NAME_INVALID, detail=f"{path}: {len(value)} characters, at most {self.max_len}"
            )
        if value:
            reason = self.chars(value)
            if reason:
                raise SnapLabError(E.NAME_INVALID, detail=f"{path}: {reason}")


# -- the rules --------------------------------------------------------------------------------------
# The array's own limit for LD, pool, port and array names is 32 characters (array/config.py, deploy's
# lab file); a relative generation adds ".-1024" to a BV name.
OBJECT = Rule(32)
GENERATION = Rule(40)
KEYWORD = Rule(32)
HOST = Rule(64, _pattern(_HOST, "a host name (letters, digits, . _ -)"))
WWN = Rule(23, _pattern(_WWN, "a WWN (8 hex bytes, e.g. 10:00:00:00:c9:2a:01:01)"))
INITIATOR = Rule(223, _pattern(INITIATOR_NAME, "an iSCSI name (iqn.YYYY-MM.domain[:id] or eui.16-hex-digits)"))
ARGUMENT = Rule(4096, _no_nul, max_items=256)  # a command's argv: paths, volume names
SCRIPT = Rule(1 << 20, _no_nul)  # a command's standard input (DISKPART scripts)

# (message full name or "*", field name) -> rule; "*" applies in any message without its own entry.
RULES: dict[tuple[str, str], Rule] = {
    # names of objects, wherever they appear
    ("*", "name"): OBJECT,
    ("*", "ld"): OBJECT,
    ("*", "mv"): OBJECT,
    ("*", "rv"): OBJECT,
    ("snaplab.v1.SetIoLimit", "report"): KEYWORD,
    ("*", "bv"): OBJECT,
    ("*", "lv"): OBJECT,
    ("*", "via"): OBJECT,
    ("*", "pool"): OBJECT,
    ("*", "port"): OBJECT,
    ("*", "array"): OBJECT,
    ("*", "sdv_name"): OBJECT,
    ("*", "cluster"): OBJECT,
    ("*", "group"): OBJECT,
    ("*", "lds"): OBJECT,
    ("*", "target"): Rule(64),  # a fault's target: a pool, LD or product, or a host (certificate names)
    ("*", "sv"): GENERATION,
    ("*", "ports"): OBJECT,
    ("snaplab.v1.AddGenerations", "sv_names"): Rule(32, max_items=1024),
    ("snaplab.v1.ReadHeadsRequest", "lds"): Rule(32, max_items=1024),  # a host's disk scan, per call
    # keywords
    ("*", "kind"): KEYWORD,
    ("*", "format"): KEYWORD,
    ("*", "attr"): KEYWORD,
    ("*", "mode"): KEYWORD,
    ("*", "cond"): KEYWORD,
    ("*", "svflg"): KEYWORD,
    ("*", "derivsv"): KEYWORD,
    ("*", "policy"): KEYWORD,  # SnapLab extension: SetSraPolicy
    ("*", "consistency"): KEYWORD,  # SnapLab extension: CreateRequest
    # SnapLab extension (issue 14): consistency groups' members and LVs, holds' names
    ("*", "bvs"): Rule(32, max_items=64),
    ("*", "members"): Rule(32, max_items=64),
    ("*", "lvs"): Rule(32, max_items=64),
    ("*", "hold"): Rule(64),
    ("*", "release"): Rule(64),
    ("*", "product"): KEYWORD,
    ("*", "platform"): KEYWORD,
    ("*", "role"): KEYWORD,
    ("*", "cluster_role"): KEYWORD,
    # hosts and their HBAs
    ("snaplab.v1.RegisterHost", "name"): HOST,
    ("snaplab.v1.DisksRequest", "host"): HOST,
    ("snaplab.v1.ReservationRequest", "owner"): HOST,  # a cluster node ("" releases)
    ("snaplab.v1.DescribeRequest", "for_host"): HOST,
    ("snaplab.v1.DescribeRequest", "known_version"): KEYWORD,  # a routing view's version: "nonce.count"
    ("snaplab.v1.LabEventRequest", "host"): HOST,
    ("snaplab.v1.LabEventRequest", "detail"): Rule(256, _no_nul),  # disks and group, in words
    ("snaplab.v1.ClusterClaimRequest", "unsigned"): OBJECT,
    ("*", "wwn"): WWN,
    ("*", "wwns"): WWN,
    ("*", "initiator"): INITIATOR,
    ("*", "initiators"): INITIATOR,
    # the agent's commands
    ("snaplab.v1.CommandRequest", "argv"): ARGUMENT,
    ("snaplab.v1.CommandRequest", "stdin"): SCRIPT,
    ("snaplab.v1.StatusRequest", "mount_point"): Rule(260, _no_nul),  # G: or a folder path (MAX_PATH)
}
# Repeated message fields: how many entries one request may carry.
MAX_ITEMS: dict[tuple[str, str], int] = {
    ("snaplab.v1.LookupBatch", "requests"): 10_000,
}


def rule_for(message: str, field: str) -> Rule | None:
    return RULES.get((message, field)) or RULES.get(("*", field))


# -- applying them ----------------------------------------------------------------------------------

_Plan = list[tuple[str, str, bool, Any]]  # (field, "str" | "real" | "msg" | "other", repeated, rule or None)
_REALS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_PLANS: dict[str, _Plan] = {}


def _plan(desc: Descriptor) -> _Plan:
    """What to look at in one message type: its string fields (with their rule), real numbers
    (timeouts: finite, not negative), message fields, and repeated fields of other types
    (counted). Bytes fields are never read (block data)."""
    plan = _PLANS.get(desc.full_name)
    if plan is not None:
        return plan
    plan = []
    for f in desc.fields:
        repeated = f.is_repeated
        if f.type == FieldDescriptor.TYPE_STRING:
            plan.append((f.name, "str", repeated, rule_for(desc.full_name, f.name)))
        elif f.type in _REALS and not repeated:
            plan.append((f.name, "real", False, None))
        elif f.type == FieldDescriptor.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry:
            plan.append((f.name, "msg", repeated, MAX_ITEMS.get((desc.full_name, f.name), DEFAULT_MAX_ITEMS)))
        elif repeated:
            plan.append((f.name, "other", True, DEFAULT_MAX_ITEMS))
    _PLANS[desc.full_name] = plan
    return plan


def unruled_fields(desc: Descriptor, seen: set[str] | None = None) -> list[str]:
    """String fields of ``desc`` and the messages it holds that have no rule (tests keep this empty)."""
    seen = set() if seen is None else seen
    if desc.full_name in seen:
        return []
    seen.add(desc.full_name)
    out = []
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_STRING and rule_for(desc.full_name, f.name) is None:
            out.append(f"{desc.full_name}.{f.name}")
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            out += unruled_fields(f.message_type, seen)
    return out


_FALLBACK = Rule(256)


def check_request(message: Any, path: str = "") -> None:
    """Raise ``SnapLabError`` (iSM19005) unless every string in ``message`` keeps its rule."""
    for name, kind, repeated, rule in _plan(message.DESCRIPTOR):
        where = f"{path}{name}"
        if kind == "str":
            rule = rule or _FALLBACK
            if repeated:
                values = getattr(message, name)
                if len(values) > rule.max_items:
                    raise SnapLabError(
                        E.NAME_INVALID, detail=f"{where}: {len(values)} values, at most {rule.max_items}"
                    )
                for v in values:
                    rule.check(where, v)
            else:
                rule.check(where, getattr(message, name))
        elif kind == "real":
            value = getattr(message, name)
            if not math.isfinite(value) or value < 0:
                raise SnapLabError(E.BAD_ARGUMENT, detail=f"{where} must be a non-negative number")
        elif kind == "msg":
            if repeated:
                items = getattr(message, name)
                if len(items) > rule:
                    raise SnapLabError(
                        E.NAME_INVALID, detail=f"{where}: {len(items)} entries, at most {rule}"
                    )
                for item in items:
                    check_request(item, f"{where}.")
            elif message.HasField(name):
                check_request(getattr(message, name), f"{where}.")
        elif len(getattr(message, name)) > rule:
            raise SnapLabError(
                E.NAME_INVALID, detail=f"{where}: {len(getattr(message, name))} values, at most {rule}"
            )
