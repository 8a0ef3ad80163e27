"""A lab: start the array, manager and agent daemons from a lab file, configure them, stop them.

    lab = Lab("~/.snaplab/lab")
    lab.up(LabSpec.load("deploy/default_lab.toml"))
    lab.status()
    lab.down()

Daemons run detached (their own session, output in ``<lab>/run/<process>.log``) so they outlive
the ``snaplab lab up`` that started them; ``<lab>/runtime.json`` says what runs where and is how
``status``/``down`` (and the command clients) find them again.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import lifecycle, netns, processes
from .cluster import reserve_groups
from .configure import config_ops, configure, pin_volumes
from .daemons import start_agents, start_arrays, start_manager
from .errors import LabError
from .failover import write_cluster_files
from .folder import LabFolder, Report, default_lab_dir, default_lab_file
from .processes import Spawned
from .setup_commands import run_command, run_setup
from .spec import LabSpec
from .status import ProcessStatus, agent_status, lab_status

if TYPE_CHECKING:
    from snaplab.agent.fs.kept import Unflushed

# The names callers have always imported from here; each lives in the module of its concern.
__all__ = [
    "Lab",
    "LabError",
    "LabSpec",
    "ProcessStatus",
    "agent_status",
    "config_ops",
    "default_lab_dir",
    "default_lab_file",
    "run_command",
]


class Lab(LabFolder):
    """One lab folder (layout in docs/architecture.md). Methods raise ``LabError`` with one-line messages."""

    # -- which processes are ours ----------------------------------------------------------------
    def running(self) -> list[dict[str, Any]]:
        """The processes of runtime.json that are alive and still ours."""
        rt = self.read_runtime() or {}
        return [p for p in rt.get("processes", []) if processes.is_ours(self, p)]

    def strays(self) -> list[int]:
        """Daemons of this lab that runtime.json does not list (e.g. left by a killed ``lab up``)."""
        return processes.strays(self)

    # -- up --------------------------------------------------------------------------------------
    def up(
        self,
        spec: LabSpec | None = None,
        *,
        fresh: bool = False,
        setup: bool = True,
        keep_on_failure: bool = False,
        report: Report = lambda _line: None,
        network: str | None = None,
    ) -> dict[str, Any]:
        """Start the lab. A new folder is made from ``spec`` (default: the guide's lab); a folder that
        already holds a lab is restarted from its state (``spec`` omitted or the same file), or wiped
        and made again with ``fresh``. Returns runtime.json's content.

        On any failure every process started here is stopped again (``keep_on_failure`` keeps them
        for inspection) and ``LabError`` says what failed.

        ``network="netns"`` (or the lab file's ``[lab] network``) runs every daemon in a network
        namespace of its own (deploy/netns.py); this process then enters the manager's namespace
        for its own calls to the daemons, so call it from a process of its own (``snaplab lab up``).
        """
        if network == "netns" or (spec is not None and spec.network == "netns"):
            self._check_netns()
        with self.locked("up"):
            alive = self.running()
            if alive:
                netns.enter_lab(self)  # a netns lab's daemons are reached from the manager's namespace
                return self._revive(spec, fresh, report)
            strays = self.strays()
            if strays:
                raise LabError(
                    f"processes of a lab in {self.folder} are still running (pids {', '.join(map(str, strays))}); "
                    "stop them with: snaplab lab down"
                )
            restart, spec = self._plan(spec, fresh, report)
            if restart:
                spec = self.spec()
                report(f"restarting the lab in {self.folder} from its state")
            else:
                spec = spec or LabSpec.load(default_lab_file())
                report(f"making a new lab in {self.folder} from {spec.source}")
            self.check_paths(spec)
            net = self._network_plan(spec, network, restart)
            self.clean_run()
            started: list[Spawned] = []
            runtime = self.runtime_base(spec, "starting")
            try:
                if net is not None:
                    netns.create(self, net)  # netns.json first: a `lab down` after a crash finds it all
                    netns.enter(net.manager.ns)
                    runtime["network"] = {"mode": "netns", "prefix": net.prefix, "namespaces": net.namespaces}
                    report(f"network: {len(net.namespaces)} namespaces ({net.prefix}-*), LAN 198.18.0.0/16, "
                           f"SAN {len(net.bridges) - 1} zones in 198.19.0.0/16")
                if not restart:
                    sans = None if net is None else {
                        **{m.name: m.addresses for m in net.machines},
                        "admin": [net.manager.lan],
                    }
                    self.make(spec, report, sans)
                start_arrays(self, spec, started, runtime, report, net)
                start_manager(self, spec, started, runtime, report, net)
                if not restart:
                    configure(self, spec, runtime, report)
                    reserve_groups(self, spec, runtime, report)
                    pin_volumes(self, spec)
                    write_cluster_files(self, spec)
                start_agents(self, spec, started, runtime, report, net)
                if not restart and setup:
                    run_setup(self, spec, report)
                self.incomplete_marker.unlink(missing_ok=True)
                runtime["state"] = "up"
                self.write_runtime(runtime)
                return runtime
            except BaseException as exc:
                if keep_on_failure:
                    runtime["state"] = "failed"
                    self.write_runtime(runtime)
                else:
                    self._abort(started, fresh_folder=not restart)
                    if net is not None:
                        netns.remove(self)
                if isinstance(exc, LabError):
                    raise
                if isinstance(exc, KeyboardInterrupt):
                    raise LabError("interrupted; the processes started were stopped") from None
                raise

    @staticmethod
    def _check_netns() -> None:
        problem = netns.missing_right()
        if problem:
            raise LabError(f"--network netns: {problem}; nothing was started")

    def _network_plan(self, spec: LabSpec, network: str | None, restart: bool) -> netns.Plan | None:
        """The namespaces to make (None: the loopback lab). A restart keeps the network it was made with."""
        saved_mode = self.folder / "network"  # what `lab up --network` made the lab with
        if restart and network is None and saved_mode.exists():
            network = saved_mode.read_text().strip()
        mode = network or spec.network
        if mode != "netns":
            saved_mode.unlink(missing_ok=True)
            return None
        self._check_netns()
        saved_mode.write_text("netns\n")
        return netns.plan(self, spec)

    def _revive(self, spec: LabSpec | None, fresh: bool, report: Report) -> dict[str, Any]:
        """``up`` of a lab that runs: start again only the processes that died or were stopped
        (``snaplab host stop|kill``), each from its command line; the others keep running."""
        rt = self.read_runtime() or {}
        pids = ", ".join(str(p["pid"]) for p in self.running())
        if fresh or rt.get("state") != "up":
            raise LabError(
                f"the lab in {self.folder} is already running (pids {pids}); stop it with: snaplab lab down"
            )
        if spec is not None and spec.text != self.lab_file.read_text(encoding="utf-8"):
            raise LabError(
                f"the lab in {self.folder} runs from another lab file; stop it with 'snaplab lab down' first"
            )
        started = lifecycle.revive(self, rt, report)
        report(
            f"started again: {', '.join(started)}" if started else f"the lab in {self.folder} is already running"
        )
        return self.read_runtime() or rt

    def _plan(self, spec: LabSpec | None, fresh: bool, report: Report) -> tuple[bool, LabSpec | None]:
        """(True, None) to restart the lab of the folder; (False, spec) to make a new one from ``spec``
        (None: the default lab) in a folder that is then empty."""
        if self.incomplete_marker.exists():
            # What an interrupted `lab up` left (its processes are gone, checked above): made anew.
            if spec is None and self.lab_file.is_file():
                spec = LabSpec.load(self.lab_file)
            report(f"removing what an interrupted 'snaplab lab up' left in {self.folder}")
            self.wipe()
            return False, spec
        if fresh and self.folder.exists():
            if not self.is_lab() and not self.empty_enough() and not self.runtime_path.exists():
                raise LabError(
                    f"{self.folder} is not a lab folder; refusing to wipe it (choose another --lab)"
                )
            self.wipe()
            return False, spec
        if self.is_lab():
            if spec is None or spec.text == self.lab_file.read_text(encoding="utf-8"):
                return True, None
            raise LabError(
                f"{self.folder} already holds a lab made from another lab file; restart it with 'snaplab lab up' "
                "(no file), or wipe it and start this file with 'snaplab lab up FILE --fresh'"
            )
        if not self.empty_enough():
            raise LabError(
                f"{self.folder} is not empty and holds no lab; choose another --lab (or an empty folder)"
            )
        return False, spec

    def _abort(self, started: list[Spawned], *, fresh_folder: bool) -> None:
        """Undo a failed start: stop what we started (and anything else of the lab), and drop the
        state of a lab made in this run so the next ``up`` starts clean. Logs stay in run/."""
        records = [processes.record(s) for s in started]
        processes.stop(self, records)
        stray_records = [{"kind": "stray", "name": "?", "pid": pid} for pid in self.strays()]
        processes.stop(self, stray_records, verify=False)
        self.runtime_path.unlink(missing_ok=True)
        for s in started:
            if s.kind == "agent":
                self.socket(s.name).unlink(missing_ok=True)
        if fresh_folder:
            for name in ("arrays", "manager", "hosts", "pki"):
                shutil.rmtree(self.folder / name, ignore_errors=True)
            self.lab_file.unlink(missing_ok=True)
            self.incomplete_marker.unlink(missing_ok=True)

    # -- down ------------------------------------------------------------------------------------
    def down(self, report: Report = lambda _line: None) -> int:
        """Stop every process of the lab (agents, then the manager, then arrays); returns how many ran.

        Only processes that are still ours are signalled: the pid's start time and command line (which
        names this folder) must match what ``up`` recorded. Strays are found by command line. Agents
        flush their file-system caches as they stop (and get AGENT_STOP_TIMEOUT for it); what one
        could not flush it keeps for its next start: :meth:`unflushed` says what.
        """
        with self.locked("down"):
            rt = self.read_runtime() or {}
            records = [p for p in rt.get("processes", []) if processes.is_ours(self, p)]
            order = {"agent": 0, "manager": 1, "array": 2}
            count = 0
            for tier in (0, 1, 2):
                group = [p for p in records if order.get(p.get("kind", ""), 0) == tier]
                wait = processes.AGENT_STOP_TIMEOUT if tier == 0 else processes.STOP_TIMEOUT
                count += processes.stop(self, group, report=report, timeout=wait)
            strays = self.strays()
            stray_records = [{"kind": "process", "name": "?", "pid": pid} for pid in strays]
            count += processes.stop(self, stray_records, verify=False, report=report)
            for h in rt.get("hosts", {}).values():
                with contextlib.suppress(OSError, TypeError):
                    Path(h.get("socket", "")).unlink(missing_ok=True)
            if self.run.is_dir():
                for p in self.run.iterdir():
                    if p.name.endswith((".sock", ".ready.json")):
                        p.unlink(missing_ok=True)
            self.runtime_path.unlink(missing_ok=True)
            removed = netns.remove(self) if netns.ip_command() else []
            if removed:
                report(f"removed the lab's network: {len(removed)} namespaces with their bridges and veths")
            return count

    def unflushed(self) -> list[Unflushed]:
        """What the hosts keep that they could not flush when they stopped (agent/fs/kept.py): which
        host, volume (mount points, array, LD) and entries. Read from the hosts' folders."""
        from snaplab.agent.fs import kept  # imported here: lab commands need no agent code

        hosts = self.folder / "hosts"
        if not hosts.is_dir():
            return []
        return [u for h in sorted(hosts.iterdir()) if h.is_dir() for u in kept.report(h, h.name)]

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> list[ProcessStatus]:
        """Each process of runtime.json: alive (and ours) and healthy (gRPC health of arrays and the
        manager, Agent.Status with enrolment for agents)."""
        return lab_status(self)
