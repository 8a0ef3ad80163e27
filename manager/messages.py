"""The manager's informational messages (event log and console success lines); refusals are in the catalogue.

Ids the guide or SPEC §8 quote are kept (iSM19010, iSM20020, iSM20030); the others are designed in
the same style and stay stable. ``python3 -m snaplab.manager.messages`` prints the table.
"""

from __future__ import annotations

from snaplab.common.errors import Message, Status


def _i(msg_id: str, text: str) -> Message:
    # Status is meaningless for an informational line; INTERNAL marks "never a gRPC status" as in the catalogue.
    return Message(msg_id, text, Status.INTERNAL)


# Success of each snapshot operation, as the event log records it (operation = the command name).
SC_DONE = {
    "iSMsc_create": _i("iSM19010", "iSMsc_create has normally terminated."),
    "iSMsc_delete": _i("iSM19011", "iSMsc_delete has normally terminated."),
    "iSMsc_restore": _i("iSM19012", "iSMsc_restore has normally terminated."),
    "iSMsc_wait": _i("iSM19013", "iSMsc_wait has normally terminated."),
    "iSMsc_svguard": _i("iSM19014", "iSMsc_svguard has normally terminated."),
    "iSMsc_query": _i("iSM19015", "iSMsc_query has normally terminated."),
    "iSMsc_link": _i("iSM20020", "iSMsc_link has normally terminated."),
    "iSMsc_unlink": _i("iSM20030", "iSMsc_unlink has normally terminated."),
    "iSMsc_linkinfo": _i("iSM20040", "iSMsc_linkinfo has normally terminated."),
}


class M:
    """Manager events (SPEC B6)."""

    ENROLLED = _i("iSM31070", "Server is registered to the management server. ({detail})")
    CONFIGURED = _i("iSM31071", "Configuration of the disk array is changed. ({detail})")
    FAULT_SET = _i("iSM31072", "Fault is set on the disk array. ({detail})")
    FAULT_CLEARED = _i("iSM31073", "Fault of the disk array is cleared. ({detail})")
    SNAPSHOT_GONE = _i("iSM31074", "Snapshot is no longer held by the disk array. ({detail})")
    FAULT_SEEN = _i("iSM31075", "Disk array reports a fault. ({detail})")
    FAULT_GONE = _i("iSM31076", "Disk array no longer reports the fault. ({detail})")
    CHAOS_FIRED = _i("iSM31339", "Chaos rule fired. ({detail})")
    ARRAY_BACK = _i("iSM31077", "Disk array responds again. ({name})")
    STARTED = _i("iSM31078", "Management server started. ({detail})")
    STOPPED = _i("iSM31079", "Management server stopped.")
    CONSOLE_STARTED = _i("iSM31355", "Operator console started. ({detail})")


def all_messages() -> list[Message]:
    return [*SC_DONE.values(), *(v for v in vars(M).values() if isinstance(v, Message))]


if __name__ == "__main__":
    for m in sorted(all_messages(), key=lambda m: m.msg_id):
        print(f"{m.msg_id}  {m.text}")
