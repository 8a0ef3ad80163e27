"""The lab file's ``[[clusters]]`` (issue 9 item 2): the guide's cluster rules checked by `snaplab lab check`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from snaplab.deploy.errors import LabFileError
from snaplab.deploy.folder import default_lab_file
from snaplab.deploy.spec import LabSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import snaplab

BASE = default_lab_file().read_text(encoding="utf-8")
CLUSTER_LAB = default_lab_file().with_name("cluster_lab.toml")
CLUSTER = """
[[clusters]]
name = "DBCLUSTER"
nodes = ["business01", "business02"]
{extra}
[[clusters.groups]]
name = "DBGROUP"
owner = "business01"
disks = [{{ ld = "{ld}", mount = "G:" }}]
"""


def lab(extra: str = "", ld: str = "bv001") -> str:
    return BASE + CLUSTER.format(extra=extra, ld=ld)


def test_cluster_lab_is_the_reference_lab_with_its_cluster() -> None:
    text = CLUSTER_LAB.read_text(encoding="utf-8")
    assert text.startswith(BASE) and "[[clusters]]" in text[len(BASE) :]  # the two cannot drift apart
    assert not LabSpec.load(default_lab_file()).clusters
    spec = LabSpec.load(CLUSTER_LAB)
    (c,) = spec.clusters
    assert (c.name, c.nodes, c.quorum, c.witness) == (
        "DBCLUSTER",
        ["business01", "business02"],
        "witness",
        "manager",
    )
    assert (c.heartbeat_interval, c.heartbeat_timeout, c.votes(), c.quorum_size()) == (1.0, 5.0, 3, 2)
    (g,) = c.groups
    assert (g.name, g.owner, [(d.ld, d.mount) for d in g.disks]) == (
        "DBGROUP",
        "business01",
        [("bv001", "G:")],
    )


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (
            lab(ld="lv001"),
            "groups[DBGROUP].disks[0].ld",
            "lv001 is an LV: a cluster shared disk must be a BV",
        ),
        (lab(ld="sv001_01"), "groups[DBGROUP].disks[0].ld", "sv001_01 is an SV"),
        (lab(ld="BACKUP_CV"), "groups[DBGROUP].disks[0].ld", "BACKUP_CV is a CV"),
        (lab('witness = "bv001"'), "clusters[DBCLUSTER].witness", "must not be on a BV"),
        (lab('quorum = "node_majority"'), "clusters[DBCLUSTER].quorum", "loses quorum when one node is down"),
        (lab('quorum = "vote"'), "clusters[DBCLUSTER].quorum", "is not node_majority or witness"),
        (lab("heartbeat_timeout = 0"), "clusters[DBCLUSTER].heartbeat_timeout", "expected seconds"),
        (lab("heartbeat_timeout = 2\nheartbeat_interval = 3"), "heartbeat_interval", "shorter than"),
        (lab().replace('owner = "business01"', 'owner = "backup01"'), "groups[DBGROUP].owner", "not a node"),
        (lab().replace('"business02"]', '"nohost"]'), "clusters[DBCLUSTER].nodes", "no host named 'nohost'"),
        (lab().replace('"business02"]', '"backup01"]'), "clusters[DBCLUSTER].nodes", "host business02 says"),
        (lab().replace('mount = "G:"', 'mount = "C:"'), "disks[0].mount", "is not a drive letter"),
    ],
)
def test_cluster_rules(text: str, where: str, problem: str) -> None:
    with pytest.raises(LabFileError) as info:
        LabSpec.parse(text, "lab.toml")
    assert where in info.value.where and problem in info.value.problem, str(info.value)


def test_a_node_that_does_not_reach_the_disk_is_refused() -> None:
    text = lab().replace('nodes = ["business01", "business02"]', 'nodes = ["business01", "test01"]')
    text = text.replace('cluster = "DBCLUSTER"\ncluster_role = "standby"', "")
    with pytest.raises(LabFileError, match="node test01 does not reach bv001"):
        LabSpec.parse(text, "lab.toml")


def test_lab_check_prints_the_cluster_and_refuses_an_lv_in_one_line(tmp_path: Path) -> None:
    ok = snaplab("lab", "check", str(CLUSTER_LAB), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (
        "cluster DBCLUSTER: nodes business01, business02; quorum witness manager (2 of 3 votes)" in ok.stdout
    )
    assert "group DBGROUP on business01: bv001 G:" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(lab(ld="lv001"))
    out = snaplab("lab", "check", str(bad), cwd=tmp_path)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "clusters[DBCLUSTER].groups[DBGROUP].disks[0].ld: lv001 is an LV" in out.stderr


def test_the_disks_a_signature_file_does_not_carry_are_the_unsigned_ones(tmp_path: Path) -> None:
    """3.10 (10): a takeover imports the owner's export; a disk it does not list (or no export at
    all) is one whose signature the new owner reports lost."""
    from snaplab.agent.cluster.service import lost_signatures_file, note_lost_signatures, unsigned_disks

    export = tmp_path / "DBGROUP.signatures.txt"
    assert unsigned_disks(str(export), ["bv001", "bv002"]) == ["bv001", "bv002"]  # never exported
    export.write_text(
        "# iSMrc_signature export of business01 2026/12/02 06:00:00\n"
        "# disk array name  LDN  LD name  format  signature\n"
        "Small_Array 0030h bv001 WN 1A2B3C4D\n"
    )
    assert unsigned_disks(str(export), ["bv001", "bv002"]) == ["bv002"]
    assert unsigned_disks(str(export), ["bv001"]) == []
    note_lost_signatures(tmp_path, "DBGROUP", ["bv002"])
    assert lost_signatures_file(tmp_path, "DBGROUP").read_text().split() == ["bv002"]
    note_lost_signatures(tmp_path, "DBGROUP", [])  # a takeover with every signature clears the note
    assert not lost_signatures_file(tmp_path, "DBGROUP").exists()
