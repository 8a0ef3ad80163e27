"""The message-log layout (SPEC §8) shared by the manager's event log and the hosts' traces.

The function-id column names which function of the product logged a line; both the manager's event
log (``iSMview -event``) and a host's command trace (``iSM_Log<date>.txt``) print it, between the
source and the classification. It names the function, never a cut-off operation name: every
iSMsc_* command is ``snapctl``, a configuration change ``config``.
"""

from __future__ import annotations

from datetime import datetime

from snaplab.v1 import manager_pb2

# (operation prefix, function id), first match wins; an operation is a command or an RPC name.
_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("iSMsc_", "snapctl"),  # SnapControl: snapshot operations
    ("iSMrc_", "rplctl"),  # ReplicationControl: flush, mount, umount, scan, signature
    ("iSMrpl", "rplctl"),
    ("iSMvollist", "vollist"),
    ("iSMvolgather", "vollist"),
    ("iSMcc_", "view"),
    ("iSMview", "view"),
    ("iSMcfg", "config"),
    ("Configure", "config"),
    ("Enrol", "enrol"),
    ("InjectFault", "fault"),
    ("ClearFault", "fault"),
    ("monitor", "monitor"),
    ("start", "server"),
    ("stop", "server"),
    ("Cluster", "cluster"),
    ("lab", "lab"),
    ("chaos", "chaos"),
    ("console", "console"),
    ("DISKPART", "oscmd"),  # the Windows tools the guide runs next to SnapControl
    ("MOUNTVOL", "oscmd"),
    ("FORMAT", "oscmd"),
    ("CHKDSK", "oscmd"),
    ("agent", "agent"),
)


def function_id(operation: str) -> str:
    """The function id of ``operation`` (``other`` for one no function claims)."""
    for prefix, fid in _BY_PREFIX:
        if operation.startswith(prefix) or operation.upper().startswith(prefix.upper()):
            return fid
    return "other"


def event_line(e: manager_pb2.Event) -> str:
    """One event of the manager's log: its sequence number (what ``iSMview -event -after`` takes),
    then ``Mon Date hh:mm:ss source function-id classification operation : iSMyyyyy : text``."""
    try:
        when = datetime.strptime(e.time, "%Y/%m/%d %H:%M:%S").strftime("%a %b %d %H:%M:%S")
    except ValueError:
        when = e.time
    op = e.operation or "-"
    fid = function_id(op)
    return f"{e.seq:>6} {when} {e.source} {fid} {e.classification} {op} : {e.msg_id or '-'} : {e.text}"
