"""The flush's redo journal (agent/fs/journal.py, writeback.py) and the caches a stop keeps (kept.py).

In one process, as tests/test_filesystem.py: an ArrayEngine over gRPC and Host objects running their
commands as the agent does. A host "dies" in the middle of a flush when its block writes stop (the
write in progress reaches the array only partly, cut inside a page); a new Host on the same state
folder is the restarted server. Real SIGKILLs of the agent daemon: tests/test_flush_crash.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from snaplab.agent.daemon import load_commands, run_command
from snaplab.agent.fs import journal, kept
from snaplab.agent.fs.archive import PAGE
from snaplab.agent.fs.export import export_partition
from snaplab.agent.fs.writeback import STOP_HOOK
from snaplab.agent.host import Host
from snaplab.array.engine import ArrayEngine
from snaplab.array.servicer import SERVICE_NAME, add_to_server

from snaplab.common.rpc import AioServerThread

pytestmark = pytest.mark.timeout(300)

MiB = 1024 * 1024
ARRAY = "A"
BV_SCRIPT = "select disk 1\ncreate partition primary\nformat fs=ntfs label=BV001 quick\nassign letter=G\n"
NOT_NORMAL = "iSM13639: Specified path is not normal status."


class Died(BaseException):  # not an error a command could report: the host is gone
    """The host died in the middle of a block write."""


@dataclass
class Rig:
    root: Path
    engine: ArrayEngine
    server: Any
    target: str
    h1: Host
    h2: Host

    def run(self, host: Host, *argv: str, stdin: str = "", code: int | None = 0) -> tuple[str, str, int]:
        with host.command():
            out, err, rc = run_command(host, list(argv), stdin)
        if code is not None:
            assert rc == code, f"{argv}: exit {rc}\n{out}{err}"
        return out, err, rc

    def restart(self, *, graceful: bool = False) -> Host:
        """The business server starts again on its state (after a crash unless ``graceful``)."""
        if graceful:
            with self.h1.command():
                self.h1.flush_all()
        self.h1.close()
        self.h1 = Host("h1", self.root / "h1", arrays={ARRAY: self.target})
        with self.h1.command():
            self.h1.boot()
        return self.h1

    def image(self, ld: str, *, journal: bool = False) -> Path:
        """``snaplab export``: the partition's database, with its own committed journal applied."""
        dest = self.root / f"{ld}-{os.urandom(3).hex()}.db"
        key = (ARRAY, self.engine.ld(ld).number_text) if journal else None
        export_partition(
            lambda o, n: self.engine.read(ld, o, n), self.engine.ld(ld).capacity, 1, dest, ld=key
        )
        return dest


def tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


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
    e.add_generations("bv001", 1, 2, sv_names=["sv001_1", "sv001_2"])
    e.bind_lv("bv001", "lv001", number=0x40)
    e.register_host("h1", [], ["P0"])
    e.register_host("h2", [], ["P1"])
    e.assign_access("bv001", port="P0")
    e.assign_access("lv001", port="P1")
    server = AioServerThread(
        lambda s: add_to_server(e, s), tls=None, service_names=[SERVICE_NAME], insecure_test_identities=True
    )
    target = f"127.0.0.1:{server.port}"
    r = Rig(
        tmp_path,
        e,
        server,
        target,
        Host("h1", tmp_path / "h1", arrays={ARRAY: target}),
        Host("h2", tmp_path / "h2", arrays={ARRAY: target}, role="backup"),
    )
    try:
        r.run(r.h1, "DISKPART", stdin=BV_SCRIPT)
        r.run(r.h1, "iSMvollist", "-cr")
        yield r
    finally:
        r.h1.close()
        r.h2.close()
        r.server.stop(0)
        e.close()


