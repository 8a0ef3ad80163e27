"""The routing view (issue 12, array/routing_view.py; manager/arrays.py ``ArrayLink.view``): the array
answers the manager's routing Describe with exactly what routing needs, and with "unchanged" in O(1)
while nothing it shows changed; every change of it gives a new version, snapshot work and host I/O do
not; and the manager's routing follows a change made at the array directly, within its 1 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.manager.serde import array_view

from snaplab.common.rpc import SnapLabClientError
from snaplab.san.array_client import ArrayClient
from snaplab.san.blocks import BLOCK
from snaplab.v1 import array_pb2 as pb

pytestmark = pytest.mark.timeout(90)

MiB = 1 << 20
WWN = "10:00:00:00:c9:00:00:01"
WWN2 = "10:00:00:00:c9:00:00:02"


@pytest.fixture
def array(tmp_path: Path) -> Iterator[ArrayProcess]:
    certs = make_lab_certs(
        tmp_path / "certs", [("array", "array"), ("manager", "manager"), ("business01", "host")]
    )
    with ArrayProcess(tmp_path / "state", certs=certs, name="View_Array") as proc:
        yield proc


def _routing(m: ArrayClient, known: str = "") -> pb.ArrayState:
    return m._call("Describe", pb.DescribeRequest(routing=True, known_version=known))


def _setup(m: ArrayClient) -> list[str]:
    m.set_licence("DynamicSnapVolume", 1 << 40)
    m.set_licence("AccessControl")
    m.register_host("business01", [WWN])
    m.bind_pool(1, "Pool1", "dynamic", 256 * MiB)
    m.build_sra(1, 64 * MiB, sdv_name="sdv1")
    m.bind_ld("bv1", 4 * MiB, 1, "WN")
    svs = [ld.name for ld in m.add_generations("bv1", 1, 3)]
    m.bind_lv("bv1", "lv1")
    m.assign_access("bv1", wwn=WWN)
    m.assign_access("lv1", wwn=WWN)
    return svs


def test_the_view_is_what_routing_reads_of_a_full_describe_and_moves_only_with_it(array: ArrayProcess) -> None:
    with array.client("manager") as m, array.client("business01") as host:
        svs = _setup(m)
        m.configure(group_define=pb.GroupDefine(name="G", bvs=["bv1"]))
        view = _routing(m)
        assert view.routing_version and not view.unchanged and view.name == "View_Array"
        assert array_view(view) == array_view(m.describe())  # routing decides the same on either
        assert len(view.lds) == len(m.describe().lds)  # SVs too: a CV's operation may name them

        same = _routing(m, view.routing_version)
        assert same.unchanged and same.routing_version == view.routing_version and not same.lds

        # what routing does not read: snapshots, host I/O, links, guards
        host.write("bv1", 0, b"\1" * BLOCK)
        m.create("bv1", svs[0])
        host.write("bv1", 0, b"\2" * BLOCK)
        m.guard("bv1", svs[0], on=True)
        m.guard("bv1", svs[0], on=False)
        m.link("lv1", svs[0])
        m.unlink("lv1")
        m.delete("bv1", svs[0])
        assert _routing(m, view.routing_version).unchanged

        # each change of what it shows gives a new version and the changed view
        changes = [
            lambda: m.bind_ld("iv1", 4 * MiB, 1, "WN"),
            lambda: m.configure(rename_ld=pb.RenameLd(ld="iv1", name="iv2")),
            lambda: m.assign_access("iv2", wwn=WWN),
            lambda: m.unassign_access("iv2", wwn=WWN),
            lambda: m.register_host("business02", [WWN2]),
            lambda: m.inject_fault("path", "business01"),
            lambda: m.clear_fault("path", "business01"),
            lambda: m.configure(group_remove=pb.GroupRemove(name="G")),
            lambda: m.unbind_ld("iv2"),
        ]
        seen = {view.routing_version}
        for change in changes:
            change()
            now = _routing(m, view.routing_version)
            assert not now.unchanged and now.routing_version not in seen, change
            assert array_view(now) == array_view(m.describe())
            seen.add(now.routing_version)
            view = now


def test_a_refused_change_and_a_restart(array: ArrayProcess) -> None:
    with array.client("manager") as m:
        _setup(m)
        version = _routing(m).routing_version
        with pytest.raises(SnapLabClientError):
            m.bind_ld("bv1", 4 * MiB, 1, "WN")  # exists: refused, nothing changed
        after = _routing(m, version)
        assert after.unchanged or array_view(after) == array_view(m.describe())
        version = after.routing_version
    array.stop()
    array.start()
    with array.client("manager") as m:
        again = _routing(m, version)
        assert not again.unchanged and again.routing_version != version  # a new engine: a new nonce
        assert array_view(again) == array_view(m.describe())


def test_a_host_gets_its_own_describe_not_the_routing_view(array: ArrayProcess) -> None:
    with array.client("manager") as m:
        _setup(m)
        m.bind_ld("other", 4 * MiB, 1, "WN")  # not the host's
    with array.client("business01") as host:
        state = host._call("Describe", pb.DescribeRequest(routing=True))
        assert not state.routing_version
        assert "other" not in {ld.name for ld in state.lds}
