"""`snaplab lab up/status/down` and `snaplab exec` as a user runs them: real daemons in a tmp lab folder."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from snaplab.san.array_client import ArrayClient
from snaplab.deploy.configure import config_ops
from snaplab.deploy.errors import LabError, LabFileError
from snaplab.deploy.folder import default_lab_file
from snaplab.deploy.spec import LabSpec
from snaplab.deploy.values import parse_size, split_command

from snaplab.common.rpc import ClientTLS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, snaplab



@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabRun]:
    run = LabRun(tmp_path)
    try:
        yield run
    finally:
        run.teardown()


SMALL_LAB = """
    [[arrays]]
    name = "Small_Array"
    product_id = "S2800"
    ports = ["00h/00h P_BIZ", "01h/00h P_BAK"]
    pools = [{ number = 0, kind = "basic", capacity = "4GiB" }, { number = 1, kind = "dynamic", capacity = "4GiB" }]
    sra = [{ pool = 1, capacity = "256MiB", name = "SDV1", number = "0100h" }]
    lds = [
      { number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 },
      { number = "002ah", name = "BK_CV", capacity = "16MiB", pool = 0, attr = "cv" },
    ]
    generations = [{ bv = "bv001", pool = 1, svs = ["sv001_01", "sv001_02"], numbers = ["0031h", "0032h"] }]
    lvs = [{ bv = "bv001", name = "lv001", number = "0038h" }]
    licences = ["DynamicSnapVolume", "AccessControl"]

    [[access]]
    ld = "bv001"
    port = "P_BIZ"

    [[access]]
    lds = ["lv001", "BK_CV"]
    port = "P_BAK"
"""

SMALL_HOSTS = """
    [[hosts]]
    name = "biz01"
    role = "business"
    wwns = ["10:00:00:00:c9:00:00:01"]
    ports = ["P_BIZ"]

    [[hosts]]
    name = "bak01"
    role = "backup"
    wwns = ["10:00:00:00:c9:00:00:02"]
    ports = ["P_BAK"]
    volumes = [{ ld = "lv001", partition = 1, guid = "{37d84cca-2507-11d5-a0f7-00004c714491}" }]

    [[setup]]
    host = "biz01"
    commands = ["iSMvollist -cr"]

    [[setup]]
    host = "bak01"
    commands = ["iSMvollist -cr"]
