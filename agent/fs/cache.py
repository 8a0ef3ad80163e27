"""The host's file-system cache: a mounted volume's archive read into a folder shown at its mount points.

Mounting reads the database from the volume (the header's page count x 64 KiB, nothing more) into a
working copy ``<state>/fscache/<guid>.db``, keeps an XXH3-128 digest of every page as the volume
holds it, checks it (``PRAGMA quick_check``, and every file's size and hash as it is extracted; a
volume that fails is not mountable: iSM13639) and extracts the files into the mount point's folder
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

import collections
import contextlib
import logging
import os
import shutil
import sqlite3
import stat
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from snaplab.agent.commands.base import CommandError
from snaplab.agent.fs import journal, kept
from snaplab.agent.fs.archive import (
    DIGEST,
    PAGE,
    PAGE_DIGEST,
    Damaged,
    NotFormatted,
    entry_kind,
    file_hash,
    hash_matches,
    legacy_page_digest,
    page_digest,
    parents,
    quick_check,
    read_image,
    safe_name,
    serial_of,
    unpack,
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
from snaplab.agent.fs.session import Rec, Session, open_db

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
            pages, digests = read_image(volume, db)
            seen = digests
            if held is not None and held.get("page_digest") != PAGE_DIGEST:  # an older agent kept it
                seen = _legacy_digests(db)
            conn = open_db(db, volume.size // PAGE)
            try:
                problems = quick_check(conn)
                if problems:
                    raise Damaged("; ".join(problems[:3]))
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
                if "sqlar" not in tables:
                    raise Damaged("no sqlar table")
                meta = (
                    dict(conn.execute("SELECT key, value FROM snaplab_volume"))
                    if "snaplab_volume" in tables
                    else {}
                )
                adopt = held is not None and kept.matches(held, pages, seen)
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
                stats = flush_volume(v, s, self.debug, keep)
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


def _rmtree(path: Path) -> None:
    """shutil.rmtree that also removes what read-only folders (a file's mode from the volume) hold."""

    def retry(func: Callable[..., object], name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
            func(name)

    shutil.rmtree(path, onerror=retry)


def _clear(path: Path) -> None:
    """Remove a mount folder, a symbolic link to one, or nothing."""
    if os.path.islink(path):
        os.unlink(path)
    elif path.is_dir():
        _rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _umask() -> int | None:
    """The process's umask (Linux: /proc/self/status; ``os.umask`` would change it for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


def _write_file(path: str, content: bytes, perm: int, mt: int, umask: int | None) -> None:
    """Create ``path`` with ``content``, ``perm`` and mtime ``mt``: created with its mode (a read-only
    one still lets this descriptor write), chmod only when the umask would take bits off."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, perm | 0o200)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        if umask is None or perm & umask or not perm & 0o200:
            os.fchmod(fd, perm)
        os.utime(fd, ns=(mt, mt))
    finally:
        os.close(fd)


MMAP = 1 << 40  # the working copy is read through a mapping (no copy per page read)
WORKERS = 2  # threads that unpack, check and write files while the rows are read (ISA-L, XXH3, write release the GIL)
AHEAD = 64 * 1024 * 1024  # bytes of rows handed to them and not yet written, at most


def _unpack_file(
    name: str, path: str, sz: int, data: object, h: bytes | None, perm: int, mt: int, umask: int | None
) -> tuple[int, bytes]:
    """One file row: its content checked (size, zlib stream, recorded hash) and written; returns
    (size, its hash as a flush compares it). Damaged when the row is not what was written for it."""
    try:
        content = unpack(sz, data)  # type: ignore[arg-type]
    except (ValueError, zlib.error) as exc:
        raise Damaged(f"entry {name}: {exc}") from None
    if h is not None and not hash_matches(content, h):
        raise Damaged(f"entry {name}: content does not match its hash")
    _write_file(path, content, perm, mt, umask)
    return len(content), h if h is not None and len(h) != DIGEST else file_hash(content)


def extract(conn: sqlite3.Connection, root: Path, has_files: bool, t0: int) -> dict[str, Rec]:
    """Write every entry of the archive under ``root`` (mode, exact mtime); returns the records.
    Damaged when an entry's data does not match its size or its recorded hash. Rows are read in
    their table's order (the file's order, no index lookups); folders are made as entries need them;
    files are unpacked, checked and written by WORKERS threads in the meantime."""
    conn.execute(f"PRAGMA mmap_size={MMAP}")
    files: dict[str, tuple[int | None, bytes | None]] = {}
    if has_files:
        for name, mtime_ns, h in conn.execute("SELECT name, mtime_ns, hash FROM snaplab_files"):
            files[name] = (mtime_ns, None if h is None else bytes(h))
    known: dict[str, Rec] = {}
    dirs: list[tuple[str, int, int]] = []
    links: list[tuple[str, str, int]] = []
    made: set[str] = {""}
    base = str(root) + "/"
    umask = _umask()
    queue: collections.deque[tuple[str, int, int, int, Future[tuple[int, bytes]]]] = collections.deque()
    ahead = 0

    def folder(name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent not in made:
            os.makedirs(base + parent, exist_ok=True)
            made.update(parents(name))

    def settle() -> int:
        name, perm, mt, sz, fut = queue.popleft()
        size, digest_ = fut.result()
        known[name] = Rec("f", size, mt, perm, digest_, synced=t0)
        return sz

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="mount") as pool:
        try:
            for name, mode, mtime, sz, data in conn.execute("SELECT name, mode, mtime, sz, data FROM sqlar"):
                if not safe_name(name):
                    log.warning("archive entry %r skipped: not a relative path", name)
                    continue
                mode = int(mode or 0)
                k = entry_kind(mode) or "f"
                mtime_ns, h = files.get(name, (None, None))
                mt = int(mtime_ns) if mtime_ns is not None else int(mtime or 0) * 1_000_000_000
                sz = int(sz if sz is not None else 0)
                if k == "d":
                    os.makedirs(base + name, exist_ok=True)
                    made.add(name)
                    made.update(parents(name))
                    dirs.append((name, stat.S_IMODE(mode), mt))
                    continue
                if k == "l":
                    try:
                        target = unpack(sz, data)
                    except (ValueError, zlib.error) as exc:
                        raise Damaged(f"entry {name}: {exc}") from None
                    links.append((name, target.decode(errors="surrogateescape"), mt))
                    continue
                folder(name)
                perm = stat.S_IMODE(mode) or 0o644
                fut = pool.submit(_unpack_file, name, base + name, sz, data, h, perm, mt, umask)
                queue.append((name, perm, mt, max(sz, 0), fut))
                ahead += max(sz, 0)
                while ahead > AHEAD and queue:
                    ahead -= settle()
            while queue:
                settle()
        except BaseException:
            for *_, fut in queue:
                fut.cancel()
            raise
    for name, target, mt in links:
        path = root / name
        if any(n in known and known[n].kind == "l" for n in parents(name)) or os.path.lexists(path):
            continue
        folder(name)
        os.symlink(target, path)
        with contextlib.suppress(OSError):
            os.utime(path, ns=(mt, mt), follow_symlinks=False)
        known[name] = Rec("l", 0, mt, 0o777, target=target, synced=t0)
    for name, perm, mt in sorted(dirs, key=lambda d: -d[0].count("/")):
        path = root / name
        with contextlib.suppress(OSError):
            os.chmod(path, perm or 0o755)
            os.utime(path, ns=(mt, mt))
        st = os.lstat(path)
        known[name] = Rec("d", 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), synced=t0)
    # folders without a row of their own (a foreign archive) are new entries for the next flush
    return known
