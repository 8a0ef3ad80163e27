"""The ``iSMview`` program: a host's own iSMview when ``SNAPLAB_HOST`` names one, else the management server's console.

On a real node ``iSMview`` (``iSMcc_view``) answers with that node's rights; on the management
server it is the operator console. One program name serves both, chosen by the environment the
other lab commands already use.
"""

from __future__ import annotations

import os


def main() -> int:
    if os.environ.get("SNAPLAB_HOST"):
        from snaplab.agent.cli import main as host_main

        return host_main()
    from snaplab.manager.console import main_view

    return main_view()
