"""Real data through the guide's procedures (agent/fs/), end to end.

One lab for the module: the guide's reference lab (``snaplab lab up --lab <tmp>``), every command its
own OS process (the console script with ``SNAPLAB_HOST``/``SNAPLAB_LAB``), files written and read by
this test process in the folders ``snaplab path HOST G:`` prints, as any program of the host's machine
would. Each test leaves the lab as the next expects it: G: mounted on business01, lv001 unlinked,
backup01's and test01's H: unmounted, no guard.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, run_on

pytestmark = pytest.mark.timeout(300)

ARRAY = "Tokyo_Customer_DataBase"
VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
REFUSED = "iSMrc_umount:Error: iSM13609: Access of specified disk was refused.\n"
NOT_NORMAL = "iSM13639: Specified path is not normal status."
LINK_NEWEST = "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen"


class Lab:
    def __init__(self, run: LabRun) -> None:
        self.run = run
        self.folder = run.folder
        self.work = run.root / "work"
        self.work.mkdir(exist_ok=True)
        self.programs: list[subprocess.Popen[bytes]] = []

    def cmd(self, host: str, line: str, *, stdin: str | None = None, code: int = 0) -> Ran:
        ran = run_on(self.folder, host, line, cwd=self.work, stdin=stdin)
        assert ran.code == code, str(ran)
        return ran

    def path(self, host: str, mount_point: str) -> Path:
        out = self.run("path", host, mount_point)
        assert out.returncode == 0, out.stdout + out.stderr
        return Path(out.stdout.strip())

    def hold(self, folder: Path) -> subprocess.Popen[bytes]:
        """A program of the host's machine whose working folder is ``folder`` (``sleep 60``)."""
        proc = subprocess.Popen(["sleep", "60"], cwd=folder, start_new_session=True)
        self.programs.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{proc.pid}/cwd") == str(folder.resolve()):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        return proc

    def stop_programs(self) -> None:
        for proc in self.programs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.programs = []


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    run = LabRun(tmp_path_factory.mktemp("data"))
    lab = Lab(run)
    try:
        up = run("lab", "up", timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        yield lab
    finally:
        lab.stop_programs()
        run.teardown()


@pytest.fixture
def guide(lab: Lab) -> Iterator[Lab]:
    yield lab
    lab.stop_programs()


def tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative names)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def write_files(folder: Path, prefix: str, count: int = 8, seed: int = 0) -> None:
    (folder / prefix).mkdir(exist_ok=True)
    for i in range(count):
        data = os.urandom(500 + 9000 * i) if i % 2 else (f"{prefix} line {i}\n" * (200 + 300 * i)).encode()
        (folder / prefix / f"file{i:02d}.{'bin' if i % 2 else 'txt'}").write_bytes(data)


def sv_of(ran: Ran) -> str:
    m = re.search(r"^ {3}SV:(\S+)", ran.stdout, re.MULTILINE)
    assert m, str(ran)
    return m[1]


def lost_files(out: str) -> list[str]:
    lines = out.splitlines()
    at = next((i for i, line in enumerate(lines) if re.fullmatch(r"\d+ files? (were|was) lost:", line)), None)
    if at is None:
        return []
    names = []
    for line in lines[at + 1 :]:
        if not re.match(r"^  \S", line):
            break
        names.append(line[2:])
    return names


def backup_cycle_start(lab: Lab, host: str = "backup01") -> Path:
    lab.cmd(host, LINK_NEWEST)
    lab.cmd(host, f"iSMrc_mount -mvol {VOL} -drv H:")
    return lab.path(host, "H:")


def backup_cycle_end(lab: Lab, host: str = "backup01") -> None:
    lab.cmd(host, f"iSMrc_flush -mvol {VOL}")
    lab.cmd(host, f"iSMrc_umount -mvol {VOL}")
    lab.cmd(host, "iSMsc_unlink -lv lv001 -lvflg ld")


def snapshot_g(lab: Lab) -> str:
    """2.2.1 steps 3-7 on business01: flush, unmount, create (-cyclic), mount; the SV's name."""
    lab.cmd("business01", "iSMrc_flush -drv G:")
    lab.cmd("business01", "iSMrc_umount -drv G:")
    sv = sv_of(lab.cmd("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic"))
    lab.cmd("business01", "iSMrc_mount -drv G:")
    return sv


