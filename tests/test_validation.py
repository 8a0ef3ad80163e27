"""The request rules in one table (snaplab/common/validation.py), the enrolment rules (manager/enrolment.py)
and the bounded event log (manager/state.py), as plain data; the daemons are in tests/security/."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from snaplab.manager import enrolment
from snaplab.manager.state import EVENT_LIMITS, HostDefinition, ManagerState

from snaplab.common.errors import SnapLabError
from snaplab.common.validation import check_request, shown, unruled_fields
from snaplab.v1 import agent_pb2, array_pb2, manager_pb2

pytestmark = pytest.mark.timeout(60)


def refusal(message: object) -> str:
    with pytest.raises(SnapLabError) as info:
        check_request(message)
    assert info.value.msg_id in ("iSM19005", "iSM19001")
    return info.value.text


def test_every_string_of_every_request_has_a_rule() -> None:
    for module in (array_pb2, manager_pb2, agent_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert unruled_fields(method.input_type) == [], f"{service.name}.{method.name}"


def test_what_the_reference_lab_and_the_guide_use_passes() -> None:
    sv = array_pb2.SvRef(sv="bv001.-1", svflg="ld.relgen")
    check_request(
        manager_pb2.ControlRequest(
            array="Tokyo_Customer_DataBase",
            via="BACKUP_CV",
            link=array_pb2.LinkRequest(lv="lv001", sv=sv, mode="ro"),
        )
    )
    check_request(
        manager_pb2.EnrolRequest(
            role="business",
            wwns=["10:00:00:00:c9:2a:01:01"],
            ports=["DB_PRIMARY"],
            cluster="DBCLUSTER",
            cluster_role="active",
        )
    )
    check_request(
        array_pb2.ConfigRequest(
            bind_ld=array_pb2.BindLd(name="DB_ARCHIVE_BV", pool="0", format="WN", capacity=512)
        )
    )
    # the lab's report of a planned move's lost signatures (its detail is words)
    check_request(manager_pb2.LabEventRequest(host="business02", kind="signatures_lost", detail="bv001 of DBGROUP"))
    check_request(
        agent_pb2.CommandRequest(
            argv=[
                "iSMrc_mount",
                "-mvol",
                "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\",
                "-drv",
                "H:",
            ],
            stdin="select disk 6\n",
        )
    )
    check_request(
        manager_pb2.ControlRequest(via="日本語", query=array_pb2.QueryRequest(bv="日本語"))
    )  # printable


def test_limits_and_character_rules() -> None:
    assert (
        refusal(manager_pb2.ControlRequest(via="v" * 33))
        == "Specified name is invalid. (via: 33 characters, at most 32)"
    )
    assert (
        refusal(manager_pb2.ControlRequest(via="a\u200bb"))
        == "Specified name is invalid. (via: character \\u200b is not allowed)"
    )
    assert "link.sv.sv: 41 characters" in refusal(
        manager_pb2.ControlRequest(link=array_pb2.LinkRequest(sv=array_pb2.SvRef(sv="s" * 41)))
    )
    assert "register_host.name: 'a b' is not a host name" in refusal(
        array_pb2.ConfigRequest(register_host=array_pb2.RegisterHost(name="a b"))
    )
    assert "wwns: 17 values, at most 16" in refusal(
        manager_pb2.EnrolRequest(wwns=["10:00:00:00:c9:2a:01:01"] * 17)
    )
    assert "argv: character \\x00" in refusal(agent_pb2.CommandRequest(argv=["iSMvollist", "-a\x00"]))
    assert "stdin: 1048577 characters" in refusal(agent_pb2.CommandRequest(stdin="x" * ((1 << 20) + 1)))
    assert "wait.timeout_seconds must be a non-negative number" in refusal(
        manager_pb2.ControlRequest(wait=array_pb2.WaitRequest(timeout_seconds=float("nan")))
    )


def test_shown_is_bounded_and_escaped() -> None:
    assert shown("bv001") == "bv001"
    assert shown("a\x00b\n") == "a\\x00b\\n"
    assert shown("x" * 100, 10) == "xxxxxxxxxx...(100 characters)"
    assert shown("日本語") == "日本語"


def _def(array: str, name: str, wwns: tuple[str, ...] = (), ports: tuple[str, ...] = ()) -> HostDefinition:
    return HostDefinition(array, name, wwns, ports)


def test_enrolment_takes_the_definition_never_the_claim() -> None:
    defs = [_def("A", "biz", ("10:00:00:00:c9:2a:01:01",), ("P0", "P1")), _def("B", "biz", (), ("Q0",))]
    others = [("bak", frozenset({"10:00:00:00:c9:2a:03:01"}))]
    ok = enrolment.Claim.of("biz", ["10:00:00:00:C9:2A:01:01"], ["P0", "P1", "Q0"])
    enrolment.check(ok, defs, others)
    enrolment.check(enrolment.Claim.of("biz", [], []), defs, others)  # no claim: the definition as it is
    for claim, msg_id, text in (
        (
            enrolment.Claim.of("biz", ["10:00:00:00:c9:2a:03:01"], []),
            "iSM19004",
            "WWN 10:00:00:00:c9:2a:03:01 of bak",
        ),
        (
            enrolment.Claim.of("biz", [], ["P0", "P1", "Q0", "BACKUP"]),
            "iSM31069",
            "port BACKUP is not cabled to it",
        ),
        (enrolment.Claim.of("biz", [], ["P0"]), "iSM31069", "port P1 is missing"),
        (
            enrolment.Claim.of("biz", ["10:00:00:00:c9:2a:05:01"], []),
            "iSM31069",
            "WWN 10:00:00:00:c9:2a:05:01 is not its HBA",
        ),
    ):
        with pytest.raises(SnapLabError) as info:
            enrolment.check(claim, defs, others)
        assert info.value.msg_id == msg_id and text in info.value.text
    with pytest.raises(SnapLabError) as info:
        enrolment.check(enrolment.Claim.of("ghost", [], []), [], others)
    assert info.value.msg_id == "iSM31068"
    rec = enrolment.record("biz", defs)
    assert (rec.wwns, rec.ports) == (("10:00:00:00:c9:2a:01:01",), ("P0", "P1", "Q0"))


def test_state_keeps_definitions_and_stores_events_bounded(tmp_path: Path) -> None:
    st = ManagerState(tmp_path)
    st.define_host("A", "biz", wwns=["10:00:00:00:C9:2A:01:01"], ports=["P0"])
    st.define_host("A", "biz", wwns=["10:00:00:00:c9:2a:01:02"], ports=["P1"])  # replaces
    ev = st.log_event("biz\x1b", "ERROR", "iSMsc_link", "iSM31042", "x" * 100_000 + "\x00")
    assert (
        ev.source == "biz\\x1b"
        and len(ev.text) <= EVENT_LIMITS["text"] + 32
        and ev.text.endswith("(100001 characters)")
    )
    st.close()
    with sqlite3.connect(tmp_path / "manager.db") as db:  # a log written before the limits: NULs, 5 MB
        db.execute(
            "INSERT INTO events(time, source, classification, operation, msg_id, text) VALUES ('t','s','INFO','op','id',?)",
            ["\x00" + "y" * (5 << 20)],
        )
    st = ManagerState(tmp_path)
    try:
        assert st.definitions("biz") == [HostDefinition("A", "biz", ("10:00:00:00:c9:2a:01:02",), ("P1",))]
        first, old = st.events()
        assert first.text == ev.text
        assert (
            old.text.startswith("\\x00yyy")
            and old.text.endswith(f"({(5 << 20) + 1} bytes)")
            and len(old.text) < 1200
        )
    finally:
        st.close()
