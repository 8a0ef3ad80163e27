"""The disk-side commands of a host: ``iSMrc_flush/umount/mount/scan/signature`` (C5) and the Windows
tools the guide uses around them: ``MOUNTVOL``, ``DISKPART``, ``FORMAT``, ``CHKDSK``.

``iSMrc_flush -drv X: | -mvol VOL`` prints SPEC §8's layout; ``iSMrc_umount`` (``-force``,
``-offline``) and ``iSMrc_mount`` (``-drv X:`` | ``-mvol VOL [-drv X:]``) print the same layout with
``Umount``/``Mount`` in place of ``Flush``; ``iSMrc_scan`` prints one line per array disk with its
state between ``Scan Start`` and ``Scan Normal End``. Targets resolve through the volume list (a
missing list is iSM11702, an unlisted target iSM11703, a stale one iSM11704).

``iSMrc_signature -export FILE`` writes the disk signatures of this host's WN disks (MBR) to FILE,
one disk a line after ``#`` comments::

    # iSMrc_signature export of business01 2024/11/24 10:00:00
    # disk array name  LDN  LD name  format  signature
    Tokyo_Customer_DataBase 0010h bv001 WN 1A2B3C4D

``-import FILE`` (on a cluster node) writes each signature back to the same LD where this host sees
it Ready with an MBR; both print one ``diskN LDname format signature result`` line per disk between
``Signature Export/Import Start`` and ``... Normal End``. Relative paths are relative to the caller's
current folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from snaplab.agent import partitions as pt
from snaplab.agent.commands.base import CommandError, Ctx, command
from snaplab.agent.host import Disk, Host, Volume, now_text, volume_guid
from snaplab.agent.vollist import VolEntry, normalise_mount_point, normalise_volume_name
from snaplab.san import disklayout as dl

from snaplab.common.errors import E

# -- the SPEC §8 block layout ----------------------------------------------------------------------


def block(ctx: Ctx, title: str, disk: str, ld: str, fmt: str, volume: str, mount_points: list[str]) -> None:
    ctx.print(f"{title:<26}{now_text()}" if title.endswith("Start") else f"{title:<25}{now_text()}")
    ctx.print(f"{'':14}{disk:<9} {ld:<9} {fmt}")
    ctx.print(f"{'':7}{volume}")
    for mp in mount_points:
        ctx.print(f"{'':14}{mp}")


def win_args(args: list[str], valued: tuple[str, ...] = ()) -> tuple[list[str], dict[str, Any]]:
    """Windows-style arguments: positionals, and ``/X`` or ``/X:value`` switches (names upper-cased);
    switches in ``valued`` take the next argument (``/s FILE``)."""
    pos: list[str] = []
    opts: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("/") and len(a) > 1:
            name, _, value = a[1:].partition(":")
            name = name.upper()
            if name in opts:
                raise CommandError(E.USAGE, detail=f"{a} given twice")
            if name in valued and not value:
                if i + 1 >= len(args):
                    raise CommandError(E.USAGE, detail=f"{a} needs a value")
                value = args[i + 1]
                i += 1
            opts[name] = value or True
        else:
            pos.append(a)
        i += 1
    return pos, opts


def caller_path(host: Host, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else host.cwd / p


# -- resolving targets through the volume list -----------------------------------------------------


def resolve_target(ctx: Ctx, opts: dict[str, Any]) -> tuple[VolEntry, Volume | None]:
    """The list entry and live volume of ``-drv X:`` or ``-mvol VOL`` (exactly one of them)."""
    host = ctx.host
    vl = host.vollist()
    if "-mvol" in opts:
        e = vl.by_volume(opts["-mvol"])
        name = opts["-mvol"]
    else:
        e = vl.by_mount_point(opts["-drv"])
        name = opts["-drv"]
    if e is None or e.partition is None:
        raise CommandError(E.NOT_IN_VOLLIST, name=name)
    host.stale_check(e)
    disk = host.disk(e.array, e.ld_number)
    volume = host.volume_by_name(e.volume) if disk is not None else None
    return e, volume


def _one_of(opts: dict[str, Any], *names: str) -> None:
    if sum(1 for n in names if n in opts) != 1:
        raise CommandError(E.USAGE, detail=f"give one of {', '.join(names)}")


def _mounted(ctx: Ctx, volume: Volume | None) -> Volume:
    if volume is None or not volume.disk.recognised or not volume.disk.array_ready:
        raise CommandError(E.PATH_NOT_NORMAL)
    if not volume.mount_points:
        raise CommandError(E.NOT_MOUNTED, name=volume.name)
    if not volume.disk.ready:
        raise CommandError(E.PATH_NOT_NORMAL)
    return volume


@command("iSMrc_flush")
def ismrc_flush(ctx: Ctx) -> int:
    opts = ctx.options(with_value=("-drv", "-mvol"))
    _one_of(opts, "-drv", "-mvol")
    _, volume = resolve_target(ctx, opts)
    v = _mounted(ctx, volume)
    if not ctx.host.fs.mounted(v):  # its file system is damaged: nothing to flush to
        raise CommandError(E.PATH_NOT_NORMAL)
    info = (v.disk.name, v.disk.ld_name, v.disk.format, v.name, list(v.mount_points))
    block(ctx, "Flush Start", *info)
    ctx.host.fs.flush(v)
    ctx.print()
    block(ctx, "Flush Normal End", *info)
    return 0


@command("iSMrc_umount")
def ismrc_umount(ctx: Ctx) -> int:
    opts = ctx.options(with_value=("-drv", "-mvol"), flags=("-force", "-offline"))
    _one_of(opts, "-drv", "-mvol")
    _, volume = resolve_target(ctx, opts)
    if volume is None or not volume.disk.recognised:
        raise CommandError(E.PATH_NOT_NORMAL)
    if not volume.mount_points:
        raise CommandError(E.NOT_MOUNTED, name=volume.name)
    forced = "-force" in opts or "-offline" in opts
    if not forced and not volume.disk.ready and ctx.host.fs.mounted(volume):
        raise CommandError(E.PATH_NOT_NORMAL)  # the cache cannot reach a Not Ready disk (-force discards it)
    info = (volume.disk.name, volume.disk.ld_name, volume.disk.format, volume.name, list(volume.mount_points))
    block(ctx, "Umount Start", *info)
    ctx.host.unmount(volume, force="-force" in opts, offline="-offline" in opts)
    ctx.print()
    block(ctx, "Umount Normal End", *info)
    return 0


@command("iSMrc_mount")
def ismrc_mount(ctx: Ctx) -> int:
    opts = ctx.options(with_value=("-drv", "-mvol"))
    if "-drv" not in opts and "-mvol" not in opts:
        raise CommandError(E.USAGE, detail="give -drv X: or -mvol VOLUME [-drv X:]")
    host = ctx.host
    vl = host.vollist()
    if "-mvol" in opts:
        e = vl.by_volume(opts["-mvol"])
        if e is None or e.partition is None:
            raise CommandError(E.NOT_IN_VOLLIST, name=opts["-mvol"])
        mount_point = opts.get("-drv")
    else:
        e = vl.by_mount_point(opts["-drv"])
        if e is None or e.partition is None:
            raise CommandError(E.NOT_IN_VOLLIST, name=opts["-drv"])
        mount_point = opts["-drv"]
    host.stale_check(e)
    disk = host.disk(e.array, e.ld_number)
    volume = host.volume_by_name(e.volume) if disk is not None else None
    if volume is None or disk is None or not disk.recognised or not disk.array_ready:
        raise CommandError(E.PATH_NOT_NORMAL)
    targets = (
        [host.check_mount_point(mount_point)]
        if mount_point
        else (volume.mount_points or volume.remembered or e.mount_points)
    )
    if not targets:
        raise CommandError(E.NO_MOUNT_POINT, name=volume.name)
    info = (disk.name, disk.ld_name, disk.format, volume.name)
    block(ctx, "Mount Start", *info, targets)
    done = host.mount(volume, mount_point, fallback=e.mount_points)
    if mount_point and "-mvol" in opts:
        # 2.2.1 step 10: mounting by volume name with -drv re-sets the letter; SnapControl made that
        # change itself, so its volume list records it and later -mvol/-drv commands stay valid.
        vl = host.vollist()
        for entry in vl.entries:
            if entry.volume and normalise_volume_name(entry.volume) == normalise_volume_name(e.volume):
                entry.mount_points = list(done)
        vl.save(host.vollist_path)
    ctx.print()
    block(ctx, "Mount Normal End", *info, done)
    return 0


@command("iSMrc_scan")
def ismrc_scan(ctx: Ctx) -> int:
    ctx.options()
    ctx.print(f"{'Scan Start':<26}{now_text()}")
    for d in ctx.host.rescan():
        if not d.local and d.recognised:
            ctx.print(f"{'':14}{d.name:<9} {d.ld_name:<9} {d.format:<5} {d.state}")
    ctx.print(f"{'Scan Normal End':<25}{now_text()}")
    return 0


# -- signatures (C10) ------------------------------------------------------------------------------


def _signature(disk: Disk) -> bytes | None:
    if disk.layout is None or disk.layout.scheme != "mbr":
        return None
    sig = disk.layout.signature
    return sig if sig and sig != bytes(4) else None


@command("iSMrc_signature")
def ismrc_signature(ctx: Ctx) -> int:
    opts = ctx.options(with_value=("-export", "-import"))
    _one_of(opts, "-export", "-import")
    host = ctx.host
    disks = [d for d in host.visible_disks() if not d.local]
    if "-export" in opts:
        path = caller_path(host, opts["-export"])
        lines = [
            f"# iSMrc_signature export of {host.name} {now_text()}",
            "# disk array name  LDN  LD name  format  signature",
        ]
        ctx.print(f"{'Signature Export Start':<26}{now_text()}")
        for d in disks:
            sig = _signature(d) if d.ready and d.format == "WN" else None
            if sig is None:
                continue
            lines.append(f"{d.array} {d.ld_number} {d.ld_name} {d.format} {pt.signature_text(sig)}")
            ctx.print(f"{'':14}{d.name:<9} {d.ld_name:<9} {d.format:<5} {pt.signature_text(sig)}")
        try:
            path.write_text("\n".join(lines) + "\n")
        except OSError as exc:
            raise CommandError(E.SIGNATURE_FILE, detail=f"{path}: {exc.strerror}") from None
        ctx.print(f"{'Signature Export Normal End':<28}{now_text()}")
        return 0
    path = caller_path(host, opts["-import"])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(
            E.SIGNATURE_FILE, detail=f"{path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        f = line.split()
        try:
            records.append((f[0], f[1], f[2], f[3], pt.parse_signature(f[4])))
        except (IndexError, ValueError):
            raise CommandError(E.SIGNATURE_FILE, detail=f"{path} line {n}") from None
    ctx.print(f"{'Signature Import Start':<26}{now_text()}")
    failed: list[str] = []
    for array, ldn, ld_name, fmt, sig in records:
        d = host.disk(array, ldn)
        result = "imported"
        if d is None or not d.recognised or d.ld_name != ld_name:
            result, failed = "skipped (not recognized)", failed + [ld_name]
        elif not d.ready:
            result, failed = "skipped (Not Ready)", failed + [ld_name]
        elif _signature(d) is None:
            result, failed = "skipped (no MBR)", failed + [ld_name]
        elif _signature(d) == sig:
            result = "unchanged"
        elif any(o is not d and o.ready and _signature(o) == sig for o in disks):
            result, failed = "skipped (signature in use)", failed + [ld_name]
        else:
            host.write_disk(d, dl.MBR_SIGNATURE_OFFSET, sig)
        name = d.name if d is not None else "-"
        ctx.print(f"{'':14}{name:<9} {ld_name:<9} {fmt:<5} {pt.signature_text(sig)}  {result}")
    host.invalidate()
    if failed:
        raise CommandError(E.SIGNATURE_FAILED, name=", ".join(failed))
    ctx.print(f"{'Signature Import Normal End':<28}{now_text()}")
    return 0


# -- MOUNTVOL ---------------------------------------------------------------------------------------


def mountvol_lines(host: Host) -> list[str]:
    """``MOUNTVOL /L`` as the guide prints it: each volume name, then its mount points indented."""
    lines = []
    for v in host.volumes():
        lines.append(v.name)
        if v.mount_points:
            lines += [f"    {mp}\\" if len(mp) == 2 else f"    {mp}" for mp in v.mount_points]
        elif v.offline:
            lines.append("    *** NOT MOUNTABLE UNTIL A VOLUME MOUNT POINT IS CREATED ***")
        else:
            lines.append("    *** NO MOUNT POINTS ***")
    return lines


def find_volume(host: Host, text: str, *, ready: bool = True) -> Volume:
    v = host.volume_by_name(text) if volume_guid(text) else host.volume_at(text)
    if v is None or not v.disk.recognised:
        raise CommandError(E.NO_SUCH_VOLUME, name=text)
    if ready and not v.disk.ready:
        raise CommandError(E.PATH_NOT_NORMAL)
    return v


MOUNTVOL_USAGE = """Creates, deletes, or lists a volume mount point.

