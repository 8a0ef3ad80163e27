"""``iSMview`` / ``iSMcc_view`` on a host: the monitoring layouts, asked of the manager with this host's rights.

The manager answers a host's Monitor as the array shows itself to that host (its own record and
ports, the LDs it is given, their pools and snapshots; of the servers, only itself), so the same
layouts as the management server's console (``snaplab/common/ismview.py``) show only that part.
OpenSVC's array driver runs ``iSMview -d`` and ``iSMview -all ARRAY`` (or ``iSMcc_view``) on the node.
"""

from __future__ import annotations

import grpc

from snaplab.common import ismview as layouts
from snaplab.common.errors import E
from snaplab.v1 import manager_pb2

from .base import CommandError, Ctx, command

MONITOR_TIMEOUT = 30.0


def _monitor(ctx: Ctx, array: str = "") -> manager_pb2.MonitorReply:
    try:
        return ctx.host.manager.Monitor(manager_pb2.MonitorRequest(array=array), timeout=MONITOR_TIMEOUT)
    except grpc.RpcError as exc:
        raise CommandError.of(exc, manager=ctx.host.manager_target) from None


@command("iSMview", "iSMcc_view")
def view(ctx: Ctx) -> int:
    if not ctx.args:
        raise CommandError(E.USAGE, detail="give -d, -all ARRAY, -snap [ARRAY] or -host")
    mode, rest = ctx.args[0].lower(), ctx.args[1:]
    if mode in ("-d", "-host") and rest:
        raise CommandError(E.USAGE, detail=f"unknown argument {rest[0]}")
    if mode == "-all" and len(rest) != 1:
        raise CommandError(E.USAGE, detail="-all needs the disk array name")
    if mode == "-snap" and len(rest) > 1:
        raise CommandError(E.USAGE, detail="-snap takes at most one disk array name")
    if mode == "-d":
        lines = layouts.disk_array_list(_monitor(ctx))
    elif mode == "-all":
        lines = layouts.array_detail(_monitor(ctx, rest[0]).arrays[0])
    elif mode == "-snap":
        lines = [line for a in _monitor(ctx, rest[0] if rest else "").arrays for line in layouts.snapshot_list(a)]
    elif mode == "-host":
        lines = layouts.host_list(_monitor(ctx))
    else:
        raise CommandError(E.USAGE, detail=f"unknown option {ctx.args[0]}")
    for line in lines:
        ctx.print(line)
    return 0
