"""Lab checkpoints through real processes: `snaplab lab checkpoint|rollback|checkpoints` on the guide's
reference lab (`snaplab lab up`), and deploy/checkpoints.py, its Python interface.

A checkpoint covers every array, the manager and every host; after changes of every kind (files in
the hosts' drives, flushes, unmounts and mounts, snapshots created and deleted, an LV linked and
mounted on the backup server) a rollback brings back each host's files, mount table and lists and
each array's answers, with the daemons running all along (the same pids). Refusals are one iSM line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from checkpoint_tools import differences, picture
from labtools import LabRun, RefLab
from snaplab.deploy import checkpoints

pytestmark = pytest.mark.timeout(300)

VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"  # lv001's volume, pinned on backup01


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefLab]:
    run = LabRun(tmp_path_factory.mktemp("ckpt"))
    try:
        up = run("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield RefLab(run)
    finally:
        run.teardown()


def ok(lab: RefLab, host: str, line: str) -> None:
    ran = lab.cmd(host, line)
    assert ran.code == 0, str(ran)


def pids(lab: RefLab) -> list[int]:
    return sorted(p["pid"] for p in lab.runtime["processes"])


def change_everything(lab: RefLab) -> None:
    """The guide's backup cycle (2.2.1) with files changed first: every kind of state moves."""
    g = lab.folder / "hosts" / "business01" / "mnt" / "G"
    (g / "orders").mkdir(exist_ok=True)
    (g / "orders" / "2026-12.csv").write_bytes(b"id,qty\n" + b"1,2\n" * 50_000)
    (g / "readme.txt").write_text("changed after the checkpoint\n")
    ok(lab, "business01", "iSMrc_flush -drv G:")
    ok(lab, "business01", "iSMrc_umount -drv G:")
    ok(lab, "business01", "iSMsc_delete -bv bv001 -bvflg ld -auto")
    ok(lab, "business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")
    ok(lab, "business01", "iSMrc_mount -drv G:")
    (g / "after-backup.txt").write_text("not flushed yet\n")
    ok(lab, "backup01", "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen")
    ok(lab, "backup01", f"iSMrc_mount -mvol {VOL} -drv H:")
    (lab.folder / "hosts" / "backup01" / "mnt" / "H" / "tape-label.txt").write_text("LTO 0001\n")


def test_rollback_brings_back_every_host_and_array(lab: RefLab) -> None:
    before_pids = pids(lab)
    info = checkpoints.take(lab.folder, "start")
    assert info.name == "start" and info.event_seq > 0
    assert set(info.hosts) == {"business01", "business02", "backup01", "test01"}
    base = picture(lab)

    change_everything(lab)
    changed = picture(lab)
    assert differences(base, changed), "the changes changed nothing"

    checkpoints.rollback(lab.folder, "start")
    back = picture(lab)
    assert back == base, differences(base, back)
    assert pids(lab) == before_pids, "a daemon was restarted"

    # The lab works on from there, and rolls back again to the same checkpoint (a fixture's use).
    change_everything(lab)
    checkpoints.rollback(lab.folder, "start")
    again = picture(lab)
    assert again == base, differences(base, again)


def test_the_volume_holds_what_the_cache_showed(lab: RefLab) -> None:
    """After a rollback the BV's bytes are those of the checkpoint: G: flushed, unmounted and mounted
    again reads back the files it showed when the checkpoint was taken."""
    checkpoints.rollback(lab.folder, "start")
    g = lab.folder / "hosts" / "business01" / "mnt" / "G"
    ok(lab, "business01", "iSMrc_flush -drv G:")
    want = picture(lab, commands=False)["host business01"]["files"]
    change_everything(lab)
    checkpoints.rollback(lab.folder, "start")
    ok(lab, "business01", "iSMrc_umount -drv G:")
    ok(lab, "business01", "iSMrc_mount -drv G:")
    assert picture(lab, commands=False)["host business01"]["files"] == want
    assert not (g / "orders").exists()


def test_checkpoint_is_hidden_and_listed(lab: RefLab) -> None:
    checkpoints.rollback(lab.folder, "start")
    before = picture(lab)
    checkpoints.take(lab.folder, "hidden")
    assert picture(lab) == before  # no SV, LD, SRA use or query line shows it
    listed = lab.run("lab", "checkpoints")
    assert listed.returncode == 0
    names = [ln.split()[0] for ln in listed.stdout.splitlines()[1:]]
    assert names == ["start", "hidden"]
    assert [i.name for i in checkpoints.list_checkpoints(lab.folder)] == ["start", "hidden"]
    # rolling back to the older one drops the newer
    assert lab.run("lab", "rollback", "start").returncode == 0
    assert [i.name for i in checkpoints.list_checkpoints(lab.folder)] == ["start"]


def test_cli_checkpoint_and_rollback(lab: RefLab) -> None:
    took = lab.run("lab", "checkpoint", "cli-1")
    assert took.returncode == 0, took.stderr
    assert took.stdout.startswith("checkpoint cli-1 taken")
    base = picture(lab)
    change_everything(lab)
    back = lab.run("lab", "rollback", "cli-1")
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith("lab rolled back to checkpoint cli-1")
    assert picture(lab) == base
    checkpoints.delete(lab.folder, "cli-1")
    assert [i.name for i in checkpoints.list_checkpoints(lab.folder)] == ["start"]


