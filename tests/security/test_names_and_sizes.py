"""Issue 8 item 3: every string a request carries has a limit and a character rule, checked in one place
(snaplab/common/validation.py) for every service; the event log keeps a bounded, escaped form and
``iSMview -event`` pages.

The attack of the issue: 7 routes with a 10 MB ``via`` grew manager.db by 148 MB and broke
``iSMview -event`` for good (its reply outgrew gRPC's message limit). Now such a request is refused
before any servicer sees it (iSM19005, INVALID_ARGUMENT): no event, no array call, one log line.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import grpc
import pytest
from snaplab.agent.cli import exec_command
from snaplab.manager.client import ManagerClient
from snaplab.manager.console import run_console
from snaplab.manager.console import view as console_view

from snaplab.common.rpc import SnapLabClientError
from snaplab.v1 import array_pb2 as apb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools: see its docstring
from labtools import RefLab

pytestmark = pytest.mark.timeout(240)

HUGE = "x" * (10 * 1024 * 1024)
INVALID = (grpc.StatusCode.INVALID_ARGUMENT, "iSM19005")


def db_bytes(lab: RefLab) -> int:
    return sum(p.stat().st_size for p in (lab.folder / "manager").glob("manager.db*"))


def refused_invalid(call, *args, **kwargs) -> SnapLabClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(SnapLabClientError) as info:
        call(*args, **kwargs)
    assert (info.value.code, info.value.msg_id) == INVALID, info.value
    assert len(info.value.details) < 300  # the refusal quotes a bounded form, never the value
    return info.value


def test_ten_megabyte_strings_are_refused_before_anything_is_done(ref_lab: RefLab) -> None:
    lab = ref_lab
    size, seq = db_bytes(lab), lab.last_seq()
    array_log = lab.log(f"array-{lab.ARRAY}.log")
    log_lines = lab.log("manager.log").read_text().count("\n")
    array_lines = array_log.read_text().count("\n")
    q = apb.QueryRequest(bv="bv001")
    with lab.manager("business01") as biz:
        for _ in range(7):  # the 7 routes
            e = refused_invalid(biz.route, HUGE, query=q)
            assert e.text == f"Specified name is invalid. (via: {len(HUGE)} characters, at most 32)"
        refused_invalid(biz.route, "bv001", query=apb.QueryRequest(bv=HUGE))
        refused_invalid(biz.route, "bv001", array=HUGE, query=q)
        refused_invalid(biz.enrol, "business", wwns=[HUGE])
    with lab.manager("admin") as admin:
        refused_invalid(admin.configure, unbind_ld=apb.UnbindLd(ld=HUGE))
        refused_invalid(admin.monitor, HUGE)
        refused_invalid(admin.inject_fault, "path", HUGE)
    with lab.array("business01") as a:
        refused_invalid(a.read, HUGE, 0, 512)
        refused_invalid(a.write, HUGE, 0, b"x")
    # Nothing was logged as an event, manager.db did not grow, manager.log has one short line each.
    assert lab.events_after(seq) == []
    assert db_bytes(lab) - size < 256 * 1024
    new = lab.log("manager.log").read_text().splitlines()[log_lines:]
    refusals = [line for line in new if "iSM19005" in line]
    assert len(refusals) == 13 and all(len(line) < 400 for line in new)
    new = array_log.read_text().splitlines()[array_lines:]
    assert len([line for line in new if "iSM19005" in line]) == 2 and all(len(line) < 400 for line in new)


def test_names_that_break_the_character_rules_are_refused_everywhere(ref_lab: RefLab) -> None:
    lab = ref_lab
    with lab.manager("business01") as biz:
        for via, why in (
            ("bv001\x00", "character \\x00 is not allowed"),
            ("bv 001", "a blank is not allowed"),
        ):
            e = refused_invalid(biz.route, via, query=apb.QueryRequest(bv="bv001"))
            assert e.text == f"Specified name is invalid. (via: {why})"
        e = refused_invalid(biz.enrol, "business", wwns=["10:00:00:00:c9:2a:01"])
        assert "is not a WWN" in e.text
    with lab.array("admin") as a:
        refused_invalid(a.register_host, "no/such host", ports=["DB_PRIMARY"])
    # The agent's socket applies the same table: an argument of 100 000 characters (a command line
    # can carry it) is refused by the agent with its own message.
    _out, err, code = exec_command(
        lab.folder, "business01", ["iSMsc_query", "-bv", "b" * 100_000, "-bvflg", "ld"]
    )
    assert code == 1 and err.startswith(
        "iSMsc_query:Error: iSM19005: Specified name is invalid. (argv: 100000 characters"
    )
    ran = lab.cmd("business01", "iSMsc_query -bv " + "b" * 100_000 + " -bvflg ld")
    assert ran.code == 1 and "iSM19005" in ran.stderr and "Traceback" not in ran.stderr


def test_the_event_log_is_bounded_escaped_and_iSMview_pages(
    ref_lab: RefLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = ref_lab
    # A log written before the limits existed: a 20 MB event with control characters, straight into
    # manager.db beside the running manager.
    with sqlite3.connect(lab.folder / "manager" / "manager.db", timeout=30) as db:
        db.execute(
            "INSERT INTO events(time, source, classification, operation, msg_id, text) VALUES (?,?,?,?,?,?)",
            (
                "2026/01/01 00:00:00",
                "old\x1bsource",
                "ERROR",
                "iSMsc_link",
                "iSM31042",
                "\x00\n" + "y" * (20 << 20),
            ),
        )
    # More than two pages of refusals, each logged (business01 reaches no LD called nosuch).
    with lab.manager("business01") as biz:
        for _ in range(2 * console_view.EVENT_PAGE + 100):
            with pytest.raises(SnapLabClientError):
                biz.route("nosuch", query=apb.QueryRequest(bv="nosuch"))
    total = lab.last_seq()
    asked: list[int] = []
    events = ManagerClient.events

    def counting(self: ManagerClient, after_seq: int = 0, limit: int = 0) -> list:
        asked.append(limit)
        return events(self, after_seq, limit)

    monkeypatch.setattr(ManagerClient, "events", counting)
    out, err, code = run_console(["iSMview", "-event"], lab.folder)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == total and all(0 < n <= console_view.EVENT_PAGE for n in asked) and len(asked) >= 3
    old = next(line for line in lines if "old\\x1bsource" in line)
    assert "old\\x1bsource" in old and "\\x00\\n" in old and f"...({(20 << 20) + 2} bytes)" in old
    assert max(len(line) for line in lines) < 1300
    asked.clear()
    out, _, code = run_console(["iSMview", "-event", "-after", "5", "-limit", "700"], lab.folder)
    assert code == 0 and len(out.splitlines()) == 700 and asked == [console_view.EVENT_PAGE, 200]
    with lab.manager("admin") as admin:
        assert [e.seq for e in admin.events(after_seq=5, limit=3)] == [6, 7, 8]
