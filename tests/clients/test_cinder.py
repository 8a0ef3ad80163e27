"""The Cinder NEC driver's command lines on the management server, sent as it sends them: shell lines.

The driver runs each command as one string over SSH (``ssh_utils`` → ``exec_command``), checks the
exit status and, for the volume it made, reads the configuration back. Here each string runs in
``snaplab exec manager -- bash -c "…"``, the shell an sshd would start (test_sshd.py puts a real
one in front). Each test follows one driver function; docs/clients.md has the table.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import time
import xml.etree.ElementTree as ET
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


# -- snapshots: the management server's iSMsc_* as the driver pipes them ------------------------------


def bv_sv_status(lab: ClientLab, bv: str, sv: str) -> str | None:
    """cli.query_BV_SV_status: the token after the first ") " of the SV's summary line."""
    out, err, ret = shell(lab, f'iSMsc_query -bv {bv} -bvflg ld -sv {sv} -svflg ld -summary | '
                               'while builtin read line;do '
                               f'if [[ "$line" =~ "{sv}" ]]; then builtin echo "$line";fi;done')
    assert ret == 0, err
    start = out.find(") ")
    return None if start == -1 else out[start + 2 :].split(" ")[0]


def bvname_of(lab: ClientLab, sv: str) -> str:
    """cli.get_bvname: characters 15 to 39 of the ``LD Name`` line of ``iSMsc_query -sv SV -summary``."""
    out, err, ret = shell(lab, f'iSMsc_query -sv {sv} -svflg ld -summary | while builtin read line;do '
                               'if [[ "$line" =~ "LD Name" ]]; then builtin echo "$line";fi;done')
    assert ret == 0, err
    return out[15:39].strip()


def test_snapshot_create_restore_delete(lab: ClientLab) -> None:
    assert shell(lab, "iSMcfg ldbind -poolnumber 0 -ldn 540 -capacity 1 -immediate")[2] == 0
    assert shell(lab, "iSMcfg nickname -ldn 540 -newname cinder_bv -immediate")[2] == 0
    # cli.snapshot_create
    out, err, ret = shell(lab, "iSMcfg generationadd -bvname LX:cinder_bv -poolnumber 1 -count 1 -svname cinder_sv")
    assert ret == 0, err
    out, err, ret = shell(lab, "iSMsc_create -bv cinder_bv -bvflg ld -sv cinder_sv -svflg ld")
    assert ret == 0 and out.startswith("iSMsc_create:Info: iSM19010: "), err
    assert bv_sv_status(lab, "cinder_bv", "cinder_sv") == "snap/active"
    assert bvname_of(lab, "cinder_sv") == "cinder_bv"
    # cli.snapshot_restore: -derivsv keep -nowait, then poll while rst/exec
    out, err, ret = shell(lab, "iSMsc_restore -bv cinder_bv -bvflg ld -sv cinder_sv -svflg ld -derivsv keep -nowait")
    assert ret == 0, err
    for _ in range(100):
        state = bv_sv_status(lab, "cinder_bv", "cinder_sv")
        if state != "rst/exec":
            break
    assert state == "snap/active"
    # cli.lvbind + lvlink (volume from snapshot: the driver's LV path) + lvunlink + lvunbind
    assert shell(lab, "iSMcfg lvbind -bvname cinder_bv -lvn 541 -lvname cinder_lv")[2] == 0
    out, err, ret = shell(lab, "iSMsc_link -lv cinder_lv -lvflg ld -sv cinder_sv -svflg ld -lvacc ro")
    assert ret == 0 and out.startswith("iSMsc_link:Info: iSM20020: "), err
    out, err, ret = shell(lab, "iSMsc_link -lv cinder_lv -lvflg ld -sv cinder_sv -svflg ld -lvacc ro")
    assert ret == 1 and len(err.splitlines()) == 1 and err.startswith("iSMsc_link:Error: iSM"), err
    assert shell(lab, "iSMsc_unlink -lv cinder_lv -lvflg ld")[2] == 0
    assert shell(lab, "iSMcfg lvunbind -ldname cinder_lv")[2] == 0
    # cli.snapshot_delete
    out, err, ret = shell(lab, "iSMsc_delete -bv cinder_bv -bvflg ld -sv cinder_sv -svflg ld")
    assert ret == 0, err
    assert bv_sv_status(lab, "cinder_bv", "cinder_sv") == "snap/deleted"
    assert shell(lab, "iSMcfg generationdel -bvname LX:cinder_bv -count 1")[2] == 0
    assert shell(lab, "iSMcfg ldunbind -ldname cinder_bv")[2] == 0


