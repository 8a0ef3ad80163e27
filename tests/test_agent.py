"""The host agent across processes: real array and manager daemons, agent daemons, and the commands as
processes of their own (console scripts with SNAPLAB_HOST / SNAPLAB_LAB), as an operator runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from snaplab.agent import cli
from snaplab.agent import partitions as pt
from snaplab.agent.daemon import AgentServicer, load_commands, run_command
from snaplab.agent.host import Host
from snaplab.agent.process import AgentProcess
from snaplab.san import disklayout as dl
from snaplab.san.array_client import ArrayClient
from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.manager.process import ManagerProcess

from snaplab.common.errors import E
from snaplab.v1 import agent_pb2

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024
ARRAY = "Tokyo_Customer_DataBase"
LV_GUID = "37d84cca-2507-11d5-a0f7-00004c714491"
LV_VOLUME = "\\\\?\\Volume{" + LV_GUID + "}\\"
CREATED = "iSMvollist: Info:      iSM11701: Volume list is created successfully.\n"
REFUSED = "iSMrc_umount:Error: iSM13609: Access of specified disk was refused.\n"
BV_SCRIPT = """\
rem partition and format the BV, as guide 1.7 steps 1-2 do in Disk Management
select disk 1
create partition primary
format fs=ntfs label=BV001 quick
assign letter=G
"""


@dataclass
class Lab:
    root: Path
    admin: ArrayClient
    business: AgentProcess
    backup: AgentProcess


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    pki = make_lab_certs(
        root / "pki",
        [
            ("array", "array"),
            ("manager", "manager"),
            ("admin", "admin"),
            ("business01", "host"),
            ("backup01", "host"),
        ],
    )
    with ArrayProcess(root / "arrays" / ARRAY, certs=pki, name=ARRAY) as array:
        admin = array.client("admin")
        admin.add_port(0, 0, "P0")
        admin.add_port(0, 1, "P1")
        admin.set_licence("DynamicSnapVolume", 10**12)
        admin.set_licence("AccessControl")
        admin.bind_pool(0, "Pool0", "basic", 512 * MiB)
        admin.bind_pool(1, "Pool1", "dynamic", 512 * MiB)
        admin.build_sra(1, 64 * MiB, sdv_name="sdv001")
        admin.bind_ld("bv001", 16 * MiB, 0, "WN", number=0x10)
        admin.bind_ld("cv_bk", 1 * MiB, 0, "WN", number=0x20, attr="cv")
        admin.bind_ld("iv003", 4 * MiB, 0, "WN", number=0x30)
        admin.add_generations("bv001", 1, 2, sv_names=["sv001_1", "sv001_2"])
        admin.bind_lv("bv001", "lv001", number=0x40)
        # The admin's definitions of the hosts' cabling (B2): enrolment takes these, never the claim.
        admin.register_host("business01", ports=["P0"])
        admin.register_host("backup01", ports=["P1"])
        with ManagerProcess(root / "manager", certs=pki, arrays={ARRAY: array.target}) as manager:
            business = AgentProcess(root, "business01", certs=pki, manager=manager.target, ports=["P0"])
            backup = AgentProcess(
                root, "backup01", certs=pki, manager=manager.target, ports=["P1"], role="backup"
            )
            # The lab pins the LV's volume GUID on the backup server (the guide's examples use it).
            (backup.state / "etc").mkdir(parents=True, exist_ok=True)
            (backup.state / "etc" / "pinned_volumes.json").write_text(
                f'[{{"array": "", "ld": "lv001", "partition": 1, "guid": "{LV_GUID}"}}]'
            )
            with business, backup:
                for ld, port in (("bv001", "P0"), ("iv003", "P0"), ("lv001", "P1"), ("cv_bk", "P1")):
                    admin.assign_access(ld, port=port)
                yield Lab(root, admin, business, backup)
        admin.close()


def sh(
    agent: AgentProcess, *argv: str, stdin: str | None = None, cwd: Path | None = None
) -> tuple[str, str, int]:
    r = agent.shell(*argv, stdin=stdin, cwd=cwd)
    return r.stdout, r.stderr, r.returncode


def ok(agent: AgentProcess, *argv: str, stdin: str | None = None) -> str:
    out, err, code = sh(agent, *argv, stdin=stdin)
    assert code == 0, f"{argv}: {code}\n{out}{err}"
    return out


@pytest.fixture(scope="module")
def business_g(lab: Lab) -> Lab:
    """bv001 partitioned, formatted and mounted at G: on business01, with a fresh volume list (P1, P2 1-2)."""
    out = ok(lab.business, "DISKPART", stdin=BV_SCRIPT)
    assert "DiskPart successfully assigned the drive letter or mount point." in out
    assert ok(lab.business, "iSMvollist", "-cr") == CREATED
    return lab


def mountvol(agent: AgentProcess) -> dict[str, list[str]]:
    """MOUNTVOL /L parsed: volume name -> its mount point lines."""
    out = ok(agent, "MOUNTVOL", "/L")
    vols: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("\\\\?\\Volume{"):
            current = line
            vols[current] = []
        else:
            assert current is not None and line.startswith("    ") and not line.startswith("     "), out
            vols[current].append(line[4:])
    return vols


# -- volume list, DISKPART, MOUNTVOL -------------------------------------------------------------------


def test_vollist_create_message_is_the_guides(lab: Lab) -> None:
    out, err, code = sh(lab.business, "iSMvollist", "-cr")
    assert (out, err, code) == (CREATED, "", 0)
    logs = list((lab.business.state / "etc").glob("iSM_Log*.txt"))
    assert (
        logs and " INFO iSMvollist : iSM11701 : Volume list is created successfully." in logs[0].read_text()
    )


def test_diskpart_partitions_formats_and_assigns_g(business_g: Lab) -> None:
    lab = business_g
    # The partition table and the boot sector are really on the LD (the array reads them too).
    mbr = lab.admin.read("bv001", 0, 512)
    assert dl.analyse(lambda o, n: lab.admin.read("bv001", o, n)) == dl.DiskLayout("mbr", 1)
    assert dl.read_signature(mbr) not in (None, bytes(4))
    layout = pt.read_layout(lambda o, n: lab.admin.read("bv001", o, n), 16 * MiB)
    (part,) = layout.volumes()
    # the file system is an SQLite archive in the partition (agent/fs/archive.py)
    assert lab.admin.read("bv001", part.start * 512, 16) == b"SQLite format 3\x00"
    vols = mountvol(lab.business)
    assert ["G:\\"] in vols.values() and ["C:\\"] in vols.values()
    assert (lab.business.state / "mnt" / "G").is_dir()
    a = ok(lab.business, "iSMvollist", "-a")
    assert re.search(
        r"^Tokyo_Customer_DataBase +0010h +bv001 +BV +WN +disk1 +1 +- +\\\\\?\\Volume\{[0-9a-f-]{36}\}\\ +G:$",
        a,
        re.MULTILINE,
    ), a


def test_mountvol_list_layout_is_the_guides(business_g: Lab) -> None:
    out = ok(business_g.business, "MOUNTVOL", "/L")
    lines = out.splitlines()
    assert lines and len(lines) % 2 == 0
    for name, mp in zip(lines[::2], lines[1::2], strict=True):
        assert re.fullmatch(r"\\\\\?\\Volume\{[0-9a-f-]{36}\}\\", name), out
        assert re.fullmatch(r"    [A-Z]:\\", mp), out


def test_flush_output_layout(business_g: Lab) -> None:
    out = ok(business_g.business, "iSMrc_flush", "-drv", "G:")
    stamp = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"
    vol = r"\\\\\?\\Volume\{[0-9a-f-]{36}\}\\"
    body = rf"              disk1     bv001     WN\n       {vol}\n              G:\n"
    assert re.fullmatch(rf"Flush Start {{15}}{stamp}\n{body}\nFlush Normal End {{9}}{stamp}\n{body}", out), (
        out
    )


# -- iSMrc_umount / iSMrc_mount -------------------------------------------------------------------------


@pytest.fixture
def holder(business_g: Lab) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def hold(procs: list[subprocess.Popen[bytes]], folder: Path) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["sleep", "30"], cwd=folder)
    procs.append(p)
    deadline = time.monotonic() + 5
    while os.readlink(f"/proc/{p.pid}/cwd") != str(folder) and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


def test_umount_refused_while_a_process_is_in_the_mount_folder(business_g: Lab, holder: list) -> None:
    agent = business_g.business
    g = agent.state / "mnt" / "G"
    p = hold(holder, g)
    out, err, code = sh(agent, "iSMrc_umount", "-drv", "G:")
    assert (err, code) == (REFUSED, 1)
    assert ["G:\\"] in mountvol(agent).values() and g.is_dir()
    p.kill()
    p.wait()
    out = ok(agent, "iSMrc_umount", "-drv", "G:")
    assert out.startswith("Umount Start") and "Umount Normal End" in out
    assert not g.exists()
    assert ["*** NO MOUNT POINTS ***"] in mountvol(agent).values()
    # The BV is mounted again by its drive letter, through the volume list (P3 step 7).
    _, err, code = sh(agent, "iSMrc_flush", "-drv", "G:")
    assert code == 1 and "iSM13610" in err
    assert "Mount Normal End" in ok(agent, "iSMrc_mount", "-drv", "G:")
    assert g.is_dir() and ["G:\\"] in mountvol(agent).values()


def test_umount_refused_while_a_process_has_a_file_open_in_the_mount_folder(
    business_g: Lab, holder: list, tmp_path: Path
) -> None:
    """A process whose working folder is elsewhere but which keeps a file of G: open holds G: too
    (the open-file half of the "handle" scan): iSM13609 until it lets go."""
    agent = business_g.business
    g = agent.state / "mnt" / "G"
    held = g / "held_open.txt"
    held.write_text("kept open by another process\n")
    script = "import sys, time; f = open(sys.argv[1]); print('open', flush=True); time.sleep(30)"
    p = subprocess.Popen([sys.executable, "-c", script, str(held)], cwd=tmp_path, stdout=subprocess.PIPE)
    holder.append(p)
    assert p.stdout is not None and p.stdout.readline() == b"open\n"
    assert os.readlink(f"/proc/{p.pid}/cwd") == str(tmp_path)  # not in G: itself
    _, err, code = sh(agent, "iSMrc_umount", "-drv", "G:")
    assert (err, code) == (REFUSED, 1)
    assert ["G:\\"] in mountvol(agent).values() and held.is_file()
    # the message log names the holder, as the "handle" tool shows it: pid and program name
    log = "".join(f.read_text() for f in sorted((agent.state / "etc").glob("iSM_Log*.txt")))
    assert f"is held by pid {p.pid} (python" in log, log[-2000:]
    p.kill()
    p.wait()
    out = ok(agent, "iSMrc_umount", "-drv", "G:")
    assert "Umount Normal End" in out and not g.exists()
    assert "Mount Normal End" in ok(agent, "iSMrc_mount", "-drv", "G:")
    assert held.read_text() == "kept open by another process\n"  # the file went to the volume and back
    held.unlink()


def test_umount_force_and_offline(business_g: Lab, holder: list) -> None:
    agent = business_g.business
    g = agent.state / "mnt" / "G"
    hold(holder, g)
    ok(agent, "iSMrc_umount", "-drv", "G:", "-force")
    assert not g.exists()
    ok(agent, "iSMrc_mount", "-drv", "G:")
    hold(holder, g)
    ok(agent, "iSMrc_umount", "-drv", "G:", "-offline")
    assert ["*** NOT MOUNTABLE UNTIL A VOLUME MOUNT POINT IS CREATED ***"] in mountvol(agent).values()
    # -offline removed the drive letter: the volume list gives it back (guide 2.2.2.3 step 10).
    ok(agent, "iSMrc_mount", "-drv", "G:")
    assert ["G:\\"] in mountvol(agent).values()
    _, err, code = sh(agent, "iSMrc_umount", "-drv", "K:")
    assert code == 1 and "iSM11703" in err


def test_en_dash_options_are_accepted(business_g: Lab) -> None:
    out = ok(business_g.business, "iSMrc_flush", "\u2013drv", "G:")
    assert out.startswith("Flush Start")


# -- the volume list gets stale -----------------------------------------------------------------------


def test_stale_list_until_recreated(business_g: Lab) -> None:
    agent = business_g.business
    vol = next(v for v, mps in mountvol(agent).items() if mps == ["G:\\"])
    ok(agent, "MOUNTVOL", "G:", "/D")
    ok(agent, "MOUNTVOL", "K:", vol)
    _, err, code = sh(agent, "iSMrc_flush", "-drv", "G:")
    assert code == 1 and err.startswith("iSMrc_flush:Error: iSM11704: "), err
    _, err, code = sh(agent, "iSMrc_flush", "-drv", "K:")
    assert code == 1 and "iSM11703" in err
    out, err, code = sh(agent, "iSMvollist", "-check")
    assert code == 1 and "mount point" in out and "iSM11704" in err
    ok(agent, "iSMvollist", "-cr")
    ok(agent, "iSMrc_flush", "-drv", "K:")
    # Array side: an ordinary LD that becomes a BV (generations added) is another type for the list.
    ok(agent, "DISKPART", stdin="select disk 2\ncreate partition primary\nformat quick\nassign letter=M\n")
    ok(agent, "iSMvollist", "-cr")
    ok(agent, "iSMrc_flush", "-drv", "M:")
    business_g.admin.add_generations("iv003", 1, 1)
    _, err, code = sh(agent, "iSMrc_flush", "-drv", "M:")
    assert code == 1 and "iSM11704" in err and "(iv003)" in err
    out = ok(agent, "iSMvollist", "-r")
    assert "changed" in out and out.endswith(CREATED)
    ok(agent, "iSMrc_flush", "-drv", "M:")
    # back to G: for the other tests
    ok(agent, "MOUNTVOL", "K:", "/D")
    ok(agent, "MOUNTVOL", "G:", vol)
    assert ok(agent, "iSMvollist", "-cr") == CREATED


# -- the LV on the backup server ----------------------------------------------------------------------


def test_lv_link_mount_umount_and_restart(business_g: Lab) -> None:
    lab = business_g
    k = lab.backup
    assert ok(k, "iSMvollist", "-cr") == CREATED
    assert re.search(r"cv_bk +CV +WN +disk\d +- +control", ok(k, "iSMvollist", "-a"))
    assert "Not Ready" in ok(k, "DISKPART", stdin="list disk\n")
    ok(lab.business, "iSMrc_umount", "-drv", "G:")
    lab.admin.create("bv001", "sv001_1")
    ok(lab.business, "iSMrc_mount", "-drv", "G:")
    lab.admin.link("lv001", "sv001_1")
    # Guide 1.7 steps 7-9: the LV's volume (pinned GUID) gets a letter, then the list is recreated.
    assert mountvol(k)[LV_VOLUME] == ["*** NO MOUNT POINTS ***"]
    ok(k, "MOUNTVOL", "H:", LV_VOLUME)
    assert ok(k, "iSMvollist", "-cr") == CREATED
    assert (k.state / "mnt" / "H").is_dir()  # the SV holds the BV's file system
    ok(k, "iSMrc_flush", "-mvol", LV_VOLUME)
    ok(k, "iSMrc_umount", "-mvol", LV_VOLUME)
    assert re.search(r"Disk \d +Not Ready", ok(k, "DISKPART", stdin="list disk\n"))
    assert LV_VOLUME not in mountvol(k)
    # P3 steps 9-10 of the next cycle: mount by volume name and letter brings the LV back.
    out = ok(k, "iSMrc_mount", "-mvol", LV_VOLUME, "-drv", "H:")
    assert "Mount Normal End" in out and mountvol(k)[LV_VOLUME] == ["H:\\"]
    ok(k, "iSMrc_umount", "-drv", "H:")
    # 2.2.1 step 10: mounting by volume name with -drv re-sets the letter, and the list follows it.
    ok(k, "iSMrc_mount", "-mvol", LV_VOLUME, "-drv", "J:")
    ok(k, "iSMrc_flush", "-mvol", LV_VOLUME)
    ok(k, "iSMrc_flush", "-drv", "J:")
    ok(k, "iSMrc_umount", "-drv", "J:")
    ok(k, "iSMrc_mount", "-mvol", LV_VOLUME, "-drv", "H:")
    ok(k, "iSMrc_umount", "-drv", "H:")
    lab.admin.unlink("lv001")
    # C9: a restart with the LV Not Ready leaves it unrecognised until link + iSMrc_scan.
    k.restart()
    lab.admin.link("lv001", "sv001_1")
    _, err, code = sh(k, "iSMrc_mount", "-mvol", LV_VOLUME, "-drv", "H:")
    assert (err, code) == ("iSMrc_mount:Error: iSM13639: Specified path is not normal status.\n", 1)
    out = ok(k, "iSMrc_scan")
    assert re.search(r"disk\d +lv001 +WN +Ready", out), out
    ok(k, "iSMrc_mount", "-mvol", LV_VOLUME, "-drv", "H:")
    ok(k, "iSMrc_umount", "-drv", "H:")
    lab.admin.unlink("lv001")


def test_signature_export_import(business_g: Lab, tmp_path: Path) -> None:
    agent = business_g.business
    r = agent.shell("iSMrc_signature", "-export", "sig.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(x for x in (tmp_path / "sig.txt").read_text().splitlines() if " bv001 " in x)
    assert line.startswith(f"{ARRAY} 0010h bv001 WN ")
    sig = line.split()[-1]
    r = agent.shell("iSMrc_signature", "-import", "sig.txt", cwd=tmp_path)
    assert r.returncode == 0 and re.search(rf"bv001 +WN +{sig} +unchanged", r.stdout), r.stdout + r.stderr


def test_volgather_bundles_the_traces(business_g: Lab, tmp_path: Path) -> None:
    r = business_g.business.shell("iSMvolgather", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (zpath,) = tmp_path.glob("iSMvolgather_business01_*.zip")
    assert f"iSMvolgather:Info: iSM11710: Information for fault analysis is collected. ({zpath})" in r.stdout
    import zipfile

    names = zipfile.ZipFile(zpath).namelist()
    assert (
        "etc/vollist.json" in names
        and "host_db.sql" in names
        and any(n.startswith("etc/iSM_Log") for n in names)
    )


def test_format_and_chkdsk(business_g: Lab) -> None:
    out = ok(business_g.business, "CHKDSK", "G:", "/F")
    assert "The type of the file system is NTFS." in out and "found no problems" in out


# -- errors ------------------------------------------------------------------------------------------


def test_unknown_command_and_bad_options(lab: Lab) -> None:
    out, err, code = lab.business.run("FOO", "-x")
    assert (out, code) == ("", 1) and err.startswith("FOO:Error: iSM11100: ")
    for argv in (("iSMrc_flush", "-bogus"), ("iSMvollist",), ("iSMrc_umount", "-drv"), ("MOUNTVOL", "/Q")):
        out, err, code = sh(lab.business, *argv)
        assert code == 1 and err.startswith(f"{argv[0]}:Error: iSM11100: Command syntax is incorrect."), (
            argv,
            err,
        )
        assert "Traceback" not in out + err


def test_command_without_agent(lab: Lab, tmp_path: Path) -> None:
    r = subprocess.run(
        [cli_script("iSMvollist"), "-cr"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "SNAPLAB_HOST": "nohost", "SNAPLAB_LAB": str(lab.root)},
    )
    assert (r.stdout, r.returncode) == ("", 1)
    assert (
        r.stderr
        == "iSMvollist:Error: iSM11101: SnapControl service of the server does not respond. (nohost)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SNAPLAB_HOST"}
    r = subprocess.run(
        [cli_script("iSMvollist"), "-cr"], capture_output=True, text=True, timeout=30, check=False, env=env
    )
    assert r.returncode == 1 and "SNAPLAB_HOST" in r.stderr


def cli_script(name: str) -> str:
    from snaplab.agent.process import script

    return script(name)


def test_cli_messages_match_the_catalogue() -> None:
    assert cli.AGENT_DOWN == (E.AGENT_DOWN.msg_id, E.AGENT_DOWN.text)
    assert cli.INTERNAL == (E.INTERNAL.msg_id, E.INTERNAL.text)


def test_socket_is_private_and_removed_on_sigterm(lab: Lab) -> None:
    assert (lab.backup.socket.stat().st_mode & 0o777) == 0o600
    pid = lab.backup.pid
    os.kill(pid, signal.SIGTERM)
    assert lab.backup.proc is not None and lab.backup.proc.wait(15) == 0
    assert not lab.backup.socket.exists()
    lab.backup.start()


# -- in-process units ----------------------------------------------------------------------------------


def test_status_answers_while_a_command_holds_the_host(tmp_path: Path) -> None:
    load_commands()
    host = Host("h1", tmp_path / "h1")
    servicer = AgentServicer(host)
    with host.command():
        result: list[agent_pb2.StatusReply] = []
        t = threading.Thread(target=lambda: result.append(servicer.Status(agent_pb2.StatusRequest(), None)))  # type: ignore[arg-type]
        t.start()
        t.join(5)
        assert result and result[0].host == "h1" and result[0].mounts[0].startswith("C: \\\\?\\Volume{")
    _, err, code = run_command(host, ["iSMvollist", "-a"])
    assert (
        code == 1
        and err == "iSMvollist:Error: iSM11702: Volume list does not exist. Create it with iSMvollist -cr.\n"
    )
    host.close()


def _disk(total_mib: int) -> tuple[bytearray, object, object]:
    buf = bytearray(total_mib * MiB)

    def read(o: int, n: int) -> bytes:
        return bytes(buf[o : o + n])

    def write(o: int, data: bytes) -> None:
        buf[o : o + len(data)] = data

    return buf, read, write


def test_partition_tables_round_trip_and_match_the_arrays_reading() -> None:
    _, read, write = _disk(64)
    layout = pt.initialise(64 * MiB // 512, "mbr")
    pt.add_partition(layout, "primary", 8)
    pt.add_partition(layout, "extended", None)
    pt.add_partition(layout, "logical", 10)
    pt.add_partition(layout, "logical", None)
    pt.write_layout(write, layout)  # type: ignore[arg-type]
    again = pt.read_layout(read, 64 * MiB)  # type: ignore[arg-type]
    assert [(p.number, p.kind, p.start, p.sectors) for p in again.parts] == [
        (p.number, p.kind, p.start, p.sectors) for p in layout.parts
    ]
    assert [p.kind for p in again.volumes()] == ["primary", "logical", "logical"]
    assert dl.analyse(read) == dl.DiskLayout("mbr", 3)
    assert not any(
        a.start < b.end and b.start < a.end for a in again.volumes() for b in again.volumes() if a is not b
    )

    _, read, write = _disk(32)
    g = pt.initialise(32 * MiB // 512, "gpt")
    pt.add_partition(g, "primary", 4)
    pt.add_partition(g, "primary", None)
    pt.write_layout(write, g)  # type: ignore[arg-type]
    again = pt.read_layout(read, 32 * MiB)  # type: ignore[arg-type]
    assert again.scheme == "gpt" and [p.guid for p in again.parts] == [p.guid for p in g.parts]
    assert dl.analyse(read) == dl.DiskLayout("gpt", 2)
    pt.convert_dynamic(again)
    pt.write_layout(write, again)  # type: ignore[arg-type]
    assert dl.analyse(read).dynamic
    with pytest.raises(pt.LayoutError):
        pt.add_partition(pt.initialise(2048, "mbr"), "logical", None)


def test_pinned_guid_wins(tmp_path: Path) -> None:
    host = Host("h2", tmp_path / "h2")
    host.pin_volume("", "lv009", 1, "{" + str(uuid.UUID(int=5)) + "}")
    assert host.pins() == [{"array": "", "ld": "lv009", "partition": 1, "guid": str(uuid.UUID(int=5))}]
    assert Host._pinned(host.pins(), "A", "lv009", "0040h", 1) == str(uuid.UUID(int=5))
    assert Host._pinned(host.pins(), "A", "lv009", "0040h", 2) is None
    host.close()