"""


def _array_client(lab: LabRun, name: str) -> ArrayClient:
    rt = lab.runtime()
    assert rt is not None
    return ArrayClient(rt["arrays"][name]["target"], ClientTLS.from_folder(lab.folder / "pki", "admin"))


def _assert_all_healthy(lab: LabRun, expect: int) -> None:
    st = lab("lab", "status")
    assert st.returncode == 0, st.stdout + st.stderr
    assert f"{expect} of {expect} processes healthy" in st.stdout, st.stdout


# -- the lab file ------------------------------------------------------------------------------


def test_sizes_and_command_lines() -> None:
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("64MiB") == 64 << 20
    assert parse_size("1.5KiB") == 1536
    assert parse_size(4096) == 4096
    for bad in ("1GB", "lots", "-1", True, 1.5):
        with pytest.raises((TypeError, ValueError)):
            parse_size(bad)
    vol = r"\\?\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\ "
    assert split_command(f"iSMrc_mount -mvol {vol} -drv H:") == [
        "iSMrc_mount",
        "-mvol",
        vol.strip(),
        "-drv",
        "H:",
    ]
    assert split_command('NET SHARE "bv folder"=G:\\bv') == ["NET", "SHARE", "bv folder=G:\\bv"]


def test_default_lab_is_the_guides_lab() -> None:
    spec = LabSpec.load(default_lab_file())
    (array,) = spec.arrays
    assert array.name == "Tokyo_Customer_DataBase"
    assert {(p.text, p.name) for p in array.ports} >= {
        ("00h/00h", "DB_SECONDARY"),
        ("01h/00h", "DB_PRIMARY"),
        ("00h/01h", "BACKUP_PRIMARY"),
        ("01h/01h", "BACKUP_SECONDARY"),
    }
    lds = {ld.name: ld for ld in array.lds}
    assert lds["DB_DATA_BV"].number == 0 and lds["DB_ARCHIVE_BV"].number == 4
    assert lds["BACKUP_CV"].number == 0x2A and lds["BACKUP_CV"].attr == "cv"
    assert lds["bv001"].format == "WN"
    svs = [sv.name for g in array.generations if g.bv == "bv001" for sv in g.svs]
    assert svs == [f"sv001_0{i}" for i in range(1, 8)]
    assert array.sra[0].name == "SDV1" and array.sra[0].number == 0x100
    assert {h.name: h.role for h in spec.hosts} == {
        "business01": "business",
        "business02": "standby",
        "backup01": "backup",
        "test01": "test",
    }
    guid = "37d84cca-2507-11d5-a0f7-00004c714491"
    for host in ("backup01", "test01"):
        assert [(v.ld, v.partition, v.guid) for v in spec.host(host).volumes] == [("lv001", 1, guid)]
    reach = {(a.ld, a.port) for a in spec.access}
    assert (
        ("bv001", "DB_PRIMARY") in reach
        and ("lv001", "BACKUP_PRIMARY") in reach
        and ("lv001", "TEST_PRIMARY") in reach
    )
    # P1 and P2 with the guide's commands: the backup server's volume list is made with lv001 linked
    backup = [" ".join(c.argv) for c in spec.setup if c.host == "backup01"]
    link, unlink = (
        "iSMsc_link -lv lv001 -lvflg ld -sv sv001_01 -svflg ld",
        "iSMsc_unlink -lv lv001 -lvflg ld -sv sv001_01 -svflg ld",
    )
    assert backup.index(link) < backup.index("iSMvollist -cr", 1) < backup.index(unlink)
    assert spec.setup[0].host == "business01" and "assign letter=G" in spec.setup[0].stdin
    # licences first, then LDs ... access last: the order the array accepts
    kinds = [req.WhichOneof("op") for _, req in config_ops(spec, array)]
    assert (
        kinds.index("set_licence")
        < kinds.index("add_generations")
        < kinds.index("bind_lv")
        < kinds.index("assign_access")
    )


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (
            "[[arrays]]\nname = 'A'\nlds = [{ name = 'x', capacity = '1GB', pool = 0 }]\n",
            "arrays[A].lds[x].pool",
            "no pool 0",
        ),
        (
            "[[arrays]]\nname = 'A'\npools = [{ number = 0, kind = 'basic', capacity = '1GB' }]\n",
            "arrays[A].pools[0].capacity",
            "KiB",
        ),
        ("[[arrays]]\nname = 'A'\nportz = []\n", "arrays[0]", "unknown key 'portz'"),
        ("[[arrays]]\nname = 'A'\n[[hosts]]\nname = 'h'\nrole = 'boss'\n", "hosts[h].role", "is not a role"),
        (
            "[[arrays]]\nname = 'A'\n[[hosts]]\nname = 'h'\nrole = 'test'\nports = ['NOPE']\n",
            "hosts[h].ports",
            "no array has a port",
        ),
        (
            "[[arrays]]\nname = 'A'\n[[setup]]\nhost = 'ghost'\ncommands = ['iSMvollist -cr']\n",
            "setup[0].host",
            "no host named",
        ),
        ("arrays = 3\n", "arrays", "expected a list"),
        ("[[arrays]\n", "", "not valid TOML"),
        ("[lab]\n", "arrays", "at least one"),
        (
            (
                "[[arrays]]\nname='A'\npools=[{number=0,kind='basic',capacity='1GiB'}]\n"
                "lds=[{name='bv',capacity='64MiB',pool=0}]\ngenerations=[{bv='bv',pool=0,count=1}]\n"
            ),
            "arrays[A].generations[0].pool",
            "dynamic pool",
        ),
        (
            (
                "[[arrays]]\nname='A'\npools=[{number=0,kind='basic',capacity='1GiB'}]\n"
                "lds=[{name='a',capacity='1GiB',pool=0},{name='b',capacity='64MiB',pool=0}]\n"
            ),
            "arrays[A].pools",
            "has only 1GiB",
        ),
        (
            (
                "[[arrays]]\nname='A'\nports=['00h/00h P']\npools=[{number=0,kind='basic',capacity='1GiB'}]\n"
                "lds=[{name='a',capacity='64MiB',pool=0}]\n[[access]]\nld='a'\nport='P'\n"
            ),
            "access[0]",
            "AccessControl licence",
        ),
    ],
)
def test_lab_file_errors_name_file_and_place(text: str, where: str, problem: str) -> None:
    with pytest.raises(LabFileError) as info:
        LabSpec.parse(text, "my.toml")
    assert info.value.where == where, str(info.value)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"my.toml:{where}:" if where else "my.toml: ")


def test_cli_reports_bad_lab_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[arrays]]\nname = 'A'\nlds = [{ name = 'x', capacity = 100, pool = 0 }]\n")
    for args in (["lab", "check", str(bad)], ["lab", "up", str(bad), "--lab", str(tmp_path / "lab")]):
        out = snaplab(*args, cwd=tmp_path, timeout=60)
        assert out.returncode == 1
        assert out.stderr.strip().count("\n") == 0, out.stderr
        assert out.stderr.startswith(f"snaplab: error: {bad}:arrays[A].lds[x]"), out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "lab" / "runtime.json").exists()
    out = snaplab(
        "lab", "up", str(tmp_path / "missing.toml"), "--lab", str(tmp_path / "lab"), cwd=tmp_path, timeout=60
    )
    assert out.returncode == 1 and "does not exist" in out.stderr


# -- processes ---------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_lab_without_hosts_up_status_down(lab: LabRun) -> None:
    labfile = lab.write("small.toml", SMALL_LAB)
    up = lab("lab", "up", str(labfile))
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Small_Array" in up.stdout and "manager" in up.stdout and "LOG" in up.stdout
    rt = lab.runtime()
    assert rt is not None and rt["state"] == "up"
    assert {p["kind"] for p in rt["processes"]} == {"array", "manager"}
    assert (lab.folder / "lab.toml").read_text() == labfile.read_text()
    for principal in ("ca", "Small_Array", "manager", "admin"):
        assert (lab.folder / "pki" / f"{principal}.crt").is_file()
    _assert_all_healthy(lab, 2)

    # the configuration went through the manager to the array
    with _array_client(lab, "Small_Array") as client:
        state = client.describe()
    lds = {ld.name: ld for ld in state.lds}
    assert lds["bv001"].number == "0030h" and lds["bv001"].type == "BV"
    assert lds["sv001_02"].number == "0032h" and lds["lv001"].number == "0038h" and lds["SDV1"].type == "SDV"
    assert lds["BK_CV"].attr == "cv" and "port:P_BAK" in lds["BK_CV"].access
    assert state.licences["DynamicSnapVolume"] == "licensed"

    # up of a lab that runs starts only what does not run (issue 9): here nothing
    again = lab("lab", "up", str(labfile))
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
    assert lab.runtime() == rt

    down = lab("lab", "down")
    assert down.returncode == 0, down.stderr
    assert lab.leftovers() == []
    assert lab("lab", "status").returncode == 3
    assert not list((lab.folder / "run").glob("*.ready.json"))

    # up again without a file: the same lab restarts from its state (A12), configuration kept
    restart = lab("lab", "up")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "restarting" in restart.stdout
    with _array_client(lab, "Small_Array") as client:
        assert "lv001" in {ld.name for ld in client.describe().lds}
    other = lab.write("other.toml", SMALL_LAB.replace("Small_Array", "Other_Array"))
    assert lab("lab", "up", str(other)).returncode == 1  # running
    assert lab("lab", "down").returncode == 0
    refused = lab("lab", "up", str(other))
    assert refused.returncode == 1 and "--fresh" in refused.stderr
    fresh = lab("lab", "up", str(other), "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "Other_Array" in fresh.stdout


@pytest.mark.timeout(120)
def test_failed_up_leaves_no_process_and_no_state(lab: LabRun) -> None:
    # The file is valid, but the array refuses the second LD (its number went to the first, unnumbered one).
    labfile = lab.write(
        "bad.toml",
        """
        [[arrays]]
        name = "Small_Array"
        pools = [{ number = 0, kind = "basic", capacity = "1GiB" }]
        lds = [{ name = "a", capacity = "64MiB", pool = 0 }, { name = "b", capacity = "64MiB", pool = 0, number = "0000h" }]
        """,
    )
    up = lab("lab", "up", str(labfile))
    assert up.returncode == 1
    assert "bad.toml:arrays[Small_Array].lds[b]" in up.stderr and "iSM31003" in up.stderr, up.stderr
    # both daemons ran (their logs say so) and are gone again, with the state of the half-made lab
    assert "listening on" in (lab.folder / "run" / "array-Small_Array.log").read_text()
    assert "listening on" in (lab.folder / "run" / "manager.log").read_text()
    assert lab.leftovers() == []
    assert sorted(p.name for p in lab.folder.iterdir()) == [".lock", "run"]  # logs stay for diagnosis


def test_commands_need_a_running_lab(tmp_path: Path) -> None:
    folder = str(tmp_path / "nolab")
    st = snaplab("lab", "status", "--lab", folder, cwd=tmp_path, timeout=60)
    assert st.returncode == 3 and "no lab is running" in st.stdout
    assert snaplab("lab", "down", "--lab", folder, cwd=tmp_path, timeout=60).returncode == 0
    ex = snaplab("exec", "--lab", folder, "business01", "--", "iSMvollist", "-cr", cwd=tmp_path, timeout=60)
    assert ex.returncode == 1 and ex.stderr.startswith("snaplab: error: no lab is running")
    usage = snaplab("exec", "--lab", folder, "business01", cwd=tmp_path, timeout=60)
    assert usage.returncode == 2 and "COMMAND" in usage.stderr


@pytest.mark.timeout(240)
def test_small_lab_with_hosts(lab: LabRun) -> None:
    labfile = lab.write("small.toml", SMALL_LAB + SMALL_HOSTS)
    up = lab("lab", "up", str(labfile))
    assert up.returncode == 0, up.stdout + up.stderr
    rt = lab.runtime()
    assert rt is not None and set(rt["hosts"]) == {"biz01", "bak01"}
    pinned = json.loads((lab.folder / "hosts" / "bak01" / "etc" / "pinned_volumes.json").read_text())
    assert pinned == [
        {
            "array": "Small_Array",
            "ld": "lv001",
            "partition": 1,
            "guid": "37d84cca-2507-11d5-a0f7-00004c714491",
        }
    ]
    _assert_all_healthy(lab, 4)
    out = lab("exec", "biz01", "--", "iSMvollist", "-cr")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "iSM11701" in out.stdout
    script = "list disk\n"
    dp = lab("exec", "-i", "biz01", "--", "DISKPART", stdin=script)
    assert dp.returncode == 0, dp.stdout + dp.stderr
    assert "Disk 1" in dp.stdout, dp.stdout
    bad = lab("exec", "nohost", "--", "iSMvollist", "-cr")
    assert bad.returncode == 1 and "no host 'nohost'" in bad.stderr
    assert lab("lab", "down").returncode == 0
    assert lab.leftovers() == []


@pytest.mark.timeout(300)
def test_default_lab(lab: LabRun) -> None:
    up = lab("lab", "up", timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    for name in ("Tokyo_Customer_DataBase", "manager", "business01", "business02", "backup01", "test01"):
        assert name in up.stdout
    _assert_all_healthy(lab, 6)
    out = lab("exec", "business01", "--", "iSMvollist", "-cr")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "iSM11701: Volume list is created successfully." in out.stdout
    g = lab("path", "business01", "G:")
    assert g.returncode == 0 and Path(g.stdout.strip()).is_dir(), g.stdout + g.stderr

    # the state 2.2.1 starts from: the backup server links the newest generation and mounts it by the
    # pinned volume name (steps 9-10), then releases it (steps 13-14)
    vol = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
    for argv in (
        ["iSMsc_link", "-lv", "lv001", "-lvflg", "ld", "-sv", "bv001.-1", "-svflg", "ld.relgen"],
        ["iSMrc_mount", "-mvol", vol, "-drv", "H:"],
    ):
        step = lab("exec", "backup01", "--", *argv)
        assert step.returncode == 0, step.stdout + step.stderr
    h = lab("path", "backup01", "H:")
    assert h.returncode == 0 and Path(h.stdout.strip()).is_dir(), h.stdout + h.stderr
    for argv in (["iSMrc_umount", "-mvol", vol], ["iSMsc_unlink", "-lv", "lv001", "-lvflg", "ld"]):
        step = lab("exec", "backup01", "--", *argv)
        assert step.returncode == 0, step.stdout + step.stderr
    gone = lab("path", "backup01", "H:")
    assert gone.returncode == 1 and "nothing is mounted at H:" in gone.stderr
    view = lab("exec", "manager", "--", "iSMview", "-d")
    assert view.returncode == 0, view.stdout + view.stderr
    assert "Tokyo_Customer_DataBase" in view.stdout
    assert lab("lab", "down").returncode == 0
    assert lab.leftovers() == []


def test_lab_api_errors_are_lab_errors(tmp_path: Path) -> None:
    from snaplab.deploy.lab import Lab

    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "precious.txt").write_text("mine")
    with pytest.raises(LabError, match="not empty and holds no lab"):
        Lab(tmp_path / "stuff").up(LabSpec.parse(textwrap.dedent(SMALL_LAB), "small.toml"))
    with pytest.raises(LabError, match="refusing to wipe"):
        Lab(tmp_path / "stuff").up(LabSpec.parse(textwrap.dedent(SMALL_LAB), "small.toml"), fresh=True)
    assert (tmp_path / "stuff" / "precious.txt").read_text() == "mine"


@pytest.mark.timeout(120)
def test_down_finds_daemons_runtime_json_lost(lab: LabRun) -> None:
    # As after a `lab up` killed mid-way: the daemons run but runtime.json is gone.
    labfile = lab.write("small.toml", SMALL_LAB)
    assert lab("lab", "up", str(labfile)).returncode == 0
    assert lab.pids
    (lab.folder / "runtime.json").unlink()
    st = lab("lab", "status")
    assert st.returncode == 3 and "still run" in st.stdout
    assert lab("lab", "up").returncode == 1  # refuses to start a second set beside them
    down = lab("lab", "down")
    assert down.returncode == 0 and "2 processes stopped" in down.stdout, down.stdout + down.stderr
    assert lab.leftovers() == []
    # the remains of an interrupted `up` (marked .incomplete) are never restarted: made anew from its file
    (lab.folder / ".incomplete").touch()
    again = lab("lab", "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "interrupted" in again.stdout and f"making a new lab in {lab.folder}" in again.stdout
    assert not (lab.folder / ".incomplete").exists()


def test_readme_lab_file_example_is_valid() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Lab files", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = LabSpec.parse(example, "README.md")
    assert [h.name for h in spec.hosts] == ["biz01"] and spec.setup[0].argv == ("iSMvollist", "-cr")


@pytest.mark.timeout(120)
def test_failed_setup_command_is_reported_and_the_lab_stopped(lab: LabRun) -> None:
    labfile = lab.write(
        "small.toml",
        SMALL_LAB
        + SMALL_HOSTS
        + '\n[[setup]]\nhost = "biz01"\ncommands = ["iSMsc_create -bv nosuch -bvflg ld -cyclic"]\n',
    )
    up = lab("lab", "up", str(labfile))
    assert up.returncode == 1
    assert up.stderr.count("\n") == 1, up.stderr
    assert f"{labfile}:setup[2].commands[0]: setup command on biz01 failed with status 1" in up.stderr
    assert "iSMsc_create -bv nosuch" in up.stderr and "setup.log" in up.stderr
    assert lab.leftovers() == []
    assert "iSMsc_create" in (lab.folder / "run" / "setup.log").read_text()
    assert not (lab.folder / "hosts").exists()  # the half-made lab is gone; `lab up` may start afresh