def test_snapshot_commands_bad_input(lab: ClientLab) -> None:
    for line in ["iSMsc_create -bv nobody -bvflg ld -sv x -svflg ld", "iSMsc_create -bv bv001 -bvflg drv -cyclic",
                 "iSMsc_query -sv nobody -svflg ld", "iSMsc_delete -bv bv001 -bvflg ld"]:
        out, err, ret = shell(lab, line)
        assert ret == 1 and out == "" and err.startswith(line.split()[0] + ":Error: iSM"), (line, err)


# -- attach / detach: LD sets ------------------------------------------------------------------------


def access_of(lab: ClientLab, ld: str) -> list[str]:
    out, err, ret = shell(lab, f"iSMview -all {ARRAY}")
    assert ret == 0, err
    table = out.split("--- Access Control List ---\n")[1].split("\n\n")[0].splitlines()[1:]
    return [" ".join(r.split()[1:]) for r in table if r.split()[0] == ld]


def test_attach_and_detach_through_ld_sets(lab: ClientLab) -> None:
    """cli.addldset_fc (addldset + addldsetpath per WWPN, upper case in 4-digit groups), addldsetld, delldsetld."""
    assert shell(lab, "iSMcfg ldbind -poolnumber 0 -ldn 560 -capacity 1 -immediate")[2] == 0
    assert shell(lab, "iSMcfg nickname -ldn 560 -newname cinder_att -immediate")[2] == 0
    wwpn = "10000000c90000bb"
    path = "-".join(wwpn[i : i + 4] for i in range(0, 16, 4)).upper()
    out, err, ret = shell(lab, "iSMcfg addldset -ldset LX:cinder_node -type fc")
    assert ret == 0, err
    out, err, ret = shell(lab, f"iSMcfg addldsetpath -ldset LX:cinder_node -path {path}")
    assert ret == 0, err
    out, err, ret = shell(lab, "iSMcfg addldsetld -ldset LX:cinder_node -ldname LX:cinder_att -lun 0")
    assert ret == 0, err
    assert access_of(lab, "cinder_att") == ["WWN 10:00:00:00:c9:00:00:bb"]
    out, err, ret = shell(lab, "iSMcfg delldsetld -ldset LX:cinder_node -ldname LX:cinder_att")
    assert ret == 0, err
    assert access_of(lab, "cinder_att") == []
    # detach of an LD not in the set: one error line, status 1 (the driver reads err), nothing changes
    out, err, ret = shell(lab, "iSMcfg delldsetld -ldset LX:cinder_node -ldname LX:cinder_att")
    assert ret == 1 and out == "" and err.startswith("iSMcfg:Error: iSM31230: ") and len(err.splitlines()) == 1
    for line, msg_id in [("iSMcfg addldset -ldset LX:cinder_node -type fc", "iSM31227"),
                         ("iSMcfg addldsetpath -ldset LX:cinder_node -path 12-34", "iSM11100"),
                         ("iSMcfg addldsetld -ldset LX:nobody -ldname cinder_att", "iSM31007"),
                         ("iSMcfg addldsetld -ldset QQ:cinder_node -ldname cinder_att", "iSM11100")]:
        out, err, ret = shell(lab, line)
        assert ret == 1 and err.startswith(f"iSMcfg:Error: {msg_id}: "), (line, err)
    assert access_of(lab, "cinder_att") == []
    assert shell(lab, "iSMcfg ldunbind -ldname cinder_att")[2] == 0


