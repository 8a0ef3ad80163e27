"""A real OpenSSH server in front of the management server's shell, on loopback (docs/clients.md).

Cinder's driver logs in over SSH and sends shell lines; with ``ForceCommand`` the sshd hands each
line to ``snaplab exec manager -- bash -c "$SSH_ORIGINAL_COMMAND"``. The test runs one sshd of its
own (a port of 127.0.0.1 chosen by the system, keys made for the test, no system configuration
touched) and skips when Debian's openssh-server (``/usr/sbin/sshd``) or the ssh client is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clientlab
from clientlab import ARRAY, ClientLab
from labtools import bin_dir

SSHD = "/usr/sbin/sshd"
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")),
                       reason="openssh-server (/usr/sbin/sshd) and openssh-client are not installed "
                              "(apt-get install openssh-server)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


@pytest.fixture
def sshd(lab: ClientLab, tmp_path: Path):
    _keygen(tmp_path / "host_key")
    _keygen(tmp_path / "client_key")
    (tmp_path / "authorized_keys").write_text((tmp_path / "client_key.pub").read_text())
    snaplab = shlex.quote(str(Path(bin_dir()) / "snaplab"))
    force = f'{snaplab} --lab {shlex.quote(str(lab.run.folder))} exec manager -- bash -c "$SSH_ORIGINAL_COMMAND"'
    port = _free_port()
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\nPidFile {tmp_path / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nForceCommand {force}\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation folder sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(tmp_path / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sshd.log", "w"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail((tmp_path / "sshd.log").read_text())
                time.sleep(0.1)
        yield port, tmp_path / "client_key"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ssh(port: int, key: Path, line: str) -> subprocess.CompletedProcess[str]:
    user = os.environ.get("USER") or "root"
    return subprocess.run(
        ["ssh", "-p", str(port), "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{user}@127.0.0.1", line],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_driver_line_over_real_ssh(sshd) -> None:
    port, key = sshd
    line = f'iSMview -d | while builtin read line;do if [[ "$line" =~ "{ARRAY}" ]]; then builtin echo "$line";fi;done'
    p = _ssh(port, key, line)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1] == ARRAY
    p = _ssh(port, key, "iSMcfg nickname -ldn 4000 -newname nobody")
    assert p.returncode == 1 and p.stderr.startswith("iSMcfg:Error: iSM19003: "), p.stderr
