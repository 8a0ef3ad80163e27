"""The guide's procedures P1, P2, P3, P4 and P6 (SPEC §6) end to end, with the guide's commands verbatim.

Each lab is real OS processes started with ``snaplab lab up`` (an array, the manager, three or four
agents); every command is its own process, the console script of its name run with ``SNAPLAB_HOST``
and ``SNAPLAB_LAB`` set, split on blanks as the Windows command prompt of the guide splits it (so
``\\\\?\\Volume{...}\\`` and the guide's en-dash options ``–bv`` reach the command as printed).
Management-side checks go through ``snaplab exec manager -- iSMview``. The tests assert what each
command prints (message ids, the create/link blocks, the flush/umount/mount layouts) and the states
that follow (generations, guard, links, mount table, volume list, Not Ready disks), never how the
agent keeps them.

Steps of the guide that are not SnapControl commands are played by what they mean in the lab:
the business (``NET START``/``NET STOP`` of a service) is a process of the business server's machine
working in G: (its current folder is ``snaplab path business01 G:``); the backup to tape reads the
LV's files into an archive; a server restart that makes the LV's disk seen is ``iSMrc_scan``.

Guide sections: P1 = 1.6, P2 = 1.7 steps 1-11, P3 = 2.2.1 steps 1-15, P4 = 2.2.2.2, P6 = 2.2.3.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, alive, command_env, lab_processes, run_on

ARRAY = "Tokyo_Customer_DataBase"
# The LV's volume name of 2.2.1 step 10 and 2.2.3 step 2-2 (pinned on backup01 and test01 by the lab file).
VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
STAMP = r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"
VOLUME_NAME = r"\\\\\?\\Volume\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}\\"
VOLLIST_CREATED = "iSMvollist: Info:      iSM11701: Volume list is created successfully."
UMOUNT_REFUSED = "iSMrc_umount:Error: iSM13609: Access of specified disk was refused."

# 1.7 with the guide's own names: bv001 with one SV generation, sv001_1 (1.7's example; 2.2.1 too
# starts from "SV (1 generation)"), lv001 with the volume name 2.2.1 step 10 mounts, a CV for the backup
# and the test server, three hosts; no setup, so the lab is where 1.6 starts (no partition, no lists).
PREPARE_LAB = """
[lab]
description = "guide 1.6 and 1.7: bv001 with the SV of the 1.7 example, before any preparation"

[[arrays]]
name = "Tokyo_Customer_DataBase"
product_id = "S2800"
ports = ["01h/00h DB_PRIMARY", "00h/01h BACKUP_PRIMARY", "00h/02h TEST_PRIMARY"]
pools = [
  { number = 0, kind = "basic", capacity = "4GiB" },
  { number = 1, kind = "dynamic", capacity = "4GiB" },
]
sra = [{ pool = 1, capacity = "1GiB", name = "SDV1", number = "0100h" }]
lds = [
  { number = "0030h", name = "bv001", format = "WN", capacity = "256MiB", pool = 0 },
  { number = "002ah", name = "BACKUP_CV", format = "WN", capacity = "16MiB", pool = 0, attr = "cv" },
  { number = "002bh", name = "TEST_CV", format = "WN", capacity = "16MiB", pool = 0, attr = "cv" },
]
generations = [{ bv = "bv001", pool = 1, svs = [{ name = "sv001_1", number = "0031h" }] }]
lvs = [{ bv = "bv001", name = "lv001", number = "0038h" }]
licences = ["DynamicSnapVolume", "AccessControl"]

[[hosts]]
name = "business01"
role = "business"
wwns = ["10:00:00:00:c9:2a:01:01"]
ports = ["DB_PRIMARY"]

[[hosts]]
name = "backup01"
role = "backup"
wwns = ["10:00:00:00:c9:2a:03:01"]
ports = ["BACKUP_PRIMARY"]
volumes = [{ ld = "lv001", partition = 1, guid = "37d84cca-2507-11d5-a0f7-00004c714491" }]

[[hosts]]
name = "test01"
role = "test"
wwns = ["10:00:00:00:c9:2a:04:01"]
ports = ["TEST_PRIMARY"]

[[access]]
ld = "bv001"
port = "DB_PRIMARY"

[[access]]
lds = ["lv001", "BACKUP_CV"]
port = "BACKUP_PRIMARY"

[[access]]
lds = ["lv001", "TEST_CV"]
port = "TEST_PRIMARY"
"""


# -- the lab and its hosts --------------------------------------------------------------------------


class Lab:
    """A running lab: host commands as their own processes, the manager's console, and the programs
    of the hosts' machines that use a mounted drive (the business; a window left open)."""

    def __init__(self, run: LabRun) -> None:
        self.run = run
        self.folder = run.folder
        self.work = run.root / "work"  # the operators' current folder (vollist_data.txt, the tape)
        self.work.mkdir(exist_ok=True)
        self.programs: list[subprocess.Popen[bytes]] = []

    def up(self, *args: str) -> None:
        up = self.run("lab", "up", *args, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr

    def cmd(
        self, host: str, line: str, *, stdin: str | None = None, shell: bool = False, code: int = 0
    ) -> Ran:
        """Run ``line`` on ``host``; it must exit with ``code`` (and print nothing on stderr when 0)."""
        ran = run_on(self.folder, host, line, cwd=self.work, stdin=stdin, shell=shell)
        assert ran.code == code, str(ran)
        if code == 0:
            assert ran.stderr == "", str(ran)
        return ran

    def manager(self, *argv: str) -> list[str]:
        out = self.run("exec", "manager", "--", *argv)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.splitlines()

    def path(self, host: str, mount_point: str) -> Path:
        out = self.run("path", host, mount_point)
        assert out.returncode == 0, out.stdout + out.stderr
        return Path(out.stdout.strip())

    def start_program(self, host: str, mount_point: str) -> subprocess.Popen[bytes]:
        """A program of ``host``'s machine working in ``mount_point`` (its current folder is there)."""
        proc = subprocess.Popen(["sleep", "3600"], cwd=self.path(host, mount_point), start_new_session=True)
        self.programs.append(proc)
        return proc

    def stop_program(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        proc.wait(timeout=10)

    def stop_programs(self) -> None:
        for proc in self.programs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.programs = []

    def close(self) -> None:
        self.stop_programs()
        self.run.teardown()


def _lab(root: Path, *up_args: str, labfile: str | None = None) -> Iterator[Lab]:
    lab = Lab(LabRun(root))
    try:
        if labfile is not None:
            up_args = (str(lab.run.write("lab.toml", labfile)), *up_args)
        lab.up(*up_args)
        yield lab
    finally:
        lab.close()


# One lab per test class (so at most one of them runs at a time); its tests run in file order, each
# from where the one before left it.


@pytest.fixture(scope="class")
def prepare_class_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("prepare"), labfile=PREPARE_LAB)


@pytest.fixture(scope="class")
def guide_class_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("guide"))


