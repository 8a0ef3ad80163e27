"""A lab folder on disk: where daemons' state, certificates, logs and sockets go; runtime.json; the lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabError

if TYPE_CHECKING:  # imported where used: `snaplab exec` reads a lab folder without the lab machinery
    from .spec import LabSpec

RUNTIME_VERSION = 1
LOCK_TIMEOUT = 120.0  # another up/down on the same folder
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
# A lab folder holds private keys, the hosts' file-system caches and every daemon's state: it is this
# user's alone. It is made 0700, and everything made while a lab command holds it (the daemons it
# starts included, who inherit the mask) is born without group or other permissions: keys 0600.
PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700

Report = Callable[[str], None]


def default_lab_dir() -> Path:
    """``SNAPLAB_LAB``, else ``~/.snaplab/lab``."""
    return Path(os.environ.get("SNAPLAB_LAB") or "~/.snaplab/lab").expanduser()


def default_lab_file() -> Path:
    """The guide's reference lab, shipped beside this module (source tree and installs alike)."""
    return Path(__file__).with_name("default_lab.toml")


class LabFolder:
    """The layout of one lab folder (docs/architecture.md "Lab folder") and the files that describe the lab."""

    def __init__(self, folder: Path | str) -> None:
        # Absolute and resolved: the path is matched against daemons' command lines to recognise them.
        self.folder = Path(folder).expanduser().absolute().resolve()

    # -- layout ----------------------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.folder / "pki"

    @property
    def run(self) -> Path:
        return self.folder / "run"

    @property
    def runtime_path(self) -> Path:
        return self.folder / "runtime.json"

    @property
    def lab_file(self) -> Path:
        return self.folder / "lab.toml"

    def array_state(self, name: str) -> Path:
        return self.folder / "arrays" / name

    @property
    def manager_state(self) -> Path:
        return self.folder / "manager"

    def host_state(self, name: str) -> Path:
        return self.folder / "hosts" / name

    @property
    def chaos(self) -> Path:
        """The chaos rules and their journals (snaplab/common/chaos.py); a lab starts without rules."""
        return self.run / "chaos"

    def socket(self, host: str) -> Path:
        return self.run / f"agent-{host}.sock"

    def log(self, kind: str, name: str) -> Path:
        return self.run / ("manager.log" if kind == "manager" else f"{kind}-{name}.log")

    def read_runtime(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.runtime_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise LabError(f"cannot read {self.runtime_path}: {exc}") from None
        return data if isinstance(data, dict) else None

    def write_runtime(self, data: dict[str, Any]) -> None:
        tmp = self.runtime_path.with_name(f".runtime.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.runtime_path)

    @property
    def incomplete_marker(self) -> Path:
        # Present from the start of making a lab until it is configured and set up: a folder that
        # still has it holds the remains of an interrupted `lab up`, never a lab to restart.
        return self.folder / ".incomplete"

    def is_lab(self) -> bool:
        """The folder holds a lab that was made completely (it can be restarted)."""
        return self.lab_file.is_file() and not self.incomplete_marker.exists()

    def spec(self) -> LabSpec:
        """The lab file this folder's lab was made from."""
        if not self.is_lab():
            raise LabError(f"{self.folder} holds no lab (no lab.toml); start one with: snaplab lab up")
        from .spec import LabSpec

        return LabSpec.load(self.lab_file)

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[None]:
        """One ``lab up``/``lab down`` at a time per folder (the lock dies with its process), with
        the private umask for whatever it makes (``PRIVATE_UMASK``)."""
        old_mask = os.umask(PRIVATE_UMASK)
        try:
            self._private_folder()
            with self._lock_file(what):
                yield
        finally:
            os.umask(old_mask)

    def _private_folder(self) -> None:
        """Make the folder (and missing parents) 0700; a lab made before that rule is tightened."""
        missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        for p in reversed(missing):
            p.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        if self.is_lab() and self.folder.stat().st_mode & 0o777 != PRIVATE_DIR:
            self.folder.chmod(PRIVATE_DIR)

    @contextlib.contextmanager
    def _lock_file(self, what: str) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LabError(
                            f"another snaplab lab command is still working on {self.folder}"
                        ) from None
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- making, cleaning ------------------------------------------------------------------------
    def empty_enough(self) -> bool:
        # Logs and the lock of a failed start may stay behind; anything else is someone else's.
        if not self.folder.exists():
            return True
        return all(p.name in ("run", ".lock", "runtime.json", "network", "netns.json") for p in self.folder.iterdir())

    def wipe(self) -> None:
        for name in ("arrays", "manager", "hosts", "pki", "run", "checkpoints"):
            shutil.rmtree(self.folder / name, ignore_errors=True)
        for name in ("lab.toml", "runtime.json", ".incomplete", "network"):
            (self.folder / name).unlink(missing_ok=True)

    def check_paths(self, spec: LabSpec) -> None:
        for h in spec.hosts:
            sock = str(self.socket(h.name))
            if len(sock.encode()) > MAX_SOCKET_PATH:
                raise LabError(
                    f"the agent socket {sock} would be longer than {MAX_SOCKET_PATH} bytes (a Unix socket limit); "
                    "use a shorter --lab path"
                )

    def clean_run(self) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        for p in self.run.iterdir():
            if p.name.endswith((".sock", ".ready.json")):
                p.unlink(missing_ok=True)
        shutil.rmtree(self.chaos, ignore_errors=True)
        self.runtime_path.unlink(missing_ok=True)

    def runtime_base(self, spec: LabSpec, state: str) -> dict[str, Any]:
        return {
            "version": RUNTIME_VERSION,
            "lab": str(self.folder),
            "state": state,
            "started": datetime.now().strftime("%Y/%m/%d %H:%M:%S"),
            "lab_file": str(self.lab_file),
            "source": spec.source,
            "pki": str(self.pki),
            "arrays": {},
            "manager": {},
            "hosts": {},
            "processes": [],
        }

    def make(self, spec: LabSpec, report: Report, sans: dict[str, list[str]] | None = None) -> None:
        """A new lab's folder (0700): its lab file, the CA and one certificate per principal (keys
        0600; ``sans``: a netns lab's addresses of each), empty state folders."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(PRIVATE_DIR)
        self.incomplete_marker.touch()
        self.lab_file.write_text(spec.text, encoding="utf-8")
        principals = [(a.name, "array") for a in spec.arrays]
        principals += [("manager", "manager"), ("admin", "admin")]
        principals += [(h.name, "host") for h in spec.hosts]
        from snaplab.common import pki

        self.pki.mkdir(parents=True, exist_ok=True)
        ca_cert, ca_key = pki.write_ca(self.pki)
        for name, role in principals:
            pki.write_principal(self.pki, name, role, ca_cert, ca_key, sans=(sans or {}).get(name))
        for a in spec.arrays:
            self.array_state(a.name).mkdir(parents=True, exist_ok=True)
        self.manager_state.mkdir(parents=True, exist_ok=True)
        for h in spec.hosts:
            (self.host_state(h.name) / "etc").mkdir(parents=True, exist_ok=True)
        report(f"lab folder {self.folder}: CA and {len(principals)} certificates in pki/")
