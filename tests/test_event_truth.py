"""Event-log truth (issue 13 part 3): every state change is logged exactly once, nothing false is.

A real lab of two arrays (``snaplab lab up``): a backup server with a CV on each operates the second
array's BV through its CVs; host commands are their own processes (labtools.run_on).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, RefLab, run_ok

pytestmark = pytest.mark.timeout(240)

TWO_ARRAYS = """
[lab]
description = "two arrays, a backup server with a CV on each"

[[arrays]]
name = "First_Array"
ports = ["00h/00h BAK_A"]
pools = [
  { number = 0, kind = "basic", capacity = "1GiB" },
  { number = 1, kind = "dynamic", capacity = "1GiB" },
]
sra = [{ pool = 1, capacity = "128MiB", name = "SDV1", number = "0100h" }]
lds = [
  { number = "0030h", name = "bva", capacity = "16MiB", pool = 0 },
  { number = "002ah", name = "CV_A", capacity = "16MiB", pool = 0, attr = "cv" },
]
generations = [{ bv = "bva", pool = 1, svs = ["sva_1"], numbers = ["0031h"] }]
lvs = [{ bv = "bva", name = "lva", number = "0038h" }]
licences = ["DynamicSnapVolume", "AccessControl"]

[[arrays]]
name = "Second_Array"
ports = ["00h/00h BAK_B"]
pools = [
  { number = 0, kind = "basic", capacity = "1GiB" },
  { number = 1, kind = "dynamic", capacity = "1GiB" },
]
sra = [{ pool = 1, capacity = "128MiB", name = "SDV1", number = "0100h" }]
lds = [
  { number = "0030h", name = "bvb", capacity = "16MiB", pool = 0 },
  { number = "002ah", name = "CV_B", capacity = "16MiB", pool = 0, attr = "cv" },
]
generations = [{ bv = "bvb", pool = 1, svs = ["svb_1"], numbers = ["0031h"] }]
lvs = [{ bv = "bvb", name = "lvb", number = "0038h" }]
licences = ["DynamicSnapVolume", "AccessControl"]

[[access]]
array = "First_Array"
lds = ["CV_A", "lva"]
port = "BAK_A"

[[access]]
array = "Second_Array"
lds = ["CV_B", "lvb"]
port = "BAK_B"

[[hosts]]
name = "backup01"
role = "backup"
wwns = ["10:00:00:00:c9:2a:03:01"]
ports = ["BAK_A", "BAK_B"]

[[setup]]
host = "backup01"
commands = ["iSMvollist -cr"]
"""


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefLab]:
    run = LabRun(tmp_path_factory.mktemp("two"))
    try:
        up = run("lab", "up", str(run.write("lab.toml", TWO_ARRAYS)), timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        yield RefLab(run)
    finally:
        run.teardown()


def test_operations_on_the_second_array_log_no_false_error(two: RefLab) -> None:
    """The BV of the second array, named through the CVs: no ERROR of a CV of the first array tried
    on the way (before the fix, every such operation logged iSM31042-style refusals first)."""
    start = two.last_seq()
    run_ok(two.run, "backup01", "iSMsc_query -bv bvb -bvflg ld")
    run_ok(two.run, "backup01", "iSMsc_create -bv bvb -bvflg ld -cyclic")
    events = two.events_after(start)
    assert [e.classification for e in events if e.classification == "ERROR"] == [], [
        (e.operation, e.msg_id, e.text) for e in events
    ]
    assert [(e.operation, e.classification) for e in events] == [
        ("iSMsc_query", "INFO"),
        ("iSMsc_create", "INFO"),
    ]