def test_attach_and_detach_through_iscsi_ld_sets(lab: ClientLab) -> None:
    """cli.addldset_iscsi (addldset -type iscsi + addldsetinitiator), addldsetld, delldsetld; the
    driver's iscsi_initialize_connection reads the set's portals, target name and LUN from the XML."""
    assert shell(lab, "iSMcfg ldbind -poolnumber 0 -ldn 570 -capacity 1 -immediate")[2] == 0
    assert shell(lab, "iSMcfg nickname -ldn 570 -newname cinder_isc -immediate")[2] == 0
    iqn = "iqn.1994-05.com.redhat:d1d8e8f23255"
    out, err, ret = shell(lab, "iSMcfg addldset -ldset LX:cinder_inode -type iscsi")
    assert ret == 0 and out.startswith("iSMcfg:Info: iSM31223: "), err
    out, err, ret = shell(lab, f"iSMcfg addldsetinitiator -ldset LX:cinder_inode -initiatorname {iqn}")
    assert ret == 0 and out.startswith("iSMcfg:Info: iSM31240: "), err
    out, err, ret = shell(lab, "iSMcfg addldsetld -ldset LX:cinder_inode -ldname LX:cinder_isc -lun 0")
    assert ret == 0, err
    assert access_of(lab, "cinder_isc") == [f"IQN {iqn}"]
    text = shell(lab, f"iSMview -all {ARRAY}")[0]
    ips = [line.split(":")[1].strip() for line in text.splitlines() if line.startswith("IP Address")]
    assert ips and all(ipaddress.ip_address(a) in ipaddress.ip_network("198.18.0.0/15") for a in ips)
    assert len(set(ips)) == len(ips)
    out, err, ret = shell(lab, "iSMquery -cinder -xml -all")
    assert ret == 0, err
    c = _configs(re.sub(r"(.*)ExitStatus(.*)\n", "", out))
    ldset = c["ldsets"]["LX:cinder_inode"]
    assert ldset["initiator_list"] == [iqn]
    assert ldset["portal_list"] == [f"{a}:3260" for a in ips]
    target = ldset["lds"][570]["iqn"]
    assert ldset["lds"] == {570: {"lun": 0, "iqn": target}} and target.startswith("iqn.")
    assert c["lds"]["LX:cinder_isc"]["ldn"] == 570  # the LD took the set's OS type
    # the same initiator again changes nothing; detach takes the LD out of the set
    assert shell(lab, f"iSMcfg addldsetinitiator -ldset LX:cinder_inode -initiatorname {iqn.upper()}")[2] == 0
    out, err, ret = shell(lab, "iSMcfg delldsetld -ldset LX:cinder_inode -ldname LX:cinder_isc")
    assert ret == 0, err
    assert access_of(lab, "cinder_isc") == []
    # bad input: one line, status 1, nothing changes
    if shell(lab, "iSMcfg addldset -ldset LX:cinder_fnode -type fc")[2] == 0:
        assert shell(lab, "iSMcfg addldsetpath -ldset LX:cinder_fnode -path 1000-0000-C900-00DD")[2] == 0
    before = shell(lab, f"iSMview -all {ARRAY}")[0]
    for line, msg_id in [("iSMcfg addldset -ldset LX:cinder_inode -type iscsi", "iSM31227"),
                         ("iSMcfg addldset -ldset LX:cinder_x -type sas", "iSM11100"),
                         ("iSMcfg addldsetinitiator -ldset LX:cinder_inode -initiatorname not-an-iqn", "iSM11100"),
                         ("iSMcfg addldsetinitiator -ldset LX:nobody -initiatorname iqn.2000-01.x:y", "iSM31007"),
                         ("iSMcfg addldsetinitiator -ldset LX:cinder_fnode -initiatorname iqn.2000-01.x:y", "iSM31241"),
                         ("iSMcfg addldsetpath -ldset LX:cinder_inode -path 1000-0000-C900-00EE", "iSM31241"),
                         ("iSMcfg delldsetld -ldset LX:cinder_inode -ldname cinder_isc", "iSM31230")]:
        out, err, ret = shell(lab, line)
        assert ret == 1 and out == "" and err.startswith(f"iSMcfg:Error: {msg_id}: "), (line, err)
        if msg_id != "iSM11100":
            assert len(err.splitlines()) == 1, (line, err)
    assert shell(lab, f"iSMview -all {ARRAY}")[0] == before
    assert shell(lab, "iSMcfg ldunbind -ldname cinder_isc")[2] == 0