def mutate(g: Path, rng: random.Random, step: int) -> None:
    """Create, rewrite and delete files of every size class (inline rows, overflow rows)."""
    names = sorted(p for p in g.rglob("*") if p.is_file())
    for p in rng.sample(names, min(len(names), rng.randint(0, 4))):
        p.unlink()
    for p in rng.sample(names, min(len(names), rng.randint(1, 4))):
        if p.exists():
            p.write_bytes(rng.randbytes(rng.choice([300, 5000, 70_000, 400_000])))
    for i in range(rng.randint(1, 5)):
        folder = g / rng.choice(["", "a", "a/b", "c"])
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([100, 3000, 20_000, 90_000, 700_000])
        data = rng.randbytes(size) if rng.random() < 0.5 else (f"line {step} {i}\n" * (size // 12)).encode()
        (folder / f"f{step:03d}_{i}.bin").write_bytes(data)


def dying_writes(host: Host, after: int, cut: int) -> None:
    """From now on the host's ``after``-th block write reaches the array only for its first ``cut``
    bytes (or all, when shorter), and then the host is dead. ``cut`` is a number of whole pages: the
    array commits each chunk of a write whole (array/servicer.py) and a chunk is whole pages, so a
    host's death never tears a page (see test_a_page_is_never_torn_by_the_hosts_death)."""
    real = host.write_disk
    count = [0]

    def write(disk, offset: int, data: bytes) -> None:  # type: ignore[no-untyped-def]
        if count[0] >= after:
            if cut:
                real(disk, offset, data[:cut])
            raise Died()
        count[0] += 1
        real(disk, offset, data)

    host.write_disk = write  # type: ignore[method-assign]


def test_a_crash_at_any_write_of_a_flush_leaves_the_old_or_the_new_flush(rig: Rig) -> None:
    """A host that dies at the k-th block write of a flush (the write itself lost or cut after some
    pages): the restarted server mounts the volume without repair and shows exactly the files of the
    last flush or of the dying one; never a mix, nothing flushed before is lost."""
    rng = random.Random(int(os.environ.get("SNAPLAB_JOURNAL_SEED", "8")))
    g = rig.h1.mount_path("G:")
    mutate(g, rng, 0)
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    seen = {"died before the commit": 0, "died after the commit": 0, "flushed": 0}
    for step in range(1, 41):
        before = tree(g)
        mutate(g, rng, step)
        after = tree(g)
        k = rng.randrange(9)
        dying_writes(rig.h1, k, rng.choice([0, 0, PAGE, 3 * PAGE]))
        try:
            with rig.h1.command():
                run_command(rig.h1, ["iSMrc_flush", "-drv", "G:"], "")
            died = False
        except Died:
            died = True
        rig.restart()
        got = tree(g)
        assert got in (before, after), f"step {step}: died at write {k}: neither the old nor the new flush"
        assert died or got == after
        seen[
            "flushed" if not died else "died after the commit" if got == after else "died before the commit"
        ] += 1
        out, _, code = rig.run(rig.h1, "CHKDSK", "G:", code=None)
        assert code == 0 and "found no problems" in out, out
    assert all(seen.values()), seen


def test_a_flush_stopped_in_place_is_replayed_by_its_own_ld_not_by_a_copy(rig: Rig) -> None:
    """The debug hook stops a flush after 2 in-place pages, its journal committed. A snapshot taken
    then holds torn pages: the LV linked to it does not replay the BV's journal (iSM13639, CHKDSK /F
    repairs it), while the business server's own volume mounts whole after a crash (replayed)."""
    g = rig.h1.mount_path("G:")
    for i in range(30):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(1000 + 4000 * i))
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    for i in range(30, 50):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(1000 + 4000 * i))
    for i in range(5):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(90_000))
    cache = tree(g)
    (rig.h1.state / "debug").mkdir(exist_ok=True)
    (rig.h1.state / "debug" / STOP_HOOK).write_text("2")
    _, err, _ = rig.run(rig.h1, "iSMrc_flush", "-drv", "G:", code=1)
    assert NOT_NORMAL in err
    rig.engine.create("bv001", "sv001_1")
    bv_key = rig.h1.volume_at("G:").key  # type: ignore[union-attr]
    dev = Device(rig.engine, "bv001", rig.h1.volume_at("G:"))  # type: ignore[arg-type]
    assert journal.pending(dev, bv_key).state == "replayed"  # committed, not all in place
    # the copy: torn, and not replayed (its export neither)
    for image in (rig.image("sv001_1"), rig.image("sv001_1", journal=True), rig.image("bv001")):
        conn = sqlite3.connect(image)
        with pytest.raises(sqlite3.DatabaseError):
            assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
            raise sqlite3.DatabaseError("quick_check passed")
        conn.close()
    # the export of the BV itself applies its journal: the new flush, whole
    assert archive_tree(rig.image("bv001", journal=True)) == cache
    rig.engine.link("lv001", "sv001_1")
    lv = next(v for d in rig.h2.disks() for v in d.volumes if d.ld_name == "lv001")
    rig.run(rig.h2, "MOUNTVOL", "H:", lv.name)
    h = rig.h2.mount_path("H:")
    assert h.is_dir() and not any(h.iterdir())  # not mountable: a drive letter, no files
    out, _, _ = rig.run(rig.h2, "CHKDSK", "H:", code=3)
    assert "Windows has scanned the file system and found problems." in out
    # the business server crashes now: its restart replays its own journal
    rig.restart()
    assert tree(g) == cache
    out, _, _ = rig.run(rig.h1, "CHKDSK", "G:")
    assert "found no problems" in out


