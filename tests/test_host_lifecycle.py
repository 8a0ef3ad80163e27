"""Host lifecycle (issue 9 item 1): `snaplab host stop|kill|start|restart`, `lab status` per host, `lab up`
bringing back only what died, and the guide's server restart with an LV (3.9 / C9). One real lab
(`snaplab lab up` of a small lab file) for the whole module; commands run as processes of their own."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, alive
from labtools import file_digests as sha
from labtools import run_ok as cmd

pytestmark = pytest.mark.timeout(600)

VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
LAB = """
    [[arrays]]
    name = "Small_Array"
    product_id = "S2800"
    ports = ["00h/00h P_BIZ", "01h/00h P_BAK"]
    pools = [
      { number = 0, kind = "basic", capacity = "4GiB" },
      { number = 1, kind = "dynamic", capacity = "4GiB" },
    ]
    sra = [{ pool = 1, capacity = "256MiB", name = "SDV1", number = "0100h" }]
    lds = [
      { number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 },
      { number = "002ah", name = "BK_CV", capacity = "16MiB", pool = 0, attr = "cv" },
    ]
    generations = [{ bv = "bv001", pool = 1, svs = ["sv001_01"], numbers = ["0031h"] }]
    lvs = [{ bv = "bv001", name = "lv001", number = "0038h" }]
    licences = ["DynamicSnapVolume", "AccessControl"]

    [[access]]
    ld = "bv001"
    port = "P_BIZ"

    [[access]]
    lds = ["lv001", "BK_CV"]
    port = "P_BAK"

    [[hosts]]
    name = "business01"
    role = "business"
    wwns = ["10:00:00:00:c9:00:00:01"]
    ports = ["P_BIZ"]

    [[hosts]]
    name = "backup01"
    role = "backup"
    wwns = ["10:00:00:00:c9:00:00:02"]
    ports = ["P_BAK"]
    volumes = [{ ld = "lv001", partition = 1, guid = "37d84cca-2507-11d5-a0f7-00004c714491" }]

    [[setup]]
    host = "business01"
    commands = ["DISKPART"]
    stdin = \"\"\"
    select disk 1
    create partition primary
    format fs=ntfs quick label=bv001
    assign letter=G
    \"\"\"

    [[setup]]
    host = "business01"
    commands = ["iSMvollist -cr"]

    [[setup]]
    host = "backup01"
    commands = ["iSMvollist -cr"]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRun]:
    run = LabRun(tmp_path_factory.mktemp("lifecycle"))
    try:
        up = run("lab", "up", str(run.write("small.toml", LAB)), timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        yield run
    finally:
        run.teardown()


def pid_of(lab: LabRun, kind: str, name: str) -> int:
    rt = lab.runtime()
    assert rt is not None
    return next(p["pid"] for p in rt["processes"] if p["kind"] == kind and p["name"] == name)


def states(lab: LabRun) -> dict[str, str]:
    """PROCESS NAME -> STATE from `snaplab lab status`."""
    st = lab("lab", "status")
    out = {}
    for line in st.stdout.splitlines()[2:]:
        cols = line.split()
        if len(cols) >= 4 and cols[0] in ("array", "manager", "agent"):
            out[cols[1]] = cols[3]
    return out


def one_ism_line(ran: object, msg_id: str) -> None:
    assert ran.returncode == 1, ran.stdout + ran.stderr  # type: ignore[attr-defined]
    lines = ran.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and msg_id in lines[0] and "Traceback" not in ran.stderr, ran.stderr  # type: ignore[attr-defined]


def events(lab: LabRun) -> str:
    """The manager's event log as ``iSMview -event`` shows it."""
    ran = lab("exec", "manager", "--", "iSMview", "-event")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def test_bad_input_is_one_line_and_changes_nothing(lab: LabRun) -> None:
    before = pid_of(lab, "agent", "backup01")
    one_ism_line(
        lab("host", "start", "backup01"), "iSM31181: Specified server is already running. (backup01)"
    )
    one_ism_line(
        lab("host", "kill", "nohost"), "iSM31180: Specified server is not a server of the lab. (nohost)"
    )
    one_ism_line(lab("host", "stop", "manager"), "iSM31180")
    assert pid_of(lab, "agent", "backup01") == before and alive(before)
    assert set(states(lab).values()) == {"running"}


def test_server_restart_with_lv_c9(lab: LabRun) -> None:
    """3.9 / C9: backup01 crashes with lv001 linked and mounted; the LV is unlinked while it is down
    (the operator, from the management server); at boot lv001 is unrecognised until iSMsc_link +
    iSMrc_scan, and then mounts with its data."""
    g = Path(lab("path", "business01", "G:").stdout.strip())
    (g / "db").mkdir(exist_ok=True)
    (g / "db" / "table.bin").write_bytes(os.urandom(200_000))
    cmd(lab, "business01", "iSMrc_flush -drv G:")
    expected = sha(g)
    cmd(lab, "business01", "iSMsc_create -bv bv001 -bvflg ld -sv sv001_01 -svflg ld")
    cmd(lab, "backup01", "iSMsc_link -lv lv001 -lvflg ld -sv sv001_01 -svflg ld")
    cmd(lab, "backup01", "iSMrc_scan")
    cmd(lab, "backup01", f"MOUNTVOL H: {VOL}")
    cmd(lab, "backup01", "iSMvollist -cr")
    h = Path(lab("path", "backup01", "H:").stdout.strip())
    assert sha(h) == expected

    killed = lab("host", "kill", "backup01")
    assert killed.returncode == 0 and "host backup01: crashed" in killed.stdout, killed.stdout + killed.stderr
    assert "iSM31205 : Server is down. (backup01: crashed)" in events(lab)  # no cluster node: logged as well
    st = states(lab)
    assert st["backup01"] == "crashed" and st["business01"] == "running", st
    assert lab("lab", "status").returncode == 1
    one_ism_line(lab("host", "stop", "backup01"), "iSM31182: Specified server is not running. (backup01)")
    from snaplab.common.rpc import ClientTLS
    from snaplab.san.array_client import ArrayClient

    rt = lab.runtime()
    assert rt is not None
    with ArrayClient(
        rt["arrays"]["Small_Array"]["target"], ClientTLS.from_folder(lab.folder / "pki", "admin")
    ) as a:
        a.unlink("lv001")

    started = lab("host", "start", "backup01")
    assert started.returncode == 0 and "host backup01: running" in started.stdout, (
        started.stdout + started.stderr
    )
    assert states(lab)["backup01"] == "running"
    assert "iSM31206 : Server is up. (backup01)" in events(lab)
    listing = cmd(lab, "backup01", "MOUNTVOL /L").stdout
    assert "H:" not in listing and "37d84cca" not in listing, listing  # not recognised: no such volume
    assert lab("path", "backup01", "H:").returncode == 1
    cmd(lab, "backup01", f"iSMrc_mount -mvol {VOL} -drv H:", code=1)
    cmd(lab, "backup01", "iSMsc_link -lv lv001 -lvflg ld -sv sv001_01 -svflg ld")  # through BK_CV
    assert "37d84cca" not in cmd(lab, "backup01", "MOUNTVOL /L").stdout  # linked, still unrecognised
    cmd(lab, "backup01", "iSMrc_scan")
    h = Path(lab("path", "backup01", "H:").stdout.strip())  # automount: H: is back
    assert sha(h) == expected
    cmd(lab, "backup01", f"iSMrc_umount -mvol {VOL}")
    cmd(lab, "backup01", "iSMsc_unlink -lv lv001 -lvflg ld")


def test_stop_flushes_and_lab_up_brings_back_only_what_died(lab: LabRun) -> None:
    g = Path(lab("path", "business01", "G:").stdout.strip())
    (g / "late.txt").write_text("written, never flushed by hand\n")
    expected = sha(g)
    backup = pid_of(lab, "agent", "backup01")
    stopped = lab("host", "stop", "business01")
    assert stopped.returncode == 0 and "host business01: stopped" in stopped.stdout, (
        stopped.stdout + stopped.stderr
    )
    assert states(lab)["business01"] == "stopped"
    assert "iSM31205 : Server is down. (business01: stopped)" in events(lab)
    # the manager dies too: `lab up` starts both again, on the manager's old port, and nothing else
    manager = pid_of(lab, "manager", "manager")
    array = pid_of(lab, "array", "Small_Array")
    target = (lab.runtime() or {})["manager"]["target"]
    os.kill(manager, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(manager) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states(lab)["manager"] == "crashed"
    up = lab("lab", "up", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "started again: manager, agent business01" in up.stdout, up.stdout
    assert "iSM31206 : Server is up. (business01)" in events(lab)  # lab up's revival is a boot too
    assert pid_of(lab, "agent", "backup01") == backup and pid_of(lab, "array", "Small_Array") == array
    assert (lab.runtime() or {})["manager"]["target"] == target
    assert set(states(lab).values()) == {"running"}
    assert lab("lab", "status").returncode == 0
    # business01 booted with bv001 Ready: G: is mounted again and holds what the stop flushed
    assert sha(Path(lab("path", "business01", "G:").stdout.strip())) == expected
    # the backup server's agent (never restarted) reaches the new manager
    cmd(lab, "backup01", "iSMsc_query -bv bv001 -bvflg ld")
    again = lab("lab", "up")
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
    restarted = lab("host", "restart", "backup01")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert pid_of(lab, "agent", "backup01") != backup and states(lab)["backup01"] == "running"
    log = events(lab)
    stopped_at = log.rindex("iSM31205 : Server is down. (backup01: stopped)")
    assert log.find("iSM31206 : Server is up. (backup01)", stopped_at) > stopped_at  # the stop, then the boot