# -- configuration as XML: what volume_common.configs reads -------------------------------------------


def _configs(xml: str) -> dict:
    """The driver's element paths: pools, LDs (``OS Type:LD Name``), FC LD sets, host ports, Product ID."""
    root = ET.fromstring(xml)
    version = root.findall("./CMD_REQUEST")[0].get("version").replace("Version ", "")[0:3]
    pools = {}
    for obj in root.findall('./CMD_REQUEST/CHAPTER[@name="Pool"]/OBJECT[@name="Pool"]'):
        sec = obj.find('./SECTION[@name="Pool Detail Information"]')
        num = int(sec.find('./UNIT[@name="Pool No.(h)"]').text, 16)
        pools[num] = {"total": int(sec.find('UNIT[@name="Pool Capacity"]').text, 10),
                      "free": int(sec.find('UNIT[@name="Free Pool Capacity"]').text, 10),
                      "used": int(sec.find('UNIT[@name="Used Pool Capacity"]').text, 10), "ld_list": []}
    lds = {}
    for sec in root.findall('./CMD_REQUEST/CHAPTER[@name="Logical Disk"]/OBJECT[@name="Logical Disk"]/'
                            'SECTION[@name="LD Detail Information"]'):
        ostype = sec.find('./UNIT[@name="OS Type"]').text or ""
        name = ostype + ":" + sec.find('./UNIT[@name="LD Name"]').text
        ld = {"ldn": int(sec.find('./UNIT[@name="LDN(h)"]').text, 16),
              "pool_num": int(sec.find('./UNIT[@name="Pool No.(h)"]').text, 16),
              "ld_capacity": int(sec.find('./UNIT[@name="LD Capacity"]').text, 10) // GiB,
              "RPL Attribute": sec.find('./UNIT[@name="RPL Attribute"]').text,
              "Purpose": sec.find('./UNIT[@name="Purpose"]').text}
        pools[ld["pool_num"]]["ld_list"].append(ld)  # every LD's pool is listed
        lds[name] = ld
    ldsets = {}
    for obj in root.findall('./CMD_REQUEST/CHAPTER[@name="Access Control"]/OBJECT[@name="LD Set(FC)"]'):
        sec = obj.find('./SECTION[@name="LD Set(FC) Information"]')
        name = sec.find('./UNIT[@name="Platform"]').text + ":" + sec.find('./UNIT[@name="LD Set Name"]').text
        paths = [s.find('./UNIT[@name="Path"]').text for s in obj.findall('./SECTION[@name="Path List"]')]
        members = {int(s.find('./UNIT[@name="LDN(h)"]').text, 16): int(s.find('./UNIT[@name="LUN(h)"]').text, 16)
                   for s in obj.findall('./SECTION[@name="LUN/LD List"]')}
        ldsets[name] = {"wwpn": paths, "lds": members}
    # get_iscsi_ldset_config: portals not starting 0.0.0.0:, initiators, Target Mode Normal -> one Target Name
    for obj in root.findall('./CMD_REQUEST/CHAPTER[@name="Access Control"]/OBJECT[@name="LD Set(iSCSI)"]'):
        portals = [u.text for u in obj.findall('./SECTION[@name="Portal"]/UNIT[@name="Portal"]')
                   if not u.text.startswith("0.0.0.0:")]
        initiators = [u.text for u in obj.findall('./SECTION[@name="Initiator List"]/UNIT[@name="Initiator List"]')]
        sec = obj.find('./SECTION[@name="LD Set(iSCSI) Information"]')
        name = sec.find('./UNIT[@name="Platform"]').text + ":" + sec.find('./UNIT[@name="LD Set Name"]').text
        assert sec.find('./UNIT[@name="Target Mode"]').text == "Normal"
        iqn = sec.find('./UNIT[@name="Target Name"]').text
        members = {int(s.find('./UNIT[@name="LDN(h)"]').text, 16):
                   {"lun": int(s.find('./UNIT[@name="LUN(h)"]').text, 16), "iqn": iqn}
                   for s in obj.findall('./SECTION[@name="LUN/LD List"]')}
        ldsets[name] = {"protocol": "iSCSI", "portal_list": portals, "initiator_list": initiators, "lds": members}
    # get_hostport_config: a port with an IP Address is iSCSI (0.0.0.0 skipped), else its WWPN makes it FC
    ports = []
    for sec in root.findall('./CMD_REQUEST/CHAPTER[@name="Controller"]/OBJECT[@name="Host Port"]/'
                            'SECTION[@name="Host Director/Host Port Information"]'):
        director, port = (int(x, 16) for x in sec.find('./UNIT[@name="Port No.(h)"]').text.split("-"))
        ip = sec.find('./UNIT[@name="IP Address"]')
        if ip is None:
            ports.append((director, port, "FC", sec.find('./UNIT[@name="WWPN"]').text))
        elif ip.text != "0.0.0.0":
            ports.append((director, port, "iSCSI", ip.text))
    product = root.find('./CMD_REQUEST/CHAPTER[@name="Disk Array"]/OBJECT[@name="Disk Array"]/'
                        'SECTION[@name="Disk Array Detail Information"]/UNIT[@name="Product ID"]').text
    return {"version": version, "pools": pools, "lds": lds, "ldsets": ldsets, "ports": ports, "product": product}


