"""``DISKPART`` of a host: a script (or stdin) of disk, partition and volume commands, as DiskPart prints."""

from __future__ import annotations

import re

from snaplab.agent import partitions as pt
from snaplab.agent.commands.base import CommandError, Ctx, caller_path, command, win_args
from snaplab.agent.commands.volume_tools import format_volume
from snaplab.agent.host import Disk, Host, Volume
from snaplab.agent.vollist import normalise_mount_point
from snaplab.san import disklayout as dl

from snaplab.common.errors import E


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


def size_text(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= 10 * size:
            return f"{n // size} {unit}"
    return f"{n} B"


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
