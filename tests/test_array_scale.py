"""The array's memory and restart do not grow with the data written (issue 12, array/blockstore.py):
block maps are read from array.db on demand into a bounded cache, a restart reads only the blocks
with more than one version (``kept``), and a family's free list is read at its first allocation."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from snaplab.array import blockstore
from snaplab.array.engine import ArrayEngine
from snaplab.array.model import DSV

from snaplab.common.errors import SnapLabError
from snaplab.san.blocks import BLOCK

MiB = 1 << 20
CAP = 8  # block maps kept in memory in these tests (the daemon's is blockstore.CACHE_BLOCKS)


@pytest.fixture(autouse=True)
def small_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blockstore.BlockCache.__init__, "__defaults__", (CAP,))


def _engine(path: Path, svs: int = 4) -> ArrayEngine:
    e = ArrayEngine(path, name="A")
    if not e.pools:
        e.set_licence(DSV, 1 << 30)
        e.bind_pool(1, "DYN1", "dynamic", 256 * MiB)
        e.build_sra(1, 64 * MiB, sdv_name="SDV1")
        e.bind_ld("bv001", 64 * BLOCK, 1, "LX")
        e.add_generations("bv001", 1, svs, sv_names=[f"sv{i:02d}" for i in range(svs)])
    return e


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[ArrayEngine]:
    """``_engine(path)``, closed when the block ends, also when it fails."""
    e = _engine(path)
    try:
        yield e
    finally:
        e.close()


def _block(lb: int, v: int) -> bytes:
    return bytes([lb % 251 + 1, v % 251 + 1]) * (BLOCK // 2)


@pytest.mark.timeout(60)
def test_maps_beyond_the_cache_read_back_and_survive_a_restart(tmp_path: Path) -> None:
    want: dict[int, bytes] = {}
    with _opened(tmp_path / "a") as e:
        for lb in range(40):  # 5x the cache
            want[lb] = _block(lb, 0)
            e.write("bv001", lb * BLOCK, want[lb])
        e.create("bv001", "sv00")
        for lb in range(0, 40, 3):  # copy-on-write: sv00 keeps the old versions
            e.write("bv001", lb * BLOCK, _block(lb, 1))
        e.create("bv001", "sv01")
        e.delete("bv001", "sv00")  # frees the old versions nothing else sees
        for lb in range(0, 40, 5):
            e.write("bv001", lb * BLOCK, _block(lb, 2))
        assert len(e._blocks.lru) <= CAP
        assert e.read("sv01", 0, 40 * BLOCK) == b"".join(
            _block(lb, 1 if lb % 3 == 0 else 0) for lb in range(40))
        e.verify()
        used = e.families[e.ld("bv001").number].hw
    with _opened(tmp_path / "a") as e:
        fam = e.families[e.ld("bv001").number]
        assert not e._blocks.lru and not fam.free_loaded  # a restart reads no block map, no free list
        e.verify()  # the snapshot accounting from ``kept`` alone equals the recount from every map
        e.write("bv001", 63 * BLOCK, _block(63, 3))  # first allocation: reuses a freed block
        assert fam.free_loaded and fam.hw == used
        assert e.read("bv001", 0, BLOCK) == _block(0, 2)
        assert e.read("sv01", 3 * BLOCK, BLOCK) == _block(3, 1)
        e.verify()


@pytest.mark.timeout(60)
def test_a_state_without_the_kept_index_gets_it(tmp_path: Path) -> None:
    with _opened(tmp_path / "a") as e:
        e.write("bv001", 0, _block(0, 0) + _block(1, 0))
        e.create("bv001", "sv00")
        e.write("bv001", 0, _block(0, 1))
    db = sqlite3.connect(tmp_path / "a" / "array.db")
    db.execute("DROP TABLE kept")  # as an array.db written before it
    db.commit()
    db.close()
    with _opened(tmp_path / "a") as e:
        assert e.db.execute("SELECT lblock FROM kept").fetchall() == [(0,)]
        assert e.read("sv00", 0, BLOCK) == _block(0, 0)
        e.verify()


@pytest.mark.timeout(60)
def test_a_refused_write_leaves_the_cache_as_the_database(tmp_path: Path) -> None:
    with _opened(tmp_path / "a") as e:
        for lb in range(20):
            e.write("bv001", lb * BLOCK, _block(lb, 0))
        e.create("bv001", "sv00")
        with pytest.raises(SnapLabError):  # past the BV's end
            e.write("bv001", 63 * BLOCK, _block(0, 0) * 2)
        e.verify()


def _history(e: ArrayEngine) -> None:
    """Generations that share, keep and free versions, zero versions among them."""
    for lb in range(30):
        e.write("bv001", lb * BLOCK, _block(lb, 0))
    e.create("bv001", "sv00")
    for lb in range(0, 30, 2):
        e.write("bv001", lb * BLOCK, _block(lb, 1))
    e.write("bv001", 5 * BLOCK, bytes(BLOCK))  # a zero version: kept for sv00, no block held
    e.create("bv001", "sv01")
    for lb in range(0, 30, 3):
        e.write("bv001", lb * BLOCK, _block(lb, 2))
    e.create("bv001", "sv02")
    for lb in range(0, 30, 4):
        e.write("bv001", lb * BLOCK, _block(lb, 3))


def _first_query(e: ArrayEngine) -> None:
    pass  # the comparison's Query is the first use


def _first_delete(e: ArrayEngine) -> None:
    e.delete("bv001", "sv00")


def _first_overwrite(e: ArrayEngine) -> None:
    e.write("bv001", 0, _block(0, 4) + _block(1, 4))  # frozen for sv02: kept, charged


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first", [_first_query, _first_delete, _first_overwrite])
def test_a_restart_builds_the_snapshot_index_on_first_use_with_the_same_answers(tmp_path: Path,
                                                                                 first) -> None:
    clock = lambda: "2026/01/01 00:00:00"  # noqa: E731 - the same times in both answers
    answers = []
    for restart in (False, True):
        e = _engine(tmp_path / str(restart))
        e._clock = clock
        try:
            _history(e)
            if restart:
                e.close()
                e = ArrayEngine(tmp_path / str(restart), name="A", clock=clock)
                fam = e.families[e.ld("bv001").number]
                assert not fam.indexed  # a restart reads no version
            first(e)
            e.create("bv001", "sv03")
            e.write("bv001", 2 * BLOCK, _block(2, 5))
            e.delete("bv001", "sv01")
            answers.append((e.query("bv001"), e.describe()["pools"], e.read("sv02", 0, 30 * BLOCK)))
            e.verify()
        finally:
            e.close()
    assert answers[0] == answers[1]