@dataclass
class Device:
    """A partition of an LD read and written on the engine directly (journal.Device)."""

    engine: ArrayEngine
    ld: str
    volume: object

    @property
    def size(self) -> int:
        return self.volume.size  # type: ignore[attr-defined]

    def read(self, offset: int, length: int) -> bytes:
        return self.engine.read(self.ld, self.volume.start + offset, length)  # type: ignore[attr-defined]

    def write(self, offset: int, data: bytes) -> None:
        self.engine.write(self.ld, self.volume.start + offset, data)  # type: ignore[attr-defined]


def test_a_hook_written_while_the_lazy_writer_flushes_is_left_to_the_command(rig: Rig) -> None:
    """The lazy writer looks for a waiting debug hook before it takes the host; one written after
    that look must still stop the command's flush, never the lazy writer's own (it raced in CI)."""
    g = rig.h1.mount_path("G:")
    for i in range(20):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(1000 + 4000 * i))
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    (g / "ripe.bin").write_bytes(os.urandom(200_000))
    hook = rig.h1.state / "debug" / STOP_HOOK
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("1")  # as if written just after the lazy writer's look
    with rig.h1.command():
        assert rig.h1.fs.lazy_write(lambda _name, _st: True) == 1  # wrote, not stopped by the hook
    assert hook.read_text() == "1"  # still there, for the command's flush
    for i in range(5):
        (g / f"f{i:02d}.bin").write_bytes(os.urandom(90_000))
    _, err, _ = rig.run(rig.h1, "iSMrc_flush", "-drv", "G:", code=1)
    assert NOT_NORMAL in err and not hook.exists()


def test_a_page_is_never_torn_by_the_hosts_death() -> None:
    """The journal's deltas need a page to be old or new, never a mix: a host's write is streamed in
    chunks of whole pages (each committed whole by the array), starting on a page of its volume."""
    from snaplab.san.array_client import DEFAULT_CHUNK

    assert DEFAULT_CHUNK % PAGE == 0


def test_a_flush_whose_writes_fail_is_completed_by_the_next(rig: Rig) -> None:
    """The array refuses the k-th write of a flush (the command fails, the host lives on): the cache
    and the working copy keep what was not written, and the next flush writes exactly that."""
    from snaplab.agent.commands.base import CommandError
    from snaplab.common.errors import E

    rng = random.Random(3)
    g = rig.h1.mount_path("G:")
    real = rig.h1.write_disk
    for k in (0, 1, 2, 3, 5):
        mutate(g, rng, k)
        cache = tree(g)
        calls = [0]

        def refusing(disk, offset, data, k=k):  # type: ignore[no-untyped-def]
            calls[0] += 1
            if calls[0] > k:
                raise CommandError(E.PATH_NOT_NORMAL)
            real(disk, offset, data)

        rig.h1.write_disk = refusing  # type: ignore[method-assign]
        _, err, code = rig.run(rig.h1, "iSMrc_flush", "-drv", "G:", code=None)
        rig.h1.write_disk = real  # type: ignore[method-assign]
        assert code in (0, 1)
        rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
        rig.restart()  # read anew from the volume
        assert tree(g) == cache, f"refused from write {k}"


# -- caches a stop could not flush (kept.py) ----------------------------------------------------------


def array_down(rig: Rig) -> None:
    """The array stops answering (its server goes; the engine and its state stay)."""
    rig.server.stop(0)


def array_up(rig: Rig) -> None:
    rig.server = AioServerThread(
        lambda s: add_to_server(rig.engine, s),
        tls=None,
        service_names=[SERVICE_NAME],
        insecure_test_identities=True,
    )
    rig.target = f"127.0.0.1:{rig.server.port}"


def stop_with_the_array_down(rig: Rig) -> list:
    """h1 stops (what its agent does on SIGTERM) while the array does not answer: the caches it kept."""
    array_down(rig)
    with rig.h1.command():
        kept_now = rig.h1.flush_all()
    rig.h1.close()
    return kept_now


def start_h1(rig: Rig) -> None:
    """h1's agent starts again on its state folder (boot: its disks and kept caches)."""
    rig.h1 = Host("h1", rig.root / "h1", arrays={ARRAY: rig.target})
    with rig.h1.command():
        rig.h1.boot()


