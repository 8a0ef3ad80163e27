"""The array's ``nickname`` (rename_ld) and ``ldexpand`` (expand_ld) rules, on the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from snaplab.array.engine import ArrayEngine
from snaplab.array.model import DSV

from snaplab.common.errors import SnapLabError

MiB = 1 << 20


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[ArrayEngine]:
    e = ArrayEngine(tmp_path / "array", name="A", product_id="S2800")
    e.set_licence(DSV, 1 << 30)
    e.bind_pool(0, "P0", "basic", 64 * MiB)
    e.bind_pool(1, "P1", "dynamic", 64 * MiB)
    e.build_sra(1, 8 * MiB, sdv_name="SDV1")
    yield e
    e.close()


def _refused(msg_id: str, fn, *args) -> None:
    with pytest.raises(SnapLabError) as info:
        fn(*args)
    assert info.value.msg_id == msg_id


def test_rename_keeps_number_bytes_and_pairs(eng: ArrayEngine) -> None:
    ld = eng.bind_ld("v1", MiB, 0, "WN", number=0x200)
    eng.write("v1", 0, b"data")
    eng.rename_ld("0200h", "cinder_v1")
    assert eng.read("cinder_v1", 0, 4) == b"data" and eng.ld("cinder_v1").number == ld.number
    _refused("iSM19003", eng.ld, "v1")
    eng.bind_ld("v2", MiB, 0, "WN")
    _refused("iSM31004", eng.rename_ld, "v2", "cinder_v1")
    _refused("iSM19001", eng.rename_ld, "v2", "has blank")
    assert eng.ld("v2").name == "v2"


def test_rename_survives_a_restart(tmp_path: Path) -> None:
    e = ArrayEngine(tmp_path / "a", product_id="S2800")
    e.bind_pool(0, "P0", "basic", 64 * MiB)
    e.bind_ld("v1", MiB, 0, "WN")
    e.rename_ld("v1", "v9")
    e.close()
    e = ArrayEngine(tmp_path / "a")
    assert e.ld("v9").capacity == MiB and e.product_id == "S2800"
    e.close()


def test_expand_grows_ordinary_lds_only(eng: ArrayEngine) -> None:
    eng.bind_ld("v1", MiB, 0, "WN")
    eng.write("v1", 0, b"kept")
    eng.expand_ld("v1", 4 * MiB)
    assert eng.ld("v1").capacity == 4 * MiB
    assert eng.read("v1", 0, 4) == b"kept" and eng.read("v1", 3 * MiB, 4) == bytes(4)
    _refused("iSM19001", eng.expand_ld, "v1", 2 * MiB)  # never shrinks
    _refused("iSM31002", eng.expand_ld, "v1", 128 * MiB)  # the pool is too small
    eng.bind_ld("bv1", MiB, 0, "WN")
    eng.add_generations("bv1", 1, 1, sv_names=["sv1"])
    _refused("iSM31222", eng.expand_ld, "bv1", 2 * MiB)
    assert eng.ld("bv1").capacity == MiB and eng.ld("v1").capacity == 4 * MiB
