"""Persistent reservations of cluster shared disks at the array (issue 9 item 3): a real array daemon,
the cluster's two nodes and the admin as clients of their own certificates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from snaplab.array.process import ArrayProcess, make_lab_certs

from snaplab.common.rpc import SnapLabClientError
from snaplab.san.array_client import ArrayClient
from snaplab.san.blocks import BLOCK
from snaplab.v1 import array_pb2 as pb

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
C = grpc.StatusCode
WWN = {
    "business01": "10:00:00:00:c9:2a:01:01",
    "business02": "10:00:00:00:c9:2a:02:01",
    "backup01": "10:00:00:00:c9:2a:03:01",
}
PRINCIPALS = [("array", "array"), ("admin", "admin"), ("manager", "manager")] + [(h, "host") for h in WWN]


@dataclass
class Lab:
    proc: ArrayProcess
    admin: ArrayClient
    nodes: dict[str, ArrayClient]


def refused(code: grpc.StatusCode, msg_id: str, call: object, *args: object) -> SnapLabClientError:
    with pytest.raises(SnapLabClientError) as info:
        call(*args)  # type: ignore[operator]
    assert (info.value.code, info.value.msg_id) == (code, msg_id), info.value
    return info.value


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root: Path = tmp_path_factory.mktemp("reservations")
    certs = make_lab_certs(root / "certs", PRINCIPALS)
    with ArrayProcess(root / "state", certs=certs, name="Tokyo_Customer_DataBase") as proc:
        admin = proc.client("admin")
        admin.set_licence("DynamicSnapVolume", 1 << 40)
        admin.set_licence("AccessControl")
        admin.add_port(1, 0, "DB_PRIMARY")
        admin.add_port(0, 1, "BACKUP_PRIMARY")
        for host, wwn in WWN.items():
            admin.register_host(host, [wwn])
        admin.bind_pool(0, "Pool0000", "basic", 64 * MiB)
        admin.bind_pool(1, "Pool0001", "dynamic", 64 * MiB)
        admin.build_sra(1, 8 * MiB, sdv_name="SDV1")
        admin.bind_ld("bv001", 4 * MiB, 0, "WN")
        admin.add_generations("bv001", 1, 1)
        admin.bind_lv("bv001", "lv001")
        for node in ("business01", "business02"):
            admin.assign_access("bv001", wwn=WWN[node])
        admin.assign_access("lv001", wwn=WWN["backup01"])
        nodes = {h: proc.client(h) for h in WWN}
        try:
            yield Lab(proc, admin, nodes)
        finally:
            for c in (admin, *nodes.values()):
                c.close()


def reserved_by(client: ArrayClient, ld: str) -> str:
    return next(x.reserved_by for x in client.disks() if x.name == ld)


def test_only_the_owner_writes_others_read_and_get_a_disk_error(lab: Lab) -> None:
    b1, b2 = lab.nodes["business01"], lab.nodes["business02"]
    assert lab.admin.set_reservation("bv001", "business01") == pb.Reservation(ld="bv001", owner="business01")
    b1.write("bv001", 0, b"owner")
    err = refused(C.FAILED_PRECONDITION, "iSM31190", b2.write, "bv001", 0, b"intruder")
    assert "reserved by another server" in str(err) and "bv001" in str(err)
    assert b2.read("bv001", 0, 5) == b"owner"  # write exclusive: the standby still reads
    assert reserved_by(b1, "bv001") == reserved_by(b2, "bv001") == "business01"
    moved = lab.admin.set_reservation("bv001", "business02")
    assert (moved.owner, moved.previous) == ("business02", "business01")
    refused(C.FAILED_PRECONDITION, "iSM31190", b1.write, "bv001", 0, b"old owner")
    b2.write("bv001", 0, b"taken")
    assert lab.admin.read("bv001", 0, 5) == b"taken"
    released = lab.admin.set_reservation("bv001", "")
    assert (released.owner, released.previous) == ("", "business02")
    b1.write("bv001", 0, b"free!")
    assert reserved_by(b1, "bv001") == ""


def test_bad_reservations_are_refused_and_change_nothing(lab: Lab) -> None:
    lab.admin.set_reservation("bv001", "business01")
    refused(C.FAILED_PRECONDITION, "iSM31191", lab.admin.set_reservation, "lv001", "backup01")  # 3.10 (11)
    refused(C.FAILED_PRECONDITION, "iSM31191", lab.admin.set_reservation, "bv001_SV01", "business01")
    refused(C.NOT_FOUND, "iSM31007", lab.admin.set_reservation, "bv001", "nobody")
    refused(C.FAILED_PRECONDITION, "iSM31192", lab.admin.set_reservation, "bv001", "backup01")  # no path
    refused(C.NOT_FOUND, "iSM19003", lab.admin.set_reservation, "no_such_ld", "business01")
    refused(C.INVALID_ARGUMENT, "iSM19005", lab.admin.set_reservation, "bv001", "bad name\x00")
    # a node may never take the disk itself: only the manager and an admin set reservations
    refused(C.PERMISSION_DENIED, "iSM31044", lab.nodes["business02"].set_reservation, "bv001", "business02")
    assert reserved_by(lab.nodes["business01"], "bv001") == "business01"
    lab.admin.set_reservation("bv001", "")


def test_split_brain_at_most_one_writer_nothing_acknowledged_lost(lab: Lab) -> None:
    """The old owner keeps writing while the reservation moves (it is cut off from its cluster, not
    from the SAN): each of its writes is accepted before the move or refused after it, and every
    acknowledged one is on the disk afterwards."""
    b1, b2 = lab.nodes["business01"], lab.nodes["business02"]
    lab.admin.set_reservation("bv001", "business01")
    acked: list[int] = []
    refusals: list[str] = []
    started = threading.Event()

    def old_owner() -> None:
        for i in range(1, 10_000):
            try:
                b1.write("bv001", (i % 60) * BLOCK, i.to_bytes(4, "big") * 4)
            except SnapLabClientError as exc:
                refusals.append(exc.msg_id or "")
                return
            acked.append(i)
            started.set()

    t = threading.Thread(target=old_owner)
    t.start()
    assert started.wait(20)
    lab.admin.set_reservation("bv001", "business02")  # the standby takes the group over
    t.join(30)
    assert not t.is_alive() and refusals == ["iSM31190"]
    last_acked = {}
    for i in acked:
        last_acked[i % 60] = i
    for block, i in last_acked.items():  # everything the array acknowledged is there
        assert lab.admin.read("bv001", block * BLOCK, 16) == i.to_bytes(4, "big") * 4
    refused(C.FAILED_PRECONDITION, "iSM31190", b1.write, "bv001", 0, b"late")
    b2.write("bv001", 61 * BLOCK, b"new owner")
    lab.admin.set_reservation("bv001", "")


def test_reservations_survive_a_restart_of_the_array(lab: Lab) -> None:
    lab.admin.set_reservation("bv001", "business02")
    assert lab.proc.stop() == 0
    lab.proc.restart()  # on another port: new clients
    with lab.proc.client("business01") as b1, lab.proc.client("admin") as admin:
        refused(C.FAILED_PRECONDITION, "iSM31190", b1.write, "bv001", 0, b"x")
        assert next(x.reserved_by for x in admin.describe().lds if x.name == "bv001") == "business02"
        admin.set_reservation("bv001", "")
        b1.write("bv001", 0, b"x")
