"""Windows' volume tools the guide uses around iSMrc_*: ``MOUNTVOL``, ``FORMAT`` and ``CHKDSK``."""

from __future__ import annotations

from snaplab.agent.commands.base import CommandError, Ctx, command, win_args
from snaplab.agent.host import Host, Volume, volume_guid

from snaplab.common.errors import E


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