# -- P3 ------------------------------------------------------------------------------------------------


def test_p3_the_backup_server_sees_what_g_held_at_the_snapshot(guide: Lab) -> None:
    lab = guide
    g = lab.path("business01", "G:")
    write_files(g, "sales")
    write_files(g, "hr", 4)
    (g / "readme.txt").write_text("ledger\n")
    at_snapshot = tree(g)
    snapshot_g(lab)
    assert tree(lab.path("business01", "G:")) == at_snapshot  # G: is back with its files
    # the business goes on: what it writes now is not in the snapshot
    (g / "after.txt").write_text("written after the snapshot")
    (g / "readme.txt").write_text("ledger, changed after the snapshot\n")
    shutil.rmtree(g / "hr")
    lab.cmd("business01", "iSMrc_flush -drv G:")
    h = backup_cycle_start(lab)
    assert tree(h) == at_snapshot
    assert not (h / "after.txt").exists()
    backup_cycle_end(lab)
    assert not h.exists()


def test_p3_without_flush_the_unflushed_file_is_missing(guide: Lab) -> None:
    lab = guide
    g = lab.path("business01", "G:")
    lab.cmd("business01", "iSMrc_flush -drv G:")
    flushed = tree(g)
    (g / "unflushed.txt").write_text("still in the file-system cache")
    # unmount refused, 60 s waited (2.3.5 (1)): the snapshot is made with G: mounted and not flushed
    lab.cmd("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    h = backup_cycle_start(lab)
    assert tree(h) == flushed and not (h / "unflushed.txt").exists()
    ran = lab.cmd("backup01", "CHKDSK H: /F")  # the guide's advice after such a snapshot
    assert "The type of the file system is NTFS." in ran.lines
    assert "Windows has scanned the file system and found no problems." in ran.lines
    backup_cycle_end(lab)
    lab.cmd("business01", "iSMrc_flush -drv G:")


def test_a_snapshot_taken_while_a_flush_writes_is_damaged_and_chkdsk_repairs_it(guide: Lab) -> None:
    """2.3.5 (3): a snapshot taken in the middle of a flush's page writes (the debug hook
    ``<host state>/debug/flush_stop_after`` stops business01's flush after 3 of its in-place pages,
    the journal committed) gives the backup server a damaged file system (a copy does not replay the
    BV's journal): iSM13639 on mount; a drive letter (MOUNTVOL) and CHKDSK /F repair it."""
    lab = guide
    g = lab.path("business01", "G:")
    write_files(g, "torn_a", 12)
    lab.cmd("business01", "iSMrc_flush -drv G:")
    before = tree(g)
    write_files(g, "torn_b", 12)
    for p in sorted((g / "torn_a").iterdir())[:4]:
        p.write_bytes(os.urandom(70_000))
    during = tree(g)
    hook = lab.folder / "hosts" / "business01" / "debug" / "flush_stop_after"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("3\n")
    ran = lab.cmd("business01", "iSMrc_flush -drv G:", code=1)
    assert ran.stderr == f"iSMrc_flush:Error: {NOT_NORMAL}\n"
    lab.cmd("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    lab.cmd("business01", "iSMrc_flush -drv G:")  # the business server's own volume is whole again
    # backup server: link, mount by volume name and letter (2.2.1 steps 9-10)
    lab.cmd("backup01", LINK_NEWEST)
    ran = lab.cmd("backup01", f"iSMrc_mount -mvol {VOL} -drv H:", code=1)
    assert ran.stderr == f"iSMrc_mount:Error: {NOT_NORMAL}\n"
    # recovery (2.3.5 (2) steps 2-3): a drive letter with MOUNTVOL, then CHKDSK /F
    lab.cmd("backup01", f"MOUNTVOL H: {VOL}")
    h = lab.path("backup01", "H:")
    assert tree(h) == {}
    ran = lab.cmd("backup01", "CHKDSK H:", code=3)
    assert "Windows has scanned the file system and found problems." in ran.lines
    ran = lab.cmd("backup01", f"CHKDSK {VOL.rstrip(chr(92))} /F", code=1)
    assert "Windows has made corrections to the file system." in ran.lines, str(ran)
    lost = lost_files(ran.stdout)
    assert lost, str(ran)
    got = tree(h)
    for name, digest in got.items():  # every file shown is whole: as flushed before, or as at the tear
        base = name.removeprefix("found.000/")
        assert digest in (before.get(base), during.get(base)), name
    assert {n.removeprefix("found.000/") for n in got} | set(lost) == set(before) | set(during)
    assert "found no problems" in lab.cmd("backup01", "CHKDSK H:").stdout
    backup_cycle_end(lab)


# -- P4 and P6 -------------------------------------------------------------------------------------


def test_p4_restore_makes_g_equal_the_generation(guide: Lab) -> None:
    lab = guide
    g = lab.path("business01", "G:")
    write_files(g, "orders", 6)
    snapshot_g(lab)
    g = lab.path("business01", "G:")
    good = tree(g)
    # a logical failure: bad data written and flushed
    for p in sorted((g / "orders").iterdir())[:3]:
        p.write_bytes(b"garbage" * 1000)
    (g / "orders" / "file05.bin").unlink()
    (g / "junk.txt").write_text("bad")
    lab.cmd("business01", "iSMrc_flush -drv G:")
    assert tree(g) != good
    # 2.2.2.2: flush, unmount, restore -nowait, mount, wait for active
    lab.cmd("business01", "iSMrc_flush -drv G:")
    lab.cmd("business01", "iSMrc_umount -drv G:")
    lab.cmd("business01", "iSMsc_restore -bv bv001 -bvflg ld -sv .-1 -svflg relgen -nowait")
    lab.cmd("business01", "iSMrc_mount -drv G:")
    lab.cmd("business01", "iSMsc_wait -cond active -bv bv001 -bvflg ld -sv .-1 -svflg relgen")
    assert tree(lab.path("business01", "G:")) == good


def test_p6_a_guarded_generation_survives_cyclic_reuse_with_its_files(guide: Lab) -> None:
    lab = guide
    states: dict[int, dict[str, str]] = {}
    for day in range(1, 10):  # nine days on seven generations
        g = lab.path("business01", "G:")
        (g / f"day{day}.txt").write_text(f"the business of day {day}\n" * day)
        (g / "ledger.txt").write_text("".join(f"day {d}\n" for d in range(1, day + 1)))
        states[day] = tree(g)
        snapshot_g(lab)
        if day == 2:
            lab.cmd("business01", "iSMsc_svguard -bv bv001 -bvflg ld -sv .-1 -svflg relgen -mode set")
    # day 2's generation is the oldest of the seven now: .-7; the others are days 4-9
    lab.cmd("test01", "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-7 -svflg ld.relgen")
    lab.cmd("test01", f"iSMrc_mount -mvol {VOL} -drv H:")
    h = lab.path("test01", "H:")
    assert tree(h) == states[2]
    backup_cycle_end(lab, "test01")
    h = backup_cycle_start(lab, "test01")
    assert tree(h) == states[9]
    backup_cycle_end(lab, "test01")
    lab.cmd("business01", "iSMsc_svguard -bv bv001 -bvflg ld -sv .-7 -svflg relgen -mode cancel")


# -- unmount -----------------------------------------------------------------------------------------


def test_unmount_is_refused_while_a_program_works_in_g_and_force_loses_only_unflushed_data(
    guide: Lab,
) -> None:
    lab = guide
    g = lab.path("business01", "G:")
    proc = lab.hold(g)
    ran = lab.cmd("business01", "iSMrc_umount -drv G:", code=1)
    assert ran.stderr == REFUSED
    assert g.is_dir()
    proc.kill()
    proc.wait(timeout=10)
    lab.cmd("business01", "iSMrc_umount -drv G:")
    assert not g.exists()
    lab.cmd("business01", "iSMrc_mount -drv G:")
    g = lab.path("business01", "G:")
    (g / "kept.txt").write_text("flushed before the forced unmount")
    lab.cmd("business01", "iSMrc_flush -drv G:")
    flushed = tree(g)
    (g / "lost.txt").write_text("never flushed")
    (g / "kept.txt").write_text("changed, never flushed")
    lab.hold(g)
    lab.cmd("business01", "iSMrc_umount -drv G: -force")
    lab.stop_programs()
    lab.cmd("business01", "iSMrc_mount -drv G:")
    assert tree(lab.path("business01", "G:")) == flushed


# -- the image with the standard tools ---------------------------------------------------------------


def sqlite3_program() -> str:
    """The standard ``sqlite3`` shell: part of the documented setup (README), so missing it fails."""
    path = shutil.which("sqlite3")
    assert path, "the sqlite3 program is missing: install it (README setup: apt-get install -y sqlite3)"
    return path


def test_an_exported_sv_opens_with_the_standard_tools(guide: Lab) -> None:
    """A generation of G: taken here, exported: Python's sqlite3 finds it sound, the sqlite3 program
    lists and extracts it, and the extracted tree is exactly what G: held at the snapshot."""
    lab = guide
    g = lab.path("business01", "G:")
    write_files(g, "export", 6)
    (g / "export" / "note.txt").write_text("held by G: at the snapshot\n")
    sv = snapshot_g(lab)
    expected = tree(g)
    (g / "export" / "note.txt").write_text("changed after the snapshot: not in the image\n")
    lab.cmd("business01", "iSMrc_flush -drv G:")
    image = lab.work / "sv.db"
    out = lab.run("export", ARRAY, sv, "1", str(image))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"wrote {image}" in out.stdout
    conn = sqlite3.connect(f"file:{image}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    program = sqlite3_program()
    listed = subprocess.run(
        [program, str(image), "-A", "--list"], capture_output=True, text=True, timeout=60, check=True
    )
    assert set(expected) <= set(listed.stdout.split())
    dest = lab.work / "extracted"
    dest.mkdir()
    subprocess.run([program, str(image), "-A", "-x", "-C", str(dest)], check=True, timeout=60)
    assert tree(dest) == expected
    assert (dest / "export" / "note.txt").read_text() == "held by G: at the snapshot\n"


def test_export_of_p3_generation_lists_its_files(guide: Lab) -> None:
    """A fresh generation of G:, exported at once: exactly G:'s files (sha256), read by Python's sqlite3."""
    lab = guide
    sv = snapshot_g(lab)
    expected = tree(lab.path("business01", "G:"))
    image = lab.work / "fresh.db"
    out = lab.run("export", ARRAY, sv, "1", str(image))
    assert out.returncode == 0, out.stdout + out.stderr
    import zlib

    conn = sqlite3.connect(f"file:{image}?mode=ro", uri=True)
    try:
        got = {}
        for name, sz, data in conn.execute("SELECT name, sz, data FROM sqlar WHERE mode & 61440 = 32768"):
            content = zlib.decompress(data) if data is not None and len(data) < sz else (data or b"")
            got[name] = hashlib.sha256(content).hexdigest()
    finally:
        conn.close()
    assert got == expected


# -- partitions and signatures through the host commands ----------------------------------------------


def disk_of(lab: Lab, host: str, ld: str) -> str:
    ran = lab.cmd(host, "iSMvollist -a")
    row = next(line.split() for line in ran.lines if f" {ld} " in line and line.split()[6] == "-")
    return row[5][4:]


def volumes_of(lab: Lab, host: str, ld: str) -> dict[str, str]:
    """{partition number: volume name} of an LD, from the volume list."""
    ran = lab.cmd(host, "iSMvollist -a")
    return {
        f[6]: f[8] for f in (line.split() for line in ran.lines) if len(f) >= 9 and f[2] == ld and f[6] != "-"
    }


def set_option(lab: Lab, host: str, text: str) -> None:
    (lab.folder / "hosts" / host / "etc" / "iSMrpl.ini").write_text("[SNAPSHOT]\n" + text)


def test_partition_rules_and_a_two_partition_ld_through_link(guide: Lab) -> None:
    lab = guide
    ctl = disk_of(lab, "business01", "DB_CTL_BV")
    script = (
        f"select disk {ctl}\ncreate partition primary size=64\nformat quick label=CTL_E\nassign letter=E\n"
        "create partition extended\ncreate partition logical size=64\nformat quick label=CTL_F\nassign letter=F\n"
    )
    lab.cmd("business01", "DISKPART", stdin=script)
    lab.cmd("business01", "iSMvollist -cr")
    e, f = lab.path("business01", "E:"), lab.path("business01", "F:")
    write_files(e, "control_e", 3)
    write_files(f, "control_f", 3)
    expected = (tree(e), tree(f))
    for mp in ("E:", "F:"):
        lab.cmd("business01", f"iSMrc_flush -drv {mp}")
        lab.cmd("business01", f"iSMrc_umount -drv {mp}")
    create = "iSMsc_create -bv DB_CTL_BV -bvflg ld -sv DB_CTL_SV -svflg ld"
    ran = lab.cmd("business01", create, code=1)
    assert ran.stderr == (
        "iSMsc_create:Error: iSM19050: Volume has several partitions or logical volumes; "
        "the operation is not permitted. (DB_CTL_BV)\n"
    )
    set_option(lab, "business01", "MULTI_PARTITION = ON\n")
    lab.cmd("business01", create)
    for mp in ("E:", "F:"):
        lab.cmd("business01", f"iSMrc_mount -drv {mp}")
    # the backup server: refused without the option too (the array's check of the SV), then linked
    link = "iSMsc_link -lv DB_CTL_LV -lvflg ld -sv DB_CTL_SV -svflg ld"
    ran = lab.cmd("backup01", link, code=1)
    assert "iSM19050" in ran.stderr
    set_option(lab, "backup01", "MULTI_PARTITION = ON\n")
    lab.cmd("backup01", link)
    lab.cmd("backup01", "iSMrc_scan")
    lab.cmd("backup01", "iSMvollist -cr")
    vols = volumes_of(lab, "backup01", "DB_CTL_LV")
    assert set(vols) == {"1", "3"}  # DiskPart's numbers: the extended partition (2) holds no volume
    lab.cmd("backup01", f"MOUNTVOL J: {vols['1']}")
    lab.cmd("backup01", f"MOUNTVOL K: {vols['3']}")
    assert (tree(lab.path("backup01", "J:")), tree(lab.path("backup01", "K:"))) == expected
    # A10: the LV shows its own managed signature, not the BV's
    lv_disk = disk_of(lab, "backup01", "DB_CTL_LV")
    bv_id = next(
        x
        for x in lab.cmd("business01", "DISKPART", stdin=f"select disk {ctl}\nuniqueid disk\n").lines
        if x.startswith("Disk ID:")
    )
    lv_id = next(
        x
        for x in lab.cmd("backup01", "DISKPART", stdin=f"select disk {lv_disk}\nuniqueid disk\n").lines
        if x.startswith("Disk ID:")
    )
    assert bv_id != lv_id
    lab.cmd("backup01", "MOUNTVOL J: /D")
    lab.cmd("backup01", "MOUNTVOL K: /D")
    lab.cmd("backup01", "iSMsc_unlink -lv DB_CTL_LV -lvflg ld")
    set_option(lab, "backup01", "MULTI_PARTITION = OFF\n")

    # GPT on a WN LD: refused even with the option; dynamic disks: never
    redo1 = disk_of(lab, "business01", "DB_REDO1_BV")
    lab.cmd(
        "business01",
        "DISKPART",
        stdin=f"select disk {redo1}\nconvert gpt\ncreate partition primary\nformat quick\n",
    )
    set_option(lab, "business01", "MULTI_PARTITION = ON\nGPT = ON\n")
    lab.cmd("business01", "iSMvollist -cr")
    ran = lab.cmd("business01", "iSMsc_create -bv DB_REDO1_BV -bvflg ld -sv DB_REDO1_SV -svflg ld", code=1)
    assert ran.stderr == (
        "iSMsc_create:Error: iSM19052: GPT disk is permitted only with usage format WG and the GPT option. "
        "(DB_REDO1_BV)\n"
    )
    redo2 = disk_of(lab, "business01", "DB_REDO2_BV")
    lab.cmd(
        "business01", "DISKPART", stdin=f"select disk {redo2}\ncreate partition primary\nconvert dynamic\n"
    )
    lab.cmd("business01", "iSMvollist -cr")
    ran = lab.cmd("business01", "iSMsc_create -bv DB_REDO2_BV -bvflg ld -sv DB_REDO2_SV -svflg ld", code=1)
    assert ran.stderr == "iSMsc_create:Error: iSM19051: Dynamic disk volume is not supported. (DB_REDO2_BV)\n"
    set_option(lab, "business01", "MULTI_PARTITION = OFF\nGPT = OFF\n")