@pytest.mark.parametrize("line", ["iSMquery -cinder -xml -all", "clioutmsg xml; iSMview -all"])
def test_pool_capacity_and_configuration_as_xml(lab: ClientLab, line: str) -> None:
    assert shell(lab, "iSMcfg ldbind -poolnumber 1 -ldn 580 -capacity 2 -immediate")[2] == 0
    assert shell(lab, "iSMcfg nickname -ldn 580 -newname 'a&b<c>\"q' -immediate")[2] == 0  # escaped in XML
    if shell(lab, "iSMcfg addldset -ldset LX:xml_node -type fc")[2] == 0:  # once for both parameters
        assert shell(lab, "iSMcfg addldsetpath -ldset LX:xml_node -path 1000-0000-C900-00CC")[2] == 0
    assert shell(lab, "iSMcfg addldsetld -ldset LX:xml_node -ldname 'a&b<c>\"q'")[2] == 0
    try:
        out, err, ret = shell(lab, line)
        assert ret == 0, err
        c = _configs(re.sub(r"(.*)ExitStatus(.*)\n", "", out))  # the driver drops ExitStatus lines
        assert c["version"] == "9.4" and c["product"] == "S2800"
        pool = c["pools"][1]
        assert pool["total"] == 256 * GiB and pool["used"] + pool["free"] == pool["total"]
        assert c["lds"]['LX:a&b<c>"q'] == {"ldn": 0x244, "pool_num": 1, "ld_capacity": 2, "RPL Attribute": "IV",
                                           "Purpose": "---"}
        assert c["lds"]["WN:bv001"]["Purpose"] == "BV"  # the driver leaves the snapshot system's LDs alone
        fc = [w for _, _, kind, w in c["ports"] if kind == "FC"]
        ips = [a for _, _, kind, a in c["ports"] if kind == "iSCSI"]
        assert fc and all(len(w) == 16 for w in fc)
        assert len(ips) == len(fc) and all(ipaddress.ip_address(a) in ipaddress.ip_network("198.18.0.0/15")
                                           for a in ips)
        assert c["ldsets"]["LX:xml_node"] == {"wwpn": ["1000-0000-C900-00CC"], "lds": {0x244: 0}}
    finally:
        shell(lab, "clioutmsg text")
        shell(lab, "iSMcfg delldsetld -ldset LX:xml_node -ldname 'a&b<c>\"q'")
        shell(lab, "iSMcfg ldunbind -ldn 580")


# -- clone: replication pair, replicate, separate, unpair ----------------------------------------------


def rv_query(lab: ClientLab, name: str, role: str, label: str, cut: int) -> str:
    """cli.query_MV_RV_status/_name/_diff: ``${line:N}`` of the lines holding the label."""
    flag = role.lower()
    out, err, ret = shell(lab, f'iSMrc_query -{flag} {name} -{flag}flg ld | while builtin read line;'
                               f'do if [[ "$line" =~ "{label}" ]]; then builtin echo ${{line:{cut}}};fi;done')
    assert ret == 0, err
    return out


