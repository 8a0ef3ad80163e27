"""A mount's streamed extraction (agent/fs/extract.py, btree.py) against SQLite's reading of the same archive."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from snaplab.agent.fs import btree
from snaplab.agent.fs.archive import (
    PAGE,
    SQLAR_DDL,
    Damaged,
    file_hash,
    new_database,
    pack,
    page_digest,
    volume_form,
)
from snaplab.agent.fs.extract import extract, mount_image
from snaplab.agent.fs.session import open_db


class FileDevice:
    """A volume that is a file; ``piece`` > 0: it streams in pieces of that many bytes."""

    def __init__(self, path: Path, size: int, piece: int = 0) -> None:
        self.path, self._size, self.piece = path, size, piece
        self.streamed = 0

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length).ljust(length, b"\0")

    def write(self, offset: int, data: bytes) -> None:
        raise AssertionError("a mount does not write")

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        for off in range(offset, offset + length, self.piece):
            self.streamed += 1
            yield self.read(off, min(self.piece, offset + length - off))


def _archive(path: Path, rng: random.Random, *, ddl: str = "", bad_hash: str = "") -> dict[str, bytes]:
    """An archive as a flush writes it: folders, files of every size class (inline, a few overflow
    pages, many), text and random, empty, a symbolic link, names that are not ASCII."""
    new_database(path, "T", 1)
    conn = sqlite3.connect(path, isolation_level=None)
    if ddl:
        conn.execute("DROP TABLE sqlar")
        conn.execute(ddl)
    files: dict[str, bytes] = {}
    conn.execute("BEGIN")
    for d in ("a", "a/b", "ü"):
        conn.execute("INSERT INTO sqlar(name, mode, mtime, sz, data) VALUES (?, ?, 1, 0, NULL)",
                     (d, stat.S_IFDIR | 0o755))
    for i in range(400):
        size = rng.choice([0, 10, 3000, 9000, 70_000, 200_000, 1_000_000]) + rng.randint(0, 100)
        data = rng.randbytes(size) if i % 2 else (b"word%d " % i * (size // 6 + 1))[:size]
        name = ("a/b/" if i % 3 == 0 else "ü/" if i % 3 == 1 else "") + f"f{i:03d}-é.bin"
        files[name] = data
        conn.execute("INSERT INTO sqlar(name, mode, mtime, sz, data) VALUES (?, ?, ?, ?, ?)",
                     (name, stat.S_IFREG | 0o640, 1000 + i, size, pack(data)))
        h = file_hash(data + (b"x" if name == bad_hash else b""))
        conn.execute("INSERT INTO snaplab_files(name, mtime_ns, hash) VALUES (?, ?, ?)",
                     (name, (1000 + i) * 10**9 + i, h))
    conn.execute("INSERT INTO sqlar(name, mode, mtime, sz, data) VALUES ('link', ?, 5, -1, 'a/b')",
                 (stat.S_IFLNK | 0o777,))
    conn.execute("COMMIT")
    conn.close()
    img = bytearray(Path(path).read_bytes())
    img[: PAGE] = volume_form(bytes(img[:PAGE]))
    Path(path).write_bytes(img)
    return files


def _tree(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        body = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else b""
        out[p.relative_to(root).as_posix()] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, body)
    return out


def _sqlite_pass(img: Path, tmp: Path) -> tuple[dict, dict]:
    db = tmp / "ref.db"
    db.write_bytes(img.read_bytes())
    conn = open_db(db)
    root = tmp / "ref"
    root.mkdir()
    known = extract(conn, root, True, 7)
    conn.close()
    return known, _tree(root)


@pytest.mark.parametrize("piece", [0, 4 << 20, 100_000])
def test_the_streamed_pass_extracts_what_sqlite_reads(tmp_path: Path, piece: int, caplog) -> None:
    img = tmp_path / "vol.img"
    files = _archive(img, random.Random(piece))
    size = img.stat().st_size + 10 * PAGE
    dev = FileDevice(img, size, piece)
    if piece:
        dev.read_chunks = dev.stream  # type: ignore[attr-defined]
    root = tmp_path / "mnt"
    root.mkdir()
    caplog.set_level(logging.INFO, "snaplab.agent.filesystem")
    n, digests, known, conn = mount_image(dev, tmp_path / "w.db", root, 7)
    conn.close()
    assert "through SQLite" not in caplog.text and "disagree" not in caplog.text  # the streamed pass did it
    assert not piece or dev.streamed > 1
    image = img.read_bytes()
    assert n * PAGE == len(image)
    assert bytes(digests) == b"".join(page_digest(image[p : p + PAGE]) for p in range(0, len(image), PAGE))
    ref_known, ref_tree = _sqlite_pass(img, tmp_path)
    assert known == ref_known
    assert _tree(root) == ref_tree
    assert {k: v[2] for k, v in ref_tree.items() if k in files} == files


CLI_DDL = """CREATE TABLE IF NOT EXISTS sqlar(
  name TEXT PRIMARY KEY,  -- name of the file
  mode INT,               -- access permissions
  mtime INT,              -- last modification time
  sz INT,                 -- original file size
  data BLOB               -- compressed content
)"""


def _mount_with_ddl(tmp_path: Path, seed: int, ddl: str, caplog) -> bool:
    """Mount an archive whose sqlar was made by ``ddl``; assert it extracts what SQLite's pass does,
    and return whether the mount fell back to that pass."""
    img = tmp_path / "vol.img"
    _archive(img, random.Random(seed), ddl=ddl)
    root = tmp_path / "mnt"
    root.mkdir()
    caplog.set_level(logging.INFO, "snaplab.agent.filesystem")
    _, _, known, conn = mount_image(FileDevice(img, img.stat().st_size), tmp_path / "w.db", root, 7)
    conn.close()
    ref_known, ref_tree = _sqlite_pass(img, tmp_path)
    assert known == ref_known and _tree(root) == ref_tree
    return "through SQLite" in caplog.text


def test_an_archive_made_by_the_sqlite3_tool_is_streamed(tmp_path: Path, caplog) -> None:
    """sqlar as ``sqlite3 -A`` creates it (comments, layout) is the same table to the reader."""
    assert not _mount_with_ddl(tmp_path, 5, CLI_DDL, caplog)


def test_a_table_the_reader_does_not_know_is_extracted_through_sqlite(tmp_path: Path, caplog) -> None:
    assert _mount_with_ddl(tmp_path, 1, SQLAR_DDL.replace("data BLOB", "data BLOB, extra INT"), caplog)


def test_a_file_that_does_not_match_its_hash_fails_the_mount(tmp_path: Path) -> None:
    img = tmp_path / "vol.img"
    _archive(img, random.Random(2), bad_hash="a/b/f201-é.bin")
    root = tmp_path / "mnt"
    root.mkdir()
    with pytest.raises(Damaged, match="does not match its hash"):
        mount_image(FileDevice(img, img.stat().st_size), tmp_path / "w.db", root, 7)


def test_a_damaged_page_fails_the_mount_on_either_path(tmp_path: Path) -> None:
    img = tmp_path / "vol.img"
    _archive(img, random.Random(3))
    data = bytearray(img.read_bytes())
    data[5 * PAGE : 5 * PAGE + 200] = os.urandom(200)  # a b-tree page's header and cells
    img.write_bytes(data)
    root = tmp_path / "mnt"
    root.mkdir()
    with pytest.raises(Damaged):
        mount_image(FileDevice(img, img.stat().st_size), tmp_path / "w.db", root, 7)


def test_the_reader_refuses_what_it_does_not_read(tmp_path: Path) -> None:
    img = tmp_path / "vol.img"
    _archive(img, random.Random(4))
    n = img.stat().st_size // PAGE
    fd = os.open(img, os.O_RDWR)
    pages = btree.Pages(fd, n)
    try:
        pages.advance(n * PAGE)
        tree, sqlar_root, files_root = btree.open_tables(pages)
        assert files_root is not None
        with pytest.raises(btree.Unsupported):
            next(iter(tree.rows(n + 1)))  # past the end
        with pytest.raises(btree.Unsupported):
            for cell in tree.rows(sqlar_root):
                tree.record(cell, 4)  # sqlar's rows have five columns
    finally:
        pages.close()
        os.close(fd)


def test_a_file_of_more_pieces_than_one_writev_takes_is_written_whole(tmp_path: Path) -> None:
    """A stored file's pieces of pages go in writev calls of at most IOV_MAX (a 64 MiB file has more)."""
    from snaplab.agent.fs.extract import IOV_MAX, _write_file

    pieces = [memoryview(bytes([i % 251]) * 100) for i in range(2 * IOV_MAX + 7)]
    path = tmp_path / "f"
    _write_file(str(path), pieces, 0o640, 5 * 10**9, 0o022)
    st = path.stat()
    assert path.read_bytes() == b"".join(pieces)
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o640, 5 * 10**9)
    _write_file(str(path), b"", 0o600, 6 * 10**9, 0o022)  # and an empty one, over it
    assert path.read_bytes() == b"" and path.stat().st_mtime_ns == 6 * 10**9


