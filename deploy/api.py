"""The typed Python API of a lab (``snaplab.Lab``): start, run commands, query, events, faults, chaos, checkpoints.

    from snaplab import Lab
    with Lab.start("deploy/default_lab.toml", "/tmp/mylab") as lab:
        lab.run("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic").check()
        lab.array().query("bv001").live          # [Generation(sv='sv001_01', relgen=-1, ...), ...]

Every call goes the way the ``snaplab`` command goes (the same functions): ``up``/``down`` of
deploy/lab.py, host commands through the agent's client (``snaplab exec``), the manager's console,
deploy/chaos.py, deploy/checkpoints.py. docs/python-api.md has the whole surface with examples.
Refusals are ``LabError`` (one line) or its subclasses, never a raw gRPC error.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Self

from .errors import LabError
from .folder import default_lab_dir, default_lab_file

if TYPE_CHECKING:
    from snaplab.common.chaos import Rule
    from snaplab.v1 import array_pb2, manager_pb2

    from .chaos import ChaosRule
    from .lab import Lab as _DeployLab
    from .spec import LabSpec

__all__ = [
    "BvQuery",
    "CommandError",
    "Event",
    "Generation",
    "Host",
    "Lab",
    "LabError",
    "Result",
]

_MSG_ID = re.compile(r"\biSM\d{5}\b")


class CommandError(LabError):
    """A command that exited non-zero (``Result.check``): ``msg_id`` is the iSM id it printed, if any."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.msg_id = result.msg_id
        why = result.error_line or f"exit status {result.rc}"
        super().__init__(f"{result.host}> {result.command}: {why}")


@dataclass(frozen=True)
class Result:
    """One command as it ran on a host (or on ``manager``): what it printed and its exit status."""

    stdout: str
    stderr: str
    rc: int
    host: str = ""
    command: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def error_line(self) -> str:
        """The first line naming an iSM id (stderr first), else the first line of stderr."""
        for text in (self.stderr, self.stdout):
            for line in text.splitlines():
                if _MSG_ID.search(line):
                    return line.strip()
        return next((ln.strip() for ln in self.stderr.splitlines() if ln.strip()), "")

    @property
    def msg_id(self) -> str | None:
        """The iSM id of the command's message: a refusal's (``iSM31005``), else its normal end's
        (``iSM19010``); None when it printed none."""
        m = _MSG_ID.search(self.error_line)
        return m.group(0) if m else None

    def check(self) -> Self:
        """This result when the command succeeded; else :class:`CommandError`."""
        if self.rc != 0:
            raise CommandError(self)
        return self


@dataclass(frozen=True)
class Generation:
    """One SV of a BV's query (``iSMsc_query``): ``relgen`` -1 is the newest, None an unused SV."""

    sv: str
    sv_number: str
    relgen: int | None
    attribute: str
    state: str
    state_time: str
    create_time: str
    guard: bool
    link: str
    lv: str
    lv_mode: str
    data_size: int
    consistency: str = ""

    @classmethod
    def from_proto(cls, g: array_pb2.Generation) -> Generation:
        return cls(
            sv=g.sv,
            sv_number=g.sv_number,
            relgen=g.relgen if g.has_relgen else None,
            attribute=g.attribute,
            state=g.state,
            state_time=g.state_time,
            create_time=g.create_time,
            guard=g.guard,
            link=g.link,
            lv=g.lv,
            lv_mode=g.lv_mode,
            data_size=g.data_size,
            consistency=g.consistency,
        )


@dataclass(frozen=True)
class BvQuery:
    """A BV's state and its SVs, newest generation first, then the unused SVs."""

    bv: str
    bv_number: str
    format: str
    state: str
    reserve_area: str
    generations: tuple[Generation, ...]
    lvs: tuple[tuple[str, str, str], ...] = ()  # (lv, link, mode)
    bv_link_lv: str = ""

    @property
    def live(self) -> list[Generation]:
        """The SVs holding a snapshot, newest (-1) first."""
        return [g for g in self.generations if g.relgen is not None]

    def sv(self, name: str) -> Generation:
        for g in self.generations:
            if g.sv == name:
                return g
        raise LabError(f"{self.bv} has no SV {name!r} (SVs: {', '.join(g.sv for g in self.generations)})")

    @classmethod
    def from_proto(cls, q: array_pb2.QueryReply) -> BvQuery:
        return cls(
            bv=q.bv,
            bv_number=q.bv_number,
            format=q.format,
            state=q.state,
            reserve_area=q.reserve_area,
            generations=tuple(Generation.from_proto(g) for g in q.generations),
            lvs=tuple((lv.lv, lv.link, lv.mode) for lv in q.lvs),
            bv_link_lv=q.bv_link_lv,
        )


