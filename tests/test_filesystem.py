"""The hosts' file system (agent/fs/): an SQLite archive per partition, a file-system cache in
the mount folder that reaches the volume only on flush or unmount, page-granular flushes, damage from
a torn flush and CHKDSK's repair, partitions (MBR, extended-logical, GPT, dynamic) and signatures.

In one process: an ArrayEngine served over gRPC (insecure, test identities), two Host objects
(business ``h1`` on port P0, backup ``h2`` on P1) running their commands as the agent does
(``run_command``); snapshot operations are made on the engine directly (no manager here)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from snaplab.agent.fs.archive import FORMAT_ID, PAGE
from snaplab.agent.fs.export import export_partition
from snaplab.agent.fs.flush import STOP_HOOK, FlushStats
from snaplab.agent import partitions as pt
from snaplab.agent.daemon import load_commands, run_command
from snaplab.agent.host import Host
from snaplab.san import disklayout as dl
from snaplab.array.engine import ArrayEngine
from snaplab.array.servicer import SERVICE_NAME, add_to_server

from snaplab.common.rpc import AioServerThread

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
ARRAY = "A"
BV_SCRIPT = "select disk 1\ncreate partition primary\nformat fs=ntfs label=BV001 quick\nassign letter=G\n"
NOT_NORMAL = "iSM13639: Specified path is not normal status."


@dataclass
class Rig:
    root: Path
    engine: ArrayEngine
    h1: Host
    h2: Host

    def run(self, host: Host, *argv: str, stdin: str = "", code: int | None = 0) -> tuple[str, str, int]:
        with host.command():
            out, err, rc = run_command(host, list(argv), stdin)
        if code is not None:
            assert rc == code, f"{argv}: exit {rc}\n{out}{err}"
        return out, err, rc

    def image(self, ld: str, partition: int = 1) -> Path:
        """The database of a partition of an LD as the array holds it now, in a file."""
        cap = self.engine.ld(ld).capacity
        dest = self.root / f"{ld}-{partition}-{uuid.uuid4().hex[:6]}.db"
        export_partition(lambda o, n: self.engine.read(ld, o, n), cap, partition, dest)
        return dest


def archive(path: Path) -> dict[str, bytes]:
    """name -> content of the files of an sqlar image, read with nothing but Python's sqlite3."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        for name, mode, sz, data in conn.execute("SELECT name, mode, sz, data FROM sqlar"):
            if stat.S_ISREG(mode):
                out[name] = zlib.decompress(data) if data is not None and len(data) < sz else (data or b"")
        return out
    finally:
        conn.close()


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def sha(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    load_commands()
    e = ArrayEngine(tmp_path / "array", name=ARRAY)
    e.add_port(0, 0, "P0")
    e.add_port(0, 1, "P1")
    e.set_licence("DynamicSnapVolume", 10**12)
    e.set_licence("AccessControl")
    e.bind_pool(0, "Pool0", "basic", 4 << 30)
    e.bind_pool(1, "Pool1", "dynamic", 4 << 30)
    e.build_sra(1, 1 << 30, sdv_name="sdv001")
    e.bind_ld("bv001", 64 * MiB, 0, "WN", number=0x10)
    e.bind_ld("bv002", 64 * MiB, 0, "WG", number=0x11)
    e.add_generations("bv001", 1, 2, sv_names=["sv001_1", "sv001_2"])
    e.bind_lv("bv001", "lv001", number=0x40)
    e.register_host("h1", [], ["P0"])
    e.register_host("h2", [], ["P1"])
    e.assign_access("bv001", port="P0")
    e.assign_access("bv002", port="P0")
    e.assign_access("lv001", port="P1")
    server = AioServerThread(
        lambda s: add_to_server(e, s), tls=None, service_names=[SERVICE_NAME], insecure_test_identities=True
    )
    target = f"127.0.0.1:{server.port}"
    h1 = Host("h1", tmp_path / "h1", arrays={ARRAY: target})
    h2 = Host("h2", tmp_path / "h2", arrays={ARRAY: target}, role="backup")
    r = Rig(tmp_path, e, h1, h2)
    try:
        yield r
    finally:
        h1.close()
        h2.close()
        server.stop(0)
        e.close()


@pytest.fixture
def g(rig: Rig) -> Path:
    """bv001 partitioned, formatted and mounted at G: on h1, with a volume list."""
    rig.run(rig.h1, "DISKPART", stdin=BV_SCRIPT)
    rig.run(rig.h1, "iSMvollist", "-cr")
    path = rig.h1.mount_path("G:")
    assert path.is_dir() and not any(path.iterdir())
    return path


def flush(rig: Rig, host: Host, mp: str = "G:") -> FlushStats:
    before = dict(host.io)
    rig.run(host, "iSMrc_flush", "-drv", mp)
    return FlushStats(
        pages=(host.io["write_bytes"] - before["write_bytes"]) // PAGE,
        writes=host.io["write_calls"] - before["write_calls"],
        bytes=host.io["write_bytes"] - before["write_bytes"],
    )


# -- the format on the volume ------------------------------------------------------------------------


def test_format_writes_an_empty_sqlar_archive_the_standard_tools_open(rig: Rig, g: Path) -> None:
    img = rig.image("bv001")
    assert img.read_bytes()[:16] == b"SQLite format 3\x00"
    conn = sqlite3.connect(f"file:{img}?mode=ro", uri=True)
    assert conn.execute("PRAGMA page_size").fetchone() == (65536,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # an image opens read-only
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM sqlar").fetchone() == (0,)
    meta = dict(conn.execute("SELECT key, value FROM snaplab_volume"))
    assert meta["label"] == "BV001" and meta["format"] == FORMAT_ID
    conn.close()
    # the partition starts on a 64 KiB boundary: one SQLite page is one array block
    layout = pt.read_layout(lambda o, n: rig.engine.read("bv001", o, n), 64 * MiB)
    assert (layout.volumes()[0].start * 512) % PAGE == 0
    out, _, _ = rig.run(rig.h1, "DISKPART", stdin="list volume\n")
    assert "BV001" in out and "NTFS" in out
    out, _, _ = rig.run(rig.h1, "CHKDSK", "G:")
    assert "Volume label is BV001." in out and "found no problems" in out


def _as_format_1(rig: Rig, files: dict[str, bytes], *, tamper: str = "") -> None:
    """Rewrite bv001's partition as the agent before format 2 wrote it: ``snaplab-sqlar/1``, every
    file's hash its BLAKE2b-128 (``tamper``: that file's hash of other content)."""
    img = rig.image("bv001")
    conn = sqlite3.connect(img, isolation_level=None)
    conn.execute("UPDATE snaplab_volume SET value = 'snaplab-sqlar/1' WHERE key = 'format'")
    for name, data in files.items():
        h = hashlib.blake2b(data + (b"x" if name == tamper else b""), digest_size=16).digest()
        conn.execute("UPDATE snaplab_files SET hash = ? WHERE name = ?", (h, name))
    conn.close()
    start = (
        pt.read_layout(lambda o, n: rig.engine.read("bv001", o, n), 64 * MiB).volumes()[0].start * pt.SECTOR
    )
    rig.engine.write("bv001", start, img.read_bytes())


def test_a_volume_of_format_1_mounts_is_checked_and_flushes(rig: Rig, g: Path) -> None:
    """Volumes written before format 2 (BLAKE2b-128 file hashes) mount with their hashes checked; a
    flush writes XXH3-64 rows beside the old ones and marks the volume format 2."""
    (g / "d").mkdir()
    for i in range(6):
        (g / "d" / f"f{i}.bin").write_bytes(os.urandom(1000 + 30_000 * i))
    (g / "t.txt").write_text("text " * 5000)
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    files = archive(rig.image("bv001"))
    _as_format_1(rig, files, tamper="d/f3.bin")
    _, err, _ = rig.run(rig.h1, "iSMrc_mount", "-drv", "G:", code=1)
    assert NOT_NORMAL in err  # a file that does not match its old-format hash: not mountable
    assert not g.exists() or not any(g.iterdir())
    _as_format_1(rig, files)
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    assert files_of(g) == files
    os.utime(g / "t.txt")  # touched, same content: found so by its old-format hash
    touched = (g / "t.txt").stat().st_mtime_ns
    (g / "d" / "f1.bin").write_bytes(b"new content")
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    conn = sqlite3.connect(f"file:{rig.image('bv001')}?mode=ro", uri=True)
    assert dict(conn.execute("SELECT key, value FROM snaplab_volume"))["format"] == FORMAT_ID
    sizes = dict(conn.execute("SELECT name, length(hash) FROM snaplab_files"))
    conn.close()
    assert sizes["d/f1.bin"] == 8 and sizes["d/f0.bin"] == 16
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    assert files_of(g) == {**files, "d/f1.bin": b"new content"}
    assert (g / "t.txt").stat().st_mtime_ns == touched


# -- the file-system cache -----------------------------------------------------------------------------


def test_files_reach_the_volume_only_when_flushed(rig: Rig, g: Path) -> None:
    (g / "a.txt").write_text("hello\n" * 1000)
    (g / "docs").mkdir()
    (g / "docs" / "b.bin").write_bytes(os.urandom(300_000))
    (g / "empty").mkdir()
    (g / "link").symlink_to("docs/b.bin")
    os.chmod(g / "a.txt", 0o640)
    assert archive(rig.image("bv001")) == {}  # in the cache only
    rig.engine.create("bv001", "sv001_1")  # a snapshot before the flush has none of it
    flush(rig, rig.h1)
    on_volume = archive(rig.image("bv001"))
    assert sha(on_volume) == sha(files_of(g))
    assert archive(rig.image("sv001_1")) == {}
    conn = sqlite3.connect(rig.image("bv001"))
    rows = {n: (m, sz) for n, m, sz in conn.execute("SELECT name, mode, sz FROM sqlar")}
    assert rows["a.txt"] == (stat.S_IFREG | 0o640, 6000) and stat.S_ISDIR(rows["empty"][0])
    assert stat.S_ISLNK(rows["link"][0]) and rows["link"][1] == -1
    (stored,) = conn.execute("SELECT data FROM sqlar WHERE name = 'a.txt'").fetchone()
    assert len(stored) < 6000  # compressed, as sqlite3 -A does
    conn.close()
    program = shutil.which("sqlite3")  # the standard tool is part of the setup (README): required
    assert program, "the sqlite3 program is missing: install it (README setup: apt-get install -y sqlite3)"
    listed = subprocess.run(
        [program, str(rig.image("bv001")), "-A", "--list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert set(listed.stdout.split()) == {"a.txt", "docs", "docs/b.bin", "empty", "link"}
    # unmount and mount again: the same files, modes, exact mtimes, the link and the empty folder
    mtime = (g / "docs" / "b.bin").stat().st_mtime_ns
    before = sha(files_of(g))
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    assert not g.exists()
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    assert sha(files_of(g)) == before
    assert (g / "docs" / "b.bin").stat().st_mtime_ns == mtime
    assert stat.S_IMODE((g / "a.txt").stat().st_mode) == 0o640
    assert os.readlink(g / "link") == "docs/b.bin" and (g / "empty").is_dir()


def test_flush_writes_only_the_pages_that_changed(rig: Rig, g: Path) -> None:
    for i in range(200):
        (g / f"f{i:03d}.bin").write_bytes(os.urandom(20_000))
    (g / "big.bin").write_bytes(os.urandom(3 * MiB))
    first = flush(rig, rig.h1)
    assert first.pages > 60
    assert flush(rig, rig.h1).bytes == 0  # nothing changed: nothing written
    # one small file: its leaf pages (sqlar, snaplab_files) in place and, first, in the journal
    (g / "f100.bin").write_bytes(os.urandom(20_000))
    small = flush(rig, rig.h1)
    assert 1 <= small.pages <= 6, small
    (g / "new.bin").write_bytes(os.urandom(MiB))  # 1 MiB of new data: 17 pages of it and a few more
    one = flush(rig, rig.h1)
    assert one.bytes <= 2 * MiB and one.pages >= 16, one
    assert one.writes < one.pages  # adjacent pages go in one write
    (g / "big.bin").unlink()
    gone = flush(rig, rig.h1)
    assert gone.pages <= 10, gone  # freed pages are not rewritten (their rows' pages, twice)
    assert sha(archive(rig.image("bv001"))) == sha(files_of(g))


def test_a_flush_counts_what_it_wrote_and_archives_whole_second_times(
    rig: Rig, g: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The flush's log line counts new and changed files (operators read it), and the archive keeps
    sqlar's integer seconds, as `sqlite3 -A` expects (found by tools/mutate.py: a float mtime, a
    count going down or stuck at one passed every other test)."""
    caplog.set_level(logging.INFO, logger="snaplab.agent.filesystem")
    for name in ("a.txt", "b.txt"):
        (g / name).write_text(name)
        os.utime(g / name, ns=(1_700_000_000_987_654_321, 1_700_000_000_987_654_321))
    flush(rig, rig.h1)
    assert ": 2 created, 0 changed, 0 deleted;" in caplog.text
    conn = sqlite3.connect(f"file:{rig.image('bv001')}?mode=ro", uri=True)
    assert conn.execute("SELECT name, typeof(mtime), mtime FROM sqlar ORDER BY name").fetchall() == [
        ("a.txt", "integer", 1_700_000_000),
        ("b.txt", "integer", 1_700_000_000),
    ]
    conn.close()
    caplog.clear()
    for name in ("a.txt", "b.txt"):
        (g / name).write_text(name + " changed")
    flush(rig, rig.h1)
    assert ": 0 created, 2 changed, 0 deleted;" in caplog.text


def test_a_change_hidden_by_size_and_mtime_is_found_by_content(rig: Rig, g: Path) -> None:
    f = g / "same.txt"
    f.write_bytes(b"A" * 4096)
    flush(rig, rig.h1)
    st = f.stat()
    f.write_bytes(b"B" * 4096)  # same size, and the old mtime put back: only the content tells
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    flush(rig, rig.h1)
    assert archive(rig.image("bv001"))["same.txt"] == b"B" * 4096


def test_force_unmount_discards_only_what_was_not_flushed(rig: Rig, g: Path) -> None:
    (g / "kept.txt").write_text("flushed")
    flush(rig, rig.h1)
    (g / "lost.txt").write_text("never flushed")
    (g / "kept.txt").write_text("changed, not flushed")
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:", "-force")
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    assert files_of(g) == {"kept.txt": b"flushed"}
    # a plain unmount flushes
    (g / "later.txt").write_text("written before a plain unmount")
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    assert set(files_of(g)) == {"kept.txt", "later.txt"}


def test_the_cache_lives_as_long_as_the_file_system_is_mounted(rig: Rig, g: Path) -> None:
    """A second mount point is a link to the first; removing every mount point keeps the file system
    mounted (cache included) until one is added again."""
    (g / "x.txt").write_text("unflushed")
    vol = rig.h1.volume_at("G:")
    assert vol is not None
    rig.run(rig.h1, "MOUNTVOL", "C:\\mnt\\data\\", vol.name)
    folder = rig.h1.mount_path("C:\\mnt\\data\\")
    assert folder.is_symlink() and (folder / "x.txt").read_text() == "unflushed"
    rig.run(rig.h1, "MOUNTVOL", "G:", "/D")
    assert not g.exists() and folder.is_dir() and not folder.is_symlink()
    rig.run(rig.h1, "MOUNTVOL", "C:\\mnt\\data\\", "/D")
    assert not folder.exists()
    rig.run(rig.h1, "MOUNTVOL", "G:", vol.name)
    assert (g / "x.txt").read_text() == "unflushed"
    assert archive(rig.image("bv001")) == {}


def test_a_full_volume_refuses_the_flush(rig: Rig) -> None:
    rig.run(
        rig.h1,
        "DISKPART",
        stdin="select disk 1\ncreate partition primary size=1\nformat quick\nassign letter=S\n",
    )
    rig.run(rig.h1, "iSMvollist", "-cr")
    s = rig.h1.mount_path("S:")
    (s / "small.bin").write_bytes(os.urandom(100_000))
    rig.run(rig.h1, "iSMrc_flush", "-drv", "S:")
    (s / "big.bin").write_bytes(os.urandom(2 * MiB))
    _, err, _ = rig.run(rig.h1, "iSMrc_flush", "-drv", "S:", code=1)
    assert "iSM13630: Disk management operation failed. (There is not enough space on the disk.)" in err
    assert set(archive(rig.image("bv001"))) == {"small.bin"}  # the failed flush changed nothing


def test_not_ready_disk_refuses_flush_and_unmount(rig: Rig, g: Path) -> None:
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    rig.engine.create("bv001", "sv001_1")
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    rig.engine.link("lv001", "sv001_1")
    h = rig.h2.mount_path("H:")
    lv = next(v for d in rig.h2.disks() for v in d.volumes if d.ld_name == "lv001")
    rig.run(rig.h2, "MOUNTVOL", "H:", lv.name)
    rig.run(rig.h2, "iSMvollist", "-cr")
    (h / "on_lv.txt").write_text("cached on the backup server")
    rig.engine.unlink("lv001")  # the LV goes Not Ready under the mounted volume
    _, err, _ = rig.run(rig.h2, "iSMrc_flush", "-drv", "H:", code=1)
    assert NOT_NORMAL in err
    _, err, _ = rig.run(rig.h2, "iSMrc_umount", "-drv", "H:", code=1)
    assert NOT_NORMAL in err
    _, err, _ = rig.run(
        rig.h2, "iSMrc_umount", "-drv", "H:", "-force", code=1
    )  # the guide: restart the server
    assert NOT_NORMAL in err
    rig.engine.link("lv001", "sv001_1")  # Ready again: -force discards what the cache held
    rig.run(rig.h2, "iSMrc_umount", "-drv", "H:", "-force")
    assert not h.exists()
    rig.run(rig.h2, "iSMrc_mount", "-mvol", lv.name, "-drv", "H:")
    assert files_of(h) == {}


# -- damage and CHKDSK -----------------------------------------------------------------------------


def lost_files(out: str) -> list[str]:
    """The names CHKDSK /F lists after "N files were lost:" (one a line, indented by two blanks)."""
    lines = out.splitlines()
    at = next((i for i, line in enumerate(lines) if re.fullmatch(r"\d+ files? (were|was) lost:", line)), None)
    if at is None:
        return []
    names = []
    for line in lines[at + 1 :]:
        if not re.match(r"^  \S", line):
            break
        names.append(line[2:])
    return names


def torn_snapshot(rig: Rig, g: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Files flushed (state A), then more written and a flush stopped after 3 of its in-place page
    writes (its journal committed), a snapshot taken right then into sv001_1: (files of A, files of
    the cache at the torn flush)."""
    for i in range(30):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(1000 + 4000 * i))
    flush(rig, rig.h1)
    state_a = files_of(g)
    for i in range(30, 50):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(1000 + 4000 * i))
    for i in range(5):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(90_000))
    (rig.h1.state / "debug").mkdir(exist_ok=True)
    (rig.h1.state / "debug" / STOP_HOOK).write_text("3")
    _, err, _ = rig.run(rig.h1, "iSMrc_flush", "-drv", "G:", code=1)
    assert NOT_NORMAL in err
    assert not (rig.h1.state / "debug" / STOP_HOOK).exists()  # one-shot
    rig.engine.create("bv001", "sv001_1")
    return state_a, files_of(g)


def test_a_snapshot_in_the_middle_of_a_flush_is_damaged_and_chkdsk_repairs_it(rig: Rig, g: Path) -> None:
    state_a, cache = torn_snapshot(rig, g)
    conn = sqlite3.connect(rig.image("sv001_1"))
    try:
        assert conn.execute("PRAGMA quick_check").fetchone() != ("ok",)
    except sqlite3.DatabaseError as exc:
        assert "malformed" in str(exc)
    conn.close()
    # the business server's next flush completes its own volume
    flush(rig, rig.h1)
    assert sha(archive(rig.image("bv001"))) == sha(cache)
    # the backup server: the LV linked to the torn generation does not mount
    rig.engine.link("lv001", "sv001_1")
    lv = next(v for d in rig.h2.disks() for v in d.volumes if d.ld_name == "lv001")
    rig.run(rig.h2, "MOUNTVOL", "H:", lv.name)  # a drive letter is assigned; no files to show
    rig.run(rig.h2, "iSMvollist", "-cr")
    h = rig.h2.mount_path("H:")
    assert h.is_dir() and not any(h.iterdir())
    _, err, _ = rig.run(rig.h2, "iSMrc_flush", "-drv", "H:", code=1)
    assert NOT_NORMAL in err
    rig.run(rig.h2, "iSMrc_umount", "-drv", "H:")
    _, err, _ = rig.run(rig.h2, "iSMrc_mount", "-mvol", lv.name, "-drv", "H:", code=1)
    assert err.endswith(NOT_NORMAL + "\n")
    rig.run(rig.h2, "DISKPART", stdin=f"select disk {lv.disk.number}\nonline disk\n")
    rig.run(rig.h2, "MOUNTVOL", "H:", lv.name)
    out, _, _ = rig.run(rig.h2, "CHKDSK", "H:", code=3)
    assert "Running CHKDSK in read-only mode." in out
    assert "Windows has scanned the file system and found problems." in out
    assert "Run CHKDSK with the /F (fix) option to correct these." in out
    assert not any(h.iterdir())  # read-only: nothing changed
    # CHKDSK \\?\Volume{...} /F: the guide's form, without the trailing backslash
    out, _, _ = rig.run(rig.h2, "CHKDSK", lv.name.rstrip("\\"), "/F", code=1)
    assert "Windows has checked the file system and found problems." in out
    assert "Windows has made corrections to the file system." in out
    lost = lost_files(out)
    recovered = files_of(h)
    # every file it shows is a file the business server had (before or at the torn flush), whole
    for name, data in recovered.items():
        base = name.removeprefix("found.000/")
        assert data in (state_a.get(base), cache.get(base)), name
    # what is neither shown nor listed as lost was never there
    shown = {n.removeprefix("found.000/") for n in recovered}
    assert set(state_a) | set(cache) == shown | set(lost)
    assert lost and not set(lost) & shown
    out, _, _ = rig.run(rig.h2, "CHKDSK", "H:", code=0)
    assert "found no problems" in out
    rig.run(rig.h2, "iSMrc_flush", "-drv", "H:")
    rig.run(rig.h2, "iSMrc_umount", "-drv", "H:")


def test_chkdsk_of_a_raw_volume(rig: Rig) -> None:
    rig.run(rig.h1, "DISKPART", stdin="select disk 1\ncreate partition primary\nassign letter=R\n")
    out, _, _ = rig.run(rig.h1, "CHKDSK", "R:", code=3)
    assert "The type of the file system is RAW." in out and "CHKDSK is not available for RAW drives." in out


# -- partitions ------------------------------------------------------------------------------------


MULTI_SCRIPT = """select disk 1
create partition primary size=16
format quick label=E_DRIVE
assign letter=E
create partition extended
create partition logical size=16
format quick label=F_DRIVE
assign letter=F
"""


def test_every_partition_of_an_ld_goes_with_its_snapshot(rig: Rig) -> None:
    """Guide figure 3-1: two partitions of one LD (here a primary and a logical drive) both appear on
    the LV after link, each with its data, whatever drive the operator meant."""
    rig.run(rig.h1, "DISKPART", stdin=MULTI_SCRIPT)
    rig.run(rig.h1, "iSMvollist", "-cr")
    e, f = rig.h1.mount_path("E:"), rig.h1.mount_path("F:")
    (e / "e.txt").write_text("on E")
    (f / "f.txt").write_text("on F")
    for mp in ("E:", "F:"):
        rig.run(rig.h1, "iSMrc_flush", "-drv", mp)
    # SnapControl refuses an LD with several partitions unless iSMrpl.ini allows it (host-side check)
    _, err, _ = rig.run(
        rig.h1, "iSMsc_create", "-bv", "E:", "-bvflg", "drv", "-sv", "sv001_1", "-svflg", "ld", code=1
    )
    assert "iSM19050" in err and "(bv001)" in err
    rig.h1.etc.joinpath("iSMrpl.ini").write_text("[SNAPSHOT]\nMULTI_PARTITION = ON\n")
    _, err, _ = rig.run(
        rig.h1, "iSMsc_create", "-bv", "E:", "-bvflg", "drv", "-sv", "sv001_1", "-svflg", "ld", code=1
    )
    assert "iSM19050" not in err  # past the host's check (no manager in this rig to route to)
    with pytest.raises(Exception, match="iSM19050"):  # the array's own check (A11)
        rig.engine.create("bv001", "sv001_1")
    rig.engine.create("bv001", "sv001_1", allow_multi=True)
    with pytest.raises(Exception, match="iSM19050"):
        rig.engine.link("lv001", "sv001_1")
    rig.engine.link("lv001", "sv001_1", allow_multi=True)
    lv_disk = next(d for d in rig.h2.disks() if d.ld_name == "lv001")
    assert [p.kind for p in lv_disk.layout.volumes()] == ["primary", "logical"]  # type: ignore[union-attr]
    for v, mp in zip(lv_disk.volumes, ("J:", "K:"), strict=True):
        rig.run(rig.h2, "MOUNTVOL", mp, v.name)
    assert files_of(rig.h2.mount_path("J:")) == {"e.txt": b"on E"}
    assert files_of(rig.h2.mount_path("K:")) == {"f.txt": b"on F"}
    out, _, _ = rig.run(rig.h2, "DISKPART", stdin="list volume\n")
    assert "E_DRIVE" in out and "F_DRIVE" in out


def test_gpt_and_dynamic_disks_are_refused_as_the_guide_says(rig: Rig) -> None:
    # GPT: the WG LD bv002 takes a GPT table (DISKPART), and is refused until iSMrpl.ini allows GPT
    rig.engine.add_generations("bv002", 1, 1, sv_names=["sv002_1"])
    rig.run(
        rig.h1, "DISKPART", stdin="select disk 2\ncreate partition primary\nformat quick\nassign letter=W\n"
    )
    rig.run(rig.h1, "iSMvollist", "-cr")
    (rig.h1.mount_path("W:") / "w.txt").write_text("on a GPT disk")
    rig.run(rig.h1, "iSMrc_flush", "-drv", "W:")
    assert pt.read_layout(lambda o, n: rig.engine.read("bv002", o, n), 64 * MiB).scheme == "gpt"
    _, err, _ = rig.run(
        rig.h1, "iSMsc_create", "-bv", "bv002", "-bvflg", "ld", "-sv", "sv002_1", "-svflg", "ld", code=1
    )
    assert "iSM19052" in err and "GPT disk is permitted only with usage format WG and the GPT option" in err
    rig.h1.etc.joinpath("iSMrpl.ini").write_text("[SNAPSHOT]\nGPT = ON\n")
    _, err, _ = rig.run(
        rig.h1, "iSMsc_create", "-bv", "bv002", "-bvflg", "ld", "-sv", "sv002_1", "-svflg", "ld", code=1
    )
    assert "iSM19052" not in err
    rig.engine.create("bv002", "sv002_1", allow_gpt=True)
    assert archive(rig.image("sv002_1")) == {"w.txt": b"on a GPT disk"}
    # a GPT table on a WN LD is refused even with the option
    rig.run(rig.h1, "DISKPART", stdin="select disk 1\nconvert gpt\ncreate partition primary\n")
    rig.run(rig.h1, "iSMvollist", "-cr")
    _, err, _ = rig.run(
        rig.h1, "iSMsc_create", "-bv", "bv001", "-bvflg", "ld", "-sv", "sv001_1", "-svflg", "ld", code=1
    )
    assert "iSM19052" in err and "(bv001)" in err
    # dynamic disks: never
    rig.h1.etc.joinpath("iSMrpl.ini").write_text("[SNAPSHOT]\nGPT = ON\nMULTI_PARTITION = ON\n")
    rig.run(
        rig.h1,
        "DISKPART",
        stdin="select disk 1\nclean\nconvert mbr\ncreate partition primary\nconvert dynamic\n",
    )
    rig.run(rig.h1, "iSMvollist", "-cr")
    _, err, _ = rig.run(
        rig.h1, "iSMsc_create", "-bv", "bv001", "-bvflg", "ld", "-sv", "sv001_1", "-svflg", "ld", code=1
    )
    assert "iSM19051: Dynamic disk volume is not supported. (bv001)" in err
    with pytest.raises(Exception, match="iSM19051"):
        rig.engine.create("bv001", "sv001_1", allow_multi=True, allow_gpt=True)


# -- disk signatures (A10) ---------------------------------------------------------------------------


def uniqueid(rig: Rig, host: Host, disk: int) -> str:
    out, _, _ = rig.run(host, "DISKPART", stdin=f"select disk {disk}\nuniqueid disk\n")
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Disk ID:"))


def test_signatures_of_link_unlink_and_restore(rig: Rig, g: Path) -> None:
    bv_sig = uniqueid(rig, rig.h1, 1)
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    rig.engine.create("bv001", "sv001_1")
    assert dl.read_signature(rig.engine.read("sv001_1", 0, 512)) == pt.parse_signature(bv_sig)
    rig.engine.link("lv001", "sv001_1")
    lv_disk = next(d for d in rig.h2.disks() if d.ld_name == "lv001")
    lv_sig = uniqueid(rig, rig.h2, lv_disk.number)
    assert lv_sig != bv_sig  # link writes the LV's managed signature to the SV (A10)
    rig.engine.unlink("lv001")
    assert dl.read_signature(rig.engine.read("sv001_1", 0, 512)) == pt.parse_signature(bv_sig)  # written back
    # restore writes the BV's pre-copy signature back
    rig.run(rig.h1, "DISKPART", stdin="select disk 1\nuniqueid disk id=0A0B0C0D\n")
    rig.engine.restore("bv001", "sv001_1")
    rig.engine.wait("bv001", "sv001_1", cond="active", timeout=30)
    assert uniqueid(rig, rig.h1, 1) == "0A0B0C0D"


def test_read_only_folders_and_files_round_trip(rig: Rig, g: Path) -> None:
    (g / "ro").mkdir()
    (g / "ro" / "inside.txt").write_text("in a read-only folder")
    os.chmod(g / "ro" / "inside.txt", 0o444)
    os.chmod(g / "ro", 0o555)
    flush(rig, rig.h1)
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:")
    assert not g.exists()
    rig.run(rig.h1, "iSMrc_mount", "-drv", "G:")
    assert (g / "ro" / "inside.txt").read_text() == "in a read-only folder"
    assert stat.S_IMODE((g / "ro").stat().st_mode) == 0o555
    rig.run(rig.h1, "iSMrc_umount", "-drv", "G:", "-force")
    assert not g.exists()


def test_a_restart_reads_the_volumes_anew_and_a_shutdown_flushes(rig: Rig, g: Path) -> None:
    (g / "flushed.txt").write_text("on the volume")
    flush(rig, rig.h1)
    (g / "cached.txt").write_text("only in the cache when the server dies")
    state, arrays = rig.h1.state, dict(rig.h1.arrays)
    rig.h1.close()  # the server dies: no flush
    host = Host("h1", state, arrays=arrays)
    with host.command():
        host.boot()
    assert files_of(g) == {"flushed.txt": b"on the volume"}
    (g / "cached.txt").write_text("flushed by a graceful shutdown")
    with host.command():
        host.flush_all()  # what the agent does on SIGTERM
    host.close()
    rig.h1 = Host("h1", state, arrays=arrays)
    with rig.h1.command():
        rig.h1.boot()
    assert set(files_of(g)) == {"flushed.txt", "cached.txt"}