def _admin_array(lab: ClientLab):
    from snaplab.common.rpc import ClientTLS
    from snaplab.san.array_client import ArrayClient

    rt = lab.run.runtime()
    return ArrayClient(rt["arrays"][ARRAY]["target"], ClientTLS.from_folder(lab.run.folder / "pki", "admin"))


def sync_state(lab: ClientLab, rv: str) -> str:
    """cli.query_MV_RV_status(RV): ``${line:10}`` of the ``Sync State`` line, stripped."""
    return rv_query(lab, rv, "RV", "Sync State", 10).strip()


def unpair_wait(lab: ClientLab, mv: str, rv: str, timeout: float = 60.0) -> list[str]:
    """UnpairWait._wait: poll the RV's Sync State while ``sep/exec``; at ``separated`` unpair. Returns the states seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(sync_state(lab, rv))
        if seen[-1] == "separated":
            assert shell(lab, f"iSMrc_pair -unpair -mv {mv} -mvflg ld -rv {rv} -rvflg ld")[2] == 0
            return seen
        assert seen[-1] == "sep/exec", seen  # anything else is the driver's "abnormal" end
        time.sleep(0.2)
    raise AssertionError(f"still {seen[-1]} after {timeout}s")


def test_clone_holds_the_sources_bytes(lab: ClientLab) -> None:
    """cli.backup_restore with flag clone: setpair, replicate -cprange full, separate -rvuse immediate
    at once (the copy still runs), then UnpairWait polls the RV's Sync State through ``sep/exec``
    until ``separated`` and unpairs. A ``rpl_hold`` fault pauses the copy so that every state is seen."""
    for ldn, name in ((590, "cinder_src"), (591, "cinder_clone")):
        out, err, ret = shell(lab, f"iSMcfg ldbind -poolnumber 0 -ldn {ldn} -capacity 1 -immediate")
        assert ret == 0, out + err
        assert shell(lab, f"iSMcfg nickname -ldn {ldn} -newname {name} -immediate")[2] == 0
    payload = bytes(range(256)) * 1024  # 256 KiB at an offset that spans blocks
    with _admin_array(lab) as array:
        array.write("cinder_src", 3 * 65536 + 100, payload)
        array.write("cinder_clone", 0, b"stale bytes")
        assert shell(lab, "iSMrc_pair -pair -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld")[2] == 0
        assert rv_query(lab, "cinder_src", "MV", "LD Name", 7).replace("cinder_src", "").strip() == "cinder_clone"
        assert rv_query(lab, "cinder_clone", "RV", "Separate Diff", 13).strip() == f"{GiB // 1024}KB"
        assert shell(lab, "iSMcfg faultset -kind rpl_hold -target cinder_clone")[2] == 0
        out, err, ret = shell(lab, "iSMrc_replicate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld -nowait "
                                   "-cprange full -cpmode bg")
        assert ret == 0, err
        assert sync_state(lab, "cinder_clone") == "rpl/exec"
        assert rv_query(lab, "cinder_clone", "RV", "Copy Progress", 13).strip() == "0%"
        out, err, ret = shell(lab, "iSMrc_separate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld "
                                   "-rvacc rw -rvuse immediate -nowait")
        assert ret == 0, err
        assert sync_state(lab, "cinder_clone") == "sep/exec"
        # written after the separation: the clone keeps the bytes of the moment it was separated
        array.write("cinder_src", 3 * 65536 + 100, b"late" * 16)
        assert shell(lab, "iSMcfg faultclear -kind rpl_hold -target cinder_clone")[2] == 0
        seen = unpair_wait(lab, "cinder_src", "cinder_clone")
        assert seen[0] == "sep/exec" or seen == ["separated"], seen
        assert array.read("cinder_clone", 3 * 65536 + 100, len(payload)) == payload
        assert array.read("cinder_clone", 0, 11) == bytes(11)  # the RV is the source, not what it held
        # Separate Diff counts what changed after the separation (the driver's canPairing=False check)
        assert shell(lab, "iSMrc_pair -pair -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld")[2] == 0
        assert shell(lab, "iSMrc_replicate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld -nowait")[2] == 0
        deadline = time.monotonic() + 60
        while sync_state(lab, "cinder_clone") != "rpl/sync":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert shell(lab, "iSMrc_separate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld "
                          "-rvacc rw -rvuse immediate -nowait")[2] == 0
        assert sync_state(lab, "cinder_clone") == "separated"
        assert rv_query(lab, "cinder_clone", "RV", "Separate Diff", 13).strip() == "0KB"
        array.write("cinder_src", 0, b"x")
        deadline = time.monotonic() + 30  # the manager's view of the array is up to a second old
        while (diff := rv_query(lab, "cinder_clone", "RV", "Separate Diff", 13).strip()) == "0KB":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert int(diff.replace("KB", ""), 10) == 64  # one block of 64 KiB
        assert shell(lab, "iSMrc_pair -unpair -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld")[2] == 0
    # bad input: one line, status 1, the pair state unchanged
    for line, msg_id in [("iSMrc_replicate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld", "iSM31232"),
                         ("iSMrc_separate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld", "iSM31232"),
                         ("iSMrc_pair -pair -mv cinder_src -mvflg ld -rv bv001 -rvflg ld", "iSM31231"),
                         ("iSMrc_pair -pair -mv cinder_src -mvflg ld -rv cinder_src -rvflg ld", "iSM31233"),
                         ("iSMrc_query -rv cinder_clone -rvflg ld", "iSM31232"),
                         ("iSMrc_pair -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld", "iSM11100")]:
        out, err, ret = shell(lab, line)
        assert ret == 1 and out == "" and err.startswith(f"{line.split()[0]}:Error: {msg_id}: "), (line, err)
    assert shell(lab, "iSMrc_pair -pair -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld")[2] == 0
    out, err, ret = shell(lab, "iSMrc_separate -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld -nowait")
    assert ret == 1 and out == "" and err.startswith("iSMrc_separate:Error: iSM31242: ") and len(err.splitlines()) == 1
    assert sync_state(lab, "cinder_clone") == "separated"
    out, err, ret = shell(lab, "iSMcfg ldunbind -ldname cinder_clone")
    assert ret == 1 and err.startswith("iSMcfg:Error: iSM31234: "), err  # a paired LD stays bound
    assert shell(lab, "iSMrc_pair -unpair -mv cinder_src -mvflg ld -rv cinder_clone -rvflg ld -force all")[2] == 0
    for name in ("cinder_src", "cinder_clone"):
        assert shell(lab, f"iSMcfg ldunbind -ldname {name}")[2] == 0


def test_qos_limits_are_stored_and_shown(lab: ClientLab) -> None:
    """cli.set_io_limit: ``iSMioc setlimit -ldname NAME -upperlimit N -lowerlimit N -upperreport on``."""
    assert shell(lab, "iSMcfg ldbind -poolnumber 0 -ldn 600 -capacity 1 -immediate")[2] == 0
    assert shell(lab, "iSMcfg nickname -ldn 600 -newname cinder_qos -immediate")[2] == 0
    out, err, ret = shell(lab, "iSMioc setlimit -ldname cinder_qos -upperlimit 1000 -lowerlimit 100 -upperreport on")
    assert ret == 0 and out.startswith("iSMioc:Info: iSM31239: "), err
    block = shell(lab, f"iSMview -all {ARRAY}")[0].split("LD Name                  : cinder_qos")[1].split("\n\n")[0]
    assert "I/O Limit                : upper=1000 lower=100 report=on" in block
    for line in ["iSMioc setlimit -ldname cinder_qos -upperlimit 10 -lowerlimit 100",  # lower above upper
                 "iSMioc setlimit -ldname cinder_qos -upperreport maybe", "iSMioc setlimit -ldname nobody -upperlimit 1",
                 "iSMioc getlimit -ldname cinder_qos"]:
        out, err, ret = shell(lab, line)
        assert ret == 1 and out == "" and err.startswith("iSMioc:Error: iSM"), (line, err)
    block = shell(lab, f"iSMview -all {ARRAY}")[0].split("LD Name                  : cinder_qos")[1].split("\n\n")[0]
    assert "upper=1000 lower=100 report=on" in block  # unchanged by the refusals
    assert shell(lab, "iSMcfg ldunbind -ldname cinder_qos")[2] == 0