@pytest.fixture
def prepare_lab(prepare_class_lab: Lab) -> Iterator[Lab]:
    """The lab of 1.6 and 1.7 (PREPARE_LAB): array, manager, business01, backup01, test01."""
    yield prepare_class_lab
    prepare_class_lab.stop_programs()  # a failed test must not leave a program holding a drive


@pytest.fixture
def guide_lab(guide_class_lab: Lab) -> Iterator[Lab]:
    """The guide's reference lab (``snaplab lab up``): its setup is 1.6 and 1.7, so 2.2 starts there.
    Each test leaves it as 2.2 starts: G: mounted on business01, lv001 unlinked, no guard."""
    yield guide_class_lab
    guide_class_lab.stop_programs()


# -- what the commands print ------------------------------------------------------------------------


def done(ran: Ran, command: str, msg_id: str) -> dict[str, dict[str, str]]:
    """The success line, then the block of create/delete/restore/wait/svguard/link/unlink:
    ``{"BV"|"SV"|"LV": {"name", "type", field: value}}``."""
    assert ran.lines[0] == f"{command}:Info: {msg_id}: {command} has normally terminated.", str(ran)
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in ran.lines[1:]:
        if m := re.fullmatch(r" {3}(BV|SV|LV):(\S+) +(\S+)", line):
            current = blocks.setdefault(m[1], {"name": m[2], "type": m[3]})
        elif (m := re.fullmatch(r" {6}(\S[^:]*?) *: (.*)", line)) and current is not None:
            current[m[1]] = m[2]
        else:
            raise AssertionError(f"unexpected line {line!r}\n{ran}")
    return blocks


def has(found: dict[str, str], **expected: str) -> bool:
    """``found`` holds every item of ``expected`` (and maybe more)."""
    return {k: found.get(k) for k in expected} == expected


def status(value: str) -> str:
    """``snap/active [2026/11/24 22:37:09]`` -> ``snap/active``."""
    m = re.fullmatch(rf"(\S+) +\[({STAMP})\]", value)
    assert m, value
    return m[1]


def disk_blocks(ran: Ran, verb: str) -> tuple[str, str, str, str, list[str]]:
    """The layout of iSMrc_flush/umount/mount (SPEC §8): the Start and the Normal End block, each
    ``disk LD format``, the volume name and its mount points. Returns (disk, LD, format, volume, points)."""
    lines = ran.lines
    assert "" in lines, str(ran)
    cut = lines.index("")
    found = []
    for block, title in ((lines[:cut], f"{verb} Start"), (lines[cut + 1 :], f"{verb} Normal End")):
        assert re.fullmatch(rf"{title} +{STAMP}", block[0]), str(ran)
        m = re.fullmatch(r" {14}(disk\d+) +(\S+) +(\S+)", block[1])
        assert m, str(ran)
        assert re.fullmatch(" {7}" + VOLUME_NAME, block[2]), str(ran)
        assert all(re.fullmatch(r" {14}\S.*", line) for line in block[3:]), str(ran)
        found.append((m[1], m[2], m[3], block[2].strip(), [line.strip() for line in block[3:]]))
    assert found[0] == found[1], str(ran)
    return found[0]


def mountvol(ran: Ran) -> dict[str, list[str]]:
    """``MOUNTVOL /L`` as 1.7 step 9 shows it: a volume name line, then its mount points indented by
    four blanks (or ``*** NO MOUNT POINTS ***``). Returns {volume: [mount points]}."""
    volumes: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in ran.lines:
        if re.fullmatch(VOLUME_NAME, line):
            assert line not in volumes, str(ran)
            current = volumes[line] = []
            continue
        assert current is not None and re.fullmatch(r" {4}\S.*", line), f"{line!r} in\n{ran}"
        if not line.strip().startswith("***"):
            current.append(line.strip())
    assert ran.lines and not ran.lines[-1].startswith("\\"), str(ran)  # every volume has its line(s)
    return volumes


def mounted(lab: Lab, host: str) -> dict[str, str]:
    """The mount table of ``host`` (MOUNTVOL /L): {mount point: volume}."""
    return {mp: vol for vol, mps in mountvol(lab.cmd(host, "MOUNTVOL /L")).items() for mp in mps}


