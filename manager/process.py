"""Run the real manager daemon as a subprocess (tests, labs), like ``snaplab.array.process.ArrayProcess``.

with ManagerProcess(tmp / "manager", certs=tmp / "certs", arrays={"array1": array.target}) as manager:
    admin = manager.client("admin")
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from snaplab.common.daemonproc import READY_TIMEOUT, STOP_TIMEOUT, DaemonProcess
from snaplab.common.rpc import ClientTLS

from .client import ManagerClient

__all__ = ["ManagerProcess", "ManagerProcessError", "READY_TIMEOUT", "STOP_TIMEOUT"]


class ManagerProcessError(RuntimeError):
    """The daemon did not start (its output is in the message) or did not stop."""


class ManagerProcess(DaemonProcess):
    """One ``snaplab-manager`` subprocess on a state folder. Not started until ``start()`` or ``with``.

    It runs with cwd = the state folder's parent; its output goes to ``log_path`` (default
    ``<state>.log``) and its ready file is ``<state>.ready.json``. ``arrays`` maps the array names
    the manager knows to their targets (``HOST:PORT``)."""

    program = "snaplab-manager"
    error = ManagerProcessError

    def __init__(
        self,
        state_dir: Path | str,
        *,
        certs: Path | str,
        arrays: Mapping[str, str],
        cert_name: str = "manager",
        listen: str = "127.0.0.1:0",
        log_level: str = "INFO",
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | str | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self._init_process(state_dir, env=env, log_path=log_path, ready_timeout=ready_timeout)
        self.certs = Path(certs).absolute()
        self.arrays = dict(arrays)
        self.cert_name = cert_name
        self.listen = listen
        self.log_level = log_level
        self.extra_args = list(extra_args)

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "snaplab.manager.daemon",
            "--state",
            str(self.state_dir),
            "--certs",
            str(self.certs),
            "--cert-name",
            self.cert_name,
            "--listen",
            self.listen,
            "--ready-file",
            str(self.ready_file),
            "--log-level",
            self.log_level,
        ]
        for name, target in self.arrays.items():
            cmd += ["--array", f"{name}={target}"]
        return cmd + self.extra_args

    def client(self, principal: str) -> ManagerClient:
        """A client presenting ``principal``'s certificate from ``certs``."""
        return ManagerClient(self.target, ClientTLS.from_folder(self.certs, principal))
