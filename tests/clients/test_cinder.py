"""The Cinder NEC driver's command lines on the management server, sent as it sends them: shell lines.

The driver runs each command as one string over SSH (``ssh_utils`` → ``exec_command``), checks the
exit status and, for the volume it made, reads the configuration back. Here each string runs in
``snaplab exec manager -- bash -c "…"``, the shell an sshd would start (test_sshd.py puts a real
one in front). What the lab does not offer yet is listed in docs/clients.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clientlab
from clientlab import ARRAY, ClientLab

pytestmark = pytest.mark.timeout(300)

POOL = 1  # the reference lab's dynamic pool
GiB = 1 << 30


def shell(lab: ClientLab, line: str) -> tuple[str, str, int]:
    return lab.manager(["bash", "-c", line])


def ld_rows(lab: ClientLab) -> dict[str, list[str]]:
    """The Logical Disk List of ``iSMview -all``: name -> its columns."""
    out, err, ret = shell(lab, f"iSMview -all {ARRAY}")
    assert ret == 0, err
    rows = out.split("--- Logical Disk List ---\n")[1].split("\n\n")[0].splitlines()[1:]
    return {r.split()[1]: r.split() for r in rows}


def test_create_volume_then_delete(lab: ClientLab) -> None:
    """cli.ldbind (bind by number, capacity in GB, -immediate) + nickname; cli.unbind by TYPE-less name."""
    out, err, ret = shell(lab, f"iSMcfg ldbind -poolnumber {POOL} -ldn 512 -capacity 2 -immediate")
    assert ret == 0, err
    out, err, ret = shell(lab, "iSMcfg nickname -ldn 512 -newname cinder_vol_1 -immediate")
    assert ret == 0 and out.startswith("iSMcfg:Info: iSM31220: "), err
    row = ld_rows(lab)["cinder_vol_1"]
    assert row[0] == "0200h" and row[4] == "2.0GB"
    # changeldname with the old name (TYPE:NAME accepted as the driver's volume names carry it)
    out, err, ret = shell(lab, "iSMcfg nickname -ldname LX:cinder_vol_1 -newname cinder_vol_2")
    assert ret == 0, err
    out, err, ret = shell(lab, "iSMcfg ldunbind -ldname cinder_vol_2")
    assert ret == 0, err
    assert "cinder_vol_2" not in ld_rows(lab)


def test_extend_volume(lab: ClientLab) -> None:
    """cli.expand: ``iSMcfg ldexpand -ldn %d -capacity %d -unit gb``; the size is the new one."""
    out, err, ret = shell(lab, f"iSMcfg ldbind -poolnumber {POOL} -ldn 530 -capacity 1 -immediate")
    assert ret == 0, err
    out, err, ret = shell(lab, "iSMcfg ldexpand -ldn 530 -capacity 3 -unit gb")
    assert ret == 0 and out.startswith("iSMcfg:Info: iSM31221: "), err
    assert ld_rows(lab)["LD0212"][4] == "3.0GB"
    out, err, ret = shell(lab, "iSMcfg ldexpand -ldn 530 -capacity 2 -unit gb")  # never shrinks
    assert ret == 1 and err.startswith("iSMcfg:Error: iSM19001: "), err
    out, err, ret = shell(lab, "iSMcfg ldexpand -ldname bv001 -capacity 9 -unit gb")  # a BV keeps its size
    assert ret == 1 and err.startswith("iSMcfg:Error: iSM31222: ") and len(err.splitlines()) == 1, err
    assert ld_rows(lab)["LD0212"][4] == "3.0GB"
    assert shell(lab, "iSMcfg ldunbind -ldname LD0212")[2] == 0


def test_bad_input_is_one_error_line_and_changes_nothing(lab: ClientLab) -> None:
    before = ld_rows(lab)
    for line, msg_id in [
        (f"iSMcfg ldbind -poolnumber {POOL} -ldn 520 -capacity 999999 -immediate", "iSM31002"),  # pool too small
        (f"iSMcfg ldbind -poolnumber {POOL} -ldn 16 -capacity 1 -immediate", "iSM31003"),  # LD number in use
        ("iSMcfg nickname -ldn 16 -newname lv001", "iSM31004"),  # name in use
        ("iSMcfg nickname -ldn 4000 -newname nobody", "iSM19003"),  # no such LD
        ("iSMcfg ldbind -poolnumber 1 -ldn 521 -capacity 2 -unit pb", "iSM11100"),
        ("iSMcfg nickname -ldn 16", "iSM11100"),
    ]:
        out, err, ret = shell(lab, line)
        assert ret != 0 and out == "", (line, out)
        first = err.splitlines()[0]
        assert first.startswith(f"iSMcfg:Error: {msg_id}: "), (line, err)
        if msg_id != "iSM11100":  # a usage error also prints the usage text after its one line
            assert len(err.splitlines()) == 1, (line, err)
    assert ld_rows(lab) == before


def test_pipelines_run_as_the_driver_writes_them(lab: ClientLab) -> None:
    """The driver's `cmd | while builtin read line; do if [[ "$line" =~ "X" ]]; then …` form."""
    line = (f'iSMview -d | while builtin read line;do if [[ "$line" =~ "{ARRAY}" ]]; '
            'then builtin echo "$line";fi;done')
    out, err, ret = shell(lab, line)
    assert ret == 0, err
    assert out.split()[1] == ARRAY
    # the exit status is the shell's, as exec_command's channel reports it
    assert shell(lab, "iSMcfg nickname -ldn 4000 -newname x; exit $?")[2] == 1