def disks(lab: Lab, host: str) -> dict[str, str]:
    """DISKPART ``list disk`` on ``host``: {"diskN": status}, e.g. ``Online`` or ``Not Ready``."""
    ran = lab.cmd(host, "DISKPART", stdin="list disk\n")
    found = {}
    for line in ran.lines:
        if m := re.match(r"[ *] Disk (\d+) +(\S+(?: \S+)*?) {2,}\d", line):
            found[f"disk{m[1]}"] = m[2]
    assert found, str(ran)
    return found


def summary(ran: Ran) -> list[dict[str, str]]:
    """``iSMsc_query ... -summary``: every SV line, newest generation first."""
    assert ran.lines[0] == "BV Information" and "SV Information" in ran.lines, str(ran)
    svs = []
    for line in ran.lines[ran.lines.index("SV Information") + 1 :]:
        m = re.fullmatch(r"  (\w+):(\S+) +\( *(-?\d+|-)\) (\S+) +\[([^\]]*)\] (\S+)", line)
        assert m, f"{line!r} in\n{ran}"
        svs.append({"sv": m[2], "gen": m[3], "state": m[4], "time": m[5], "link": m[6]})
    return svs


def query(lab: Lab, host: str = "business01") -> list[dict[str, str]]:
    return summary(lab.cmd(host, "iSMsc_query -bv bv001 -bvflg ld -summary"))


def live(svs: list[dict[str, str]]) -> list[str]:
    """The SVs holding a snapshot, newest (-1) first, checking their generation numbers run -1, -2, ..."""
    gens = [s for s in svs if s["gen"] != "-"]
    assert [s["gen"] for s in gens] == [str(-i) for i in range(1, len(gens) + 1)], svs
    assert all(s["state"] == "snap/active" for s in gens), svs
    return [s["sv"] for s in gens]


def detail(lab: Lab, host: str = "business01") -> dict[str, dict[str, str]]:
    """``iSMsc_query -bv bv001 -bvflg ld -detail``: {SV: its fields, with ``LV`` the LD name of its LV}."""
    ran = lab.cmd(host, "iSMsc_query -bv bv001 -bvflg ld -detail")
    assert "Pair Information" in ran.lines, str(ran)
    svs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in ran.lines[ran.lines.index("Pair Information") + 1 :]:
        if m := re.fullmatch(r" {4}(SV|LV):LD Name +: (\S+)", line):
            if m[1] == "SV":
                current = svs[m[2]] = {}
            else:
                assert current is not None, str(ran)
                current["LV"] = m[2]
        elif (m := re.fullmatch(r" {7}(\S.*?) *: (.*)", line)) and current is not None:
            current.setdefault(m[1], m[2])  # the SV's own Type/Special File win over its LV's
        else:
            raise AssertionError(f"unexpected line {line!r}\n{ran}")
    return svs


def snapshot_list(lab: Lab) -> dict[str, dict[str, str]]:
    """The manager's view (``iSMview -snap``) of bv001's generations: {SV: gen, state, guard, link, lv}."""
    lines = lab.manager("iSMview", "-snap", ARRAY)
    start = next(i for i, line in enumerate(lines) if line.startswith("BV:bv001 "))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("  "):
            break
        f = line.split()
        rows[f[1]] = {"gen": f[0], "state": f[2], "guard": f[-3], "link": f[-2], "lv": f[-1]}
    return rows


def vollist_rows(text: str, host: str) -> list[list[str]]:
    """``iSMvollist -a``: the header, then one row per LD and per volume (10 columns)."""
    lines = text.splitlines()
    assert lines[0] == "Volume List" and lines[1] == f"    Host Name     : {host}", text
    assert re.fullmatch(rf"    Created       : {STAMP}", lines[2]), text
    head = next(i for i, line in enumerate(lines) if line.startswith("Disk Array Name"))
    assert " ".join(lines[head].split()) == (
        "Disk Array Name LDN LD Name Type Format Disk Part Definition Volume Name Mount Point"
    ), text
    rows = [line.split() for line in lines[head + 1 :] if line.strip()]
    assert all(len(r) == 10 and r[0] == ARRAY for r in rows), text
    return rows


# -- the guide's command lines and the cycles built from them ---------------------------------------

HOSTS = ("business01", "backup01", "test01")  # of PREPARE_LAB

BUSINESS_P3 = [  # 2.2.1 steps 1-8 as printed (step 6 with the guide's en-dashes)
    "iSMsc_delete -bv bv001 -bvflg ld -auto",
    "iSMrc_flush -drv G:",
    "iSMrc_umount -drv G:",
    "iSMsc_create -bv bv001 -bvflg ld -cyclic",
    "iSMsc_svguard –bv bv001 –bvflg ld –sv .-1 –svflg relgen –mode set",
    "iSMrc_mount -drv G:",
]
BACKUP_P3 = [  # 2.2.1 steps 9-15 as printed (two blanks before -drv in step 10)
    "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen",
    f"iSMrc_mount -mvol {VOL}  -drv H:",
    f"iSMrc_flush -mvol {VOL}",
    f"iSMrc_umount -mvol {VOL}",
    "iSMsc_unlink -lv lv001 -lvflg ld",
    "iSMsc_svguard –bv bv001 –bvflg ld –sv .-1 –svflg relgen –mode cancel",
]


