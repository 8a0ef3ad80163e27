"""Support of the client tests: the guide's reference lab (`snaplab lab up`) and a client's way of running a command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools: see its docstring
from labtools import COMMAND_TIMEOUT, LabRun, bin_dir, command_env

ARRAY = "Tokyo_Customer_DataBase"


@dataclass
class ClientLab:
    run: LabRun

    def call(self, host: str, argv: list[str]) -> tuple[str, str, int]:
        """One command as a client runs it on ``host`` (argv, no shell): (stdout, stderr, status)."""
        exe = str(Path(bin_dir()) / argv[0])
        p = subprocess.run(
            [exe, *argv[1:]],
            env=command_env(SNAPLAB_LAB=str(self.run.folder), SNAPLAB_HOST=host),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        return p.stdout, p.stderr, p.returncode

    def manager(self, argv: list[str]) -> tuple[str, str, int]:
        """One command on the management server (``snaplab exec manager -- …``)."""
        p = self.run("exec", "manager", "--", *argv, timeout=COMMAND_TIMEOUT)
        return p.stdout, p.stderr, p.returncode


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientLab]:
    run = LabRun(tmp_path_factory.mktemp("clients"))
    try:
        up = run("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield ClientLab(run)
    finally:
        run.teardown()