MOUNTVOL [drive:]path VolumeName
MOUNTVOL [drive:]path /D
MOUNTVOL [drive:]path /L
MOUNTVOL [drive:]path /P
MOUNTVOL /R
MOUNTVOL /N
MOUNTVOL /E

    path        Specifies the existing NTFS directory where the mount
                point will reside.
    VolumeName  Specifies the volume name that is the target of the mount
                point.
    /D          Removes the volume mount point from the specified directory.
    /L          Lists the mounted volume name for the specified directory.
    /P          Removes the volume mount point from the specified directory,
                dismounts the volume, and makes the volume not mountable.
    /R          Removes volume mount point directories and registry settings
                for volumes that are no longer in the system.
    /N          Disables automatic mounting of new volumes.
    /E          Re-enables automatic mounting of new volumes.

Possible values for VolumeName along with current mount points are:
"""


@command("MOUNTVOL")
def mountvol(ctx: Ctx) -> int:
    pos, opts = win_args(ctx.args)
    host = ctx.host
    if not pos and not opts:
        ctx.out += MOUNTVOL_USAGE.splitlines()
        ctx.out += mountvol_lines(host)
        return 0
    if not pos and set(opts) == {"L"}:
        ctx.out += mountvol_lines(host)
        return 0
    if not pos and set(opts) in ({"N"}, {"E"}):
        host.automount = "E" in opts
        return 0
    if not pos and set(opts) == {"R"}:
        for v in host.volumes(ready_only=False):
            if not v.mount_points and v.remembered:
                host.set_volume_state(v, remembered=[])
        return 0
    if len(pos) == 1 and len(opts) == 1 and next(iter(opts)) in ("D", "L", "P"):
        mp, switch = pos[0], next(iter(opts))
        if switch == "L":
            v = host.volume_at(mp)
            if v is None:
                raise CommandError(E.NOT_MOUNTED, name=mp)
            ctx.print(f"    {v.name}")
            return 0
        v = host.unassign(mp)
        if switch == "P":  # and dismount: the cache is written first when the disk can take it
            host.fs.unmount(v, force=not v.disk.ready or not host.fs.mounted(v))
            host.set_volume_state(v, offline=True)
        host.invalidate()
        return 0
    if len(pos) == 2 and not opts:
        mp, name = pos
        if volume_guid(name) is None:
            raise CommandError(E.USAGE, detail=f"{name} is not a volume name")
        v = find_volume(host, name, ready=False)
        host.assign(v, mp)
        host.invalidate()
        return 0
    raise CommandError(E.USAGE, detail="see MOUNTVOL with no arguments")


# -- FORMAT and CHKDSK ------------------------------------------------------------------------------


def size_text(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= 10 * size:
            return f"{n // size} {unit}"
    return f"{n} B"


def format_volume(ctx: Ctx, v: Volume, label: str, quick: bool, force_dismount: bool = False) -> list[str]:
    host = ctx.host
    if v.local:
        raise CommandError(E.DISK_REFUSED)
    if not v.disk.ready:
        raise CommandError(E.PATH_NOT_NORMAL)
    if v.mount_points and host.busy([v]) and not force_dismount:
        raise CommandError(E.DISK_REFUSED)
    old = host.fs.info(v)
    host.fs.unmount(v, force=True)  # formatting throws the old file system's contents away
    info = host.fs.format_volume(v, label=label, quick=quick)
    for mp in v.mount_points:
        host.fs.mount(v, mp)
    mb = f"{v.size / 1024 / 1024:.1f} MB"
    return [
        f"The type of the file system is {old.fs if old else 'RAW'}.",
        "The new file system is NTFS.",
        f"{'QuickFormatting' if quick else 'Formatting'} {mb}",
        "Creating file system structures.",
        "Format complete.",
        f"{mb:>14} total disk space.",
        f"{mb:>14} are available.",
        "",
        f"Volume Serial Number is {info.serial}",
    ]


@command("FORMAT")
def format_cmd(ctx: Ctx) -> int:
    pos, opts = win_args(ctx.args)
    unknown = set(opts) - {"FS", "V", "Q", "Y", "X"}
    if len(pos) != 1 or unknown:
        raise CommandError(E.USAGE, detail="FORMAT volume [/FS:NTFS] [/V:label] [/Q] [/X] [/Y]")
    fs = opts.get("FS", "NTFS")
    if not isinstance(fs, str) or fs.upper() != "NTFS":
        raise CommandError(E.USAGE, detail=f"file system {fs} is not supported (NTFS only)")
    label = opts.get("V", "")
    label = label if isinstance(label, str) else ""
    v = find_volume(ctx.host, pos[0])
    if "Y" not in opts:
        answer = (ctx.stdin.strip().splitlines() or [""])[0].strip().upper()
        ctx.print("WARNING, ALL DATA ON NON-REMOVABLE DISK")
        ctx.print(f"DRIVE {pos[0].upper()} WILL BE LOST!")
        ctx.print(f"Proceed with Format (Y/N)? {answer}")
        if answer not in ("Y", "YES"):
            raise CommandError(E.DISK_OPERATION, detail="format was not confirmed (answer Y, or give /Y)")
    ctx.out += format_volume(ctx, v, label, quick="Q" in opts, force_dismount="X" in opts)
    ctx.host.invalidate()
    return 0


@command("CHKDSK")
def chkdsk(ctx: Ctx) -> int:
    pos, opts = win_args(ctx.args)
    if len(pos) != 1 or set(opts) - {"F", "R", "X", "SCAN", "V"}:
        raise CommandError(E.USAGE, detail="CHKDSK volume [/F] [/R] [/X]")
    v = find_volume(ctx.host, pos[0])
    status, lines = ctx.host.fs.check(v, fix=bool({"F", "R"} & set(opts)))
    ctx.out += lines
    return status


# -- DISKPART -------------------------------------------------------------------------------------


class DiskPartError(Exception):
    """One DISKPART command failed; the script stops (its text is DiskPart's)."""


class DiskPart:
    """A DISKPART session on one host: the selected disk, partition and volume, and the commands."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.host = ctx.host
        self.disk_no: int | None = None
        self.part_no: int | None = None
        self.volume_key: tuple[str, str, int] | None = None

    # -- selection helpers ---------------------------------------------------------------------
    def disk(self) -> Disk:
        if self.disk_no is None:
            raise DiskPartError("There is no disk selected. Please select a disk and try again.")
        d = self.host.disk_by_number(self.disk_no)
        if d is None:
            raise DiskPartError("The disk you specified is not valid.")
        return d

    def ready_disk(self) -> Disk:
        d = self.disk()
        if d.local:
            raise DiskPartError(
                "Virtual Disk Service error: The operation is not supported on the system disk."
            )
        if not d.ready:
            raise DiskPartError("Virtual Disk Service error: The device is not ready.")
        return d

    def layout(self, d: Disk) -> pt.Layout:
        assert d.layout is not None
        return d.layout

    def volume(self) -> Volume:
        if self.volume_key is not None:
            v = next((x for x in self.host.volumes() if x.key == self.volume_key), None)
            if v is not None:
                return v
        if self.disk_no is not None and self.part_no is not None:
            d = self.disk()
            v = next((x for x in d.volumes if x.number == self.part_no), None)
            if v is not None and d.ready:
                return v
        raise DiskPartError("There is no volume selected. Please select a volume and try again.")

    def out(self, *lines: str) -> None:
        self.ctx.out += [*lines, ""]

    # -- the commands --------------------------------------------------------------------------
    def run(self, line: str) -> None:
        # Words split on blanks; double quotes group (label="BV 001"); backslashes are path separators.
        words = [w.replace('"', "") for w in re.findall(r'(?:[^\s"]+|"[^"]*")+', line)]
        if not words or words[0].lower() == "rem" or words[0].startswith("#"):
            return
        verb = words[0].lower()
        args = [w.lower() for w in words[1:]]
        params = {}
        for w in words[1:]:
            k, sep, val = w.partition("=")
            if sep:
                params[k.lower()] = val
        handler = getattr(self, f"cmd_{verb}", None)
        if handler is None:
            raise DiskPartError(f"The command or parameters are not valid: {line.strip()}")
        handler(args, params)

    def cmd_exit(self, args: list[str], params: dict[str, str]) -> None:
        raise StopIteration

    def cmd_list(self, args: list[str], params: dict[str, str]) -> None:
        what = args[0] if args else ""
        if what == "disk":
            self.out(*disk_lines(self.host, self.disk_no))
        elif what == "partition":
            d = self.disk()
            parts = self.layout(d).parts if d.layout else []
            if not parts:
                self.out("There are no partitions on this disk to show.")
                return
            lines = [
                "  Partition ###  Type              Size     Offset",
                "  -------------  ----------------  -------  -------",
            ]
            for p in parts:
                mark = "*" if p.number == self.part_no else " "
                lines.append(
                    f"{mark} Partition {p.number:<4} {p.type_text:<16}  {size_text(p.sectors * 512):>7}  "
                    f"{size_text(p.start * 512):>7}"
                )
            self.out(*lines)
        elif what == "volume":
            self.out(*volume_lines(self.host, self.volume_key))
        else:
            raise DiskPartError("The command or parameters are not valid: list " + " ".join(args))

    def cmd_select(self, args: list[str], params: dict[str, str]) -> None:
        if len(args) < 2:
            raise DiskPartError("The arguments specified for this command are not valid.")
        what, which = args[0], args[1]
        if what == "disk":
            if not which.isdigit() or self.host.disk_by_number(int(which)) is None:
                raise DiskPartError("The disk you specified is not valid.")
            self.disk_no, self.part_no, self.volume_key = int(which), None, None
            self.out(f"Disk {which} is now the selected disk.")
        elif what == "partition":
            d = self.disk()
            if not which.isdigit() or not d.layout or not any(p.number == int(which) for p in d.layout.parts):
                raise DiskPartError("The partition you specified is not valid.")
            self.part_no = int(which)
            v = next((x for x in d.volumes if x.number == self.part_no), None)
            self.volume_key = v.key if v else None
            self.out(f"Partition {which} is now the selected partition.")
        elif what == "volume":
            vols = self.host.volumes()
            if which.isdigit() and int(which) < len(vols):
                v = vols[int(which)]
            else:
                v = next(
                    (
                        x
                        for x in vols
                        if any(
                            normalise_mount_point(m) == normalise_mount_point(which) for m in x.mount_points
                        )
                    ),
                    None,
                )
            if v is None:
                raise DiskPartError("The volume you specified is not valid.")
            self.volume_key = v.key
            self.disk_no, self.part_no = v.disk.number, v.number
            self.out(f"Volume {vols.index(v)} is the selected volume.")
        else:
            raise DiskPartError("The arguments specified for this command are not valid.")

    def cmd_clean(self, args: list[str], params: dict[str, str]) -> None:
        d = self.ready_disk()
        for v in d.volumes:
            for mp in list(v.mount_points):
                self.host.unassign(mp)
            self.host.fs.unmount(v, force=True)  # the file systems go with the partitions
        total = d.capacity // 512
        zero = bytes(min(total, 2048) * 512)
        self.host.write_disk(d, 0, zero)
        if total > 2048:  # the backup GPT at the end of the disk
            tail = min(total - 2048, pt.GPT_TABLE_SECTORS + 1)
            self.host.write_disk(d, (total - tail) * 512, bytes(tail * 512))
        self.host.invalidate()
        self.part_no, self.volume_key = None, None
        self.out("DiskPart succeeded in cleaning the disk.")

    def cmd_convert(self, args: list[str], params: dict[str, str]) -> None:
        d = self.ready_disk()
        to = args[0] if args else ""
        layout = self.layout(d)
        if to in ("mbr", "gpt"):
            if layout.parts:
                raise DiskPartError("Virtual Disk Service error: The disk is not empty.")
            if layout.scheme == to:
                raise DiskPartError(
                    f"Virtual Disk Service error: The specified disk is already {to.upper()}."
                )
            self.host.write_layout(d, pt.initialise(layout.total, to))
            self.out(f"DiskPart successfully converted the selected disk to {to.upper()} format.")
        elif to == "dynamic":
            try:
                pt.convert_dynamic(layout)
            except pt.LayoutError as exc:
                raise DiskPartError(str(exc)) from None
            self.host.write_layout(d, layout)
            self.out("DiskPart successfully converted the selected disk to dynamic format.")
        elif to == "basic":
            if layout.volumes():
                raise DiskPartError("Virtual Disk Service error: The disk is not empty.")
            self.out("DiskPart successfully converted the selected disk to basic format.")
        else:
            raise DiskPartError("The arguments specified for this command are not valid.")

    def cmd_create(self, args: list[str], params: dict[str, str]) -> None:
        if len(args) < 2 or args[0] != "partition" or args[1] not in ("primary", "extended", "logical"):
            raise DiskPartError("The arguments specified for this command are not valid.")
        d = self.ready_disk()
        layout = self.layout(d)
        if layout.scheme == "none":
            layout = pt.initialise(layout.total, "gpt" if d.format == "WG" else "mbr")
        size = params.get("size")
        if size is not None and not size.isdigit():
            raise DiskPartError("The arguments specified for this command are not valid.")
        try:
            part = pt.add_partition(layout, args[1], int(size) if size else None)
        except pt.LayoutError as exc:
            raise DiskPartError(str(exc)) from None
        self.host.write_layout(d, layout)
        self.part_no = part.number
        v = next((x for x in self.host.disk_by_number(d.number).volumes if x.number == part.number), None)  # type: ignore[union-attr]
        # Like Windows, the new partition's sectors are not wiped: an old boot sector at the same
        # offset still reads as that file system until FORMAT.
        self.volume_key = v.key if v else None
        self.out("DiskPart succeeded in creating the specified partition.")

    def cmd_delete(self, args: list[str], params: dict[str, str]) -> None:
        if not args or args[0] != "partition":
            raise DiskPartError("The arguments specified for this command are not valid.")
        d = self.ready_disk()
        layout = self.layout(d)
        part = next((p for p in layout.parts if p.number == self.part_no), None)
        if part is None:
            raise DiskPartError("There is no partition selected. Please select a partition and try again.")
        try:
            pt.delete_partition(layout, part)
        except pt.LayoutError as exc:
            raise DiskPartError(str(exc)) from None
        self.host.write_layout(d, layout)
        self.part_no, self.volume_key = None, None
        self.out("DiskPart successfully deleted the selected partition.")

    def cmd_format(self, args: list[str], params: dict[str, str]) -> None:
        v = self.volume()
        fs = params.get("fs", "ntfs")
        if fs.lower() != "ntfs":
            raise DiskPartError(f"Virtual Disk Service error: The file system {fs} is not supported here.")
        try:
            format_volume(self.ctx, v, params.get("label", ""), quick="quick" in args)
        except CommandError as exc:
            raise DiskPartError(f"Virtual Disk Service error: {exc.text}") from None
        self.out("  100 percent completed", "", "DiskPart successfully formatted the volume.")

    def cmd_assign(self, args: list[str], params: dict[str, str]) -> None:
        v = self.volume()
        if "letter" in params:
            mp = params["letter"].rstrip(":") + ":"
        elif "mount" in params:
            mp = params["mount"]
        else:
            used = {
                normalise_mount_point(m) for x in self.host.volumes(ready_only=False) for m in x.mount_points
            }
            free = [f"{c}:" for c in "DEFGHIJKLMNOPQRSTUVWXYZ" if f"{c}:" not in used]
            if not free:
                raise DiskPartError("Virtual Disk Service error: There are no drive letters available.")
            mp = free[0]
        try:
            self.host.assign(v, mp)
        except CommandError as exc:
            raise DiskPartError(f"Virtual Disk Service error: {exc.text}") from None
        self.host.invalidate()
        self.out("DiskPart successfully assigned the drive letter or mount point.")

    def cmd_remove(self, args: list[str], params: dict[str, str]) -> None:
        v = self.volume()
        if "letter" in params:
            points = [params["letter"].rstrip(":") + ":"]
        elif "mount" in params:
            points = [params["mount"]]
        else:
            points = list(v.mount_points)
        for mp in points:
            if not any(normalise_mount_point(mp) == normalise_mount_point(m) for m in v.mount_points):
                raise DiskPartError(
                    "Virtual Disk Service error: The drive letter or mount point is not assigned."
                )
            self.host.unassign(mp)
        self.host.invalidate()
        self.out("DiskPart successfully removed the drive letter or mount point.")

    def cmd_rescan(self, args: list[str], params: dict[str, str]) -> None:
        self.host.rescan()
        self.out(
            "Please wait while DiskPart scans your configuration...",
            "",
            "DiskPart has finished scanning your configuration.",
        )

    def cmd_online(self, args: list[str], params: dict[str, str]) -> None:
        d = self.disk()
        if not d.offline and d.ready:
            self.out("Virtual Disk Service error: This disk is already online.")
            return
        if not d.array_ready:
            raise DiskPartError("Virtual Disk Service error: The device is not ready.")
        self.host.set_disk_flags(d, offline=False, recognised=True)
        self.host.automount_disk(d)
        self.host.invalidate()
        self.out("DiskPart successfully onlined the selected disk.")

    def cmd_offline(self, args: list[str], params: dict[str, str]) -> None:
        d = self.disk()
        if d.local:
            raise DiskPartError(
                "Virtual Disk Service error: The operation is not supported on the system disk."
            )
        for v in d.volumes:
            for mp in list(v.mount_points):
                self.host.unassign(mp, forget=False)
            if self.host.fs.mounted(v):  # a disk taken offline is dismounted, its cache written first
                self.host.fs.unmount(v, force=not d.ready)
        self.host.set_disk_flags(d, offline=True)
        self.host.invalidate()
        self.out("DiskPart successfully offlined the selected disk.")

    def cmd_detail(self, args: list[str], params: dict[str, str]) -> None:
        if not args or args[0] != "disk":
            raise DiskPartError("The arguments specified for this command are not valid.")
        d = self.disk()
        ident = "-"
        if d.layout is not None and d.layout.scheme == "mbr":
            ident = pt.signature_text(d.layout.signature)
        elif d.layout is not None and d.layout.scheme == "gpt":
            ident = "{" + str(d.layout.disk_guid).upper() + "}"
        lines = [
            f"{d.ld_name or 'SnapLab system disk'}",
            f"Disk ID: {ident}",
            "Type   : FC" if not d.local else "Type   : SATA",
            f"Status : {d.state if not d.local else 'Online'}",
            f"LD     : {d.ld_number or '-'} {d.format or ''}".rstrip(),
        ]
        if d.error:
            lines.append(f"Error  : {d.error}")
        self.out(*lines, "", *volume_lines(self.host, self.volume_key, disk=d))

    def cmd_uniqueid(self, args: list[str], params: dict[str, str]) -> None:
        d = self.ready_disk()
        layout = self.layout(d)
        if layout.scheme == "gpt" and "id" not in params:
            self.out("Disk ID: {" + str(layout.disk_guid).upper() + "}")
            return
        if layout.scheme != "mbr":
            raise DiskPartError("Virtual Disk Service error: The disk has no MBR signature.")
        if "id" in params:
            try:
                sig = pt.parse_signature(params["id"])
            except ValueError:
                raise DiskPartError("The arguments specified for this command are not valid.") from None
            self.host.write_disk(d, dl.MBR_SIGNATURE_OFFSET, sig)
            self.host.invalidate()
            return
        self.out(f"Disk ID: {pt.signature_text(layout.signature)}")


def disk_lines(host: Host, selected: int | None = None) -> list[str]:
    lines = [
        "  Disk ###  Status         Size     Free     Dyn  Gpt",
        "  --------  -------------  -------  -------  ---  ---",
    ]
    for d in host.visible_disks():
        status = "Online" if d.local else ("Online" if d.ready else d.state)
        free = pt.free_sectors(d.layout) * 512 if d.layout and d.ready else 0
        dyn = "*" if d.layout and d.layout.dynamic else " "
        gpt = "*" if d.layout and d.layout.scheme == "gpt" else " "
        mark = "*" if d.number == selected else " "
        lines.append(
            f"{mark} Disk {d.number:<4} {status:<13}  {size_text(d.capacity):>7}  {size_text(free):>7}   {dyn}    {gpt}".rstrip()
        )
    return lines


def volume_lines(
    host: Host, selected: tuple[str, str, int] | None = None, disk: Disk | None = None
) -> list[str]:
    lines = [
        "  Volume ###  Ltr  Label        Fs     Type        Size     Status     Info",
        "  ----------  ---  -----------  -----  ----------  -------  ---------  --------",
    ]
    for i, v in enumerate(host.volumes()):
        if disk is not None and v.disk is not disk:
            continue
        info = host.fs.info(v)
        letter = next((m[0] for m in v.mount_points if len(m) == 2), " ")
        mark = "*" if v.key == selected else " "
        kind = "Simple" if v.part is not None and v.part.dynamic else "Partition"
        lines.append(
            f"{mark} Volume {i:<4} {letter:<3}  {(info.label if info else ''):<11}  {(info.fs if info else 'RAW'):<5}  "
            f"{kind:<10}  {size_text(v.size):>7}  {'Healthy':<9}  {'System' if v.local else ''}".rstrip()
        )
    return lines


DISKPART_HEADER = [
    "",
    "Microsoft DiskPart version 6.3.9600",
    "",
    "Copyright (C) 1999-2013 Microsoft Corporation.",
    "On computer: {host}",
    "",
]


@command("DISKPART")
def diskpart(ctx: Ctx) -> int:
    pos, opts = win_args(ctx.args, valued=("S",))
    if pos or set(opts) - {"S"}:
        raise CommandError(E.USAGE, detail="DISKPART [/s script]")
    if "S" in opts:
        path = caller_path(ctx.host, str(opts["S"]))
        try:
            script = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(
                E.DISK_OPERATION, detail=f"cannot read script {path}: {getattr(exc, 'strerror', exc)}"
            ) from None
    else:
        script = ctx.stdin
    ctx.out += [line.format(host=ctx.host.name.upper()) for line in DISKPART_HEADER]
    session = DiskPart(ctx)
    for line in script.splitlines():
        try:
            session.run(line)
        except StopIteration:
            break
        except DiskPartError as exc:
            ctx.print(str(exc))
            raise CommandError(E.DISK_OPERATION, detail=str(exc)) from None
        except CommandError as exc:
            raise CommandError(E.DISK_OPERATION, detail=f"{line.strip()}: {exc.msg_id}: {exc.text}") from None
    ctx.print("Leaving DiskPart...")
    return 0
