"""A shell on the management server: ``snaplab exec manager -- bash -c "…"``.

Drivers that reach the management server over SSH send shell lines, pipelines included (Cinder:
``iSMsc_query … | while builtin read line; do …; done``). Here ``bash`` runs with the lab's
console commands first on its PATH, ``SNAPLAB_LAB`` naming the lab and no ``SNAPLAB_HOST``, so
``iSMcfg``, ``iSMview`` and the rest inside it are the management server's. Its exit status is the
shell's. docs/clients.md shows how to put a real sshd in front of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MANAGER_SHELLS = ("bash",)


def shell_env(lab_folder: Path) -> dict[str, str]:
    """The environment of the management server's shell: our console scripts ahead of the system's."""
    env = {k: v for k, v in os.environ.items() if k not in ("SNAPLAB_HOST", "SNAPLAB_MANAGER", "BASH_ENV", "ENV")}
    scripts = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "/usr/bin:/bin")])
    env["SNAPLAB_LAB"] = str(Path(lab_folder).resolve())
    env["SNAPLAB_ON_MANAGER"] = "1"  # iSMsc_* here are the management server's (deploy/programs.py)
    return env


def manager_shell(lab_folder: Path, argv: list[str]) -> int:
    """Run ``argv`` (``bash …``) as the management server's shell; standard streams are passed through."""
    exe = shutil.which(argv[0])
    if exe is None:
        sys.stderr.write(f"'{argv[0]}' is not recognized as an internal or external command.\n")
        return 9009
    try:
        # No start-up files: bash reads ~/.bashrc when sshd starts it, and a user's PATH there
        # (pyenv shims, another install) must not shadow the lab's commands.
        cmd = [exe, "--norc", "--noprofile", *argv[1:]]
        return subprocess.run(cmd, env=shell_env(lab_folder), check=False).returncode
    except KeyboardInterrupt:
        return 130
