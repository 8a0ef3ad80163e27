"""The pytest plugin (entry point ``pytest11``): fixtures ``snaplab_lab``, ``lab``, ``lab_factory``; marker ``snaplab``.

Installing snaplab is enough to use it (docs/python-api.md "pytest"). Each session (each xdist
worker) makes its labs in a short folder of its own under /tmp (agent sockets stay far below the
107-byte AF_UNIX limit; daemons listen on ports the system chooses), stops every lab it started at
the end, on Ctrl-C and SIGTERM too, and removes the folder unless a test failed (or
``--snaplab-keep``). Nothing of SnapLab is imported until a fixture is used: a suite that does not
use the fixtures pays nothing for the plugin.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from snaplab.deploy.api import Lab

START = "snaplab-start"  # the checkpoint each session lab takes once up; `lab` rolls back to it
LOG_LINES = 15  # last lines of each log in a failed test's report section
_LABS = pytest.StashKey["_Labs"]()
_USED = pytest.StashKey[list]()  # the labs a test used, for its failure report
# Refusals of bad input: reported as one line (a usage error), never as a traceback.
_INPUT_ERRORS = ("LabFileError", "ChaosRuleError", "CheckpointError", "CheckpointsMissing")
_USAGE_PROP = "snaplab_usage_error"
_FIXTURES = {"snaplab_lab", "lab", "lab_factory"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("snaplab", "SnapLab labs (snaplab_lab, lab, lab_factory fixtures)")
    group.addoption(
        "--snaplab-lab",
        metavar="FILE",
        help="lab file of the session lab (default: ini snaplab_lab_file, else the guide's reference lab)",
    )
    group.addoption("--snaplab-base", metavar="DIR", help="where the labs' folders are made (default /tmp)")
    group.addoption(
        "--snaplab-keep", action="store_true", help="keep the labs' folders (their logs) after the session"
    )
    parser.addini("snaplab_lab_file", "lab file of the session lab (relative to the ini file)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "snaplab(lab=FILE): the test's `lab` fixture is a lab made from FILE (relative to the test's file)",
    )
    labs = _Labs(config)
    config.stash[_LABS] = labs
    _FAILED.clear()  # one session's (an in-process pytester run is another)
    _USAGE.clear()
    if labs.default_file is not None:
        labs.check_file(labs.default_file, "--snaplab-lab" if config.option.snaplab_lab else "snaplab_lab_file")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every ``@pytest.mark.snaplab(lab=...)`` file before a test runs: a usage error if bad."""
    labs = config.stash[_LABS]
    problems: list[str] = []
    for item in items:
        marker = item.get_closest_marker("snaplab")
        try:
            path = _marker_file(item, marker) if marker is not None else None
            if path is not None:
                labs.check_file(path, f"@pytest.mark.snaplab of {item.nodeid}")
        except pytest.UsageError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
    if problems:
        raise pytest.UsageError(*problems)


def pytest_unconfigure(config: pytest.Config) -> None:
    labs = config.stash.get(_LABS, None)
    if labs is not None:
        labs.close()


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _snaplab_labs(pytestconfig: pytest.Config) -> Iterator[_Labs]:
    labs = pytestconfig.stash[_LABS]
    yield labs
    # Here, not only at unconfigure: an xdist worker may be ended soon after its session finishes.
    labs.stop_all()
    labs.remove_folder()


@pytest.fixture(scope="session")
def snaplab_lab(_snaplab_labs: _Labs) -> Lab:
    """One lab for the whole session (each xdist worker its own), from ``--snaplab-lab FILE``, the
    ``snaplab_lab_file`` ini option or the guide's reference lab. Tests share its state."""
    return _snaplab_labs.session_lab(_snaplab_labs.default_file)


@pytest.fixture
def lab(request: pytest.FixtureRequest, _snaplab_labs: _Labs) -> Iterator[Lab]:
    """The session's lab (or the ``@pytest.mark.snaplab(lab=FILE)`` one) rolled back to the
    checkpoint it took when it started, without chaos rules: every test starts from the same lab."""
    marker = request.node.get_closest_marker("snaplab")
    path = _marker_file(request.node, marker) if marker is not None else _snaplab_labs.default_file
    the_lab = _snaplab_labs.session_lab(path)
    _used(request).append(the_lab)
    _snaplab_labs.reset(the_lab)
    yield the_lab
    with contextlib.suppress(Exception):  # a rule must not outlive its test (the next one rolls back)
        the_lab.clear_chaos()


