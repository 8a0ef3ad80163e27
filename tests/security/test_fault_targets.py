"""Issue 8 item 11 (faults): a fault naming a target the array does not have is refused, not stored.

Before, ``InjectFault`` stored e.g. ``path:no_such_host`` and the array reported a fault for good.
Now each kind's target must exist (the right iSM id and gRPC status), nothing is stored, the array
and the manager's monitor report no fault, and a fault that is not set cannot be cleared either.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness package: see labtools' docstring
from harness import security_lab as sl

pytestmark = pytest.mark.timeout(120)

UNKNOWN_TARGETS = [
    ("bv_failure", "no_such_ld", ("NOT_FOUND", "iSM19003")),
    ("bv_failure", "lv001", ("FAILED_PRECONDITION", "iSM19020")),  # exists, but is not a BV
    ("bv_failure", "0999h", ("NOT_FOUND", "iSM19003")),
    ("sra_full", "no_such_pool", ("NOT_FOUND", "iSM31001")),
    ("sra_failure", "77", ("NOT_FOUND", "iSM31001")),
    ("sra_full", "Pool0", ("FAILED_PRECONDITION", "iSM31014")),  # a pool without an SRA
    ("path", "no_such_host", ("NOT_FOUND", "iSM31007")),
    ("licence", "NoSuchProduct", ("INVALID_ARGUMENT", "iSM19001")),
    ("array_link", sl.ARRAY, ("INVALID_ARGUMENT", "iSM19001")),  # a link from the array to itself
    ("meteor", "bv001", ("INVALID_ARGUMENT", "iSM19001")),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sl.SecurityLab]:
    with sl.running(tmp_path_factory.mktemp("faults")) as lab:
        yield lab


@pytest.mark.parametrize(("kind", "target", "refusal"), UNKNOWN_TARGETS, ids=[f"{k}:{t}" for k, t, _ in UNKNOWN_TARGETS])
def test_fault_on_a_target_that_does_not_exist_is_refused(
    lab: sl.SecurityLab, kind: str, target: str, refusal: tuple[str, str]
) -> None:
    array_admin = lab.array_client("admin")
    manager_admin = lab.manager_client("admin")
    assert sl.outcome(lambda: array_admin.inject_fault(kind, target)) == ("refused", refusal)
    assert sl.outcome(lambda: manager_admin.inject_fault(kind, target)) == ("refused", refusal)
    assert list(array_admin.describe().faults) == []
    (monitored,) = manager_admin.monitor().arrays
    assert list(monitored.state.faults) == []
    last = manager_admin.events()[-1]
    assert (last.operation, last.classification, last.msg_id) == ("InjectFault", "ERROR", refusal[1])
    if kind != "meteor":
        assert sl.outcome(lambda: array_admin.clear_fault(kind, target))[0] == "refused"


def test_faults_on_real_targets_still_work(lab: sl.SecurityLab) -> None:
    admin = lab.array_client("admin")
    for kind, target in (("path", "test01"), ("sra_full", "Pool1"), ("bv_failure", "bv002"),
                         ("licence", "AccessControl"), ("array_link", "Osaka_Remote")):
        assert f"{kind}:{target}" in admin.inject_fault(kind, target).faults
        assert f"{kind}:{target}" not in admin.clear_fault(kind, target).faults
    assert list(admin.describe().faults) == []
    # a fault that is not set: its own message, not "volume does not exist"
    assert sl.outcome(lambda: admin.clear_fault("path", "test01")) == ("refused", ("NOT_FOUND", "iSM19080"))
    # pool given by number is the pool's name in the fault
    assert "sra_full:Pool1" in admin.inject_fault("sra_full", "1").faults
    admin.clear_fault("sra_full", "1")
