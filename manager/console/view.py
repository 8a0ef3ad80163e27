"""``iSMview``: monitoring layouts of the arrays, snapshots, hosts and the event log."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from snaplab.common.errors import E, SnapLabError
from snaplab.common.ismview import array_detail, disk_array_list, host_list, snapshot_list
from snaplab.common.message_log import event_line
from snaplab.v1 import manager_pb2 as mpb

from ..client import ManagerClient
from .options import Usage, parse_number, parse_options

EVENT_PAGE = 500  # events per Events call of iSMview -event
FOLLOW_BACKLOG = 10  # events -follow shows first without -after (tail -f shows the last 10 lines)


def view_usage() -> str:
    return (
        "Usage: iSMview -d                      disk array list\n"
        "       iSMview -all ARRAY              array properties, ports, pools, LDs, access, licences, faults\n"
        "       iSMview -snap [ARRAY]           snapshot list of every BV\n"
        "       iSMview -host                   servers registered to the management server\n"
        "       iSMview -event [-after N] [-limit N]   event log (each line starts with its number)\n"
        "       iSMview -event [-after N] -follow       event log, then live events until Ctrl-C\n"
    )


def event_pages(client: ManagerClient, after: int, limit: int) -> Iterator[mpb.Event]:
    """The events after ``after`` (at most ``limit``, 0: all), read a page of ``EVENT_PAGE`` at a
    time: however long the log, each reply stays small."""
    left = limit or None
    while left is None or left > 0:
        asked = EVENT_PAGE if left is None else min(EVENT_PAGE, left)
        page = client.events(after, asked)
        yield from page
        if len(page) < asked:
            return
        after = page[-1].seq
        if left is not None:
            left -= len(page)


def run_view(client: ManagerClient, args: list[str]) -> list[str]:
    if not args:
        raise Usage("give -d, -all ARRAY, -snap, -host or -event")
    mode = args[0].lower()
    rest = args[1:]
    if mode == "-d":
        parse_options(rest)
        return disk_array_list(client.monitor())
    if mode == "-all":
        if len(rest) != 1:
            raise Usage("-all needs the disk array name")
        return array_detail(client.monitor(rest[0]).arrays[0])
    if mode == "-snap":
        if len(rest) > 1:
            raise Usage("-snap takes at most one disk array name")
        lines: list[str] = []
        for a in client.monitor(rest[0] if rest else "").arrays:
            lines += snapshot_list(a)
        return lines
    if mode == "-host":
        parse_options(rest)
        return host_list(client.monitor())
    if mode == "-event":
        if any(a.lower() == "-follow" for a in rest):
            raise Usage("-follow writes as events come: run it as a command of its own")
        o = parse_options(rest, ("-after", "-limit"))
        after = parse_number(o["-after"], "-after") if "-after" in o else 0
        limit = parse_number(o["-limit"], "-limit") if "-limit" in o else 0
        return [event_line(e) for e in event_pages(client, after, limit)]
    raise Usage(f"unknown option {args[0]}")


def follows(args: list[str]) -> bool:
    """``iSMview -event … -follow``: the one console command that writes as it goes."""
    return bool(args) and args[0].lower() == "-event" and any(a.lower() == "-follow" for a in args[1:])


def follow_events(client: ManagerClient, args: list[str], write: Callable[[str], None]) -> None:
    """``iSMview -event [-after N] -follow``: the events after N (default: the last 10, as ``tail``
    does), then each new one as it is logged (one ``Watch`` stream), until Ctrl-C or the manager
    goes away (then its iSM error)."""
    o = parse_options(args[1:], ("-after",), ("-follow",))
    if "-after" in o:
        after = parse_number(o["-after"], "-after")
    else:
        last = deque(event_pages(client, 0, 0), maxlen=FOLLOW_BACKLOG)
        after = last[0].seq - 1 if last else 0
    stream = client.watch(after)
    try:
        for e in stream:
            write(event_line(e) + "\n")
    except KeyboardInterrupt:
        return
    finally:
        stream.cancel()
    raise SnapLabError(E.MANAGER_UNREACHABLE, name=client.target)