def test_the_collector_is_paused_while_extracting_and_back_after(tmp_path: Path) -> None:
    """The cyclic collector is off during a mount's extraction (each collection held the GIL the
    workers wait for) and on again after it, a failed one included; left off if it was off."""
    import gc

    from snaplab.agent.fs import extract as ex

    img = tmp_path / "vol.img"
    _archive(img, random.Random(3))
    seen = []
    real = ex._unpack_files

    def spy(jobs, umask):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return real(jobs, umask)

    ex._unpack_files = spy  # type: ignore[assignment]
    try:
        assert gc.isenabled()
        for n, h in enumerate((None, "a/b/f000-é.bin")):
            root = tmp_path / f"mnt{n}"
            root.mkdir()
            dev = FileDevice(img, img.stat().st_size)
            if h is None:
                mount_image(dev, tmp_path / f"w{n}.db", root, 7)[3].close()
            else:  # a file that fails its hash on both paths: the mount fails
                bad = tmp_path / "bad.img"
                _archive(bad, random.Random(3), bad_hash=h)
                with pytest.raises(Damaged):
                    mount_image(FileDevice(bad, bad.stat().st_size), tmp_path / f"w{n}.db", root, 7)
            assert gc.isenabled()
        assert seen and not any(seen)
        gc.disable()  # someone else's choice is left alone
        try:
            root = tmp_path / "mnt9"
            root.mkdir()
            mount_image(FileDevice(img, img.stat().st_size), tmp_path / "w9.db", root, 7)[3].close()
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        ex._unpack_files = real  # type: ignore[assignment]
