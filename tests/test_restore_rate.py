"""A restore at a set copy rate (issue 13): it takes real time, shows rst/exec and the array's progress.

The guide's 2.3.5 (a restore's progress, an interrupted restore) can only be rehearsed on a restore
that lasts; the array's ``restore_rate`` (lab file, ``snaplab-array --restore-rate``) makes one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from snaplab.array.engine import ArrayEngine
from snaplab.array.model import ACCESS_CONTROL, DSV, STATE_ACTIVE, STATE_RESTORING
from snaplab.array.restore import restore_pace
from snaplab.deploy.errors import LabError
from snaplab.deploy.spec import LabSpec
from snaplab.san.blocks import BLOCK

MiB = 1 << 20


def _engine(path: Path, rate: float) -> ArrayEngine:
    e = ArrayEngine(path, name="A", restore_rate=rate)
    e.set_licence(DSV, 1 << 30)
    e.set_licence(ACCESS_CONTROL)
    e.bind_pool(1, "DYN1", "dynamic", 64 * MiB)
    e.build_sra(1, 16 * MiB, sdv_name="SDV1")
    e.bind_ld("bv001", 2 * MiB, 1, "WN")
    e.add_generations("bv001", 1, 1, sv_names=["sv001_01"])
    return e


def test_pace_of_a_rate() -> None:
    assert restore_pace(0) == (256, 0.0)  # no rate: whole batches, no pause
    batch, per_block = restore_pace(1.0)  # 16 blocks a second, in steps of a tenth of a second
    assert batch == 1 and per_block == pytest.approx(1 / 16)
    assert restore_pace(1000.0)[0] == 256


@pytest.mark.timeout(30)
def test_restore_at_a_rate_takes_time_and_reports_progress(tmp_path: Path) -> None:
    e = _engine(tmp_path / "array", rate=1.0)  # 1 MiB/s: the 1 MiB that differs takes about 1 s
    try:
        e.write("bv001", 0, b"A" * (16 * BLOCK))
        e.create("bv001", "sv001_01")
        e.write("bv001", 0, b"B" * (16 * BLOCK))
        started = time.monotonic()
        info = e.restore("bv001", "sv001_01")
        assert info["state"] == STATE_RESTORING and info["restore_total"] == 16
        seen = set()
        while True:
            g = next(g for g in e.query("bv001")["generations"] if g["sv"] == "sv001_01")
            if g["state"] != STATE_RESTORING:
                break
            seen.add(g["restore_done"])
            time.sleep(0.05)
        took = time.monotonic() - started
        assert g["state"] == STATE_ACTIVE
        assert 0.7 < took < 10, took
        assert len({d for d in seen if 0 < d < 16}) >= 3, seen  # the figure moves, not one jump
        assert e.read("bv001", 0, 16 * BLOCK) == b"A" * (16 * BLOCK)
    finally:
        e.close()


def test_lab_file_restore_rate() -> None:
    base = '[[arrays]]\nname = "A"\n'
    assert LabSpec.parse(base + "restore_rate = 8\n").arrays[0].restore_rate == 8.0
    assert LabSpec.parse(base).arrays[0].restore_rate == 0.0
    for bad in ('"8MiB"', "-1", "true", "1e9"):
        with pytest.raises(LabError, match="restore_rate"):
            LabSpec.parse(base + f"restore_rate = {bad}\n")


def test_daemon_flag(tmp_path: Path) -> None:
    from snaplab.array.daemon import parse_args
    from snaplab.common.daemon_runner import UsageError

    base = ["--state", str(tmp_path / "s"), "--insecure"]
    assert parse_args([*base, "--restore-rate", "2.5"]).restore_rate == 2.5
    assert parse_args(base).restore_rate == 0.0
    with pytest.raises(UsageError, match="--restore-rate"):
        parse_args([*base, "--restore-rate", "-1"])
