"""Run the real array daemon as a subprocess (tests, benchmarks, crash tests), and make lab certificates.

    make_lab_certs(tmp / "certs", [("array", "array"), ("admin", "admin")])
    with ArrayProcess(tmp / "state", certs=tmp / "certs") as array:
        client = array.client("admin")

``python3 -m snaplab.array.process certs DIR NAME:ROLE ...`` makes the certificates from a shell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from snaplab.common import pki
from snaplab.common.daemonproc import READY_TIMEOUT, STOP_TIMEOUT, DaemonProcess
from snaplab.common.rpc import ClientTLS

from snaplab.san.array_client import ArrayClient

__all__ = ["ArrayProcess", "ArrayProcessError", "make_lab_certs", "READY_TIMEOUT", "STOP_TIMEOUT"]


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


class ArrayProcess(DaemonProcess):
    """One ``snaplab-array`` subprocess on a state folder. Not started until ``start()`` or ``with``.

    The daemon runs with cwd = the state folder's parent (never the repo root, so imports come from
    the install). Its stdout and stderr go to ``log_path`` (default ``<state>.log`` beside the state).
    ``certs=None`` runs it ``--insecure`` (clients then pass ``test_identity``).
    """

    program = "snaplab-array"
    error = ArrayProcessError

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
        self._init_process(state_dir, env=env, log_path=log_path, ready_timeout=ready_timeout)
        self.certs = Path(certs).absolute() if certs is not None else None
        self.cert_name = cert_name
        self.name = name
        self.listen = listen
        self.log_level = log_level
        self.extra_args = list(extra_args)

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
