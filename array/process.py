"""Run the real array daemon as a subprocess (tests, benchmarks, crash tests), and make lab certificates.

    make_lab_certs(tmp / "certs", [("array", "array"), ("admin", "admin")])
    with ArrayProcess(tmp / "state", certs=tmp / "certs") as array:
        client = array.client("admin")

``python3 -m snaplab.array.process certs DIR NAME:ROLE ...`` makes the certificates from a shell.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from snaplab.common import pki
from snaplab.common.rpc import ClientTLS

from .client import ArrayClient

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def make_lab_certs(folder: Path | str, principals: Iterable[tuple[str, str]]) -> Path:
    """Write ``ca.crt``/``ca.key`` (kept if the folder already has them) and ``NAME.crt``/``NAME.key``
    for each (name, role). The daemon needs one with role ``array`` (default name ``array``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "ca.crt").is_file() and (folder / "ca.key").is_file():
        ca_cert, ca_key = (folder / "ca.crt").read_bytes(), (folder / "ca.key").read_bytes()
    else:
        ca_cert, ca_key = pki.write_ca(folder)
    for name, role in principals:
        pki.write_principal(folder, name, role, ca_cert, ca_key)
    return folder


class ArrayProcessError(RuntimeError):
    """The daemon did not start (its stderr is in the message) or did not stop."""


class ArrayProcess:
    """One ``snaplab-array`` subprocess on a state folder. Not started until ``start()`` or ``with``.

    The daemon runs with cwd = the state folder's parent (never the repo root, so imports come from
    the install). Its stdout and stderr go to ``log_path`` (default ``<state>.log`` beside the state).
    ``certs=None`` runs it ``--insecure`` (clients then pass ``test_identity``).
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        certs: Path | str | None = None,
        cert_name: str = "array",
        name: str | None = None,
        listen: str = "127.0.0.1:0",
        log_level: str = "INFO",
        extra_args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | str | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.certs = Path(certs).absolute() if certs is not None else None
        self.cert_name = cert_name
        self.name = name
        self.listen = listen
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.env = env
        self.log_path = Path(log_path) if log_path else self.state_dir.with_name(self.state_dir.name + ".log")
        self.ready_file = self.state_dir.with_name(self.state_dir.name + ".ready.json")
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.ready: dict = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "snaplab.array.daemon",
            "--state",
            str(self.state_dir),
            "--listen",
            self.listen,
            "--ready-file",
            str(self.ready_file),
            "--log-level",
            self.log_level,
        ]
        cmd += ["--certs", str(self.certs), "--cert-name", self.cert_name] if self.certs else ["--insecure"]
        if self.name:
            cmd += ["--name", self.name]
        return cmd + self.extra_args

    def start(self) -> Self:
        if self.running:
            raise ArrayProcessError(f"already running (pid {self.pid})")
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)  # a stale file from a killed daemon must not count
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.state_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **(self.env or {})},
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ArrayProcessError(
                    f"snaplab-array exited with status {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                info = json.loads(self.ready_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.02)
                continue
            if info.get("pid") == self.proc.pid:
                self.ready, self.port = info, int(info["port"])
                return
            time.sleep(0.02)
        raise ArrayProcessError(f"snaplab-array not ready after {self.ready_timeout}s:\n{self.log_tail()}")

    def log_tail(self, limit: int = 4000) -> str:
        """What the daemon printed since the last start (the end of it)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_start", 0))
                return f.read().decode(errors="replace")[-limit:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ArrayProcessError("not started")
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send ``sig`` and wait for the exit; returns the exit status (None if it outlived ``timeout``)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc is None:
            return None
        code = self.kill(signal.SIGTERM, timeout)
        if code is None:
            code = self.kill(signal.SIGKILL)
        return code

    def restart(self) -> Self:
        """Stop (if running) and start again on the same state and certificates; the port may change."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------------------
    def client(self, principal: str, role: str | None = None) -> ArrayClient:
        """A client as ``principal`` (a certificate name in ``certs``; with an insecure daemon,
        the test identity ``principal/role``)."""
        if self.certs is None:
            return ArrayClient(self.target, test_identity=f"{principal}/{role or principal}")
        return ArrayClient(self.target, ClientTLS.from_folder(self.certs, principal))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m snaplab.array.process", description="Lab helpers.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    certs = sub.add_parser("certs", help="make a lab CA (kept if present) and certificates")
    certs.add_argument("folder")
    certs.add_argument("principals", nargs="+", metavar="NAME:ROLE", help=f"roles: {', '.join(pki.ROLES)}")
    args = parser.parse_args(argv)
    pairs = []
    for item in args.principals:
        name, sep, role = item.partition(":")
        if not sep or role not in pki.ROLES:
            parser.error(f"{item!r}: give NAME:ROLE with a role of {', '.join(pki.ROLES)}")
        pairs.append((name, role))
    try:
        folder = make_lab_certs(args.folder, pairs)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote ca.crt and {', '.join(n + '.crt' for n, _ in pairs)} (and keys) in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
