"""A lab folder: start the array, manager and agent daemons from a lab file, configure them, stop them.

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
import errno
import fcntl
import importlib.util
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from snaplab.common import pki
from snaplab.common.rpc import ClientTLS, SnapLabClientError, client_errors, make_channel, wait_healthy
from snaplab.v1 import agent_pb2, agent_pb2_grpc, array_pb2, manager_pb2, manager_pb2_grpc

from .spec import ArraySpec, LabError, LabSpec

__all__ = ["Lab", "LabError", "LabSpec", "ProcessStatus", "default_lab_dir", "default_lab_file"]

RUNTIME_VERSION = 1
READY_TIMEOUT = 30.0  # per daemon, from spawn to its ready file
ENROL_TIMEOUT = 30.0  # agent ready -> Agent.Status says enrolled
STOP_TIMEOUT = 10.0  # SIGTERM -> exit, before SIGKILL
LOCK_TIMEOUT = 120.0  # another up/down on the same folder
CONFIG_TIMEOUT = 30.0
SETUP_TIMEOUT = 300.0  # one setup command (FORMAT of a large volume can take a while)
PINNED_VOLUMES = "pinned_volumes.json"
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107

Report = Callable[[str], None]


def default_lab_dir() -> Path:
    """``SNAPLAB_LAB``, else ``~/.snaplab/lab``."""
    return Path(os.environ.get("SNAPLAB_LAB") or "~/.snaplab/lab").expanduser()


def default_lab_file() -> Path:
    """The guide's reference lab, shipped beside this module (source tree and installs alike)."""
    return Path(__file__).with_name("default_lab.toml")


@dataclass
class ProcessStatus:
    kind: str  # array, manager, agent
    name: str
    pid: int
    endpoint: str
    log: str
    alive: bool
    healthy: bool
    detail: str = ""

    @property
    def state(self) -> str:
        if not self.alive:
            return "dead"
        return "healthy" if self.healthy else f"unhealthy: {self.detail}" if self.detail else "unhealthy"


@dataclass
class _Spawned:
    kind: str
    name: str
    argv: list[str]
    log: Path
    ready_file: Path
    popen: subprocess.Popen[bytes]
    log_start: int
    start_time: int
    ready: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.name if self.kind == "manager" else f"{self.kind} {self.name}"


