"""The SnapControl disk commands of a host (C5): ``iSMrc_flush/umount/mount/scan/signature``.

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

On a cluster node, ``iSMrc_umount`` of a shared disk the cluster holds online here first warns
(``iSMrc_umount:Warning: iSM31217``, guide 3.10 (12)), unmounts, and then the disk resource fails:
the group is released at the witness (iSM31216) and the standby takes it over.
"""

from __future__ import annotations

from typing import Any

from snaplab.agent import partitions as pt
from snaplab.agent.cluster import service as cluster_service
from snaplab.agent.commands.base import CommandError, Ctx, caller_path, command
from snaplab.agent.host import Disk, Volume, now_text
from snaplab.agent.vollist import VolEntry, normalise_volume_name
from snaplab.san import disklayout as dl

from snaplab.common.errors import E


# -- the SPEC §8 block layout ----------------------------------------------------------------------


def block(ctx: Ctx, title: str, disk: str, ld: str, fmt: str, volume: str, mount_points: list[str]) -> None:
    ctx.print(f"{title:<26}{now_text()}" if title.endswith("Start") else f"{title:<25}{now_text()}")
    ctx.print(f"{'':14}{disk:<9} {ld:<9} {fmt}")
    ctx.print(f"{'':7}{volume}")
    for mp in mount_points:
        ctx.print(f"{'':14}{mp}")


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
    group = _online_shared_group(ctx, volume)
    if group is not None:  # guide 3.10 (12): never unmount a disk the cluster holds online
        ctx.warning(E.UMOUNT_SHARED, name=f"{volume.disk.ld_name} of group {group.name}")
    block(ctx, "Umount Start", *info)
    ctx.host.unmount(volume, force="-force" in opts, offline="-offline" in opts)
    ctx.print()
    block(ctx, "Umount Normal End", *info)
    if group is not None:
        svc = cluster_service.current()
        if svc is not None and svc.resource_failed(group):  # the disk resource fails: the group fails over
            ctx.warning(E.RESOURCE_FAILED, name=f"{group.name} on {ctx.host.name}")
    return 0


def _online_shared_group(ctx: Ctx, volume: Volume) -> cluster_service.Group | None:
    """The cluster group holding ``volume``'s disk online on this node, if any."""
    svc = cluster_service.current()
    if svc is None or volume.disk.reserved_by != ctx.host.name:
        return None
    group = svc.group_of_disk(volume.disk.ld_name)
    return None if group is None or group.name in svc.held else group


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
