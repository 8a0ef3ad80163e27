"""``iSMvollist`` (volume list and control-volume definition, C2/C3) and ``iSMvolgather`` (C8).

``iSMvollist -cr``      create the list from the host's current state (guide 1.6).
``iSMvollist -a``       show it (layout below).
``iSMvollist -r``       refresh it: report how the system differs from the list, then recreate it
                        (UNIX SnapControl's ``-r``, which drivers such as OpenSVC call to refresh).
``iSMvollist -check``   report the differences only; exit 1 (iSM11704) when there are any.
``iSMvollist -cvdef LD`` / ``-cvdel LD``  define / delete the CV of an array that does not mark CVs
                        (etc/cvdef.json; candidates are IV or MV LDs, one per array, iSM11706 otherwise).
                        An LD the array built as a CV (type CV) is registered by ``-cr`` by itself.

``iSMvollist -a`` prints a header and one line per entry, columns separated by at least one space,
``-`` for an empty field; the mount points (comma separated) come last::

    Volume List
        Host Name     : business01
        Created       : 2024/11/24 10:00:00

    Disk Array Name                  LDN    LD Name                          Type Format Disk    Part Definition Volume Name                                       Mount Point
    Tokyo_Customer_DataBase          0010h  bv001                            BV   WN     disk1   -    -          -                                                 -
    Tokyo_Customer_DataBase          0010h  bv001                            BV   WN     disk1   1    -          \\\\?\\Volume{61563686-b385-11d7-a349-806d6172696f}\\ G:

A disk entry (``Part`` is ``-``) is the LD; each volume of it follows with its partition number.
``Definition`` is ``control`` for the array's CV. ``-r`` and ``-check`` print one line per
difference: ``Difference LDN LD Name Disk Part Item List System`` (difference is added, removed or
changed; item names the field).

``iSMvolgather [-d DIR]`` writes ``iSMvolgather_<host>_<yyyymmddhhmmss>.zip`` (command traces,
volume list, settings, CV definition, pinned GUIDs, a dump of host.db and the views of
``iSMvollist -a``, ``MOUNTVOL /L`` and the disks) into DIR or the caller's current folder and prints
its path in an iSM11710 line.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import deque
from datetime import datetime

import grpc
from snaplab.agent.commands.base import CommandError, Ctx, caller_path, command
from snaplab.agent.host import Disk, Host, now_text
from snaplab.agent.vollist import VolEntry, VolumeList, normalise_mount_point, normalise_volume_name

from snaplab.common.errors import E, Message
from snaplab.common.message_log import event_line
from snaplab.v1 import manager_pb2

CV_CANDIDATE_TYPES = ("IV", "MV")
COLUMNS = (
    ("Disk Array Name", 32),
    ("LDN", 6),
    ("LD Name", 32),
    ("Type", 4),
    ("Format", 6),
    ("Disk", 7),
    ("Part", 4),
    ("Definition", 10),
    ("Volume Name", 49),
    ("Mount Point", 0),
)


def vollist_info(ctx: Ctx, message: Message, **fields: object) -> None:
    """iSMvollist's own success-line layout, as the guide prints it (``iSMvollist: Info:      iSM11701: ...``)."""
    text = message.text.format(**fields) if fields else message.text
    ctx.print(f"{ctx.name}: Info:      {message.msg_id}: {text}")
    ctx.host.trace(ctx.name, "INFO", message.msg_id, text)
    ctx.traced = True


def row(values: list[str]) -> str:
    out = ""
    for (_, width), v in zip(COLUMNS, values, strict=True):
        out += f"{v:<{width}} " if width else v
    return out.rstrip()


# -- building the list ---------------------------------------------------------------------------


