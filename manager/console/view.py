"""``iSMview``: monitoring layouts of the arrays, snapshots, hosts and the event log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from snaplab.common.ismview import array_detail, disk_array_list, host_list, snapshot_list
from snaplab.v1 import manager_pb2 as mpb

from ..client import ManagerClient
from .options import Usage, parse_number, parse_options

EVENT_PAGE = 500  # events per Events call of iSMview -event


def view_usage() -> str:
    return (
        "Usage: iSMview -d                      disk array list\n"
        "       iSMview -all ARRAY              array properties, ports, pools, LDs, access, licences, faults\n"
        "       iSMview -snap [ARRAY]           snapshot list of every BV\n"
        "       iSMview -host                   servers registered to the management server\n"
        "       iSMview -event [-after N] [-limit N]   event log\n"
    )


def event_line(e: mpb.Event) -> str:
    """SPEC §8 message-log layout: ``Mon Date hh:mm:ss host function-id classification command : iSMyyyyy : text``."""
    try:
        when = datetime.strptime(e.time, "%Y/%m/%d %H:%M:%S").strftime("%a %b %d %H:%M:%S")
    except ValueError:
        when = e.time
    op = e.operation or "-"
    return f"{when} {e.source} {op[:5]} {e.classification} {op} : {e.msg_id or '-'} : {e.text}"


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
        o = parse_options(rest, ("-after", "-limit"))
        after = parse_number(o["-after"], "-after") if "-after" in o else 0
        limit = parse_number(o["-limit"], "-limit") if "-limit" in o else 0
        return [event_line(e) for e in event_pages(client, after, limit)]
    raise Usage(f"unknown option {args[0]}")