@pytest.mark.parametrize(
    ("args", "msg_id", "named"),
    [
        (("rollback", "nope"), "iSM31291", "(nope)"),
        (("checkpoint", "bad name"), "iSM31290", "'bad name'"),
        (("checkpoint", "-x"), "", ""),  # an option, not a name: argparse's usage line
        (("rollback", "a" * 33), "iSM31290", "a" * 33),
        (("checkpoint", "start"), "iSM31292", "(start)"),
    ],
)
def test_refusals_are_one_iSM_line(lab: RefLab, args: tuple[str, ...], msg_id: str, named: str) -> None:
    if args == ("checkpoint", "start") and "start" not in {i.name for i in checkpoints.list_checkpoints(lab.folder)}:
        checkpoints.take(lab.folder, "start")  # the first test takes it; run alone, this one does
    ran = lab.run("lab", *args)
    assert ran.returncode != 0
    lines = ran.stderr.strip().splitlines()
    assert len(lines) <= 2 and "Traceback" not in ran.stderr, ran.stderr
    if msg_id:
        assert lines == [lines[0]] and f"error: {msg_id}: " in lines[0] and named in lines[0], ran.stderr
    assert ran.stdout == ""


def test_no_lab_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    from labtools import snaplab

    missing = tmp_path / "nolab"
    for args in (("checkpoint", "x"), ("rollback", "x")):
        ran = snaplab("--lab", str(missing), "lab", *args, cwd=tmp_path)
        assert ran.returncode == 1 and "iSM31293" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    listed = snaplab("--lab", str(missing), "lab", "checkpoints", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout == "no checkpoints\n"
    assert not missing.exists()


def test_python_refusals_carry_the_iSM_id(lab: RefLab) -> None:
    with pytest.raises(checkpoints.CheckpointError) as err:
        checkpoints.rollback(lab.folder, "nope")
    assert err.value.ism_id == "iSM31291" and "nope" in str(err.value)
    with pytest.raises(checkpoints.CheckpointError) as err:
        checkpoints.take(lab.folder, "../x")
    assert err.value.ism_id == "iSM31290"
    with pytest.raises(checkpoints.CheckpointError) as err:
        checkpoints.delete(lab.folder, "nope")
    assert err.value.ism_id == "iSM31291"


def test_daemons_refuse_without_the_right_role(lab: RefLab) -> None:
    """A host's certificate may not take or roll back the array's checkpoints."""
    from snaplab.common.rpc import ClientTLS, SnapLabClientError, client_errors, make_channel
    from snaplab.v1 import array_pb2_grpc, checkpoint_pb2

    target = lab.runtime["arrays"][lab.ARRAY]["target"]
    channel = make_channel(target, ClientTLS.from_folder(lab.pki, "business01"))
    try:
        stub = array_pb2_grpc.ArrayStub(channel)
        for method in ("CheckpointTake", "CheckpointRollback", "CheckpointDelete"):
            with pytest.raises(SnapLabClientError) as err, client_errors():
                getattr(stub, method)(checkpoint_pb2.CheckpointRequest(name="start"), timeout=10)
            assert err.value.code.name == "PERMISSION_DENIED", err.value
    finally:
        channel.close()


def test_a_stopped_host_refuses_before_anything_changes(lab: RefLab) -> None:
    """All of the lab or nothing: with one agent stopped, a rollback is refused (iSM31293, naming the
    host) before any daemon rolls back; once the host is started again it works."""
    checkpoints.rollback(lab.folder, "start")
    base = picture(lab, commands=False)
    change_everything(lab)
    changed = picture(lab, commands=False)
    assert lab.run("host", "stop", "test01").returncode == 0
    try:
        refused = lab.run("lab", "rollback", "start")
        assert refused.returncode == 1, refused.stderr
        assert "iSM31293" in refused.stderr and "host test01" in refused.stderr, refused.stderr
        assert picture(lab, commands=False)["array"] == changed["array"]  # nothing rolled back
    finally:
        assert lab.run("host", "start", "test01").returncode == 0
    checkpoints.rollback(lab.folder, "start")
    back = picture(lab, commands=False)
    assert back == base, differences(base, back)


def test_checkpoints_outlive_a_restart(lab: RefLab) -> None:
    """`lab down` and `lab up` keep the checkpoints: a rollback after the restart still works; a
    rollback while the lab is down is refused (iSM31293)."""
    checkpoints.rollback(lab.folder, "start")
    base = picture(lab)
    change_everything(lab)
    assert lab.run("lab", "down").returncode == 0
    down = lab.run("lab", "rollback", "start")
    assert down.returncode == 1 and "iSM31293" in down.stderr, down.stderr
    up = lab.run("lab", "up")
    assert up.returncode == 0, up.stderr
    checkpoints.rollback(lab.folder, "start")
    back = picture(lab)
    assert back == base, differences(base, back)