def _control_volumes(host: Host, disks: list[Disk]) -> dict[str, Disk]:
    """The CV of each array: the LD the array marks as CV, else the one etc/cvdef.json defines."""
    out: dict[str, Disk] = {}
    for d in disks:
        if d.ld_type == "CV" and d.array not in out:
            out[d.array] = d
    for array, ld in host.cv_definitions().items():
        if array in out:
            continue
        d = next(
            (x for x in disks if x.array == array and (x.ld_name == ld or x.ld_number.lower() == ld.lower())),
            None,
        )
        if d is None or d.ld_type not in CV_CANDIDATE_TYPES:
            raise CommandError(E.CV_CANDIDATE, name=ld)
        out[array] = d
    return out


def build(host: Host) -> VolumeList:
    """The volume list of the host as it is now."""
    disks = [d for d in host.visible_disks() if not d.local]
    if host.unreachable:
        array, err = next(iter(host.unreachable.items()))
        raise CommandError.of(err, array=array)
    cvs = _control_volumes(host, disks)
    names = {a: _array_name(host, a) for a in {d.array for d in disks}}
    entries: list[VolEntry] = []
    for d in disks:
        control = "control" if cvs.get(d.array) is d else ""
        entries.append(
            VolEntry(
                d.array, d.ld_number, d.ld_name, d.ld_type, d.format, d.number, definition=control,
                array_name=names[d.array],
            )
        )
        if d.ready:
            for v in d.volumes:
                entries.append(
                    VolEntry(
                        d.array,
                        d.ld_number,
                        d.ld_name,
                        d.ld_type,
                        d.format,
                        d.number,
                        partition=v.number,
                        volume=v.name,
                        mount_points=list(v.mount_points),
                        array_name=names[d.array],
                    )
                )
    return VolumeList(host.name, now_text(), entries)


def _array_name(host: Host, array: str) -> str:
    """The array's own name now, as it shows itself to this host ("" when it is still ``array``,
    or does not say): an array renamed since this host enrolled (iSMcfg arrayname)."""
    try:
        name = host.array(array).describe().name
    except Exception:  # noqa: BLE001 - the list is made from what the host sees; the name is extra
        return ""
    return name if name and name != array else ""


def differences(old: VolumeList | None, new: VolumeList) -> list[list[str]]:
    """Rows of (difference, LDN, LD name, disk, part, item, list value, system value)."""

    def key(e: VolEntry) -> tuple[str, str, int]:
        return (e.array, e.ld_number, 0 if e.partition is None else e.partition)

    def disk(e: VolEntry) -> str:
        return f"disk{e.disk}"

    def part(e: VolEntry) -> str:
        return "-" if e.partition is None else str(e.partition)

    before = {key(e): e for e in (old.entries if old else [])}
    after = {key(e): e for e in new.entries}
    out: list[list[str]] = []
    for k in sorted(set(before) | set(after), key=lambda k: (k[0], k[1], k[2])):
        a, b = before.get(k), after.get(k)
        if a is None and b is not None:
            out.append(
                [
                    "added",
                    b.ld_number,
                    b.ld_name,
                    disk(b),
                    part(b),
                    "-",
                    "-",
                    b.volume or f"{b.ld_type} {b.format}",
                ]
            )
        elif b is None and a is not None:
            out.append(
                [
                    "removed",
                    a.ld_number,
                    a.ld_name,
                    disk(a),
                    part(a),
                    "-",
                    a.volume or f"{a.ld_type} {a.format}",
                    "-",
                ]
            )
        elif a is not None and b is not None:
            pairs = [
                ("array name", a.shown_array, b.shown_array),
                ("LD name", a.ld_name, b.ld_name),
                ("type", a.ld_type, b.ld_type),
                ("format", a.format, b.format),
                ("disk", disk(a), disk(b)),
                ("definition", a.definition or "-", b.definition or "-"),
                ("volume", a.volume or "-", b.volume or "-"),
            ]
            ma = ",".join(sorted(normalise_mount_point(m) for m in a.mount_points)) or "-"
            mb = ",".join(sorted(normalise_mount_point(m) for m in b.mount_points)) or "-"
            pairs.append(("mount point", ma, mb))
            for item, x, y in pairs:
                if (normalise_volume_name(x) if item == "volume" else x) != (
                    normalise_volume_name(y) if item == "volume" else y
                ):
                    out.append(["changed", b.ld_number, b.ld_name, disk(b), part(b), item, x, y])
    return out