@pytest.fixture
def lab_factory(request: pytest.FixtureRequest, _snaplab_labs: _Labs) -> Iterator[Callable[..., Lab]]:
    """``lab_factory(labfile_or_dict=None)``: a new lab of its own for this test, stopped after it.
    A relative file name is looked up beside the test's file first."""
    made: list[Lab] = []

    def make(lab: str | Path | Mapping[str, Any] | None = None, *, setup: bool = True) -> Lab:
        if isinstance(lab, (str, Path)) and not Path(lab).is_absolute():
            beside = Path(request.node.path).parent / lab
            lab = beside if beside.exists() else Path(lab)
        new = _snaplab_labs.start(lab, setup=setup)
        made.append(new)
        _used(request).append(new)
        return new

    yield make
    for one in made:
        _snaplab_labs.stop(one)


# -- reports --------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    exc = call.excinfo.value if call.excinfo is not None else None
    ours = _USED in item.stash or bool(_FIXTURES & set(getattr(item, "fixturenames", ())))
    if exc is not None and ours and _is_input_error(exc, call.when):
        report.longrepr = f"snaplab: {' '.join(str(exc).split())}"
        if type(exc).__name__ in _INPUT_ERRORS:
            report.user_properties.append((_USAGE_PROP, report.longrepr))
    if report.failed:
        for one in dict.fromkeys(item.stash.get(_USED, [])):
            report.sections.append((f"snaplab lab {one.folder}", _log_tails(one)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _FAILED.append(report.nodeid)
    if any(k == _USAGE_PROP for k, _ in report.user_properties):
        _USAGE.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A test that gave SnapLab bad input (a lab file, a checkpoint, a chaos rule) failed with one line;
    # the session says so with pytest's usage-error status, as a bad option would.
    if _USAGE and exitstatus == pytest.ExitCode.TESTS_FAILED:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_terminal_summary(terminalreporter: Any) -> None:
    labs = terminalreporter.config.stash.get(_LABS, None)
    for line in (labs.kept_lines() if labs is not None else []):
        terminalreporter.write_line(line)
    if _USAGE:
        terminalreporter.write_line(f"snaplab: bad input in {len(_USAGE)} tests (usage errors): {', '.join(_USAGE)}")


_FAILED: list[str] = []
_USAGE: list[str] = []


def _is_input_error(exc: BaseException, when: str) -> bool:
    from_snaplab = any(c.__module__.startswith("snaplab.") and c.__name__ == "LabError" for c in type(exc).__mro__)
    if not from_snaplab:
        return False
    # In a fixture (setup) every LabError is one line about the lab; in a test only bad input is:
    # a failing command's CommandError keeps its traceback (which step of the test).
    return when == "setup" or type(exc).__name__ in _INPUT_ERRORS


def _used(request: pytest.FixtureRequest) -> list:
    node = request.node
    if _USED not in node.stash:
        node.stash[_USED] = []
    return node.stash[_USED]


def _log_tails(one: Lab) -> str:
    out = [f"lab folder {one.folder}; logs in {one.folder / 'run'} and each host's etc/iSM_Log*.txt"]
    try:
        logs = one.logs()
    except Exception as exc:  # noqa: BLE001 - the report must not fail the report
        return "\n".join([*out, f"(cannot list the logs: {exc})"])
    for name, path in logs.items():
        if name == "setup":
            continue
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_LINES:]
        except OSError as exc:
            lines = [f"(cannot read: {exc.strerror})"]
        out.append(f"--- {name}: {path} (last {len(lines)} lines)")
        out += [f"  {line}" for line in lines]
    return "\n".join(out)


def _marker_file(item: pytest.Item, marker: pytest.Mark) -> Path | None:
    lab = marker.kwargs.get("lab", marker.args[0] if marker.args else None)
    if lab is None:
        return None
    if not isinstance(lab, (str, Path)):
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.snaplab(lab=...) takes a lab file name, not {lab!r}")
    path = Path(lab)
    return path if path.is_absolute() else (Path(item.path).parent / path).resolve()


# -- the labs of this session ---------------------------------------------------------------------


class _Labs:
    """The labs this session (xdist worker) started: one per lab file for ``snaplab_lab``/``lab``,
    and each ``lab_factory`` one; all stopped by ``stop_all`` (session end, unconfigure, exit)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        opt = config.option.snaplab_lab
        ini = config.getini("snaplab_lab_file")
        if opt:
            self.default_file: Path | None = Path(opt).absolute()
        elif ini:
            base = config.inipath.parent if config.inipath else config.rootpath
            self.default_file = (base / ini).resolve()
        else:
            self.default_file = None  # the guide's reference lab
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        self.base: Path | None = None
        self.count = 0
        self.running: list[Lab] = []
        self.sessions: dict[Path | None, Lab | BaseException] = {}
        self.checked: dict[Path, str] = {}
        self._old_term: Any = None
        atexit.register(self.stop_all)

    def check_file(self, path: Path, where: str) -> None:
        """Parse a lab file once: a ``pytest.UsageError`` naming it and the mistake if it is bad."""
        if path not in self.checked:
            from snaplab.deploy.errors import LabError
            from snaplab.deploy.spec import LabSpec

            try:
                LabSpec.load(path)
                self.checked[path] = ""
            except LabError as exc:
                self.checked[path] = f"snaplab: {where}: {' '.join(str(exc).split())}"
        if self.checked[path]:
            raise pytest.UsageError(self.checked[path])

    def _folder(self) -> Path:
        if self.base is None:
            root = self.config.option.snaplab_base or "/tmp"
            Path(root).mkdir(parents=True, exist_ok=True)
            # Short on purpose: <base>/snl<worker>-XXXXXXXX/lN/run/agent-<host>.sock < 107 bytes.
            self.base = Path(tempfile.mkdtemp(prefix=f"snl{self.worker.replace('gw', '')}-", dir=root))
            self._trap_sigterm()
        self.count += 1
        return self.base / f"l{self.count}"

    def start(self, lab: str | Path | Mapping[str, Any] | None, *, setup: bool = True) -> Lab:
        from snaplab.deploy.api import Lab, spec_of
        from snaplab.deploy.errors import LabError

        spec = spec_of(lab)  # a bad file or dict: LabFileError before a folder is made
        folder = self._folder()
        try:
            started = Lab.start(spec, folder, setup=setup)
        except LabError as exc:
            if str(exc).startswith("interrupted"):  # Ctrl-C during up: the session stops, not the test
                raise KeyboardInterrupt from exc
            raise
        self.running.append(started)
        return started

    def session_lab(self, path: Path | None) -> Lab:
        """The session's lab of ``path`` (None: the reference lab), started on first use with its
        starting checkpoint. A lab that failed to start fails every test that asks for it."""
        found = self.sessions.get(path)
        if found is None:
            try:
                found = self.start(path)
                with contextlib.suppress(_missing_checkpoints()):  # `lab` says so when it rolls back
                    found.checkpoint(START)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self.sessions[path] = exc
                raise
            self.sessions[path] = found
        if isinstance(found, BaseException):
            raise found
        return found

    def reset(self, one: Lab) -> None:
        one.clear_chaos()
        one.revive()  # a test may have stopped a host or crashed a daemon: a rollback needs them all
        one.rollback(START)

    def stop(self, one: Lab) -> None:
        if one in self.running:
            self.running.remove(one)
            with contextlib.suppress(Exception):
                one.stop()

    def stop_all(self) -> None:
        for one in list(reversed(self.running)):
            self.stop(one)
        self.sessions.clear()

    def close(self) -> None:
        self.stop_all()
        if self._old_term is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None
        self.remove_folder()

    def remove_folder(self) -> None:
        """Remove the labs' folders, unless a test failed (their logs) or ``--snaplab-keep``."""
        keep = _FAILED or self.config.option.snaplab_keep  # kept_lines() says where
        if self.base is not None and self.base.exists() and not self.running and not keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def kept_lines(self) -> list[str]:
        keep = self.base is not None and (_FAILED or self.config.option.snaplab_keep)
        return [f"snaplab: the labs' folders (logs) are kept in {self.base}"] if keep else []

    def _trap_sigterm(self) -> None:
        """SIGTERM (a CI timeout, xdist stopping a worker) unwinds like Ctrl-C, so the labs are stopped."""
        with contextlib.suppress(ValueError):  # not the main thread: nothing to trap
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                self._old_term = signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _missing_checkpoints() -> type[BaseException]:
    from snaplab.deploy.api import CheckpointsMissing

    return CheckpointsMissing