def test_a_stop_with_the_array_down_keeps_the_cache_and_the_next_start_flushes_it(rig: Rig) -> None:
    g = rig.h1.mount_path("G:")
    (g / "flushed.txt").write_text("on the volume")
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    (g / "flushed.txt").write_text("changed, not flushed")
    (g / "docs").mkdir()
    (g / "docs" / "new.bin").write_bytes(os.urandom(200_000))
    cache = tree(g)
    kept_now = stop_with_the_array_down(rig)
    assert len(kept_now) == 1
    u = kept_now[0]
    assert u.host == "h1" and u.mount_points == ["G:"] and u.ld == "bv001" and "iSM31065" in u.reason
    assert u.entries == {"flushed.txt": "changed", "docs": "new", "docs/new.bin": "new"}
    text = "\n".join(u.lines())
    assert "h1: G: not flushed (" in text and "A bv001" in text and "docs/new.bin (new)" in text
    assert "iSM31065: Disk array does not respond. (A)" in text
    assert kept.report(rig.h1.state, "h1") == kept_now  # what `snaplab lab down` reads
    # the next start, with the array still down: the cache stays kept
    rig.h1 = Host("h1", rig.root / "h1", arrays={ARRAY: rig.target})
    with rig.h1.command():
        rig.h1.boot()
        assert rig.h1.flush_all() == []  # nothing mounted, nothing lost: still kept
    assert [x.where for x in kept.report(rig.h1.state, "h1")] == [u.where]
    rig.h1.close()
    # the array is back: the start takes the cache back, and a flush writes it
    array_up(rig)
    start_h1(rig)
    assert tree(g) == cache
    assert kept.report(rig.h1.state, "h1") == []
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    rig.restart()  # a crash now loses nothing: it is on the volume
    assert tree(g) == cache


def test_a_cache_an_older_agent_kept_is_taken_back(rig: Rig) -> None:
    """A manifest written before the XXH3 page digests (no ``page_digest``, BLAKE2b-128 digests):
    the volume as read is compared with it by BLAKE2b, and the cache is taken back, not set aside."""
    g = rig.h1.mount_path("G:")
    (g / "flushed.txt").write_text("on the volume")
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    (g / "new.bin").write_bytes(os.urandom(100_000))
    cache = tree(g)
    assert len(stop_with_the_array_down(rig)) == 1
    (path,) = (rig.h1.state / "fscache" / kept.KEPT).glob("*.json")
    m = json.loads(path.read_text())
    assert m.pop("page_digest") == "xxh3-128"
    mine = base64.b64decode(m["digests"])
    start = int(m["key"][2])
    old = b"".join(
        d
        if d == b"\xff" * 16
        else hashlib.blake2b(rig.engine.read("bv001", start + i * PAGE, PAGE), digest_size=16).digest()
        for i, d in enumerate(mine[j : j + 16] for j in range(0, len(mine), 16))
    )
    m["digests"] = base64.b64encode(old).decode()
    path.write_text(json.dumps(m))
    array_up(rig)
    start_h1(rig)
    assert tree(g) == cache
    assert kept.report(rig.h1.state, "h1") == []
    assert not (rig.h1.state / "unflushed").exists()


def test_a_kept_cache_is_set_aside_when_the_volume_changed_while_the_server_was_down(rig: Rig) -> None:
    """The cache was built on a volume that a restore replaced while the server was down: it cannot
    be applied to it; its files are set aside under <state>/unflushed/ and the volume mounts as it is."""
    g = rig.h1.mount_path("G:")
    rig.engine.create("bv001", "sv001_1")  # the empty file system
    (g / "a.txt").write_text("flushed")
    rig.run(rig.h1, "iSMrc_flush", "-drv", "G:")
    (g / "b.txt").write_text("in the cache only")
    assert len(stop_with_the_array_down(rig)) == 1
    array_up(rig)
    rig.engine.restore("bv001", "sv001_1")  # while the server is down
    rig.engine.wait("bv001", "sv001_1", timeout=30)
    start_h1(rig)
    assert tree(g) == {}
    (aside,) = (rig.h1.state / "unflushed").iterdir()
    assert tree(aside) == {"a.txt": sha(b"flushed"), "b.txt": sha(b"in the cache only")}
    assert kept.report(rig.h1.state, "h1") == []
    trace = "".join(p.read_text() for p in (rig.h1.state / "etc").glob("iSM_Log*.txt"))
    assert "was set aside in" in trace


def archive_tree(image: Path) -> dict[str, str]:
    """sha256 of the files of an sqlar image, read with nothing but Python's sqlite3."""
    conn = sqlite3.connect(f"file:{image}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT name, sz, data FROM sqlar WHERE data IS NOT NULL AND sz >= 0").fetchall()
    finally:
        conn.close()
    return {n: sha(zlib.decompress(d) if len(d) < sz else d) for n, sz, d in rows}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
