"""The mount table: mount points of volumes, mounting and unmounting, automount, a server start and rescan.

Unmounting removes the mount points but remembers them; with automount on (``MOUNTVOL /E``, the
default) a volume whose disk arrives again (``iSMrc_scan``, restart) is mounted at its remembered
points; ``MOUNTVOL /N`` turns that off; ``iSMrc_umount -offline`` forgets them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import sqlite_utils
from snaplab.agent import partitions as pt
from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs.holders import holders
from snaplab.agent.fs.kept import Unflushed
from snaplab.agent.fs.sqlarfs import FileSystem
from snaplab.agent.host.model import Disk, Volume, display_mount_point, mount_slug
from snaplab.agent.vollist import normalise_mount_point

from snaplab.common.errors import E

log = logging.getLogger("snaplab.agent.host")


class MountTable:
    """Part of Host: which volume each mount point shows (host.db ``mounts``, ``volstate``)."""

    # State that Host.__init__ sets (host.py), named here so this part reads on its own.
    mnt: Path
    db: sqlite_utils.Database
    fs: FileSystem
    _db_lock: threading.RLock

    def mount_path(self, mount_point: str) -> Path:
        """The folder holding the files of ``mount_point`` while it is mounted."""
        return self.mnt / mount_slug(mount_point)

    def is_formatted(self, volume: Volume) -> bool:
        return volume.disk.ready and self.fs.is_formatted(volume)

    def write_layout(self, disk: Disk, layout: pt.Layout) -> None:
        """Write a partition table (DISKPART) and forget mount points of partitions that are gone."""
        pt.write_layout(lambda o, b: self.write_disk(disk, o, b), layout)
        starts = {p.start * pt.SECTOR for p in layout.volumes()}
        with self._db_lock:
            for v in disk.volumes:
                if v.start not in starts:
                    self.fs.unmount(v, force=True)  # the partition is gone, and its file system
                    self.db.execute(
                        "DELETE FROM mounts WHERE array = ? AND ld = ? AND start = ?", list(v.key)
                    )
                    self.db.execute(
                        "DELETE FROM volstate WHERE array = ? AND ld = ? AND start = ?", list(v.key)
                    )
        self.invalidate()

    # -- automount (MOUNTVOL /E, /N) -------------------------------------------------------------
    @property
    def automount(self) -> bool:
        return self._meta("automount", "1") == "1"

    @automount.setter
    def automount(self, on: bool) -> None:
        self._set_meta("automount", "1" if on else "0")

    # -- the mount table -------------------------------------------------------------------------
    def set_volume_state(
        self, v: Volume, *, remembered: list[str] | None = None, offline: bool | None = None
    ) -> None:
        rem = v.remembered if remembered is None else remembered
        off = v.offline if offline is None else offline
        v.remembered, v.offline = list(rem), off
        with self._db_lock:
            self.db.table("volstate").upsert(
                {
                    "array": v.disk.array,
                    "ld": v.disk.ld_number,
                    "start": v.start,
                    "remembered": json.dumps(rem),
                    "offline": int(off),
                },
                pk=("array", "ld", "start"),
            )

    def check_mount_point(self, mount_point: str) -> str:
        """Validate a new mount point; returns its display form. Folders must be on a drive of this host."""
        n = normalise_mount_point(mount_point)
        if len(n) == 2:
            if n == "C:":
                raise CommandError(E.MOUNT_POINT_IN_USE, name="C:")
            return n
        m = re.match(r"^([a-z]):\\.+", n)
        if not m:
            raise CommandError(E.USAGE, detail=f"mount point {mount_point}")
        drive = m.group(1).upper() + ":"
        if drive != "C:" and not any(drive in v.mount_points for v in self.volumes()):
            raise CommandError(E.PATH_NOT_NORMAL)
        return display_mount_point(mount_point)

    def check_owner(self, disk: Disk) -> None:
        """A cluster shared disk another node owns (its reservation at the array) is not mounted
        here: iSM31193 naming the disk and its owner (the array would refuse every write anyway)."""
        if disk.reserved_by and disk.reserved_by != self.name:
            raise CommandError(E.RESERVED_ELSEWHERE, name=f"{disk.ld_name} is owned by {disk.reserved_by}")

    def assign(self, volume: Volume, mount_point: str) -> str:
        """Add a mount point to a volume (MOUNTVOL X: VOL, DISKPART assign); mounts its file system
        if it has one and the disk is Ready. Returns the display form."""
        if volume.local:
            raise CommandError(E.DISK_REFUSED)
        self.check_owner(volume.disk)
        mp = self.check_mount_point(mount_point)
        key = normalise_mount_point(mp)
        with self._db_lock:
            owner = list(self.db.query("SELECT * FROM mounts WHERE mp = ?", [key]))
            if owner and (owner[0]["array"], owner[0]["ld"], owner[0]["start"]) != volume.key:
                raise CommandError(E.MOUNT_POINT_IN_USE, name=mp)
            if not owner:
                self.db.table("mounts").insert(
                    {
                        "mp": key,
                        "display": mp,
                        "array": volume.disk.array,
                        "ld": volume.disk.ld_number,
                        "start": volume.start,
                        "volume": volume.name,
                    }
                )
                volume.mount_points.append(mp)
            rem = [m for m in volume.remembered if normalise_mount_point(m) != key] + [mp]
            self.set_volume_state(volume, remembered=rem, offline=False)
        if volume.disk.ready and self.fs.is_formatted(volume):
            self.fs.mount(volume, mp)
        return mp

    def unassign(self, mount_point: str, *, forget: bool = True) -> Volume:
        """Remove a mount point (MOUNTVOL X: /D, DISKPART remove); its folder goes with it."""
        key = normalise_mount_point(mount_point)
        volume = self.volume_at(mount_point)
        with self._db_lock:
            rows = list(self.db.query("SELECT * FROM mounts WHERE mp = ?", [key]))
            if not rows or volume is None:
                raise CommandError(E.NOT_MOUNTED, name=mount_point)
            self.fs.unmount(volume, force=True, mount_point=rows[0]["display"])
            self.db.table("mounts").delete(key)
            volume.mount_points = [m for m in volume.mount_points if normalise_mount_point(m) != key]
            if forget:
                self.set_volume_state(
                    volume, remembered=[m for m in volume.remembered if normalise_mount_point(m) != key]
                )
        return volume

    def mount(
        self, volume: Volume, mount_point: str | None = None, fallback: list[str] | None = None
    ) -> list[str]:
        """iSMrc_mount: bring the volume's disk online and mount its file system at ``mount_point``
        (which replaces its other mount points), else at its current, remembered or ``fallback``
        points. Not Ready, unrecognised or unformatted: iSM13639."""
        disk = volume.disk
        if volume.local or not disk.recognised or not disk.array_ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        self.check_owner(disk)
        if disk.offline:
            self.set_disk_flags(disk, offline=False)
        if not self.fs.is_formatted(volume):
            raise CommandError(E.PATH_NOT_NORMAL)
        self.fs.attach(volume)  # reads the file system: iSM13639 when it is damaged
        if mount_point is not None:
            key = normalise_mount_point(mount_point)
            for mp in list(volume.mount_points):
                if normalise_mount_point(mp) != key:
                    self.unassign(mp)
            targets = [mount_point]
        else:
            targets = volume.mount_points or volume.remembered or (fallback or [])
            if not targets:
                raise CommandError(E.NO_MOUNT_POINT, name=volume.name)
        done = [self.assign(volume, mp) for mp in list(targets)]
        self.invalidate()
        return done

    def busy(self, volumes: list[Volume]) -> list[tuple[int, str]]:
        return holders([self.mount_path(mp) for v in volumes for mp in v.mount_points])

    def unmount(self, volume: Volume, *, force: bool = False, offline: bool = False) -> list[Volume]:
        """iSMrc_umount: flush and unmount the volume (and, for an LV, every volume of its disk, which
        becomes Not Ready). Refused with iSM13609 while a process holds one of them, unless ``force``
        (the cache is discarded) or ``offline`` (the mount point is removed for good). The volume must
        have exactly one mount point (guide 3.10 (16)). Returns the volumes unmounted."""
        if volume.local:
            raise CommandError(E.DISK_REFUSED)
        if not volume.mount_points:
            raise CommandError(E.NOT_MOUNTED, name=volume.name)
        if len(volume.mount_points) > 1:
            raise CommandError(E.MOUNT_POINT_COUNT, name=volume.name)
        disk = volume.disk
        lv = disk.ld_type == "LV"
        affected = [volume] + ([v for v in disk.volumes if v is not volume and v.mount_points] if lv else [])
        if not force and not offline:
            busy = self.busy(affected)
            if busy:
                who = ", ".join(f"pid {p} ({c})" for p, c in busy)
                log.info("umount of %s refused: held by %s", volume.name, who)
                self.trace("iSMrc_umount", "INFO", "", f"{volume.name} is held by {who}")
                raise CommandError(E.DISK_REFUSED)
            for v in affected:  # the cache goes to the volume; a Not Ready disk cannot take it: iSM13639
                if self.fs.mounted(v):
                    self.fs.flush(v)
        with self._db_lock:
            for v in affected:
                points = list(v.mount_points)
                self.fs.unmount(v, force=True)  # flushed above, or discarded (-force, -offline)
                for mp in points:
                    self.db.table("mounts").delete(normalise_mount_point(mp))
                v.mount_points = []
                if offline and v is volume:
                    self.set_volume_state(v, remembered=[], offline=True)
                else:
                    self.set_volume_state(v, remembered=points, offline=v.offline)
            if lv:
                self.set_disk_flags(disk, offline=True)
        self.invalidate()
        return affected

    def flush_all(self) -> list[Unflushed]:
        """What a server shutdown does to its file-system caches: flush every mounted volume; those it
        cannot flush are kept for the next start (agent/fs/kept.py) and returned."""
        try:
            view = {v.key: v for d in self.disks() if not d.local for v in d.volumes}
        except Exception as exc:  # noqa: BLE001 - a shutdown keeps what it cannot flush
            log.warning("disk scan at shutdown failed: %s", exc)
            view = {}
        return self.fs.shutdown(view)

    def automount_disk(self, disk: Disk) -> list[str]:
        """A disk arrived: mount its volumes at their remembered points (automount on, not offline)."""
        done: list[str] = []
        if not self.automount or not disk.ready:
            return done
        for v in disk.volumes:
            if v.mount_points or v.offline or not v.remembered or not self.fs.is_formatted(v):
                continue
            for mp in v.remembered:
                try:
                    done.append(self.assign(v, mp))
                except CommandError as exc:
                    log.info("automount of %s at %s skipped: %s", v.name, mp, exc)
        return done

    def rescan(self) -> list[Disk]:
        """iSMrc_scan / DISKPART rescan: disks the array lets us read again are recognised and online."""
        for d in self.scan():
            if d.local or not d.array_ready or (d.recognised and not d.offline):
                continue
            self.set_disk_flags(d, offline=False, recognised=True)
            self.automount_disk(d)
        self.invalidate()
        return self.disks()

    def _withdraw_mounts(self, d: Disk) -> None:
        """At boot: the disk's volumes lose their mount points (remembered, for automount) and
        their caches (unflushed, as a crash leaves them)."""
        with self._db_lock:
            for v in d.volumes:
                if v.mount_points:
                    points = list(v.mount_points)
                    self.fs.unmount(v, force=True)
                    for mp in points:
                        self.db.table("mounts").delete(normalise_mount_point(mp))
                    self.set_volume_state(v, remembered=points)
                    v.mount_points = []

    def _forget_unread_mounts(self, d: Disk) -> None:
        """A disk Not Ready at boot whose partition table cannot be read (an LV unlinked while the
        server was down): its volumes are unknown, so the mount table's rows of that LD are what is
        left of them. They become the volumes' remembered mount points (automount brings them back
        at iSMrc_scan) and their folders go: the OS shows no drive for a disk it does not recognise."""
        with self._db_lock:
            rows = list(
                self.db.query("SELECT * FROM mounts WHERE array = ? AND ld = ?", [d.array, d.ld_number])
            )
            points: dict[int, list[str]] = {}
            for r in rows:
                points.setdefault(r["start"], []).append(r["display"])
                self.db.table("mounts").delete(r["mp"])
            for start, mps in points.items():
                self.db.table("volstate").upsert(
                    {"array": d.array, "ld": d.ld_number, "start": start, "remembered": json.dumps(mps), "offline": 0},
                    pk=("array", "ld", "start"),
                )
        for r in rows:
            self.fs.forget(r["volume"], r["display"])

    def boot(self) -> None:
        """What a server start does (C9): Not Ready disks become unrecognised (their volumes lose
        their mount points, remembered) until iSMrc_scan; Ready disks keep their mounts or get their
        remembered ones back (automount)."""
        self.mount_path("C:").mkdir(parents=True, exist_ok=True)
        for d in self.scan():
            if d.local or d.array in self.unreachable:  # an array that does not answer: as it comes back
                continue
            if d.reserved_by and d.reserved_by != self.name:
                self._withdraw_mounts(d)  # the cluster took it over while this node was down
                continue
            if not d.ready:
                if d.recognised and not d.failed:
                    self.set_disk_flags(d, recognised=False)
                if not d.volumes:
                    self._forget_unread_mounts(d)
                self._withdraw_mounts(d)
                continue
            for v in d.volumes:
                if v.mount_points and self.fs.is_formatted(v):
                    for mp in v.mount_points:
                        self.fs.mount(v, mp)
            self.automount_disk(d)
        self.invalidate()
