"""``iSMview``: monitoring layouts of the arrays, snapshots, hosts and the event log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb

from ..client import ManagerClient
from .options import PRODUCT_ID, Usage, fmt_size, parse_number, parse_options

EVENT_PAGE = 500  # events per Events call of iSMview -event


def view_usage() -> str:
    return (
        "Usage: iSMview -d                      disk array list\n"
        "       iSMview -all ARRAY              array properties, ports, pools, LDs, access, licences, faults\n"
        "       iSMview -snap [ARRAY]           snapshot list of every BV\n"
        "       iSMview -host                   servers registered to the management server\n"
        "       iSMview -event [-after N] [-limit N]   event log\n"
    )


def disk_array_list(reply: mpb.MonitorReply) -> list[str]:
    """``iSMview -d`` (SPEC §8)."""
    lines = [
        "--- Disk Array List ---",
        f"{'Product ID':<17} {'Disk Array Name':<33} {'Resource State':<15} Monitoring",
    ]
    for a in reply.arrays:
        lines.append(f"{PRODUCT_ID:<17} {a.state.name:<33} {a.resource_state:<15} {a.monitoring}")
    return lines


def _pool_name_to_number(state: apb.ArrayState) -> dict[str, int]:
    return {p.name: p.number for p in state.pools}


def array_detail(a: mpb.ArrayMonitor) -> list[str]:
    """``iSMview -all ARRAY``: the design is in docs/manager.md."""
    s = a.state
    lines = [
        "--- Disk Array Detail ---",
        f"Disk Array Name    : {s.name}",
        f"Product ID         : {PRODUCT_ID}",
        f"Resource State     : {a.resource_state}",
        f"Monitoring         : {a.monitoring}",
        f"Physical Capacity  : {fmt_size(s.physical_capacity)}",
        f"Target             : {a.target}",
        "",
        "--- Port List ---",
        f"{'Port No.':<10} Port Name",
    ]
    lines += [f"{p.director:02x}h/{p.port:02x}h{'':<3} {p.name}" for p in s.ports]
    lines += [
        "",
        "--- Pool List ---",
        f"{'Pool No.':<9} {'Pool Name':<24} {'Type':<8} {'Capacity':>10} {'SRA Capacity':>13} {'SRA Used':>10}",
    ]
    for p in s.pools:
        sra = (fmt_size(p.sra_capacity), fmt_size(p.sra_used)) if p.sra_capacity else ("-", "-")
        lines.append(
            f"{p.number:04x}h{'':<4} {p.name:<24} {p.kind:<8} {fmt_size(p.capacity):>10} {sra[0]:>13} {sra[1]:>10}"
        )
    pool_no = _pool_name_to_number(s)
    lines += [
        "",
        "--- Logical Disk List ---",
        f"{'LDN':<6} {'LD Name':<32} {'Type':<5} {'OS Type':<7} {'Capacity':>10} {'Pool No.':<8} {'Attr':<4} BV",
    ]
    for ld in s.lds:
        pool = f"{pool_no[ld.pool]:04x}h" if ld.pool in pool_no else ld.pool
        lines.append(
            f"{ld.number:<6} {ld.name:<32} {ld.type:<5} {ld.format or '-':<7} {fmt_size(ld.capacity):>10}"
            f" {pool:<8} {ld.attr:<4} {ld.bv or '-'}"
        )
    lines += ["", "--- Access Control List ---", f"{'LD Name':<32} Path"]
    for ld in s.lds:
        for path in ld.access:
            kind, _, value = path.partition(":")
            lines.append(f"{ld.name:<32} {kind.upper()} {value}")
    lines += ["", "--- Host List ---", f"{'Host Name':<24} {'Platform':<9} WWN / Port"]
    for h in s.hosts:
        paths = [*(f"WWN {w}" for w in h.wwns), *(f"PORT {p}" for p in h.ports)]
        lines.append(f"{h.name:<24} {h.platform:<9} {', '.join(paths) or '-'}")
    lines += ["", "--- License List ---", f"{'Product':<24} State"]
    lines += [f"{product:<24} {s.licences[product]}" for product in sorted(s.licences)]
    lines += ["", "--- Fault List ---", f"{'Kind':<16} Target"]
    for f in s.faults:
        kind, _, target = f.partition(":")
        lines.append(f"{kind:<16} {target}")
    if not s.faults:
        lines.append("(none)")
    return lines


def snapshot_list(a: mpb.ArrayMonitor) -> list[str]:
    """``iSMview -snap``: per BV, every SV with generation, state, time, guard and link (B5)."""
    lines = [f"--- Snapshot List ({a.state.name}) ---"]
    for q in a.snapshots:
        lines.append(f"BV:{q.bv} ({q.bv_number}) {q.format}  State:{q.state}  Reserve Area:{q.reserve_area}")
        lines.append(
            f"  {'Generation':<10} {'SV Name':<32} {'State':<13} {'Time':<19} {'Guard':<5} {'Link':<6} LV"
        )
        for g in q.generations:
            gen = str(g.relgen) if g.has_relgen else "-"
            lines.append(
                f"  {gen:<10} {g.sv:<32} {g.state:<13} {g.state_time or '-':<19} {'on' if g.guard else 'off':<5}"
                f" {g.link:<6} {g.lv or '-'}"
            )
    return lines


def host_list(reply: mpb.MonitorReply) -> list[str]:
    lines = [
        "--- Server List ---",
        f"{'Server Name':<24} {'Role':<9} {'Platform':<9} {'Cluster':<16} {'Enrolled':<19} WWN / Port",
    ]
    for h in reply.hosts:
        cluster = f"{h.cluster}({h.cluster_role})" if h.cluster else "-"
        paths = [*(f"WWN {w}" for w in h.wwns), *(f"PORT {p}" for p in h.ports)]
        lines.append(
            f"{h.name:<24} {h.role:<9} {h.platform:<9} {cluster:<16} {h.enrolled:<19} {', '.join(paths) or '-'}"
        )
    return lines


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
