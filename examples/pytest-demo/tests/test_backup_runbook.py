"""P3 (guide 2.2.1) against the reference lab: each test starts from the lab's starting checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from snaplab import Lab

sys.path.insert(0, str(Path(__file__).parent))  # the runbook beside the tests
from runbook import BUSINESS, BUSY, backup_cycle, create_with_retry

ARRAY = "Tokyo_Customer_DataBase"


def assert_start(lab: Lab) -> None:
    """What every test starts from: the reference lab as its setup left it (one generation, G:
    mounted, lv001 unlinked, no guard), whatever the test before did."""
    q = lab.array(ARRAY).query("bv001")
    assert [g.sv for g in q.live] == ["sv001_01"]
    assert not any(g.guard for g in q.generations) and q.live[0].link == "unlink"
    assert not (lab.host("business01").path("G:") / "orders.db").exists()


def test_backup_makes_a_new_generation(lab: Lab) -> None:
    assert_start(lab)
    seq = lab.last_seq()
    sv, tape = backup_cycle(lab)
    assert sv == "sv001_02"  # the next free SV of the set
    assert [g.sv for g in lab.array().query("bv001").live] == ["sv001_02", "sv001_01"]
    assert tape == {}  # G: of the reference lab holds no files (nor what another test wrote)
    ops = [(e.source, e.operation, e.msg_id) for e in lab.events(after=seq)]
    assert ("backup01", "iSMsc_link", "iSM20020") in ops and ("business01", "iSMsc_create", "iSM19010") in ops


def test_backup_holds_what_the_business_wrote(lab: Lab) -> None:
    assert_start(lab)
    business = lab.host("business01")
    business.write_file("G:\\orders.db", b"order 1\norder 2\n")  # the business's work before it stops
    sv, tape = backup_cycle(lab)
    assert sv == "sv001_02"  # the same SV as the test before: the lab was rolled back
    assert tape["orders.db"] == b"order 1\norder 2\n"
    assert business.read_file("G:/orders.db") == b"order 1\norder 2\n"


def test_two_backups_in_a_row(lab: Lab) -> None:
    assert_start(lab)
    first, _ = backup_cycle(lab)
    second, _ = backup_cycle(lab)
    assert (first, second) == ("sv001_02", "sv001_03")
    assert [g.sv for g in lab.array().query("bv001").live] == ["sv001_03", "sv001_02", "sv001_01"]


def test_create_is_retried_when_the_volume_is_busy(lab: Lab) -> None:
    """A chaos rule makes the host's next iSMsc_create fail once with iSM31005; the retry gets through."""
    assert_start(lab)
    lab.chaos("host:business01", "iSMsc_create", error=BUSY, count=1)
    _, flush, umount, create, _, mount = BUSINESS
    lab.run("business01", flush).check()
    lab.run("business01", umount).check()
    tried = create_with_retry(lab, "business01", create)
    assert [t.msg_id for t in tried] == [BUSY, "iSM19010"] and tried[-1].ok
    assert "iSMsc_create:Error: iSM31005:" in tried[0].stderr
    assert [r.fired for r in lab.chaos_rules()] == [1]
    lab.run("business01", mount).check()
    assert [g.sv for g in lab.array().query("bv001").live] == ["sv001_02", "sv001_01"]
