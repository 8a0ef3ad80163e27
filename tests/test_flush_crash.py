"""A crash in the middle of a flush loses at most what that flush was writing (issue 8 item 7): the real
agent daemon SIGKILLed inside its flushes' page writes (tests/harness/flush_crash.py), restarted and
verified each time: G: holds exactly the last completed flush or the killed one, no file flushed
before is lost (sha256), CHKDSK G: finds nothing to repair.

``SNAPLAB_FLUSH_KILLS`` (default 12) sets the number of kills, ``SNAPLAB_FLUSH_SEED`` replays a run's
choices. ``python3 bench/soak_flush_crash.py`` runs the same harness for the full count (60 kills).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness package: see labtools' docstring
from harness.flush_crash import FlushCrashHarness

KILLS = int(os.environ.get("SNAPLAB_FLUSH_KILLS", "12"))
SEED = int(os.environ["SNAPLAB_FLUSH_SEED"]) if os.environ.get("SNAPLAB_FLUSH_SEED") else None


# About 3-4 s per kill on an idle 2-core machine (agent restart, mount, CHKDSK), 20 s when it is
# loaded: a generous margin.
@pytest.mark.timeout(max(300, 40 * KILLS))
def test_sigkill_in_the_middle_of_a_flush_loses_no_file_flushed_before(tmp_path: Path) -> None:
    with FlushCrashHarness(tmp_path / "flushcrash", seed=SEED, log=print) as h:
        stats = h.run(KILLS, progress=lambda i, line: print(f"kill {i}: {line}"))
        print(stats.summary())
    assert not stats.failures, stats.failures
    assert stats.kills == KILLS and stats.files_lost == 0
    assert stats.files_checked > 0
    # the kills landed where they were put: every phase of the page writes, and some replays
    if KILLS >= 6:
        assert all(stats.placed[p] > 0 for p in ("data", "journal", "place")), stats.summary()
        assert stats.replays > 0 and stats.outcomes["old"] > 0, stats.summary()