def backup_cycle(lab: Lab, first: bool) -> None:
    """One run of 2.2.1 steps 1-15 on business01 and backup01, checking each step."""
    delete, flush, umount, create, guard, mount = BUSINESS_P3
    link, lv_mount, lv_flush, lv_umount, unlink, unguard = BACKUP_P3
    before = query(lab)
    bv_volume = mounted(lab, "business01")["G:\\"]
    business = lab.start_program("business01", "G:")  # the business runs on G:

    # Step 1: delete the generation the cyclic create will reuse (or nothing, if it is free)
    ran = lab.cmd("business01", delete)
    if ran.lines[0].startswith("iSMsc_delete:Notice:"):
        assert ran.lines == ["iSMsc_delete:Notice: iSM19030: There is no snapshot to delete. (bv001)"]
        reused = None
    else:
        reused = done(ran, "iSMsc_delete", "iSM19011")["SV"]["name"]
        assert reused == live(before)[-1]  # the oldest generation
    after_delete = query(lab)
    free = [s["sv"] for s in after_delete if s["gen"] == "-"]

    # Step 2: stop the business. Before it stops, step 4's unmount fails as the guide warns.
    if first:
        ran = lab.cmd("business01", umount, code=1)
        assert ran.stderr == UMOUNT_REFUSED + "\n" and ran.lines[0].startswith("Umount Start"), str(ran)
        assert mounted(lab, "business01")["G:\\"] == bv_volume
    lab.stop_program(business)  # NET STOP

    # Step 3
    bv_disk, *rest = disk_blocks(lab.cmd("business01", flush), "Flush")
    assert rest == ["bv001", "WN", bv_volume, ["G:"]]
    # Step 4
    assert disk_blocks(lab.cmd("business01", umount), "Umount") == (bv_disk, "bv001", "WN", bv_volume, ["G:"])
    assert "G:\\" not in mounted(lab, "business01")
    # Step 5: the new generation goes to a free SV of the set, the one step 1 freed if it freed one
    out = done(lab.cmd("business01", create), "iSMsc_create", "iSM19010")
    assert out["BV"] == {"name": "bv001", "type": "WN", "Special File": bv_disk}
    sv = out["SV"]["name"]
    assert sv == reused if reused else sv in free, (sv, reused, free)
    assert out["SV"]["Generation"] == "-1" and status(out["SV"]["Status"]) == "snap/active"
    assert live(query(lab)) == [sv, *live(after_delete)]
    # Step 6
    out = done(lab.cmd("business01", guard), "iSMsc_svguard", "iSM19014")
    assert out["SV"]["name"] == sv and out["SV"]["SV Guard"] == "on"
    assert detail(lab)[sv]["SV Guard"] == "on"
    # Step 7
    assert disk_blocks(lab.cmd("business01", mount), "Mount") == (bv_disk, "bv001", "WN", bv_volume, ["G:"])
    assert mounted(lab, "business01")["G:\\"] == bv_volume
    # Step 8: restart the business (NET START)
    business = lab.start_program("business01", "G:")

    # Step 9 (backup server): link lv001 to the newest generation
    out = done(lab.cmd("backup01", link), "iSMsc_link", "iSM20020")
    assert (
        out["LV"]["name"] == "lv001" and out["LV"]["State"] == f"link   ({sv})" and out["LV"]["Mode"] == "rw"
    )
    assert out["SV"]["name"] == sv and out["SV"]["Generation"] == "-1"
    assert has(snapshot_list(lab)[sv], gen="-1", guard="on", link="link", lv="lv001")
    # Step 10: mount the LV by its volume name at H:
    lv_disk, *rest = disk_blocks(lab.cmd("backup01", lv_mount), "Mount")
    assert rest == ["lv001", "WN", VOL, ["H:"]]
    assert mounted(lab, "backup01")["H:\\"] == VOL
    assert disks(lab, "backup01")[lv_disk] == "Online"
    # Step 11: back up to "tape" (an archive of H:'s files)
    tape = lab.work / "tape.tar"
    lab.cmd("backup01", f'tar -cf {tape} -C "$(snaplab path backup01 H:)" .', shell=True)
    assert tape.stat().st_size > 0
    # Step 12
    assert disk_blocks(lab.cmd("backup01", lv_flush), "Flush") == (lv_disk, "lv001", "WN", VOL, ["H:"])
    # Step 13: the drive letter goes, the LV's disk is Not Ready
    assert disk_blocks(lab.cmd("backup01", lv_umount), "Umount") == (lv_disk, "lv001", "WN", VOL, ["H:"])
    assert "H:\\" not in mounted(lab, "backup01")
    assert disks(lab, "backup01")[lv_disk] == "Not Ready"
    # Step 14
    out = done(lab.cmd("backup01", unlink), "iSMsc_unlink", "iSM20030")
    assert out["LV"]["State"] == "unlink" and out["LV"]["Mode"] == "nr" and out["SV"]["name"] == sv
    # Step 15 (backup server: the BV is not its own, the CV carries the operation)
    out = done(lab.cmd("backup01", unguard), "iSMsc_svguard", "iSM19014")
    assert out["SV"]["name"] == sv and out["SV"]["SV Guard"] == "off"

    state = detail(lab)
    assert state[sv]["Generation(Attribute)"] == "-1(normal)"
    assert status(state[sv]["Snap State"]) == "snap/active"
    assert (
        state[sv]["SV Guard"] == "off" and state[sv]["LV Link Status"] == "unlink" and "LV" not in state[sv]
    )
    assert has(snapshot_list(lab)[sv], gen="-1", state="snap/active", guard="off", link="unlink", lv="-")
    assert mounted(lab, "business01")["G:\\"] == bv_volume  # the business kept running on G:
    lab.stop_program(business)


RESTORE_P4 = [  # 2.2.2.2 steps 2-5 and 7 as printed (step 7 with the guide's en-dash)
    "iSMrc_flush -drv G:",
    "iSMrc_umount -drv G:",
    "iSMrc_umount -drv G:  -force",
    "iSMsc_restore -bv bv001 -bvflg ld -sv .-1 -svflg relgen -nowait",
    "iSMrc_mount -drv G:",
    "iSMsc_wait –cond active -bv bv001 -bvflg ld -sv .-1 -svflg relgen",
]

