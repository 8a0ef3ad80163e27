"""The management server's console commands, ``iSMcfg`` (configuration) and ``iSMview`` (monitoring).

They talk to the manager with the lab's ``admin`` certificate (``<lab>/pki/admin.crt``); the
manager's address comes from ``<lab>/runtime.json`` (``{"manager": {"target": "HOST:PORT"}}``)
unless given. ``run_console(argv, lab_dir)`` runs one command line and returns
``(stdout, stderr, exit status)``; the console scripts ``iSMcfg`` and ``iSMview`` do the same with
the lab folder ``$SNAPLAB_LAB`` (default ``~/.snaplab/lab``) and the manager ``$SNAPLAB_MANAGER``
if set. Formats and message ids: ``docs/manager.md``.
"""

from .commands import main_cfg, main_clioutmsg, main_console, main_query, main_view, run_console
from .options import parse_number, parse_size

__all__ = ["main_cfg", "main_clioutmsg", "main_console", "main_query", "main_view", "parse_number", "parse_size", "run_console"]
