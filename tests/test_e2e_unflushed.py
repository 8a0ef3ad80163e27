"""`snaplab lab down` with the array dead (issue 8 item 8): a real lab (``snaplab lab up`` of a small lab
file), commands as processes of their own. The array is SIGKILLed with unflushed files in G:; ``lab
down`` exits non-zero naming the host, the volume and the files it could not flush, and keeps the
cache; ``lab up`` (the array back) gives them back in G:, and a flush writes them to the volume."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, alive, file_digests, run_ok

pytestmark = pytest.mark.timeout(300)

LAB = """
    [[arrays]]
    name = "Small_Array"
    product_id = "S2800"
    ports = ["00h/00h P_BIZ"]
    pools = [
      { number = 0, kind = "basic", capacity = "4GiB" },
      { number = 1, kind = "dynamic", capacity = "4GiB" },
    ]
    sra = [{ pool = 1, capacity = "256MiB", name = "SDV1", number = "0100h" }]
    lds = [{ number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 }]
    generations = [{ bv = "bv001", pool = 1, svs = ["sv001_01"], numbers = ["0031h"] }]
    licences = ["DynamicSnapVolume", "AccessControl"]

    [[access]]
    ld = "bv001"
    port = "P_BIZ"

    [[hosts]]
    name = "business01"
    role = "business"
    wwns = ["10:00:00:00:c9:00:00:01"]
    ports = ["P_BIZ"]

    [[setup]]
    host = "business01"
    commands = ["DISKPART"]
    stdin = \"\"\"
    select disk 1
    create partition primary
    format fs=ntfs quick label=bv001
    assign letter=G
    \"\"\"

    [[setup]]
    host = "business01"
    commands = ["iSMvollist -cr", "iSMrc_flush -drv G:"]
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabRun]:
    run = LabRun(tmp_path)
    try:
        up = run("lab", "up", str(run.write("small.toml", LAB)), timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        yield run
    finally:
        run.teardown()


def cmd(lab: LabRun, line: str, code: int = 0) -> Ran:
    return run_ok(lab, "business01", line, code)


def volume_files(lab: LabRun) -> dict[str, str]:
    """sha256 of the files bv001's file system holds (``snaplab export``, read with Python's sqlite3)."""
    dest = lab.root / f"bv001-{os.urandom(3).hex()}.db"
    out = lab("export", "Small_Array", "bv001", "1", str(dest))
    assert out.returncode == 0, out.stdout + out.stderr
    conn = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, sz, data FROM sqlar WHERE sz > 0").fetchall()
    finally:
        conn.close()
    return {n: hashlib.sha256(zlib.decompress(d) if len(d) < sz else d).hexdigest() for n, sz, d in rows}


def test_lab_down_with_the_array_dead_names_what_was_not_flushed_and_keeps_it(lab: LabRun) -> None:
    g = Path(lab("path", "business01", "G:").stdout.strip())
    (g / "flushed.txt").write_text("on the volume\n")
    cmd(lab, "iSMrc_flush -drv G:")
    (g / "flushed.txt").write_text("changed after the flush\n")
    (g / "sales").mkdir()
    (g / "sales" / "q3.bin").write_bytes(os.urandom(300_000))
    cache = file_digests(g)
    rt = lab.runtime()
    assert rt is not None
    array = next(p for p in rt["processes"] if p["kind"] == "array")
    os.kill(array["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(array["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    down = lab("lab", "down", timeout=120)
    assert down.returncode == 1, down.stdout + down.stderr
    err = down.stderr
    assert "business01: G: not flushed (" in err and "Small_Array bv001" in err, err
    assert "iSM31065: Disk array does not respond. (Small_Array)" in err, err  # why
    for line in ("flushed.txt (changed)", "sales (new)", "sales/q3.bin (new)"):
        assert line in err, err
    assert "kept for the next start" in err
    assert not lab.leftovers()
    kept = list((lab.folder / "hosts" / "business01" / "fscache" / "kept").glob("*.json"))
    assert len(kept) == 1
    # the next start (the array back) gives the files back in G:, and a flush writes them
    up = lab("lab", "up", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    g = Path(lab("path", "business01", "G:").stdout.strip())
    assert file_digests(g) == cache
    cmd(lab, "iSMrc_flush -drv G:")
    assert volume_files(lab) == {"flushed.txt": cache["flushed.txt"], "sales/q3.bin": cache["sales/q3.bin"]}
    down = lab("lab", "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "not flushed" not in down.stderr
