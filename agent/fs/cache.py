"""The host's file-system cache: a mounted volume's archive read into a folder shown at its mount points.

Mounting reads the database from the volume (the header's page count x 64 KiB, nothing more) into a
working copy ``<state>/fscache/<guid>.db``, keeps an XXH3-128 digest of every page as the volume
holds it, extracts the files while it reads (extract.py) and checks it (``PRAGMA quick_check``, and
every file's size and hash; a volume that fails is not mountable: iSM13639) into the mount point's folder
``<state>/mnt/<G or c_mnt_bk>`` (what ``Host.mount_path`` and ``snaplab path HOST G:`` give). That
folder IS the file-system cache: programs read and write it, and nothing they write reaches the
volume until a flush (``iSMrc_flush``, ``iSMrc_umount`` without ``-force``/``-offline``: flush.py).

A second mount point of a mounted volume is a symbolic link to the first one's folder; removing the
last mount point of a volume (MOUNTVOL X: /D) keeps its file system mounted, cache included, in
``<state>/fscache/<guid>.files`` until a mount point is added again, as Windows keeps a volume
without a drive letter mounted. A full dismount (``iSMrc_umount``, ``-force``, FORMAT, a deleted
partition, a disk that is Not Ready at agent start) removes the folders and the working copy.

Mounting first replays the volume's committed flush journal, if it is this LD's (journal.py). An
agent that stops gracefully flushes every cache; one it cannot flush is kept for its next start
(kept.py), which takes it back at the volume's first mount. Otherwise an agent that starts reads
every mounted volume anew: what a crash left unflushed is lost, what was flushed before is whole.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs import journal, kept
from snaplab.agent.fs.archive import (
    PAGE,
    PAGE_DIGEST,
    Damaged,
    NotFormatted,
    legacy_page_digest,
    page_digest,
    quick_check,
    read_image,
    serial_of,
    volume_form,
)
from snaplab.agent.fs.flush import (
    FlushStats,
    PageFile,
    _plan,
    complete,
    flush_volume,
    unflushed_entries,
    walk,
)
from snaplab.agent.fs.extract import archive_tables, extract, mount_image
from snaplab.agent.fs.extract import rmtree as _rmtree
from snaplab.agent.fs.session import Session, open_db

from snaplab.common.errors import E

if TYPE_CHECKING:
    from snaplab.agent.host import Host, Volume

log = logging.getLogger("snaplab.agent.filesystem")


class FileSystemCache:
    """The mounted file systems of one host's volumes (module docstring): one Session per volume."""

    flushed_bytes = 0  # bytes flushes wrote to volumes since the agent started

    def __init__(self, host: Host) -> None:
        self.host = host
        self.cache = host.state / "fscache"
        self.debug = host.state / "debug"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.kept = kept.load_all(self.cache)  # caches a stop could not flush (kept.py)
        for entry in self.cache.iterdir():  # the rest: a new agent reads every volume anew
            if entry.name != kept.KEPT:
                _rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        self.sessions: dict[tuple[str, str, int], Session] = {}

    def mounted(self, volume: Volume) -> bool:
        return volume.key in self.sessions

    def attach(self, volume: Volume) -> None:
        """Mount the volume's file system (read it into the cache); iSM13639 when it is not normal."""
        if volume.key in self.sessions:
            return
        if volume.local or not volume.disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        try:
            self._load(volume)
        except (NotFormatted, Damaged) as exc:
            log.info("%s is not mountable: %s", volume.name, exc or type(exc).__name__)
            raise CommandError(E.PATH_NOT_NORMAL) from None

    def _files(self, guid: str) -> tuple[Path, Path]:
        return self.cache / f"{guid}.db", self.cache / f"{guid}.files"

    def _load(self, volume: Volume) -> Session:
        db, parked = self._files(volume.guid)
        _remove_db(db)
        _clear(parked)
        held = self.kept.get(volume.key)
        adopt = False
        try:
            journal.replay(volume, volume.key, volume.name)
            if held is None:  # read and extract at once (extract.py)
                parked.mkdir(parents=True)
                pages, digests, known, conn = mount_image(volume, db, parked, time.time_ns())
                try:
                    meta = _meta(conn)
                finally:
                    conn.close()
            else:
                pages, digests = read_image(volume, db)
                seen = digests
                if held.get("page_digest") != PAGE_DIGEST:  # an older agent kept it
                    seen = _legacy_digests(db)
                conn = open_db(db, volume.size // PAGE)
                try:
                    tables = archive_tables(conn, quick_check(conn))
                    meta = _meta(conn)
                    adopt = kept.matches(held, pages, seen)
                    if not adopt:
                        t0 = time.time_ns()
                        parked.mkdir(parents=True)
                        known = extract(conn, parked, "snaplab_files" in tables, t0)
                finally:
                    conn.close()
        except BaseException:
            _remove_db(db)
            _clear(parked)
            raise
        if held is not None:
            del self.kept[volume.key]
        if adopt:
            assert held is not None
            _remove_db(db)
            os.rename(held["db"], db)
            os.rename(held["root"], parked)
            s = kept.session_of(held, db, parked, pages, digests)
            kept.forget(self.cache, volume.guid)
            log.info(
                "%s mounted with the cache kept at the last stop (%d entries not flushed)",
                volume.name,
                len(held.get("entries") or {}),
            )
            self.host.trace(
                "mount", "WARNING", "", f"{volume.name}: the cache kept at the last stop is back in place"
            )
        else:
            if held is not None:
                where = kept.set_aside(
                    self.host.state, self.cache, held, "the volume changed while the server was down"
                )
                self.host.trace(
                    "mount",
                    "WARNING",
                    "",
                    f"{volume.name}: the cache kept at the last stop was set aside in {where}",
                )
            s = Session(
                volume.key,
                volume.guid,
                db,
                parked,
                parked,
                pages,
                digests,
                volume.size,
                label=str(meta.get("label") or ""),
                serial=serial_of(meta.get("serial")),
                known=known,
            )
        s.ld_name = volume.disk.ld_name
        self.sessions[volume.key] = s
        log.info("%s mounted: %d pages, %d entries", volume.name, pages, len(s.known))
        return s

    def mount(self, volume: Volume, mount_point: str) -> Path:
        """Show the volume's files at ``mount_point`` (mounting its file system first if needed). A
        volume whose file system is not normal gets an empty folder: no files to show (iSM13639 on
        flush; CHKDSK /F repairs it)."""
        path = self.host.mount_path(mount_point)
        s = self.sessions.get(volume.key)
        if s is None:
            try:
                self.attach(volume)
            except CommandError:
                _clear(path)
                path.mkdir(parents=True, exist_ok=True)
                return path
            s = self.sessions[volume.key]
        self._present(s, mount_point)
        return path

    def _present(self, s: Session, mp: str) -> None:
        path = self.host.mount_path(mp)
        if any(self.host.mount_path(p) == path for p in s.points):
            if not os.path.lexists(path):  # someone removed it: show it again
                if s.root == path:
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    os.symlink(s.root, path)
            return
        if path == s.root:
            s.points.insert(0, mp)
            return
        _clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not s.points:
            os.rename(s.root, path)
            s.root = path
            s.points = [mp]
        else:
            os.symlink(s.root, path)
            s.points.append(mp)

    def _withdraw(self, s: Session, mp: str) -> None:
        path = self.host.mount_path(mp)
        match = next((p for p in s.points if self.host.mount_path(p) == path), None)
        if match is None:
            _clear(path)
            return
        s.points.remove(match)
        if path != s.root:
            _clear(path)
            return
        if s.points:
            new = self.host.mount_path(s.points[0])
            _clear(new)
            os.rename(s.root, new)
            s.root = new
            for other in s.points[1:]:
                link = self.host.mount_path(other)
                _clear(link)
                os.symlink(new, link)
        else:
            _clear(s.parked)
            os.rename(s.root, s.parked)
            s.root = s.parked

    def unmount(self, volume: Volume, force: bool = False, mount_point: str | None = None) -> None:
        """With ``mount_point``: remove that mount point only (the file system stays mounted). Without:
        dismount — flush first unless ``force`` (the cache is then discarded), remove every folder."""
        s = self.sessions.get(volume.key)
        if mount_point is not None:
            if s is not None:
                self._withdraw(s, mount_point)
            else:
                _clear(self.host.mount_path(mount_point))
            return
        if s is not None and not force:
            self.flush(volume)
        for mp in list(volume.mount_points) + (list(s.points) if s else []):
            _clear(self.host.mount_path(mp))
        self.drop(volume)

    def forget(self, volume_name: str, mount_point: str) -> None:
        """What a crash left of a volume that cannot be read now: its mount folder and working copy
        (by the volume's name, ``\\\\?\\Volume{GUID}\\``), unflushed as a crash leaves them."""
        _clear(self.host.mount_path(mount_point))
        guid = volume_name.rsplit("{", 1)[-1].split("}", 1)[0] if "{" in volume_name else ""
        if guid:
            db, parked = self._files(guid)
            _remove_db(db)
            _clear(parked)

    def drop(self, volume: Volume) -> None:
        """Forget the volume's file system: its mount folders and working copy go, unflushed."""
        s = self.sessions.pop(volume.key, None)
        db, parked = self._files(volume.guid)
        if s is not None:
            for mp in s.points:
                _clear(self.host.mount_path(mp))
            _clear(s.root)
            db = s.db
            parked = s.parked
        _remove_db(db)
        _clear(parked)

    def flush(self, volume: Volume) -> FlushStats:
        """Write what changed in the mount folder to the volume (flush.py). iSM13639 when the
        file system is not mounted (not normal) or the disk is not Ready."""
        s = self.sessions.get(volume.key)
        if s is None or volume.local or not volume.disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        stats = flush_volume(volume, s, self.debug)
        self.flushed_bytes += stats.bytes  # the agent's metrics (flush bytes of this host)
        return stats

    def ripe_sessions(self, keep: Callable[[str, os.stat_result], bool]) -> list[tuple[str, str, int]]:
        """The mounted volumes whose cache holds something ``keep`` lets the lazy writer write
        (reads only local files)."""
        out = []
        for key, s in list(self.sessions.items()):
            if not s.root.is_dir():
                continue
            plan = _plan(s, walk(s.root))
            if plan.gone or any(kind == "meta" or keep(name, st) for kind, name, st, _ in plan.ops):
                out.append(key)
        return out

    def lazy_write(self, keep: Callable[[str, os.stat_result], bool]) -> int:
        """The lazy writer's flush (lazywriter.py), the caller holding the host: the ripe entries
        of every mounted volume whose disk is Ready; a volume that cannot be written is left as it is."""
        keys = set(self.ripe_sessions(keep))
        if not keys:
            return 0
        written = 0
        for v in self.host.volumes():
            s = self.sessions.get(v.key)
            if v.key not in keys or s is None or v.local or not v.disk.ready:
                continue
            try:
                stats = flush_volume(v, s, None, keep)  # a debug hook is for the flush a command runs
            except CommandError as exc:
                log.warning("lazy writer: %s not written: %s: %s", v.name, exc.msg_id, exc.text)
                continue
            self.flushed_bytes += stats.bytes
            written += 1
            if stats.pages:
                log.info("lazy writer: %s: %d pages", v.name, stats.pages)
        return written

    def settle(self, volume: Volume) -> None:
        """Bring the volume to a state that reads whole (CHKDSK): a committed flush of this host's
        session is completed, else the volume's own journal replayed."""
        s = self.sessions.get(volume.key)
        if s is not None:
            complete(volume, s)
        elif not volume.local:
            journal.replay(volume, volume.key, volume.name)

    def shutdown(self, view: dict[tuple[str, str, int], Volume]) -> list[kept.Unflushed]:
        """A graceful stop: flush every mounted file system (``view``: the volumes seen now); one that
        cannot be flushed is kept for the next start (kept.py). Returns those kept."""
        out = []
        for key, s in list(self.sessions.items()):
            entries = unflushed_entries(s)
            if not entries and not s.pending:
                continue
            v = view.get(key)
            name = v.name if v is not None else f"\\\\?\\Volume{{{s.guid}}}\\"
            self._keep(s, name, "the server stopped while flushing", entries)
            try:
                if v is None:
                    raise CommandError(
                        E.ARRAY_UNREACHABLE if key[0] in self.host.unreachable else E.PATH_NOT_NORMAL,
                        name=key[0],
                    )
                self.flush(v)
                kept.forget(self.cache, s.guid)
            except Exception as exc:  # noqa: BLE001 - a stop keeps what it cannot flush
                error = CommandError.of(exc)
                if error.msg_id == E.ARRAY_UNREACHABLE.msg_id:  # the catalogue's words, not gRPC's
                    error = CommandError(E.ARRAY_UNREACHABLE, name=key[0])
                reason = str(error)
                if v is not None and not v.disk.ready:
                    reason = f"{reason} (disk {v.disk.state})"
                path = self._keep(s, name, reason, unflushed_entries(s))
                log.warning("%s not flushed at shutdown (%s): its cache is kept in %s", name, reason, path)
                out += [u for u in kept.report(self.host.state, self.host.name) if u.where == str(path)]
        return out

    def _keep(self, s: Session, name: str, reason: str, entries: dict[str, str]) -> Path:
        replay: dict[int, bytes] = {}
        if s.committed:
            with PageFile(s.db) as f:
                replay = {p: page_digest(volume_form(f.read(p)) if p == 1 else f.read(p)) for p in s.pending}
        return kept.save(self.cache, self.host.name, s, name, reason, entries, replay)


def _meta(conn: sqlite3.Connection) -> dict[object, object]:
    """snaplab_volume of an open archive ({} when it has none)."""
    table = conn.execute("SELECT 1 FROM sqlite_schema WHERE type='table' AND name='snaplab_volume'").fetchone()
    if table is None:
        return {}
    return dict(conn.execute("SELECT key, value FROM snaplab_volume"))


def _legacy_digests(db: Path) -> bytes:
    """BLAKE2b-128 digests of the pages of a working copy just read (before it is opened): what a
    kept manifest of an agent before PAGE_DIGEST is compared with."""
    out = bytearray()
    with open(db, "rb") as f:
        while page := f.read(PAGE):
            out += legacy_page_digest(page)
    return out


def _remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def _clear(path: Path) -> None:
    """Remove a mount folder, a symbolic link to one, or nothing."""
    if os.path.islink(path):
        os.unlink(path)
    elif path.is_dir():
        _rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
