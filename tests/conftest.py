"""Suite-wide settings."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker's temporary folders live in <basetemp>/popen-gwN/: from pytest's
    # default base (/tmp/pytest-of-USER/pytest-N) the agents' sockets (<lab>/run/agent-<host>.sock)
    # would pass AF_UNIX's 107 bytes, so the controller picks a short base of its own.
    if getattr(config.option, "numprocesses", None) and config.option.basetemp is None and not hasattr(
        config, "workerinput"
    ):
        config.option.basetemp = tempfile.mkdtemp(prefix="slt-", dir="/tmp")


_WEIGHTS = Path(__file__).with_name("file_seconds.json")
_UNKNOWN_FILE_SECONDS = 10.0  # a file not yet weighed (tools/test_weights.py) runs among the middling ones


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Longest files first: with one file per xdist worker at a time (README "Test", run with
    # --no-loadscope-reorder so xdist keeps this order), the short files fill in at the end.
    # The sort is stable, so the tests of one file keep their order.
    try:
        weights = json.loads(_WEIGHTS.read_text())
    except (OSError, ValueError):
        return
    items.sort(key=lambda item: -weights.get(item.nodeid.split("::", 1)[0], _UNKNOWN_FILE_SECONDS))
