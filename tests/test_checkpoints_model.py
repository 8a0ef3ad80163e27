"""Model-based test of lab rollback through real processes (issue 10 part 3, hypothesis).

One reference lab (`snaplab lab up`) and its checkpoint ``base``. Each example starts by rolling
back to ``base``, then interleaves, as the guide's users do them: files written, overwritten and
removed in business01's G: and backup01's H:, flushes, unmounts and mounts of G:, snapshots
created and deleted, lv001 linked and mounted on backup01 and unmounted and unlinked again, a
second checkpoint ``mid`` taken, and rollbacks to ``base`` or ``mid``. The model is the picture of
the lab each checkpoint was taken at (tests/checkpoint_tools.py: every host's files by sha256,
mount table, lists and settings; every array's Query and Describe, the bytes of bv001 and its
live generations, and ``iSMsc_query`` as printed): after every rollback the lab must show exactly
that picture. Commands may be refused (a create while G: is mounted, an unlink of nothing): a
refusal is part of the sequence, and the rollback after it must still restore the picture.

Bounded for CI: a few examples of a few steps (about a minute on a loaded two-core machine).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from checkpoint_tools import differences, picture
from labtools import LabRun, RefLab
from snaplab.deploy import checkpoints

pytestmark = pytest.mark.timeout(400)

VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
EXAMPLES = int(os.environ.get("SNAPLAB_CKPT_EXAMPLES", "10"))
STEPS = int(os.environ.get("SNAPLAB_CKPT_STEPS", "8"))
NAMES = ("a.txt", "b.bin", "sub/c.dat")
BYTES = 4 * 1024 * 1024  # of bv001 and its generations: where G:'s file system lives


def snap(lab: RefLab) -> dict:
    return picture(lab, bytes_of=("bv001",), size=BYTES)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefLab]:
    run = LabRun(tmp_path_factory.mktemp("ckpt-model"))
    try:
        up = run("lab", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield RefLab(run)
    finally:
        run.teardown()


class LabMachine(RuleBasedStateMachine):
    """Drives the lab of ``LabMachine.lab``; ``LabMachine.points`` holds each checkpoint's picture."""

    lab: RefLab
    points: ClassVar[dict[str, tuple[dict, dict]]] = {}

    @initialize()
    def start(self) -> None:
        # what the example before left is rolled back, and checked against the model
        checkpoints.rollback(self.lab.folder, "base")
        self.points = {"base": LabMachine.points["base"]}
        got = snap(self.lab)
        assert got == self.points["base"][0], differences(self.points["base"][0], got)
        self.where = dict(self.points["base"][1])  # what the model says is mounted or linked

    def _run(self, host: str, line: str) -> int:
        code = self.lab.cmd(host, line).code
        self._observe()
        return code

    def _observe(self) -> None:
        """What is mounted and linked, as the lab says (not as exit codes suggest)."""
        from snaplab.deploy.status import agent_status

        def mounts(host: str) -> list[str]:
            status, _ = agent_status(self.lab.folder / "run" / f"agent-{host}.sock")
            return [m.split()[0] for m in status.mounts] if status else []

        self.where["G"] = "G:" in mounts("business01")
        self.where["H"] = "H:" in mounts("backup01")
        with self.lab.array("admin") as a:
            self.where["linked"] = any(lv.link == "link" for lv in a.query("bv001").lvs)

    def _drive(self, host: str, letter: str) -> Path:
        return self.lab.folder / "hosts" / host / "mnt" / letter

    @precondition(lambda self: self.where["G"])
    @rule(name=st.sampled_from(NAMES), size=st.integers(0, 300_000), seed=st.integers(0, 255))
    def write_g(self, name: str, size: int, seed: int) -> None:
        path = self._drive("business01", "G") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([seed]) * size)

    @precondition(lambda self: self.where["G"])
    @rule(name=st.sampled_from(NAMES))
    def remove_g(self, name: str) -> None:
        (self._drive("business01", "G") / name).unlink(missing_ok=True)

    @precondition(lambda self: self.where["H"])
    @rule(seed=st.integers(0, 255))
    def write_h(self, seed: int) -> None:
        (self._drive("backup01", "H") / "tape.txt").write_text(f"label {seed}\n")

    @rule()
    def flush_g(self) -> None:
        self._run("business01", "iSMrc_flush -drv G:")

    @rule()
    def umount_g(self) -> None:
        self._run("business01", "iSMrc_umount -drv G:")

    @rule()
    def mount_g(self) -> None:
        self._run("business01", "iSMrc_mount -drv G:")

    @rule()
    def create(self) -> None:
        self._run("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")

    @rule()
    def delete(self) -> None:
        self._run("business01", "iSMsc_delete -bv bv001 -bvflg ld -auto")

    @precondition(lambda self: not self.where["H"])
    @rule()
    def link_mount_h(self) -> None:
        if self._run("backup01", "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen") == 0:
            self._run("backup01", f"iSMrc_mount -mvol {VOL} -drv H:")

    @precondition(lambda self: self.where["linked"])
    @rule()
    def umount_unlink_h(self) -> None:
        if self.where["H"]:
            self._run("backup01", "iSMrc_umount -drv H:")
        self._run("backup01", "iSMsc_unlink -lv lv001 -lvflg ld")

    @precondition(lambda self: "mid" not in self.points)
    @rule()
    def take_mid(self) -> None:
        checkpoints.take(self.lab.folder, "mid")
        self.points["mid"] = (snap(self.lab), dict(self.where))

    @precondition(lambda self: "mid" in self.points)
    @rule()
    def rollback_mid(self) -> None:
        self.rollback("mid")

    @rule(to=st.sampled_from(("base", "mid")))
    def rollback(self, to: str) -> None:
        if to not in self.points:
            to = "base"
        checkpoints.rollback(self.lab.folder, to)
        want, where = self.points[to]
        got = snap(self.lab)
        assert got == want, differences(want, got)
        if to == "base":
            self.points.pop("mid", None)  # taken after base: dropped by the rollback
        self.where = dict(where)


def test_rollback_model(lab: RefLab) -> None:
    start = {"G": True, "H": False, "linked": False}  # the reference lab after its setup
    checkpoints.take(lab.folder, "base")
    LabMachine.lab = lab
    LabMachine.points = {"base": (snap(lab), start)}
    run_state_machine_as_test(
        LabMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,  # the same sequences in every run (CI); SNAPLAB_CKPT_EXAMPLES for more
            suppress_health_check=list(HealthCheck),
            database=None,
            # No shrinking: a real lab's replay may differ (a command slower under load), which
            # would turn the first failure into a Flaky report; the first failure is the one shown.
            phases=(Phase.explicit, Phase.generate),
        ),
    )
    # whatever the last example left, the lab still rolls back to base
    checkpoints.rollback(lab.folder, "base")
    got = snap(lab)
    assert got == LabMachine.points["base"][0], differences(LabMachine.points["base"][0], got)
