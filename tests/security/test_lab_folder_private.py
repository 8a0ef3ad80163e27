"""Issue 8 item 4: the lab folder (certificates and keys, hosts' file-system caches, host.db, array.db,
manager.db, logs) is this user's alone: the folder 0700, keys 0600, nothing readable by group or others.

The attack of the issue: any local user could read the hosts' caches and the daemons' state because
the folder and its files were created 0755/0644.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools: see its docstring
from labtools import LabRun, RefLab

pytestmark = pytest.mark.timeout(180)

README = Path(__file__).resolve().parents[2] / "README.md"
SMALL_LAB = """
[[arrays]]
name = "Small_Array"
ports = ["00h/00h P_BIZ"]
pools = [{ number = 0, kind = "basic", capacity = "1GiB" }, { number = 1, kind = "dynamic", capacity = "1GiB" }]
sra = [{ pool = 1, capacity = "64MiB" }]
lds = [{ number = "0030h", name = "bv001", format = "WN", capacity = "16MiB", pool = 0 }]
generations = [{ bv = "bv001", pool = 1, svs = ["sv001_01"] }]
licences = ["DynamicSnapVolume", "AccessControl"]

[[hosts]]
name = "biz01"
role = "business"
wwns = ["10:00:00:00:c9:00:00:01"]
ports = ["P_BIZ"]

[[access]]
ld = "bv001"
port = "P_BIZ"

[[setup]]
host = "biz01"
commands = ["iSMvollist -cr"]
"""


def open_to_others(folder: Path) -> list[str]:
    """Every path under ``folder`` (itself included) that group or others may read, write or enter."""
    found = []
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(folder.parent)} {stat.filemode(mode)}")
    return found


def test_the_reference_lab_folder_is_private(ref_lab: RefLab) -> None:
    folder = ref_lab.folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert open_to_others(folder) == []
    keys = list((folder / "pki").glob("*.key"))
    assert len(keys) >= 8 and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    # The files a host's programs see and the daemons' databases are among them.
    for path in ("hosts/business01/host.db", "arrays/Tokyo_Customer_DataBase/array.db", "manager/manager.db"):
        assert stat.S_IMODE((folder / path).stat().st_mode) == 0o600, path
    assert (folder / "hosts" / "business01" / "mnt").is_dir()


def test_a_lab_made_open_is_made_private_when_it_starts_again(tmp_path: Path) -> None:
    run = LabRun(tmp_path)
    try:
        spec = run.write("small.toml", SMALL_LAB)
        up = run("lab", "up", str(spec))
        assert up.returncode == 0, up.stdout + up.stderr
        assert open_to_others(run.folder) == []
        assert run("lab", "down").returncode == 0
        # As a lab made before the rule left it: everything readable and the folder open.
        for path in [run.folder, *run.folder.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o055)
        up = run("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert stat.S_IMODE(run.folder.stat().st_mode) == 0o700
        # What this start made is private again: runtime.json, the agent's socket, the ready files.
        assert stat.S_IMODE((run.folder / "runtime.json").stat().st_mode) == 0o600
        socks = list((run.folder / "run").glob("*.sock"))
        assert socks and all(stat.S_IMODE(s.lstat().st_mode) == 0o600 for s in socks)
    finally:
        run.teardown()


def test_the_readme_says_so() -> None:
    text = README.read_text()
    assert "0700" in text and "0600" in text and "umask" in text
