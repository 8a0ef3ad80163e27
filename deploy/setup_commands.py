"""A new lab's setup commands (the lab file's ``[[setup]]``), run on their hosts through the agents."""

from __future__ import annotations

from pathlib import Path

from .errors import LabError, first_line, one_line
from .folder import LabFolder, Report
from .spec import LabSpec

SETUP_TIMEOUT = 300.0  # one setup command (FORMAT of a large volume can take a while)


def run_setup(lab: LabFolder, spec: LabSpec, report: Report) -> None:
    """Each command in file order; the first that fails stops the setup (its output is in run/setup.log)."""
    if not spec.setup:
        return
    with open(lab.run / "setup.log", "a", encoding="utf-8") as log:
        for cmd in spec.setup:
            try:
                out, err, code = run_command(
                    lab.folder, cmd.host, list(cmd.argv), cmd.stdin, timeout=SETUP_TIMEOUT
                )
            except Exception as exc:  # noqa: BLE001 - the agent client raises its own kinds; one line either way
                raise LabError(
                    f"{spec.source}:{cmd.where}: setup command on {cmd.host} did not run: {cmd.line}: "
                    f"{one_line(exc) or type(exc).__name__}"
                ) from None
            log.write(f"--- {cmd.host}> {cmd.line}\n{out}{err}--- exit {code}\n")
            log.flush()
            if code != 0:
                raise LabError(
                    f"{spec.source}:{cmd.where}: setup command on {cmd.host} failed with status {code}: "
                    f"{cmd.line}: {first_line(err) or first_line(out) or 'no output'} (output in {lab.run / 'setup.log'})"
                )
            report(f"setup {cmd.host}> {cmd.line}: ok")


def run_command(
    lab_dir: Path, host: str, argv: list[str], stdin: str = "", timeout: float | None = None
) -> tuple[str, str, int]:
    """Run one command on ``host`` through its agent, as the command processes do
    (``snaplab.agent.cli.exec_command``): (stdout, stderr, exit status). No time limit unless
    ``timeout`` (a command such as ``iSMsc_wait`` may wait as long as it was told)."""
    from snaplab.agent.cli import exec_command  # imported here: `snaplab lab check` needs no agent code

    return exec_command(lab_dir, host, argv, stdin=stdin, timeout=timeout)
