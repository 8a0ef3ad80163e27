"""OpenSVC's NEC drivers against the lab: the command lines they send, parsed with the rules they apply.

Array driver (inventory: ``iSMview -d`` then ``iSMview -all ARRAY`` on the node, or ``iSMcc_view``),
the collector's parser of that ``-all`` output, and the snapshot sync resource ``sync.necismsnap``
(devs ``SV:LD``; status = SV timestamp + link check; update = unlink, create into the same SV, link),
run twice in a row as a scheduler would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clientlab, opensvc_rules
import opensvc_rules as rules
from clientlab import ARRAY, ClientLab

pytestmark = pytest.mark.timeout(300)

NODE = "backup01"  # the node that holds the sync resource: it reaches lv001 and, through its CV, bv001
DEVS = [("sv001_01", "lv001")]


@pytest.mark.parametrize("view", ["iSMcc_view", "iSMview"])
def test_inventory(lab: ClientLab, view: str) -> None:
    out, err, ret = lab.call(NODE, [view, "-d"])
    assert ret == 0, err
    assert rules.array_names(out) == [ARRAY]
    out, err, ret = lab.call(NODE, [view, "-all", ARRAY])
    assert ret == 0, err
    assert "--- LD Detail Information ---" in out


def test_inventory_bad_array_name(lab: ClientLab) -> None:
    out, err, ret = lab.call(NODE, ["iSMview", "-all", "No_Such_Array"])
    assert ret != 0 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("iSMview:Error: iSM31064: ")


def _check_collected(c: rules.Collected, lds: list[str], pools: int) -> None:
    assert c.model == "NEC S2800"  # Vendor ID + Product ID (the lab file's product id)
    assert c.firmware and len(c.wwn) == 16 and c.wwn_prefix == c.wwn[4:]
    assert c.cache == 4 * 1024
    assert [d["name"] for d in c.vdisks] == lds  # every block closed by a '---' line
    for d in c.vdisks:
        assert d["wwid"] == c.wwn_prefix + d["lunid"] and d["size"] >= 0 and d["raid"] in ("raid1", "raid6")
        assert d["disk_group"].startswith("Pool")
    assert len(c.pools) == pools
    for p in c.pools:
        assert p["size"] == p["used"] + p["free"] or abs(p["size"] - p["used"] - p["free"]) <= 1, p


def test_collector_parses_the_management_servers_view(lab: ClientLab) -> None:
    out, err, ret = lab.manager(["iSMview", "-all", ARRAY])
    assert ret == 0, err
    listed = [line.split()[1] for line in out.split("--- Logical Disk List ---")[1].split("\n\n")[0].splitlines()[2:]]
    c = rules.Collected(out)
    _check_collected(c, listed, 2)
    assert len(c.ports) == out.count("--- Port Detail Information ---") >= 2
    assert "DB_DATA_BV" in listed and "sv001_01" in listed


def test_collector_parses_a_nodes_view(lab: ClientLab) -> None:
    """On the node the view holds only what the node is given (its rights), in the same layout."""
    out, err, ret = lab.call(NODE, ["iSMcc_view", "-all", ARRAY])
    assert ret == 0, err
    c = rules.Collected(out)
    names = [d["name"] for d in c.vdisks]
    assert "lv001" in names and "BACKUP_CV" in names and "bv001" not in names
    _check_collected(c, names, len(c.pools))
    assert "business01" not in out  # no other server's record


# -- sync.necismsnap ---------------------------------------------------------------------------------


def _status(lab: ClientLab) -> tuple[list, list[bool]]:
    stamps, links = [], []
    for sv, ld in DEVS:
        out, err, ret = lab.call(NODE, ["iSMsc_query", "-sv", sv, "-svflg", "ld"])
        assert ret == 0, err
        data = rules.sv_query(out)
        assert len(data["sv"]) == 1
        stamps.append(rules.sv_timestamp(data["sv"][0]))
        out, err, ret = lab.call(NODE, ["iSMsc_linkinfo", "-vol", sv, "-volflg", "ld", "-lcl"])
        assert ret == 0, err
        links.append(rules.linked(rules.linkinfo(out), ld))
    return stamps, links


def _update(lab: ClientLab) -> None:
    """The driver's sync_update: unlink (skipped when not linked), create into the same SV, link."""
    for sv, ld in DEVS:
        out, _, ret = lab.call(NODE, ["iSMsc_linkinfo", "-vol", sv, "-volflg", "ld", "-lcl"])
        if ret == 0 and rules.linked(rules.linkinfo(out), ld):
            out, err, ret = lab.call(NODE, ["iSMsc_unlink", "-lv", ld, "-lvflg", "ld"])
            assert ret == 0, err
    for sv, _ld in DEVS:
        out, err, ret = lab.call(NODE, ["iSMsc_query", "-sv", sv, "-svflg", "ld"])
        assert ret == 0, err
        src = rules.sv_query(out)["LD Name"]
        out, err, ret = lab.call(NODE, ["iSMsc_query", "-bv", src, "-bvflg", "ld", "-detail"])
        assert ret == 0 and rules.changing(rules.bv_detail(out)) == [], out + err
        out, err, ret = lab.call(NODE, ["iSMsc_create", "-bv", src, "-sv", sv, "-bvflg", "ld", "-svflg", "ld"])
        assert ret == 0, err
        assert out.startswith("iSMsc_create:Info: iSM19010: ")
    for sv, ld in DEVS:
        out, err, ret = lab.call(NODE, ["iSMsc_link", "-lv", ld, "-sv", sv, "-lvflg", "ld", "-svflg", "ld"])
        assert ret == 0, err


def test_sync_refresh_and_status_twice(lab: ClientLab) -> None:
    before, _ = _status(lab)
    for _ in range(2):
        time.sleep(1.1)  # the timestamp has a one-second resolution: each refresh must show as newer
        _update(lab)
        stamps, links = _status(lab)
        assert links == [True] * len(DEVS)
        assert all(new > old for new, old in zip(stamps, before, strict=True)), (stamps, before)
        before = stamps
    # A guarded SV keeps its snapshot: the refresh is refused with one error line, the link stays.
    sv, ld = DEVS[0]
    _, err, ret = lab.call(NODE, ["iSMsc_unlink", "-lv", ld, "-lvflg", "ld"])
    assert ret == 0, err
    _, err, ret = lab.call(NODE, ["iSMsc_svguard", "-bv", "bv001", "-bvflg", "ld", "-sv", sv, "-svflg", "ld",
                                    "-mode", "set"])
    assert ret == 0, err
    _out, err, ret = lab.call(NODE, ["iSMsc_create", "-bv", "bv001", "-sv", sv, "-bvflg", "ld", "-svflg", "ld"])
    assert ret != 0 and err.startswith("iSMsc_create:Error: iSM19025: ") and len(err.splitlines()) == 1
    assert _status(lab)[0] == before
    lab.call(NODE, ["iSMsc_svguard", "-bv", "bv001", "-bvflg", "ld", "-sv", sv, "-svflg", "ld", "-mode", "cancel"])