DAILY_P6 = [  # 2.2.3 steps 1-2 to 1-5 as printed, on the business server
    "iSMrc_flush -drv G:",
    "iSMrc_umount -drv G:",
    "iSMsc_create -bv bv001 -bvflg ld -cyclic",
    "iSMrc_mount -drv G:",
]
TEST_P6 = [  # 2.2.3 steps 2-1, 2-2, 2-4 to 2-6 as printed, on the test server
    "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen",
    f"iSMrc_mount -mvol {VOL}  -drv H:",
    "iSMrc_flush -drv H:",
    "iSMrc_umount -drv H:",
    "iSMsc_unlink -lv lv001 -lvflg ld",
]
SV_SET = [f"sv001_0{i}" for i in range(1, 8)]  # the seven generations of 2.2.3


def daily(lab: Lab, business: subprocess.Popen[bytes]) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    """One day of 2.2.3 on the business server (steps 1-1 to 1-6): returns the restarted business,
    the SV the snapshot went to and the generations then (newest first)."""
    flush, umount, create, mount = DAILY_P6
    lab.stop_program(business)  # 1-1
    bv_disk, ld, _, bv_volume, points = disk_blocks(lab.cmd("business01", flush), "Flush")  # 1-2
    assert (ld, points) == ("bv001", ["G:"])
    assert disk_blocks(lab.cmd("business01", umount), "Umount") == (bv_disk, "bv001", "WN", bv_volume, ["G:"])
    out = done(lab.cmd("business01", create), "iSMsc_create", "iSM19010")  # 1-4
    assert out["SV"]["Generation"] == "-1" and status(out["SV"]["Status"]) == "snap/active"
    assert disk_blocks(lab.cmd("business01", mount), "Mount") == (bv_disk, "bv001", "WN", bv_volume, ["G:"])
    business = lab.start_program("business01", "G:")  # 1-6
    after = live(query(lab))
    return business, out["SV"]["name"], after


# -- the procedures ---------------------------------------------------------------------------------


