"""Fuzzing the manager, an agent's socket and the command lines of the running reference lab, on a
bounded budget (a count and a time, seeded): no daemon dies, no traceback in a reply or a log, at
most one log line per request, bounded memory, and the guide's backup procedure (2.2.1) still passes.

The longer run (10,000 requests per service) is ``bench/fuzz_services.py``; the array's own fuzz is
elsewhere. Inputs and audits: ``tests/harness/fuzz_inputs.py``, ``tests/harness/fuzz_services.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools, harness: see labtools' docstring
from harness.fuzz_services import (
    Audit,
    Outcome,
    backup_procedure,
    fuzz_agent,
    fuzz_command_lines,
    fuzz_manager,
)
from labtools import RefLab

pytestmark = pytest.mark.timeout(300)

SEED = int(os.environ.get("SNAPLAB_FUZZ_SEED", "8"))
REQUESTS = int(os.environ.get("SNAPLAB_FUZZ_REQUESTS", "300"))
SECONDS = 60.0
RSS_LIMIT = 64 * 1000 * 1000


def audited(lab: RefLab, run: Callable[[], Outcome]) -> Outcome:
    audit = Audit.start(lab.folder)
    out = run()
    print(out.summary())
    problems, figures = audit.after(out.requests, rss_limit=RSS_LIMIT)
    print(figures)
    assert out.problems == []
    assert problems == []
    assert backup_procedure(lab.folder, lab.root) == []
    return out


def test_fuzz_the_manager(ref_lab: RefLab) -> None:
    out = audited(
        ref_lab, lambda: fuzz_manager(ref_lab.folder, requests=REQUESTS, seconds=SECONDS, seed=SEED)
    )
    assert out.requests >= min(REQUESTS, 100)
    assert out.codes["INVALID_ARGUMENT"] > 0 and out.codes["PERMISSION_DENIED"] > 0


def test_fuzz_an_agent_socket(ref_lab: RefLab, tmp_path: Path) -> None:
    out = audited(
        ref_lab,
        lambda: fuzz_agent(
            ref_lab.folder, "test01", requests=REQUESTS, seconds=SECONDS, seed=SEED, scratch=tmp_path
        ),
    )
    assert out.requests >= min(REQUESTS, 100) and out.codes["exit 0"] > 0 and out.codes["exit 1"] > 0


def test_fuzz_the_command_lines(ref_lab: RefLab, tmp_path: Path) -> None:
    out = audited(
        ref_lab,
        lambda: fuzz_command_lines(
            ref_lab.folder,
            "test01",
            requests=REQUESTS,
            spawns=15,
            seconds=SECONDS,
            seed=SEED,
            scratch=tmp_path,
        ),
    )
    assert out.requests >= min(REQUESTS, 100) + 15 and out.codes["exit 0"] > 0
