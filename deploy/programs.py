"""Programs whose name is both a host's command and the management server's: which one runs.

``iSMview`` is a host's own command when ``SNAPLAB_HOST`` names one, else the management server's
console. ``iSMsc_create``, ``iSMsc_delete``, ``iSMsc_restore``, ``iSMsc_query``, ``iSMsc_link`` and ``iSMsc_unlink`` are a host's
commands, except in the management server's shell (``snaplab exec manager -- bash``, which sets
``SNAPLAB_ON_MANAGER`` and clears ``SNAPLAB_HOST``), where they operate as admin (SPEC B4).
"""

from __future__ import annotations

import os
import sys

ON_MANAGER = "SNAPLAB_ON_MANAGER"


def _host_main() -> int:
    from snaplab.agent.cli import main

    return main()


def main_view() -> int:
    """``iSMview``."""
    if os.environ.get("SNAPLAB_HOST"):
        return _host_main()
    from snaplab.manager.console import main_view as console_view

    return console_view()


def main_snapshot() -> int:
    """``iSMsc_create|delete|restore|query|link|unlink``."""
    if os.environ.get("SNAPLAB_HOST") or not os.environ.get(ON_MANAGER):
        return _host_main()
    from snaplab.manager.console import main_console

    name = os.path.basename(sys.argv[0])
    return main_console(name.removesuffix(".exe"))