def print_differences(ctx: Ctx, diffs: list[list[str]]) -> None:
    widths = [10, 6, 24, 7, 4, 11, 49]
    ctx.print(
        " ".join(
            f"{h:<{w}}"
            for h, w in zip(
                ["Difference", "LDN", "LD Name", "Disk", "Part", "Item", "List"], widths, strict=True
            )
        )
        + " System"
    )
    for d in diffs:
        ctx.print(" ".join(f"{v:<{w}}" for v, w in zip(d[:7], widths, strict=True)) + " " + d[7])


def list_lines(vl: VolumeList) -> list[str]:
    lines = ["Volume List", f"    Host Name     : {vl.host}", f"    Created       : {vl.created}", ""]
    lines.append(row([h for h, _ in COLUMNS]))
    for e in sorted(vl.entries, key=lambda e: (e.array, e.disk, e.partition or 0)):
        lines.append(
            row(
                [
                    e.shown_array,
                    e.ld_number,
                    e.ld_name,
                    e.ld_type or "-",
                    e.format or "-",
                    f"disk{e.disk}",
                    "-" if e.partition is None else str(e.partition),
                    e.definition or "-",
                    e.volume or "-",
                    ",".join(e.mount_points) or "-",
                ]
            )
        )
    return lines


# -- commands ------------------------------------------------------------------------------------


@command("iSMvollist")
def ismvollist(ctx: Ctx) -> int:
    opts = ctx.options(with_value=("-cvdef", "-cvdel"), flags=("-cr", "-a", "-r", "-check"))
    actions = [k for k in ("-cr", "-a", "-r", "-check", "-cvdef", "-cvdel") if k in opts]
    if len(actions) != 1:
        raise CommandError(E.USAGE, detail="give one of -cr, -a, -r, -check, -cvdef LD, -cvdel LD")
    host = ctx.host
    action = actions[0]
    if action == "-cr":
        build(host).save(host.vollist_path)
        vollist_info(ctx, E.VOLLIST_CREATED)
        return 0
    if action == "-a":
        for line in list_lines(host.vollist()):
            ctx.print(line)
        return 0
    if action in ("-r", "-check"):
        try:
            old: VolumeList | None = host.vollist()
        except CommandError:
            old = None
            if action == "-check":
                raise
        new = build(host)
        diffs = differences(old, new)
        if action == "-check":
            if not diffs:
                vollist_info(ctx, E.VOLLIST_MATCHES)
                return 0
            print_differences(ctx, diffs)
            raise CommandError(E.VOLLIST_STALE, name=f"{len(diffs)} differences")
        if diffs:
            print_differences(ctx, diffs)
        new.save(host.vollist_path)
        vollist_info(ctx, E.VOLLIST_CREATED)
        return 0
    return _cv_definition(ctx, action, opts[action])


def _cv_definition(ctx: Ctx, action: str, ld: str) -> int:
    host = ctx.host
    defs = host.cv_definitions()
    if action == "-cvdel":
        array = next((a for a, name in defs.items() if name == ld or name.lower() == ld.lower()), None)
        if array is None:
            raise CommandError(E.NO_CV, name=ld)
        del defs[array]
        host.save_cv_definitions(defs)
        vollist_info(ctx, E.CV_UNDEFINED, name=ld)
        return 0
    disk = next(
        (
            d
            for d in host.visible_disks()
            if not d.local and (d.ld_name == ld or d.ld_number.lower() == ld.lower())
        ),
        None,
    )
    if disk is None or disk.ld_type not in CV_CANDIDATE_TYPES:
        raise CommandError(E.CV_CANDIDATE, name=ld)
    marked = any(d.array == disk.array and d.ld_type == "CV" for d in host.visible_disks())
    if marked or (disk.array in defs and defs[disk.array] != disk.ld_name):
        raise CommandError(E.CV_CANDIDATE, name=ld)  # one CV per array (A14)
    defs[disk.array] = disk.ld_name
    host.save_cv_definitions(defs)
    vollist_info(ctx, E.CV_DEFINED, name=disk.ld_name)
    return 0


