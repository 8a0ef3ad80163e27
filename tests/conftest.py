"""Suite-wide settings."""

from __future__ import annotations

import tempfile

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
