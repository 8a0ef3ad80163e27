"""Caches a graceful stop could not flush: kept on disk for the next start, and what they hold.

A server that stops gracefully flushes its file-system caches (cache.py). One it cannot flush (the
disk array does not respond, the disk is Not Ready, the flush fails) is **kept**: a manifest
``<state>/fscache/kept/<guid>.json`` (the session: records, page digests, the journal state, the
mount points, why, and which entries were not flushed) is written *before* the flush is tried (a
stop that is killed while flushing still leaves it) and removed once the flush succeeds. The next
start moves the kept working copy and files to ``<state>/fscache/kept/<guid>/`` and the first mount
of that volume takes them back, its unflushed files in the mount folder again, when the volume still
holds exactly what the cache was built on (every page digest); otherwise (the volume changed while
the server was down: a restore, a FORMAT, another host's writes) the files are set aside in
``<state>/unflushed/<time>-<volume>/`` and the volume is mounted as it is. ``snaplab lab down``
names what is kept (:func:`report`) and exits non-zero.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from snaplab.agent.fs.archive import DIGEST, PAGE, PAGE_DIGEST, UNKNOWN
from snaplab.agent.fs.session import Base, Rec, Session

log = logging.getLogger("snaplab.agent.filesystem")

KEPT = "kept"
SET_ASIDE = "unflushed"


@dataclass
class Unflushed:
    """One volume a host could not flush (what ``snaplab lab down`` prints)."""

    host: str
    volume: str  # \\?\Volume{GUID}\
    mount_points: list[str]
    array: str
    ld: str
    start: int
    reason: str
    entries: dict[str, str] = field(default_factory=dict)  # name -> new, changed, deleted
    where: str = ""  # the manifest

    def lines(self) -> list[str]:
        at = ", ".join(self.mount_points) or self.volume
        names = sorted(self.entries)
        out = [
            f"{self.host}: {at} not flushed ({self.volume}, {self.array} {self.ld or '?'}): {self.reason}",
            f"  its file-system cache is kept for the next start: {self.where}",
            f"  {len(names)} entr{'y' if len(names) == 1 else 'ies'} not flushed:",
        ]
        out += [f"    {n} ({self.entries[n]})" for n in names[:50]]
        if len(names) > 50:
            out.append(f"    ... and {len(names) - 50} more")
        return out


def _rec(d: dict[str, Any]) -> Rec:
    h = d.get("hash")
    return Rec(
        d["kind"],
        d["size"],
        d["mtime_ns"],
        d["perm"],
        bytes.fromhex(h) if h else None,
        d["target"],
        d["synced"],
    )


def _rec_json(r: Rec) -> dict[str, Any]:
    d = asdict(r)
    d["hash"] = r.hash.hex() if r.hash else None
    return d


def manifest_path(cache: Path, guid: str) -> Path:
    return cache / KEPT / f"{guid}.json"


def save(
    cache: Path,
    host: str,
    s: Session,
    volume: str,
    reason: str,
    entries: dict[str, str],
    journal: dict[int, bytes],
) -> Path:
    """Write (atomically) the manifest of a cache kept for the next start. ``journal``: while a
    committed flush is not all in place, the digests its pending pages get when a mount replays it."""
    path = manifest_path(cache, s.guid)
    st = s.db.stat()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "host": host,
        "volume": volume,
        "key": list(s.key),
        "guid": s.guid,
        "ld": s.ld_name,
        "size": s.size,
        "label": s.label,
        "serial": s.serial,
        "db": str(s.db),
        "root": str(s.root),
        "points": s.points,
        "pages": s.pages,
        "digests": base64.b64encode(bytes(s.digests)).decode(),
        "page_digest": PAGE_DIGEST,
        "pending": sorted(s.pending),
        "dirty": None if s.dirty is None else sorted(s.dirty),
        "base": None if s.base is None else {"pages": s.base.pages, "free": sorted(s.base.free)},
        "committed": s.committed,
        "journal": {str(p): d.hex() for p, d in journal.items()},
        "work": [st.st_size, st.st_mtime_ns],
        "seq": s.seq,
        "known": {n: _rec_json(r) for n, r in s.known.items()},
        "unsynced": s.unsynced,
        "reason": reason,
        "entries": entries,
        "kept": datetime.now().strftime("%Y/%m/%d %H:%M:%S"),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def forget(cache: Path, guid: str) -> None:
    manifest_path(cache, guid).unlink(missing_ok=True)
    folder = cache / KEPT / guid
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)


def load_all(cache: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The kept manifests of a host (at start), their working copy and files moved into
    ``kept/<guid>/`` so nothing else of the start touches them. Unreadable ones are logged, skipped."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    folder = cache / KEPT
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            m = json.loads(path.read_text())
            key = (str(m["key"][0]), str(m["key"][1]), int(m["key"][2]))
            guid = str(m["guid"])
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("kept cache %s unreadable (%s): skipped", path, exc)
            continue
        home = folder / guid
        home.mkdir(exist_ok=True)
        for field_, dest in (("db", home / "work.db"), ("root", home / "files")):
            src = Path(m[field_])
            if src != dest and os.path.lexists(src) and not os.path.islink(src):
                if os.path.lexists(dest):
                    shutil.rmtree(dest, ignore_errors=True) if dest.is_dir() else dest.unlink()
                os.rename(src, dest)
            m[field_] = str(dest)
        if not Path(m["db"]).is_file() or not Path(m["root"]).is_dir():
            log.warning("kept cache of %s has lost its files: dropped", m.get("volume"))
            forget(cache, guid)
            continue
        path.write_text(json.dumps(m))
        out[key] = m
    return out


def matches(m: dict[str, Any], pages: int, digests: bytes) -> bool:
    """Whether the volume as just read (``pages``, ``digests``) is what the kept cache was built on
    (a committed journal the mount replayed shows its pages' new digests), and its working copy is
    the one the manifest was written with."""
    try:
        st = Path(m["db"]).stat()
    except OSError:
        return False
    if [st.st_size, st.st_mtime_ns] != m.get("work"):
        return False
    kept = base64.b64decode(m["digests"])
    replayed = {int(p): bytes.fromhex(d) for p, d in (m.get("journal") or {}).items()}
    committed = bool(m.get("committed"))
    expect = st.st_size // PAGE if committed else int(m["pages"])
    if pages != expect:
        return False
    for p in range(1, pages + 1):
        fresh = digests[(p - 1) * DIGEST : p * DIGEST]
        known = replayed.get(p) if committed and p in replayed else kept[(p - 1) * DIGEST : p * DIGEST]
        if known and known != UNKNOWN and known != fresh:
            return False
    return True


def session_of(m: dict[str, Any], db: Path, parked: Path, pages: int, digests: bytearray) -> Session:
    """The session a kept manifest describes, on the volume as just read."""
    committed = bool(m.get("committed"))
    base = m.get("base")
    return Session(
        tuple(m["key"]),  # type: ignore[arg-type]
        m["guid"],
        db,
        parked,
        parked,
        pages,
        digests,
        int(m["size"]),
        label=m.get("label", ""),
        serial=m.get("serial", ""),
        known={n: _rec(r) for n, r in m["known"].items()},
        pending=set() if committed else set(m.get("pending", [])),
        dirty=set() if committed else None if m.get("dirty", []) is None else set(m.get("dirty", [])),
        base=None if committed or base is None else Base(int(base["pages"]), frozenset(base["free"])),
        seq=int(m.get("seq", 0)),
        unsynced=dict(m.get("unsynced", {})),
        ld_name=m.get("ld", ""),
    )


def set_aside(state: Path, cache: Path, m: dict[str, Any], why: str) -> Path:
    """Move a kept cache's files out of the way (the volume changed): ``<state>/unflushed/...``."""
    name = (m.get("points") or [m["guid"]])[0].replace(":", "").replace("\\", "_").strip("_") or m["guid"]
    dest = state / SET_ASIDE / f"{datetime.now():%Y%m%d-%H%M%S}-{name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.rename(m["root"], dest)
    log.warning(
        "the kept cache of %s was not taken back (%s): its files are in %s", m.get("volume"), why, dest
    )
    forget(cache, m["guid"])
    return dest


def report(state: Path, host: str) -> list[Unflushed]:
    """What a host's state folder keeps unflushed (read by ``snaplab lab down``; no agent needed)."""
    out = []
    for path in sorted((state / "fscache" / KEPT).glob("*.json")):
        try:
            m = json.loads(path.read_text())
            key = m["key"]
            out.append(
                Unflushed(
                    host,
                    str(m["volume"]),
                    list(m.get("points") or []),
                    str(key[0]),
                    str(m.get("ld", "")),
                    int(key[2]),
                    str(m.get("reason", "")),
                    dict(m.get("entries") or {}),
                    str(path),
                )
            )
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            out.append(
                Unflushed(host, path.stem, [], "?", "?", 0, "its manifest is unreadable", {}, str(path))
            )
    return out