class TestPrepareThenBackUp:
    """1.6 and 1.7 on a lab without setup (PREPARE_LAB), then 2.2.1 on the volumes they prepared."""

    @pytest.mark.timeout(240)
    def test_p1_volume_list_on_every_host(self, prepare_lab: Lab) -> None:
        lab = prepare_lab
        for host in HOSTS:
            ran = lab.cmd(host, "iSMvollist -cr")
            assert ran.stdout == VOLLIST_CREATED + "\n", str(ran)
            # "iSMvollist -a > vollist_data.txt": each server writes its own file in its current folder
            folder = lab.work / host
            folder.mkdir(exist_ok=True)
            ran = run_on(lab.folder, host, "iSMvollist -a > vollist_data.txt", cwd=folder, shell=True)
            assert ran.code == 0 and ran.stdout == ran.stderr == "", str(ran)
            rows = vollist_rows((folder / "vollist_data.txt").read_text(), host)
            if host == "business01":  # bv001 is seen, not yet partitioned (1.7 does that)
                assert rows == [[ARRAY, "0030h", "bv001", "BV", "WN", "disk1", "-", "-", "-", "-"]]
            else:  # the CV each server uses for control I/O is registered; lv001 is not linked yet
                cv = {"backup01": ["002ah", "BACKUP_CV"], "test01": ["002bh", "TEST_CV"]}[host]
                assert rows == [[ARRAY, *cv, "CV", "WN", "disk1", "-", "control", "-", "-"]]

    @pytest.mark.timeout(240)
    def test_p2_prepare_volumes(self, prepare_lab: Lab) -> None:
        lab = prepare_lab
        lab.cmd("backup01", "iSMvollist -cr")  # 1.6 comes first: the backup server's list registers its CV

        # Steps 1-2 (business server): one primary partition on bv001, NTFS, drive G:; the volume list again.
        bv_disk = next(
            r[5] for r in vollist_rows(lab.cmd("business01", "iSMvollist -a").stdout, "business01")
        )
        script = "".join(
            f"{line}\n"
            for line in (
                f"select disk {bv_disk[4:]}",
                "create partition primary",
                "format fs=ntfs quick label=bv001",
                "assign letter=G",
            )
        )
        ran = lab.cmd("business01", "DISKPART", stdin=script)
        for said in (
            f"Disk {bv_disk[4:]} is now the selected disk.",
            "DiskPart succeeded in creating the specified partition.",
            "DiskPart successfully formatted the volume.",
            "DiskPart successfully assigned the drive letter or mount point.",
        ):
            assert said in ran.lines, str(ran)
        assert lab.cmd("business01", "iSMvollist -cr").stdout == VOLLIST_CREATED + "\n"
        bv_volume = mounted(lab, "business01")["G:\\"]
        rows = vollist_rows(lab.cmd("business01", "iSMvollist -a").stdout, "business01")
        assert [ARRAY, "0030h", "bv001", "BV", "WN", bv_disk, "1", "-", bv_volume, "G:"] in rows

        # Step 3 (management server): the SVs and the LV of bv001 exist, lv001 is given to the backup server.
        lines = lab.manager("iSMview", "-all", ARRAY)
        lds = {
            f[1]: f
            for f in (line.split() for line in lines)
            if len(f) == 8 and re.fullmatch(r"[0-9a-f]{4}h", f[0])
        }
        assert lds["sv001_1"][2] == "SV" and lds["sv001_1"][-1] == "bv001"
        assert lds["lv001"][2] == "LV" and lds["lv001"][-1] == "bv001"
        assert ["lv001", "PORT", "BACKUP_PRIMARY"] in [line.split() for line in lines]

        # Step 4 (business server)
        ran = lab.cmd("business01", "iSMsc_create -bv bv001 -bvflg ld -sv sv001_1 -svflg ld")
        out = done(ran, "iSMsc_create", "iSM19010")
        assert out["BV"] == {"name": "bv001", "type": "WN", "Special File": bv_disk}
        assert out["SV"]["name"] == "sv001_1" and out["SV"]["Generation"] == "-1"
        assert status(out["SV"]["Status"]) == "snap/active"

        # Step 5 (backup server)
        ran = lab.cmd("backup01", "iSMsc_link -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
        out = done(ran, "iSMsc_link", "iSM20020")
        assert (
            out["LV"]["name"] == "lv001"
            and out["LV"]["State"] == "link   (sv001_1)"
            and out["LV"]["Mode"] == "rw"
        )
        assert out["SV"]["name"] == "sv001_1" and out["SV"]["Generation"] == "-1"

        # Step 6: the restart that makes the backup server see the linked LV is iSMrc_scan in the lab.
        ran = lab.cmd("backup01", "iSMrc_scan")
        assert re.fullmatch(rf"Scan Start +{STAMP}", ran.lines[0]) and re.fullmatch(
            rf"Scan Normal End +{STAMP}", ran.lines[-1]
        ), str(ran)
        lv_line = next(line.split() for line in ran.lines if " lv001 " in line)
        lv_disk = lv_line[0]
        assert lv_line[1:] == ["lv001", "WN", "Ready"], str(ran)
        assert disks(lab, "backup01")[lv_disk] == "Online"

        # Step 7: "Disk Management" gives the LV's volume a drive letter: H:, the LV's letter in 2.2.1 and
        # 2.2.3 (1.7 step 10's example unmounts it as G:, but the volume list step 8 makes must hold the
        # letter 2.2.1 mounts it at, or 2.2.1 step 12 finds the list stale: iSM11704). So step 10 is -drv H:.
        ran = lab.cmd(
            "backup01", "DISKPART", stdin=f"select disk {lv_disk[4:]}\nselect partition 1\nassign letter=H\n"
        )
        assert "DiskPart successfully assigned the drive letter or mount point." in ran.lines, str(ran)
        lv_volume = mounted(lab, "backup01")["H:\\"]
        assert lv_volume == VOL  # the name the lab gives lv001's partition on backup01, as 2.2.1 has it

        # Step 8: the volume list again, and its contents to vollist_data.txt
        assert lab.cmd("backup01", "iSMvollist -cr").stdout == VOLLIST_CREATED + "\n"
        lab.cmd("backup01", "iSMvollist -a > vollist_data.txt", shell=True)
        rows = vollist_rows((lab.work / "vollist_data.txt").read_text(), "backup01")
        assert [ARRAY, "0038h", "lv001", "LV", "WN", lv_disk, "1", "-", lv_volume, "H:"] in rows
        assert [ARRAY, "002ah", "BACKUP_CV", "CV", "WN", "disk1", "-", "control", "-", "-"] in rows

        # Step 9 (business and backup server): the mount-point volume names, in MOUNTVOL /L's layout
        assert mountvol(lab.cmd("business01", "MOUNTVOL /L"))[bv_volume] == ["G:\\"]
        assert mountvol(lab.cmd("backup01", "MOUNTVOL /L"))[lv_volume] == ["H:\\"]

        # Step 10 (backup server): unmount the LV; its disk is Not Ready
        ran = lab.cmd("backup01", "iSMrc_umount -drv H:")
        assert disk_blocks(ran, "Umount") == (lv_disk, "lv001", "WN", lv_volume, ["H:"])
        assert "H:\\" not in mounted(lab, "backup01")
        assert disks(lab, "backup01")[lv_disk] == "Not Ready"

        # Step 11 (backup server): release the link
        ran = lab.cmd("backup01", "iSMsc_unlink -lv lv001 -lvflg ld -sv sv001_1 -svflg ld")
        out = done(ran, "iSMsc_unlink", "iSM20030")
        assert out["LV"]["State"] == "unlink" and out["LV"]["Mode"] == "nr" and out["SV"]["name"] == "sv001_1"
        ran = lab.cmd("backup01", "iSMsc_linkinfo -vol sv001_1 -volflg ld -lcl")
        assert "   State        : unlink" in ran.lines and "   Mode         : nr" in ran.lines, str(ran)
        assert disks(lab, "backup01")[lv_disk] == "Not Ready"
        assert has(query(lab)[0], sv="sv001_1", gen="-1", state="snap/active", link="unlink")
        assert snapshot_list(lab)["sv001_1"] == {
            "gen": "-1",
            "state": "snap/active",
            "guard": "off",
            "link": "unlink",
            "lv": "-",
        }
        # the business server kept its drive
        assert mounted(lab, "business01")["G:\\"] == bv_volume

    @pytest.mark.timeout(240)
    def test_p3_with_one_generation_after_p2(self, prepare_lab: Lab) -> None:
        """2.2.1 as the guide sets it up, "SV (1 generation)", on the volumes P2 prepared: each cycle's
        step 1 deletes the only generation and step 5 makes it again in the same SV."""
        lab = prepare_lab
        assert live(query(lab)) == ["sv001_1"]
        backup_cycle(lab, first=True)
        backup_cycle(lab, first=False)
        assert live(query(lab)) == ["sv001_1"]


class TestOperateTheReferenceLab:
    """2.2.1, 2.2.2.2 and 2.2.3 on the guide's reference lab, one after the other."""

    @pytest.mark.timeout(240)
    def test_p3_backup_operation_twice(self, guide_lab: Lab) -> None:
        """2.2.1 twice on the reference lab (seven SVs): each cycle's snapshot goes to the next free SV."""
        lab = guide_lab
        first = live(query(lab))
        backup_cycle(lab, first=True)
        backup_cycle(lab, first=False)
        now = live(query(lab))
        assert len(now) == len(first) + 2 and now[2:] == first  # two new generations, the older ones kept
        events = "\n".join(lab.manager("iSMview", "-event"))
        assert "business01 snapctl INFO iSMsc_svguard : iSM19014" in events
        assert "backup01 snapctl INFO iSMsc_svguard : iSM19014" in events
        assert "backup01 snapctl INFO iSMsc_link : iSM20020" in events

    @pytest.mark.timeout(240)
    def test_p4_restore_after_logical_failure(self, guide_lab: Lab) -> None:
        lab = guide_lab
        flush, umount, force, restore, mount, wait = RESTORE_P4
        before = live(query(lab))
        assert before, "2.2.2.2 restores a snapshot made earlier"
        newest = before[0]
        bv_volume = mounted(lab, "business01")["G:\\"]
        business = lab.start_program("business01", "G:")
        window = lab.start_program("business01", "G:")  # a program nobody closed still has G: open

        # Step 1: stop the business (NET STOP)
        lab.stop_program(business)
        # Step 2
        bv_disk, *rest = disk_blocks(lab.cmd("business01", flush), "Flush")
        assert rest == ["bv001", "WN", bv_volume, ["G:"]]
        # Step 3: the normal unmount is refused while the window holds G:, so "-force" as the guide says
        ran = lab.cmd("business01", umount, code=1)
        assert ran.stderr == UMOUNT_REFUSED + "\n", str(ran)
        assert mounted(lab, "business01")["G:\\"] == bv_volume
        assert disk_blocks(lab.cmd("business01", force), "Umount") == (
            bv_disk,
            "bv001",
            "WN",
            bv_volume,
            ["G:"],
        )
        assert "G:\\" not in mounted(lab, "business01")
        lab.stop_program(window)

        # Step 4: restore the newest generation; -nowait returns while the copy may still run
        out = done(lab.cmd("business01", restore), "iSMsc_restore", "iSM19012")
        assert out["BV"] == {"name": "bv001", "type": "WN", "Special File": bv_disk}
        assert out["SV"]["name"] == newest and out["SV"]["Generation"] == "-1"
        assert status(out["SV"]["Status"]) in ("rst/exec", "snap/active")
        first = query(lab)[0]
        assert (
            first["sv"] == newest and first["gen"] == "-1" and first["state"] in ("rst/exec", "snap/active")
        )
        # Step 5: the BV is used again while the restore runs
        assert disk_blocks(lab.cmd("business01", mount), "Mount") == (
            bv_disk,
            "bv001",
            "WN",
            bv_volume,
            ["G:"],
        )
        assert mounted(lab, "business01")["G:\\"] == bv_volume
        # Step 6: restart the business (NET START)
        business = lab.start_program("business01", "G:")
        # Step 7: wait for the end of the restore
        out = done(lab.cmd("business01", wait), "iSMsc_wait", "iSM19013")
        assert out["SV"]["name"] == newest and out["SV"]["Generation"] == "-1"
        assert status(out["SV"]["Status"]) == "snap/active"
        assert live(query(lab)) == before  # the generation is back to snap/active and the others are kept
        assert snapshot_list(lab)[newest] == {
            "gen": "-1",
            "state": "snap/active",
            "guard": "off",
            "link": "unlink",
            "lv": "-",
        }
        assert "business01 snapctl INFO iSMsc_restore : iSM19012" in "\n".join(lab.manager("iSMview", "-event"))
        lab.stop_program(business)

    @pytest.mark.timeout(300)
    def test_p6_secondary_use_of_daily_snapshots(self, guide_lab: Lab) -> None:
        lab = guide_lab
        business = lab.start_program("business01", "G:")
        gens = live(query(lab))

        # Eight days: the seven SVs fill up, then each day's snapshot replaces the oldest generation.
        replaced = 0
        for _ in range(8):
            business, sv, after = daily(lab, business)
            if len(gens) == len(SV_SET):
                assert sv == gens[-1] and after == [sv, *gens[:-1]], (sv, gens, after)
                replaced += 1
            else:
                assert sv in SV_SET and sv not in gens and after == [sv, *gens], (sv, gens, after)
            gens = after
        assert replaced >= 1 and sorted(gens) == SV_SET  # -1 .. -7, every SV of the set
        assert [s["gen"] for s in query(lab)] == [str(-i) for i in range(1, 8)]

        # A guarded generation is never reused: the next oldest goes instead, until the guard is cancelled.
        oldest = gens[-1]
        ran = lab.cmd("business01", "iSMsc_svguard -bv bv001 -bvflg ld -sv .-7 -svflg relgen -mode set")
        assert has(done(ran, "iSMsc_svguard", "iSM19014")["SV"], **{"name": oldest, "SV Guard": "on"})
        business, sv, after = daily(lab, business)
        assert sv == gens[-2] and after == [sv, *gens[:-2], oldest], (sv, gens, after)
        assert detail(lab)[oldest]["SV Guard"] == "on"
        gens = after
        ran = lab.cmd("business01", f"iSMsc_svguard -bv bv001 -bvflg ld -sv {oldest} -svflg ld -mode cancel")
        assert done(ran, "iSMsc_svguard", "iSM19014")["SV"]["SV Guard"] == "off"
        business, sv, after = daily(lab, business)
        assert sv == oldest and after == [sv, *gens[:-1]], (sv, gens, after)
        gens = after

        # The test server uses the newest generation through lv001 (steps 2-1 to 2-6).
        link, mount, flush, umount, unlink = TEST_P6
        used = gens[0]
        out = done(lab.cmd("test01", link), "iSMsc_link", "iSM20020")  # 2-1
        assert out["LV"]["State"] == f"link   ({used})" and out["SV"]["name"] == used
        lv_disk, *rest = disk_blocks(lab.cmd("test01", mount), "Mount")  # 2-2
        assert rest == ["lv001", "WN", VOL, ["H:"]]
        assert mounted(lab, "test01")["H:\\"] == VOL and disks(lab, "test01")[lv_disk] == "Online"
        tester = lab.start_program("test01", "H:")  # 2-3: the test business works on H: ...
        # ... while the business server takes the next day's snapshot: the oldest goes, not the one in use
        business, sv, after = daily(lab, business)
        assert sv == gens[-1] and after == [sv, *gens[:-1]] and after[1] == used
        state = detail(lab)
        assert state[used]["LV Link Status"] == "link" and state[used]["LV"] == "lv001"
        assert state[used]["Generation(Attribute)"] == "-2(normal)"
        lab.stop_program(tester)  # the test is over
        assert disk_blocks(lab.cmd("test01", flush), "Flush") == (lv_disk, "lv001", "WN", VOL, ["H:"])  # 2-4
        assert disk_blocks(lab.cmd("test01", umount), "Umount") == (
            lv_disk,
            "lv001",
            "WN",
            VOL,
            ["H:"],
        )  # 2-5
        assert "H:\\" not in mounted(lab, "test01") and disks(lab, "test01")[lv_disk] == "Not Ready"
        out = done(lab.cmd("test01", unlink), "iSMsc_unlink", "iSM20030")  # 2-6
        assert out["LV"]["State"] == "unlink" and out["LV"]["Mode"] == "nr" and out["SV"]["name"] == used
        assert all(s["link"] == "unlink" for s in query(lab))
        assert all(row["link"] == "unlink" and row["guard"] == "off" for row in snapshot_list(lab).values())
        lab.stop_program(business)


# -- acceptance point 4: a person at a shell ------------------------------------------------------


@pytest.mark.timeout(240)
def test_lab_up_p3_typed_by_hand_lab_down(tmp_path: Path) -> None:
    """``snaplab lab up`` (the default lab), 2.2.1's commands typed at a bash prompt, ``snaplab lab
    down``: nothing of the lab keeps running. (The README's setup command from a fresh clone is what
    .ci/run does before the tests.)"""
    folder = tmp_path / "lab"
    guard = LabRun(tmp_path)  # stops whatever is left if an assertion fails half-way

    def typed(line: str, host: str | None = None) -> Ran:
        env = command_env(SNAPLAB_LAB=str(folder), **({"SNAPLAB_HOST": host} if host else {}))
        proc = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
            check=False,
        )
        ran = Ran(host or "-", line, proc.stdout, proc.stderr, proc.returncode)
        assert ran.code == 0 and ran.stderr == "", str(ran)
        return ran

    try:
        up = typed("snaplab lab up")
        assert "lab up: " in up.stdout and "default_lab.toml" in up.stdout, str(up)
        runtime = json.loads((folder / "runtime.json").read_text())
        guard.remember()
        pids = [p["pid"] for p in runtime["processes"]]
        assert len(pids) == 6 and all(alive(pid) for pid in pids)
        assert set(runtime["hosts"]) == {"business01", "business02", "backup01", "test01"}

        # 2.2.1 steps 1-8 at the business server's prompt, exactly as printed
        expect = [
            "iSMsc_delete:Notice: iSM19030: There is no snapshot to delete. (bv001)",
            "Flush Start ",
            "Umount Start ",
            "iSMsc_create:Info: iSM19010: iSMsc_create has normally terminated.",
            "iSMsc_svguard:Info: iSM19014: iSMsc_svguard has normally terminated.",
            "Mount Start ",
        ]
        printed = [typed(line, "business01").stdout for line in BUSINESS_P3]
        for out, first in zip(printed, expect, strict=True):
            assert out.startswith(first), out
        assert (
            "   SV:sv001_02            WN\n      Generation : -1\n" in printed[3]
        )  # the free SV after sv001_01
        # steps 9-15 at the backup server's: bash needs the volume name quoted (cmd.exe does not)
        quoted = VOL.join("''")
        expect = [
            "iSMsc_link:Info: iSM20020: iSMsc_link has normally terminated.",
            "Mount Start ",
            "Flush Start ",
            "Umount Start ",
            "iSMsc_unlink:Info: iSM20030: iSMsc_unlink has normally terminated.",
            "iSMsc_svguard:Info: iSM19014: iSMsc_svguard has normally terminated.",
        ]
        printed = [typed(line.replace(VOL, quoted), "backup01").stdout for line in BACKUP_P3]
        for out, first in zip(printed, expect, strict=True):
            assert out.startswith(first), out
        assert "      State        : link   (sv001_02)\n" in printed[0]
        assert "              H:\n" in printed[1] and "   SV:sv001_02            WN\n" in printed[5]

        down = typed("snaplab lab down")
        assert f"lab in {folder} is down (6 processes stopped)" in down.stdout, str(down)
        assert [pid for pid in pids if alive(pid)] == []
        assert lab_processes(folder) == []
        assert not (folder / "runtime.json").exists()
        assert list((folder / "run").glob("*.sock")) == []
        status_ = subprocess.run(
            ["bash", "-c", "snaplab lab status"],
            env=command_env(SNAPLAB_LAB=str(folder)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status_.returncode == 3 and "no lab is running" in status_.stdout
    finally:
        guard.teardown()