GATHER_LOG_BYTES = 1 << 20  # the end of the agent's own log that iSMvolgather takes
GATHER_EVENTS = 2000  # the last events of the manager's log it takes
EVENT_PAGE = 500


def _own_log() -> str:
    """The end of what this agent logs: its standard error when that is a file (a lab's
    ``run/<host>.log``); else a line saying where it went (a terminal, the journal)."""
    try:
        target = os.readlink("/proc/self/fd/2")
        size = os.fstat(2).st_size
        if not os.path.isfile(target):
            return f"(the agent logs to {target})\n"
        with open(target, "rb") as f:
            f.seek(max(0, size - GATHER_LOG_BYTES))
            return f.read(GATHER_LOG_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(the agent's log cannot be read: {exc.strerror or exc})\n"


def _event_log(host: Host) -> str:
    """The last events of the management server's log this host may read, as ``iSMview -event``
    prints them; the iSM error line when the manager does not answer."""
    last: deque[manager_pb2.Event] = deque(maxlen=GATHER_EVENTS)
    after = 0
    try:
        while True:
            page = host.manager.Events(manager_pb2.EventsRequest(after_seq=after, limit=EVENT_PAGE), timeout=30)
            last.extend(page.events)
            if len(page.events) < EVENT_PAGE:
                break
            after = page.events[-1].seq
    except grpc.RpcError as exc:
        err = CommandError.of(exc, manager=host.manager_target)
        return f"{err.msg_id}: {err.text}\n"
    return "".join(event_line(e) + "\n" for e in last)


@command("iSMvolgather")
def ismvolgather(ctx: Ctx) -> int:
    opts = ctx.options(with_value=("-d",))
    host = ctx.host
    folder = caller_path(host, opts["-d"]) if "-d" in opts else host.cwd
    if not folder.is_dir():
        raise CommandError(E.GATHER_FAILED, detail=f"{folder} is not a folder")
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    path = folder / f"iSMvolgather_{host.name}_{stamp}.zip"
    # Late import: the disk command modules register their commands too; all are loaded by the daemon.
    from snaplab.agent.commands.diskpart import disk_lines
    from snaplab.agent.commands.volume_tools import mountvol_lines

    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(host.etc.iterdir()):
                if f.is_file() and not f.name.endswith(".tmp"):
                    z.write(f, f"etc/{f.name}")
            z.writestr("host_db.sql", host.dump_db())
            views = io.StringIO()
            try:
                views.write("\n".join(list_lines(host.vollist())) + "\n")
            except CommandError as exc:
                views.write(f"{exc.msg_id}: {exc.text}\n")
            z.writestr("vollist_a.txt", views.getvalue())
            z.writestr("mountvol_l.txt", "\n".join(mountvol_lines(host)) + "\n")
            z.writestr("disks.txt", "\n".join(disk_lines(host)) + "\n")
            z.writestr("agent.log", _own_log())
            z.writestr("events.txt", _event_log(host))
            for f in (host.operations_path.with_name(host.operations_path.name + ".1"), host.operations_path):
                if f.is_file():
                    z.write(f, f"log/{f.name}")
            z.writestr(
                "status.json",
                json.dumps(
                    {
                        **host.status(),
                        "arrays": host.arrays,
                        "automount": host.automount,
                        "unreachable": {k: str(v) for k, v in host.unreachable.items()},
                    },
                    indent=1,
                )
                + "\n",
            )
    except OSError as exc:
        raise CommandError(E.GATHER_FAILED, detail=f"{path}: {exc.strerror}") from None
    ctx.info(E.GATHERED, name=str(path))
    return 0
