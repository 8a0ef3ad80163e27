"""The lab the security tests attack: the guide's reference lab (deploy/default_lab.toml) as real
processes, started once for the folder with ``snaplab lab up`` and always stopped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools, harness: see labtools' docstring
from labtools import LabRun, RefLab


@pytest.fixture(scope="session")
def ref_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefLab]:
    run = LabRun(tmp_path_factory.mktemp("security"))
    try:
        up = run("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield RefLab(run)
    finally:
        run.teardown()