class Lab:
    """One lab folder (layout in docs/architecture.md). Methods raise ``LabError`` with one-line messages."""

    def __init__(self, folder: Path | str) -> None:
        # Absolute and resolved: the path is matched against daemons' command lines to recognise them.
        self.folder = Path(folder).expanduser().absolute().resolve()

    # -- layout ----------------------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.folder / "pki"

    @property
    def run(self) -> Path:
        return self.folder / "run"

    @property
    def runtime_path(self) -> Path:
        return self.folder / "runtime.json"

    @property
    def lab_file(self) -> Path:
        return self.folder / "lab.toml"

    def array_state(self, name: str) -> Path:
        return self.folder / "arrays" / name

    @property
    def manager_state(self) -> Path:
        return self.folder / "manager"

    def host_state(self, name: str) -> Path:
        return self.folder / "hosts" / name

    def socket(self, host: str) -> Path:
        return self.run / f"agent-{host}.sock"

    def log(self, kind: str, name: str) -> Path:
        return self.run / ("manager.log" if kind == "manager" else f"{kind}-{name}.log")

    def read_runtime(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.runtime_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise LabError(f"cannot read {self.runtime_path}: {exc}") from None
        return data if isinstance(data, dict) else None

    def _write_runtime(self, data: dict[str, Any]) -> None:
        tmp = self.runtime_path.with_name(f".runtime.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.runtime_path)

    @property
    def incomplete_marker(self) -> Path:
        # Present from the start of making a lab until it is configured and set up: a folder that
        # still has it holds the remains of an interrupted `lab up`, never a lab to restart.
        return self.folder / ".incomplete"

    def is_lab(self) -> bool:
        """The folder holds a lab that was made completely (it can be restarted)."""
        return self.lab_file.is_file() and not self.incomplete_marker.exists()

    def spec(self) -> LabSpec:
        """The lab file this folder's lab was made from."""
        if not self.is_lab():
            raise LabError(f"{self.folder} holds no lab (no lab.toml); start one with: snaplab lab up")
        return LabSpec.load(self.lab_file)

    # -- which processes are ours ----------------------------------------------------------------
    def running(self) -> list[dict[str, Any]]:
        """The processes of runtime.json that are alive and still ours."""
        rt = self.read_runtime() or {}
        return [p for p in rt.get("processes", []) if self._is_ours(p)]

    def _is_ours(self, rec: dict[str, Any]) -> bool:
        pid = rec.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            return False
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return False
        if rec.get("start_time") and stat[1] != rec["start_time"]:
            return False  # the pid was reused by another process
        return str(self.folder) in _cmdline(pid)

    def strays(self) -> list[int]:
        """Daemons of this lab that runtime.json does not list (e.g. left by a killed ``lab up``):
        any process whose command line has ``--state`` or ``--socket`` under this folder."""
        me = os.getpid()
        out = []
        prefix = str(self.folder) + os.sep
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            args = _cmdline_args(int(entry))
            if any(
                a in ("--state", "--socket") and b.startswith(prefix) for a, b in itertools.pairwise(args)
            ):
                stat = _proc_stat(int(entry))
                if stat is not None and stat[0] != "Z":
                    out.append(int(entry))
        return out

    @contextlib.contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        """One ``lab up``/``lab down`` at a time per folder (the lock dies with its process)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LabError(
                            f"another snaplab lab command is still working on {self.folder}"
                        ) from None
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- up --------------------------------------------------------------------------------------
    def up(
        self,
        spec: LabSpec | None = None,
        *,
        fresh: bool = False,
        setup: bool = True,
        keep_on_failure: bool = False,
        report: Report = lambda _line: None,
    ) -> dict[str, Any]:
        """Start the lab. A new folder is made from ``spec`` (default: the guide's lab); a folder that
        already holds a lab is restarted from its state (``spec`` omitted or the same file), or wiped
        and made again with ``fresh``. Returns runtime.json's content.

        On any failure every process started here is stopped again (``keep_on_failure`` keeps them
        for inspection) and ``LabError`` says what failed.
        """
        with self._locked("up"):
            alive = self.running()
            if alive:
                pids = ", ".join(str(p["pid"]) for p in alive)
                raise LabError(
                    f"the lab in {self.folder} is already running (pids {pids}); stop it with: snaplab lab down"
                )
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
            self._check_paths(spec)
            self._clean_run()
            started: list[_Spawned] = []
            runtime = self._runtime_base(spec, "starting")
            try:
                if not restart:
                    self._make_folder(spec, report)
                self._start_arrays(spec, started, runtime, report)
                self._start_manager(spec, started, runtime, report)
                if not restart:
                    self._configure(spec, runtime, report)
                    self._pin_volumes(spec)
                self._start_agents(spec, started, runtime, report)
                if not restart and setup:
                    self._run_setup(spec, runtime, report)
                self.incomplete_marker.unlink(missing_ok=True)
                runtime["state"] = "up"
                self._write_runtime(runtime)
                return runtime
            except BaseException as exc:
                if keep_on_failure:
                    runtime["state"] = "failed"
                    self._write_runtime(runtime)
                else:
                    self._abort(started, fresh_folder=not restart)
                if isinstance(exc, LabError):
                    raise
                if isinstance(exc, KeyboardInterrupt):
                    raise LabError("interrupted; the processes started were stopped") from None
                raise

    def _plan(self, spec: LabSpec | None, fresh: bool, report: Report) -> tuple[bool, LabSpec | None]:
        """(True, None) to restart the lab of the folder; (False, spec) to make a new one from ``spec``
        (None: the default lab) in a folder that is then empty."""
        if self.incomplete_marker.exists():
            # What an interrupted `lab up` left (its processes are gone, checked above): made anew.
            if spec is None and self.lab_file.is_file():
                spec = LabSpec.load(self.lab_file)
            report(f"removing what an interrupted 'snaplab lab up' left in {self.folder}")
            self._wipe()
            return False, spec
        if fresh and self.folder.exists():
            if not self.is_lab() and not self._empty_enough() and not self.runtime_path.exists():
                raise LabError(
                    f"{self.folder} is not a lab folder; refusing to wipe it (choose another --lab)"
                )
            self._wipe()
            return False, spec
        if self.is_lab():
            if spec is None or spec.text == self.lab_file.read_text(encoding="utf-8"):
                return True, None
            raise LabError(
                f"{self.folder} already holds a lab made from another lab file; restart it with 'snaplab lab up' "
                "(no file), or wipe it and start this file with 'snaplab lab up FILE --fresh'"
            )
        if not self._empty_enough():
            raise LabError(
                f"{self.folder} is not empty and holds no lab; choose another --lab (or an empty folder)"
            )
        return False, spec

    def _empty_enough(self) -> bool:
        # Logs and the lock of a failed start may stay behind; anything else is someone else's.
        if not self.folder.exists():
            return True
        return all(p.name in ("run", ".lock", "runtime.json") for p in self.folder.iterdir())

    def _wipe(self) -> None:
        for name in ("arrays", "manager", "hosts", "pki", "run"):
            shutil.rmtree(self.folder / name, ignore_errors=True)
        for name in ("lab.toml", "runtime.json", ".incomplete"):
            (self.folder / name).unlink(missing_ok=True)

    def _check_paths(self, spec: LabSpec) -> None:
        for h in spec.hosts:
            sock = str(self.socket(h.name))
            if len(sock.encode()) > MAX_SOCKET_PATH:
                raise LabError(
                    f"the agent socket {sock} would be longer than {MAX_SOCKET_PATH} bytes (a Unix socket limit); "
                    "use a shorter --lab path"
                )

    def _clean_run(self) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        for p in self.run.iterdir():
            if p.name.endswith((".sock", ".ready.json")):
                p.unlink(missing_ok=True)
        self.runtime_path.unlink(missing_ok=True)

    def _runtime_base(self, spec: LabSpec, state: str) -> dict[str, Any]:
        return {
            "version": RUNTIME_VERSION,
            "lab": str(self.folder),
            "state": state,
            "started": datetime.now().strftime("%Y/%m/%d %H:%M:%S"),
            "lab_file": str(self.lab_file),
            "source": spec.source,
            "pki": str(self.pki),
            "arrays": {},
            "manager": {},
            "hosts": {},
            "processes": [],
        }

    def _make_folder(self, spec: LabSpec, report: Report) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.incomplete_marker.touch()
        self.lab_file.write_text(spec.text, encoding="utf-8")
        principals = [(a.name, "array") for a in spec.arrays]
        principals += [("manager", "manager"), ("admin", "admin")]
        principals += [(h.name, "host") for h in spec.hosts]
        self.pki.mkdir(parents=True, exist_ok=True)
        ca_cert, ca_key = pki.write_ca(self.pki)
        for name, role in principals:
            pki.write_principal(self.pki, name, role, ca_cert, ca_key)
        for a in spec.arrays:
            self.array_state(a.name).mkdir(parents=True, exist_ok=True)
        self.manager_state.mkdir(parents=True, exist_ok=True)
        for h in spec.hosts:
            (self.host_state(h.name) / "etc").mkdir(parents=True, exist_ok=True)
        report(f"lab folder {self.folder}: CA and {len(principals)} certificates in pki/")

    def _abort(self, started: list[_Spawned], *, fresh_folder: bool) -> None:
        """Undo a failed start: stop what we started (and anything else of the lab), and drop the
        state of a lab made in this run so the next ``up`` starts clean. Logs stay in run/."""
        records = [self._record(s) for s in started]
        self._stop(records)
        self._stop([{"kind": "stray", "name": "?", "pid": pid} for pid in self.strays()], verify=False)
        self.runtime_path.unlink(missing_ok=True)
        for s in started:
            if s.kind == "agent":
                self.socket(s.name).unlink(missing_ok=True)
        if fresh_folder:
            for name in ("arrays", "manager", "hosts", "pki"):
                shutil.rmtree(self.folder / name, ignore_errors=True)
            self.lab_file.unlink(missing_ok=True)
            self.incomplete_marker.unlink(missing_ok=True)

    # -- processes -------------------------------------------------------------------------------
    def _spawn(self, kind: str, name: str, argv: list[str]) -> _Spawned:
        log = self.log(kind, name)
        ready = self.run / f"{log.stem}.ready.json"
        ready.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "SNAPLAB_HOST"}
        env.update(SNAPLAB_LAB=str(self.folder), PYTHONUNBUFFERED="1")
        argv = [*argv, "--ready-file", str(ready)]
        with open(log, "ab") as out:
            start = out.tell()
            out.write(f"--- {datetime.now():%Y/%m/%d %H:%M:%S} snaplab lab up: {' '.join(argv)}\n".encode())
            try:
                popen = subprocess.Popen(
                    argv,
                    cwd=self.run,  # never the repo root: imports come from the install
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # outlives `snaplab lab up` and its terminal's signals
                )
            except OSError as exc:
                raise LabError(f"cannot start {kind} {name}: {exc.strerror}: {argv[0]}") from None
        stat = _proc_stat(popen.pid)
        return _Spawned(kind, name, argv, log, ready, popen, start, stat[1] if stat else 0)

    def _wait_ready(self, procs: list[_Spawned], timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        pending = list(procs)
        while pending:
            for p in list(pending):
                code = p.popen.poll()
                if code is not None:
                    raise LabError(
                        f"{p.label} exited with status {code} before it was ready: {_last_line(p.log, p.log_start)} "
                        f"(log: {p.log})"
                    )
                try:
                    info = json.loads(p.ready_file.read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    continue
                if isinstance(info, dict) and info.get("pid") == p.popen.pid:
                    p.ready = info
                    pending.remove(p)
            if pending and time.monotonic() > deadline:
                p = pending[0]
                raise LabError(f"{p.label} was not ready after {timeout:.0f}s (log: {p.log})")
            if pending:
                time.sleep(0.05)

    def _record(self, s: _Spawned, endpoint: str = "") -> dict[str, Any]:
        return {
            "kind": s.kind,
            "name": s.name,
            "pid": s.popen.pid,
            "start_time": s.start_time,
            "endpoint": endpoint,
            "log": str(s.log),
            "argv": s.argv,
        }

    def _add(self, runtime: dict[str, Any], s: _Spawned, endpoint: str) -> None:
        runtime["processes"].append(self._record(s, endpoint))
        self._write_runtime(runtime)  # at once: a `lab down` after a crash of `up` still finds it

    def _start_arrays(self, spec: LabSpec, started: list[_Spawned], runtime: dict, report: Report) -> None:
        procs = []
        for a in spec.arrays:
            argv = [sys.executable, "-m", "snaplab.array.daemon", "--state", str(self.array_state(a.name))]
            argv += [
                "--certs",
                str(self.pki),
                "--cert-name",
                a.name,
                "--name",
                a.name,
                "--listen",
                "127.0.0.1:0",
            ]
            procs.append(self._spawn("array", a.name, argv))
        started.extend(procs)
        self._wait_ready(procs)
        for p, a in zip(procs, spec.arrays, strict=True):
            assert p.ready is not None
            target = f"127.0.0.1:{p.ready['port']}"
            runtime["arrays"][a.name] = {"target": target, "product_id": a.product_id, "pid": p.popen.pid}
            self._add(runtime, p, target)
            self._wait_healthy(p, target)
            report(f"array {a.name} listening on {target}")

    def _start_manager(self, spec: LabSpec, started: list[_Spawned], runtime: dict, report: Report) -> None:
        argv = [
            *_daemon("snaplab-manager", "snaplab.manager.daemon"),
            "--state",
            str(self.manager_state),
            "--certs",
            str(self.pki),
        ]
        argv += ["--cert-name", "manager", "--listen", "127.0.0.1:0"]
        for a in spec.arrays:
            argv += ["--array", f"{a.name}={runtime['arrays'][a.name]['target']}"]
        p = self._spawn("manager", "manager", argv)
        started.append(p)
        self._wait_ready([p])
        assert p.ready is not None
        target = f"127.0.0.1:{p.ready['port']}"
        runtime["manager"] = {"target": target, "pid": p.popen.pid}
        self._add(runtime, p, target)
        self._wait_healthy(p, target)
        report(f"manager listening on {target}")

    def _wait_healthy(self, p: _Spawned, target: str) -> None:
        channel = make_channel(target, ClientTLS.from_folder(self.pki, "admin"))
        try:
            wait_healthy(channel, timeout=READY_TIMEOUT)
        except TimeoutError as exc:
            raise LabError(f"{p.label} on {target} is not healthy: {exc} (log: {p.log})") from None
        finally:
            channel.close()

    def _start_agents(self, spec: LabSpec, started: list[_Spawned], runtime: dict, report: Report) -> None:
        procs = []
        script = _daemon("snaplab-agent", "snaplab.agent.daemon") if spec.hosts else []
        for h in spec.hosts:
            argv = [
                *script,
                "--host",
                h.name,
                "--state",
                str(self.host_state(h.name)),
                "--certs",
                str(self.pki),
            ]
            argv += ["--manager", runtime["manager"]["target"], "--socket", str(self.socket(h.name))]
            argv += ["--role", h.role, "--platform", h.platform]
            for w in h.wwns:
                argv += ["--wwn", w]
            for port in h.ports:
                argv += ["--port", port]
            if h.cluster:
                argv += ["--cluster", h.cluster, "--cluster-role", h.cluster_role]
            procs.append(self._spawn("agent", h.name, argv))
        started.extend(procs)
        self._wait_ready(procs)
        for p, h in zip(procs, spec.hosts, strict=True):
            sock = str(self.socket(h.name))
            runtime["hosts"][h.name] = {"socket": sock, "role": h.role, "pid": p.popen.pid}
            self._add(runtime, p, f"unix:{sock}")
        deadline = time.monotonic() + ENROL_TIMEOUT
        for p, h in zip(procs, spec.hosts, strict=True):
            while True:
                status, detail = agent_status(self.socket(h.name))
                if status is not None and status.enrolled:
                    break
                if p.popen.poll() is not None:
                    raise LabError(
                        f"agent {h.name} exited with status {p.popen.returncode}: {_last_line(p.log, p.log_start)} "
                        f"(log: {p.log})"
                    )
                if time.monotonic() > deadline:
                    why = detail or "not enrolled to the manager"
                    raise LabError(
                        f"agent {h.name} is not healthy after {ENROL_TIMEOUT:.0f}s: {why} (log: {p.log})"
                    )
                time.sleep(0.1)
            report(f"agent {h.name} ({h.role}) on {self.socket(h.name)}, enrolled")

    # -- configuration ---------------------------------------------------------------------------
    def _configure(self, spec: LabSpec, runtime: dict, report: Report) -> None:
        """Everything the guide does from the iSM client, through the manager as ``admin``: per array
        ports, pools, licences, LDs, SRA, generations, LVs; then the hosts and access control."""
        channel = make_channel(runtime["manager"]["target"], ClientTLS.from_folder(self.pki, "admin"))
        stub = manager_pb2_grpc.ManagerStub(channel)
        try:
            for a in spec.arrays:
                ops = config_ops(spec, a)
                for where, request in ops:
                    try:
                        with client_errors():
                            stub.Configure(
                                manager_pb2.ManagedConfig(array=a.name, request=request),
                                timeout=CONFIG_TIMEOUT,
                            )
                    except SnapLabClientError as exc:
                        raise LabError(
                            f"{spec.source}:{where}: the manager refused it: {_one_line(exc)}"
                        ) from None
                report(f"array {a.name}: {len(ops)} configuration operations applied through the manager")
        finally:
            channel.close()

    def _pin_volumes(self, spec: LabSpec) -> None:
        # The agent reads this at start (docs in deploy/README.md): volume GUIDs the host's mount
        # manager must give these partitions instead of random ones.
        for h in spec.hosts:
            path = self.host_state(h.name) / "etc" / PINNED_VOLUMES
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps([v.as_json() for v in h.volumes], indent=1) + "\n")

    # -- setup -----------------------------------------------------------------------------------
    def _run_setup(self, spec: LabSpec, runtime: dict, report: Report) -> None:
        if not spec.setup:
            return
        with open(self.run / "setup.log", "a", encoding="utf-8") as log:
            for cmd in spec.setup:
                try:
                    out, err, code = run_command(
                        self.folder, cmd.host, list(cmd.argv), cmd.stdin, timeout=SETUP_TIMEOUT
                    )
                except Exception as exc:  # noqa: BLE001 - the agent client raises its own kinds; one line either way
                    raise LabError(
                        f"{spec.source}:{cmd.where}: setup command on {cmd.host} did not run: {cmd.line}: "
                        f"{_one_line(exc) or type(exc).__name__}"
                    ) from None
                log.write(f"--- {cmd.host}> {cmd.line}\n{out}{err}--- exit {code}\n")
                log.flush()
                if code != 0:
                    raise LabError(
                        f"{spec.source}:{cmd.where}: setup command on {cmd.host} failed with status {code}: "
                        f"{cmd.line}: {_first_line(err) or _first_line(out) or 'no output'} (output in {self.run / 'setup.log'})"
                    )
                report(f"setup {cmd.host}> {cmd.line}: ok")

    # -- down ------------------------------------------------------------------------------------
    def down(self, report: Report = lambda _line: None) -> int:
        """Stop every process of the lab (agents, then the manager, then arrays); returns how many ran.

        Only processes that are still ours are signalled: the pid's start time and command line (which
        names this folder) must match what ``up`` recorded. Strays are found by command line.
        """
        with self._locked("down"):
            rt = self.read_runtime() or {}
            records = [p for p in rt.get("processes", []) if self._is_ours(p)]
            order = {"agent": 0, "manager": 1, "array": 2}
            count = 0
            for tier in (0, 1, 2):
                group = [p for p in records if order.get(p.get("kind", ""), 0) == tier]
                count += self._stop(group, report=report)
            strays = self.strays()
            count += self._stop(
                [{"kind": "process", "name": "?", "pid": pid} for pid in strays], verify=False, report=report
            )
            for h in rt.get("hosts", {}).values():
                with contextlib.suppress(OSError, TypeError):
                    Path(h.get("socket", "")).unlink(missing_ok=True)
            if self.run.is_dir():
                for p in self.run.iterdir():
                    if p.name.endswith((".sock", ".ready.json")):
                        p.unlink(missing_ok=True)
            self.runtime_path.unlink(missing_ok=True)
            return count

    def _stop(
        self, records: list[dict[str, Any]], *, verify: bool = True, report: Report = lambda _line: None
    ) -> int:
        """SIGTERM, wait up to STOP_TIMEOUT, SIGKILL the rest; returns how many were running."""

        def alive(rec: dict[str, Any]) -> bool:
            if verify:
                return self._is_ours(rec)
            stat = _proc_stat(rec["pid"])
            return stat is not None and stat[0] != "Z"

        live = [r for r in records if alive(r)]
        for r in live:
            _signal(r["pid"], signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(alive(r) for r in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for r in live:
            if alive(r):
                _signal(r["pid"], signal.SIGKILL)
                report(f"{r['kind']} {r['name']} (pid {r['pid']}) did not stop on SIGTERM: killed")
            else:
                report(f"stopped {r['kind']} {r['name']} (pid {r['pid']})")
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(alive(r) for r in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(live)

    # -- status ----------------------------------------------------------------------------------
    def status(self) -> list[ProcessStatus]:
        """Each process of runtime.json: alive (and ours) and healthy (gRPC health of arrays and the
        manager, Agent.Status with enrolment for agents)."""
        rt = self.read_runtime()
        if rt is None:
            return []
        out = []
        for rec in rt.get("processes", []):
            alive = self._is_ours(rec)
            healthy, detail = False, ""
            if alive:
                healthy, detail = self._health(rec)
            out.append(
                ProcessStatus(
                    rec["kind"],
                    rec["name"],
                    rec["pid"],
                    rec.get("endpoint", ""),
                    rec.get("log", ""),
                    alive,
                    healthy,
                    detail,
                )
            )
        return out

    def _health(self, rec: dict[str, Any]) -> tuple[bool, str]:
        endpoint = rec.get("endpoint", "")
        if rec["kind"] == "agent":
            status, detail = agent_status(Path(endpoint.removeprefix("unix:")))
            if status is None:
                return False, detail
            return (True, "") if status.enrolled else (False, "not enrolled")
        try:
            channel = make_channel(endpoint, ClientTLS.from_folder(self.pki, "admin"))
        except OSError as exc:
            return False, f"no admin certificate: {exc.strerror}"
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return True, ""
            return False, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
        finally:
            channel.close()


# -- configuration operations ------------------------------------------------------------------


def config_ops(spec: LabSpec, a: ArraySpec) -> list[tuple[str, array_pb2.ConfigRequest]]:
    """The Configure requests that build array ``a`` of ``spec``, in an order the array accepts
    (licences before generations: building SVs checks the DynamicSnapVolume capacity), each with
    where it comes from in the lab file."""
    R = array_pb2.ConfigRequest
    w = f"arrays[{a.name}]"
    ops: list[tuple[str, array_pb2.ConfigRequest]] = []
    for p in a.ports:
        ops.append(
            (
                f"{w}.ports[{p.name}]",
                R(add_port=array_pb2.AddPort(director=p.director, port=p.port, name=p.name)),
            )
        )
    for pool in a.pools:
        m = array_pb2.BindPool(number=pool.number, name=pool.name, kind=pool.kind, capacity=pool.capacity)
        ops.append((f"{w}.pools[{pool.number}]", R(bind_pool=m)))
    for lic in a.licences:
        ops.append(
            (
                f"{w}.licences[{lic.product}]",
                R(set_licence=array_pb2.SetLicence(product=lic.product, capacity=lic.capacity)),
            )
        )
    for ld in a.lds:
        m = array_pb2.BindLd(
            name=ld.name,
            capacity=ld.capacity,
            pool=str(ld.pool),
            format=ld.format,
            attr=ld.attr,
            **_num(ld.number),
        )
        ops.append((f"{w}.lds[{ld.name}]", R(bind_ld=m)))
    pools_with_sra: set[int] = set()
    for i, s in enumerate(a.sra):
        m = array_pb2.BuildSra(
            pool=str(s.pool),
            capacity=s.capacity,
            sdv_name=s.name or "",
            extend=s.pool in pools_with_sra,
            **_num(s.number),
        )
        pools_with_sra.add(s.pool)
        ops.append((f"{w}.sra[{i}]", R(build_sra=m)))
    for i, g in enumerate(a.generations):
        # One request per SV: each may or may not carry its own LD number.
        for sv in g.svs:
            m = array_pb2.AddGenerations(
                bv=g.bv,
                pool=str(g.pool),
                count=1,
                sv_names=[sv.name] if sv.name else [],
                numbers=[sv.number] if sv.number is not None else [],
            )
            ops.append((f"{w}.generations[{i}] ({sv.name or g.bv})", R(add_generations=m)))
    for lv in a.lvs:
        ops.append(
            (f"{w}.lvs[{lv.name}]", R(bind_lv=array_pb2.BindLv(bv=lv.bv, name=lv.name, **_num(lv.number))))
        )
    ports = {p.name for p in a.ports}
    for h in spec.hosts:
        m = array_pb2.RegisterHost(
            name=h.name, wwns=h.wwns, ports=[p for p in h.ports if p in ports], platform=h.platform
        )
        ops.append((f"hosts[{h.name}]", R(register_host=m)))
    for acc in (x for x in spec.access if x.array == a.name):
        m = array_pb2.AssignAccess(ld=acc.ld, port=acc.port or "", wwn=acc.wwn or "")
        ops.append((f"access ({acc.ld} to {acc.path})", R(assign_access=m)))
    return ops


def _num(number: int | None) -> dict[str, int]:
    return {} if number is None else {"number": number}


# -- talking to agents -------------------------------------------------------------------------


def agent_status(sock: Path, timeout: float = 3.0) -> tuple[agent_pb2.StatusReply | None, str]:
    """Agent.Status over the agent's Unix socket: (reply, "") or (None, why not)."""
    if not sock.exists():
        return None, f"no socket {sock}"
    channel = grpc.insecure_channel(f"unix:{sock}")
    try:
        return agent_pb2_grpc.AgentStub(channel).Status(agent_pb2.StatusRequest(), timeout=timeout), ""
    except grpc.RpcError as exc:
        return None, f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    finally:
        channel.close()


def run_command(
    lab_dir: Path, host: str, argv: list[str], stdin: str = "", timeout: float | None = None
) -> tuple[str, str, int]:
    """Run one command on ``host`` through its agent, as the command processes do
    (``snaplab.agent.cli.exec_command``): (stdout, stderr, exit status). No time limit unless
    ``timeout`` (a command such as ``iSMsc_wait`` may wait as long as it was told)."""
    from snaplab.agent.cli import exec_command  # imported here: `snaplab lab check` needs no agent code

    return exec_command(lab_dir, host, argv, stdin=stdin, timeout=timeout)


# -- /proc helpers -----------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold blanks and parentheses: split after its last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _cmdline_args(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _cmdline(pid: int) -> str:
    return " ".join(_cmdline_args(pid))


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _daemon(script: str, module: str) -> list[str]:
    """How to run a daemon: its console script (beside the running interpreter first, for venvs, then
    on PATH), else ``python -m MODULE`` when the module exists but the script is not installed yet."""
    found = shutil.which(
        script, path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    )
    if found is not None:
        return [found]
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        spec = None
    if spec is not None:
        return [sys.executable, "-m", module]
    raise LabError(f"{script} is not installed (run: python3 -m pip install -e '.[dev]')")


def _last_line(log: Path, start: int = 0) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(start)
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    lines = [ln for ln in lines if not ln.startswith("--- ")]
    return lines[-1] if lines else "no output"


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