@dataclass(frozen=True)
class Event:
    """One line of the manager's event log (``iSMview -event``)."""

    seq: int
    time: str
    source: str
    classification: str
    operation: str
    msg_id: str
    text: str

    @classmethod
    def from_proto(cls, e: manager_pb2.Event) -> Event:
        return cls(e.seq, e.time, e.source, e.classification, e.operation, e.msg_id, e.text)


def _argv(command: str | Sequence[str]) -> list[str]:
    # Split on blanks only, as the guide's Windows command prompt does: ``\\?\Volume{...}\`` and the
    # guide's en-dash options reach the command exactly as printed.
    return command.split() if isinstance(command, str) else list(command)


@dataclass
class Host:
    """A host of a running lab: its commands and the files of its mounted drives."""

    lab: Lab
    name: str

    def run(self, command: str | Sequence[str], *, stdin: str = "", timeout: float | None = None) -> Result:
        return self.lab.run(self.name, command, stdin=stdin, timeout=timeout)

    def path(self, mount_point: str) -> Path:
        """The folder holding the files of ``mount_point`` (``G:`` or an NTFS folder) while mounted
        (``snaplab path HOST G:``); ``LabError`` when nothing is mounted there."""
        from .cli import mount_path

        self.lab._require_host(self.name)
        return Path(mount_path(self.lab.folder_obj, self.name, mount_point))

    def _locate(self, path: str) -> Path:
        """``G:\\dir\\file`` (or ``G:/dir/file``): the file under the longest mount point that is mounted."""
        from snaplab.agent.host.model import mount_path as agent_mount_path

        parts = PureWindowsPath(path.replace("/", "\\")).parts
        if not parts or not re.fullmatch(r"[A-Za-z]:\\?", parts[0]):
            raise LabError(f"{path!r}: give a path on a drive of {self.name}, e.g. G:\\dir\\file.txt")
        for cut in range(len(parts) - 1, 0, -1):  # longest mount point first (NTFS folder mounts)
            mount = "\\".join(p.rstrip("\\") for p in parts[:cut])
            folder = Path(agent_mount_path(self.lab.folder, self.name, mount if cut > 1 else mount[:2]))
            if folder.is_dir():
                return folder.joinpath(*PurePosixPath(*parts[cut:]).parts)
        raise LabError(f"nothing is mounted on {self.name} at the drive of {path!r}")

    def write_file(self, path: str, data: bytes | str) -> Path:
        """Write a file on a mounted drive, as a program of the host's machine does (flush to push it
        to the array). Returns where it is on this machine."""
        target = self._locate(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        return target

    def read_file(self, path: str) -> bytes:
        target = self._locate(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise LabError(f"{self.name}: no file {path}") from None

    def read_text(self, path: str) -> str:
        return self.read_file(path).decode()

    # -- the host's machine: `snaplab host stop|kill|start|restart` ---------------------------------
    def stop(self) -> None:
        """Orderly shutdown: the agent flushes every mounted volume and exits."""
        self._lifecycle("stop")

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed."""
        self._lifecycle("kill")

    def start(self) -> None:
        """Boot: the host's disks are discovered again."""
        self._lifecycle("start")

    def restart(self) -> None:
        self._lifecycle("restart")

    @property
    def state(self) -> str:
        """running, stopped or crashed."""
        from .lifecycle import host_state

        return host_state(self.lab.folder_obj, self.lab._runtime(), self.name)

    def _lifecycle(self, act: str) -> None:
        from . import lifecycle

        lab = self.lab.folder_obj
        with lab.locked(f"host {act}"), _refusals():
            getattr(lifecycle, f"{act}_host")(lab, self.name)


@dataclass
class Array:
    """An array of a running lab, asked directly as the lab's admin."""

    lab: Lab
    name: str

    def _client(self) -> Any:
        from snaplab.common.rpc import ClientTLS
        from snaplab.san.array_client import ArrayClient

        target = self.lab._runtime().get("arrays", {}).get(self.name, {}).get("target")
        return ArrayClient(target, ClientTLS.from_folder(self.lab.folder_obj.pki, "admin"), timeout=30)

    def query(self, bv: str) -> BvQuery:
        """The BV's generations as ``iSMsc_query`` reports them, as dataclasses."""
        with self._client() as client, _refusals():
            return BvQuery.from_proto(client.query(bv))

    def describe(self) -> array_pb2.ArrayState:
        """The array's whole state (pools, LDs, faults, ...) as the array's proto message."""
        with self._client() as client, _refusals():
            return client.describe()


class EventWatch:
    """Live events (``lab.watch()``): iterate for :class:`Event`; ``close()`` (or ``with``) ends it."""

    def __init__(self, client: Any, after: int) -> None:
        self._client = client
        self._stream = client.watch(after_seq=after)

    def __iter__(self) -> Iterator[Event]:
        with _refusals():
            for e in self._stream:
                yield Event.from_proto(e)

    def close(self) -> None:
        self._stream.cancel()
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A daemon's refusal (SnapLabClientError) as a ``LabError`` with its iSM id: callers catch one kind."""
    from snaplab.common.rpc_errors import SnapLabClientError

    try:
        yield
    except SnapLabClientError as exc:
        err = LabError(" ".join(str(exc).split()))
        err.msg_id = exc.msg_id  # type: ignore[attr-defined]
        raise err from None


@dataclass(eq=False)  # one object per lab: compared and hashed by identity
class Lab:
    """A lab folder and the lab running in it. ``Lab(folder)`` attaches to a lab started elsewhere
    (``snaplab lab up``); :meth:`start` starts one. As a context manager, it stops on exit the
    lab it started itself (``Lab.start``), never one it only attached to."""

    folder: Path = field(default_factory=default_lab_dir)
    owned: bool = False  # started by this object: stopped by ``with``/``close``

    def __post_init__(self) -> None:
        self.folder_obj = _deploy_lab(self.folder)
        self.folder = self.folder_obj.folder

    # -- start and stop ---------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        lab: str | Path | Mapping[str, Any] | LabSpec | None = None,
        folder: str | Path | None = None,
        *,
        fresh: bool = False,
        setup: bool = True,
        report: Any = None,
    ) -> Lab:
        """``snaplab lab up [LABFILE] [--fresh]``: ``lab`` a lab file, a dict of its tables (as the
        TOML would read), or None (the guide's reference lab). Only loopback labs."""
        spec = None if lab is None else spec_of(lab)
        if spec is not None and spec.network == "netns":
            raise LabError(f"{spec.source}: a netns lab enters namespaces: start it with 'snaplab lab up'")
        self = cls(Path(folder) if folder is not None else default_lab_dir(), owned=True)
        self.folder_obj.up(spec, fresh=fresh, setup=setup, report=report or (lambda _line: None))
        return self

    def stop(self) -> int:
        """``snaplab lab down``: stop every process of the lab; returns how many ran."""
        return self.folder_obj.down()

    def revive(self) -> list[str]:
        """``snaplab lab up`` of a running lab: start again what died or was stopped (a host, a
        daemon killed by a chaos rule); returns what was started."""
        from . import lifecycle

        with self.folder_obj.locked("up"):
            return lifecycle.revive(self.folder_obj, self._runtime())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.stop()

    # -- what runs ---------------------------------------------------------------------------------
    def _runtime(self) -> dict[str, Any]:
        rt = self.folder_obj.read_runtime()
        if rt is None:
            raise LabError(f"no lab is running in {self.folder}; start one with: snaplab lab up")
        return rt

    @property
    def runtime(self) -> dict[str, Any]:
        """runtime.json: what runs where (processes, targets, ports)."""
        return self._runtime()

    def status(self) -> list[Any]:
        """``snaplab lab status``: a ``ProcessStatus`` per process (alive, healthy, log, metrics)."""
        return self.folder_obj.status()

    def spec(self) -> LabSpec:
        return self.folder_obj.spec()

    def _require_host(self, host: str) -> None:
        from .cli import _require_host

        _require_host(self.folder_obj, host)

    def logs(self) -> dict[str, Path]:
        """Every log of the lab: the daemons' (``run/*.log``) and each host's iSM_Log, by name."""
        found: dict[str, Path] = {}
        run = self.folder_obj.run
        if run.is_dir():
            found.update({p.stem: p for p in sorted(run.glob("*.log"))})
        hosts = self.folder / "hosts"
        if hosts.is_dir():
            for h in sorted(hosts.iterdir()):
                for p in sorted((h / "etc").glob("iSM_Log*.txt")):
                    found[f"{h.name} {p.stem}"] = p
        return found

    # -- commands ----------------------------------------------------------------------------------
    def run(
        self, host: str, command: str | Sequence[str], *, stdin: str = "", timeout: float | None = None
    ) -> Result:
        """Run a command line on ``host`` through its agent, as ``snaplab exec HOST -- COMMAND`` does;
        ``host="manager"`` runs the manager's console (iSMcfg, iSMview). A string is split on blanks."""
        argv = _argv(command)
        line = command if isinstance(command, str) else " ".join(argv)
        if not argv:
            raise LabError("give a command to run")
        if host == "manager":
            self._runtime()
            from snaplab.manager.console import run_console

            out, err, code = run_console(argv, self.folder)
        else:
            self._require_host(host)
            from .setup_commands import run_command

            out, err, code = run_command(self.folder, host, argv, stdin, timeout=timeout)
        return Result(out, err, code, host, line)

    def host(self, name: str) -> Host:
        self._require_host(name)
        return Host(self, name)

    def array(self, name: str | None = None) -> Array:
        """An array by name (default: the lab's only array)."""
        arrays = sorted(self._runtime().get("arrays", {}))
        if name is None and len(arrays) == 1:
            name = arrays[0]
        if name not in arrays:
            raise LabError(f"the lab has no array {name!r} (arrays: {', '.join(arrays)})")
        return Array(self, name)

    # -- the manager: events and faults --------------------------------------------------------------
    def _manager(self) -> Any:
        from snaplab.manager.client import ManagerClient

        from snaplab.common.rpc import ClientTLS

        target = self._runtime()["manager"]["target"]
        return ManagerClient(target, ClientTLS.from_folder(self.folder_obj.pki, "admin"), timeout=30)

    def events(self, after: int = 0, limit: int = 0) -> list[Event]:
        """The event log after sequence number ``after`` (``iSMview -event``)."""
        with self._manager() as m, _refusals():
            return [Event.from_proto(e) for e in m.events(after_seq=after, limit=limit)]

    def last_seq(self) -> int:
        events = self.events()
        return events[-1].seq if events else 0

    def watch(self, after: int | None = None) -> EventWatch:
        """Events after ``after`` (default: from now on), then live ones, until closed."""
        return EventWatch(self._manager(), self.last_seq() if after is None else after)

    def fault(self, kind: str, target: str, *, array: str = "", clear: bool = False) -> list[str]:
        """``iSMcfg faultset|faultclear -kind KIND -target TARGET``: the array's faults after it."""
        with self._manager() as m, _refusals():
            call = m.clear_fault if clear else m.inject_fault
            return list(call(kind, target, array=array).faults)

    # -- chaos rules (deploy/chaos.py, as `snaplab chaos`) --------------------------------------------
    def chaos(self, target: str, op: str, **rule: Any) -> Rule:
        """``snaplab chaos add``: e.g. ``lab.chaos("host:business01", "iSMsc_create",
        error="iSM31005", count=1)``; the keywords are ``chaos.add_rule``'s. Returns the rule."""
        from . import chaos

        return chaos.add_rule(self.folder, target, op, **rule)

    def chaos_rules(self) -> list[ChaosRule]:
        from . import chaos

        return chaos.list_rules(self.folder)

    def clear_chaos(self, rule_id: int | None = None) -> list[Rule]:
        from . import chaos

        return chaos.clear_rules(self.folder, rule_id)

    # -- checkpoints (deploy/checkpoints.py, as `snaplab lab checkpoint`) ------------------------------
    def checkpoint(self, name: str) -> Any:
        """Take a named checkpoint of the whole lab; returns its ``CheckpointInfo``."""
        return _checkpoints().take(self.folder, name)

    def rollback(self, name: str) -> None:
        """The whole lab back to checkpoint ``name`` (CheckpointError if there is none)."""
        _checkpoints().rollback(self.folder, name)

    def checkpoints(self) -> list[Any]:
        return _checkpoints().list_checkpoints(self.folder)

    def delete_checkpoint(self, name: str) -> None:
        _checkpoints().delete(self.folder, name)


class CheckpointsMissing(LabError):
    """This install has no ``snaplab.deploy.checkpoints`` (issue 10 part 3)."""


def _checkpoints() -> Any:
    try:
        from . import checkpoints
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.checkpoints":
            raise
        raise CheckpointsMissing(
            "lab checkpoints are not available: this snaplab has no snaplab.deploy.checkpoints "
            "(issue 10 part 3)"
        ) from None
    return checkpoints


def _deploy_lab(folder: Path | str) -> _DeployLab:
    from .lab import Lab as DeployLab

    return DeployLab(folder)


def spec_of(lab: str | Path | Mapping[str, Any] | LabSpec | None) -> LabSpec | None:
    """A lab file's path, a dict of its tables, or None (the reference lab): the parsed ``LabSpec``
    (``LabFileError`` naming the file and place of a mistake)."""
    from .spec import LabSpec

    if isinstance(lab, LabSpec):
        return lab
    if lab is None:
        return LabSpec.load(default_lab_file())
    if isinstance(lab, Mapping):
        import tomli_w

        try:
            text = tomli_w.dumps(dict(lab))
        except TypeError as exc:
            raise LabError(f"<lab dict>: not a lab file's tables: {exc}") from None
        return LabSpec.parse(text, "<lab dict>")
    return LabSpec.load(Path(lab))
