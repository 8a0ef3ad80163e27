"""The manager daemon's operations as its metrics and chaos rules name them, and its own metrics (issue 10).

A routed call (``Route``, ``Snapshot``) is the SnapControl operation it carries: ``iSMsc_create``,
``iSMsc_query``, … (routing.COMMANDS), on the volume it acts on; any other call is its method.
The manager's own figure: routed refusals by the routing rule (B3) that refused them, by iSM id.
"""

from __future__ import annotations

from typing import Any

from snaplab.common.metrics import DaemonMetrics
from snaplab.common.rpc_chaos import describe_by_method

from . import routing
from .serde import OPS

ROUTED_METHODS = ("Route", "Snapshot")
ROUTED_OPS = tuple(routing.COMMANDS.values())


def describe(method: str, request: Any) -> tuple[tuple[str, ...], str]:
    """(operations, subject) of a call: ``(("Route", "iSMsc_create"), "bv001")``."""
    if method in ROUTED_METHODS and request is not None:
        field = request.WhichOneof("op")
        if field is not None:
            kind = OPS[field][0]
            m = getattr(request, field)
            if field == "group":  # SnapLab extension: a consistency group's operation, on the group
                return (method, routing.GROUP_COMMANDS.get(m.WhichOneof("op") or "", "iSMsc_create")), m.group
            subject = m.name if field == "linkinfo" else (m.lv if kind in routing.LV_OPS else m.bv)
            return (method, routing.COMMANDS[kind]), subject
    return describe_by_method(method, request)


def register(metrics: DaemonMetrics, servicer: Any) -> None:
    refused = metrics.counter(
        "snaplab_routed_refusals", "Routed control I/O refused by a routing rule (B3), by the rule's iSM id", ["rule"]
    )
    servicer.on_route_refused = lambda msg_id: refused.labels(msg_id).inc()
