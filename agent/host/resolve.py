"""How commands find an LD: the volume list, the CV definitions, and whether the list is still current."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from snaplab.agent import partitions as pt
from snaplab.agent.commands.base import CommandError
from snaplab.agent.vollist import VolEntry, VolumeList, normalise_mount_point, normalise_volume_name

from snaplab.common.errors import E
from snaplab.common.rpc import SnapLabClientError

log = logging.getLogger("snaplab.agent.host")


class Resolve:
    """Part of Host: the volume list (C2) and the control volumes commands go through."""

    # State that Host.__init__ sets (host.py), named here so this part reads on its own.
    etc: Path
    arrays: dict[str, str]
    unreachable: dict[str, SnapLabClientError]

    @property
    def vollist_path(self) -> Path:
        return self.etc / "vollist.json"

    def vollist(self) -> VolumeList:
        """The volume list (C2), or CommandError iSM11702 when there is none."""
        try:
            vl = VolumeList.load(self.vollist_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("volume list unreadable: %s", exc)
            vl = None
        if vl is None:
            raise CommandError(E.VOLLIST_MISSING)
        return vl

    def cv_definitions(self) -> dict[str, str]:
        """etc/cvdef.json: array name -> LD name of the CV defined for it (arrays that do not mark CVs)."""
        try:
            raw = json.loads((self.etc / "cvdef.json").read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("cvdef.json unreadable; no CV definition used")
            return {}
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def save_cv_definitions(self, defs: dict[str, str]) -> None:
        tmp = self.etc / "cvdef.json.tmp"
        tmp.write_text(json.dumps(defs, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.etc / "cvdef.json")

    def resolve_ld(self, name: str, flg: str = "ld") -> VolEntry:
        """The volume list's disk entry of the LD named by ``name``: flg ``ld`` (LD name or number),
        ``drv`` (drive letter or NTFS folder) or ``mvol`` (volume name). iSM11703 if not listed."""
        vl = self.vollist()
        f = flg.lower()
        if f == "ld":
            e = vl.by_ld(name)
        elif f == "drv":
            e = vl.by_mount_point(name)
        elif f == "mvol":
            e = vl.by_volume(name)
        else:
            raise CommandError(E.USAGE, detail=f"flag {flg} (ld, drv or mvol)")
        if e is None:
            raise CommandError(E.NOT_IN_VOLLIST, name=name)
        return self.disk_entry(vl, e)

    @staticmethod
    def disk_entry(vl: VolumeList, e: VolEntry) -> VolEntry:
        if e.partition is None:
            return e
        return next((d for d in vl.disks() if d.array == e.array and d.ld_number == e.ld_number), e)

    def control_via(self, array: str, target_entry: VolEntry | None) -> str:
        """The LD name to issue control I/O through: the volume list's CV of that array, else the
        target itself, which must be Ready (iSM31063), else iSM11705 when there is no target."""
        vl = self.vollist()
        arr = array or (target_entry.array if target_entry is not None else "")
        if not arr:
            arrays = {e.array for e in vl.disks()} | set(self.arrays)
            arr = next(iter(arrays)) if len(arrays) == 1 else ""
        cv = vl.cv(arr) if arr else None
        if cv is not None:
            return cv.ld_name
        if target_entry is None:
            raise CommandError(E.NO_CV, name=arr or "-")
        disk = self.disk(target_entry.array, target_entry.ld_number)
        if disk is None or not disk.array_ready:
            raise CommandError(E.VIA_NOT_READY, name=target_entry.ld_name)
        return target_entry.ld_name

    def stale_check(self, entry: VolEntry) -> None:
        """iSM11704 when the list no longer describes the LD of ``entry`` as this host sees it now:
        gone, renamed, another type, format or disk number, or (Ready disks) other volumes or mount points."""
        vl = self.vollist()
        de = self.disk_entry(vl, entry)
        disks = self.disks()
        if de.array in self.unreachable:
            raise CommandError.of(self.unreachable[de.array], array=de.array)
        d = next((x for x in disks if x.array == de.array and x.ld_number == de.ld_number), None)
        if d is None:
            self._explain_missing(de)
            raise CommandError(E.VOLLIST_STALE, name=de.ld_name)
        if (d.ld_name, d.number, d.format, d.ld_type) != (de.ld_name, de.disk, de.format, de.ld_type):
            raise CommandError(E.VOLLIST_STALE, name=de.ld_name)
        if not d.ready:
            return
        listed = {(x.partition, normalise_volume_name(x.volume)): x for x in vl.volumes_of(de)}
        live = {(v.number, normalise_volume_name(v.name)): v for v in d.volumes}
        if set(listed) != set(live):
            raise CommandError(E.VOLLIST_STALE, name=de.ld_name)
        for k, v in live.items():
            if v.mount_points and {normalise_mount_point(m) for m in v.mount_points} != {
                normalise_mount_point(m) for m in listed[k].mount_points
            }:
                raise CommandError(E.VOLLIST_STALE, name=de.ld_name)

    def _explain_missing(self, de: VolEntry) -> None:
        """An LD that vanished from ``Disks`` because the path broke is a path failure, not a stale list."""
        if de.array not in self.arrays:
            return
        try:
            self.array(de.array).read(de.ld_name, 0, pt.SECTOR)
        except SnapLabClientError as exc:
            if exc.msg_id == E.PATH_FAILURE.msg_id:
                raise CommandError.of(exc) from None
