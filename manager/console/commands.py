"""Running a console command line: the admin client of the lab, errors as iSM lines, the console scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import ClientTLS, SnapLabClientError

from ..client import ManagerClient
from .cfg import cfg_usage, run_cfg
from .ioc import ioc_usage, run_ioc
from .options import DEFAULT_LAB, TIMEOUT, Usage
from .replication import COMMANDS as REPLICATION_COMMANDS
from .replication import rc_usage
from .snapshot import COMMANDS as SNAPSHOT_COMMANDS
from .snapshot import sc_restore, sc_usage
from .view import follow_events, follows, run_view, view_usage
from .xml_view import run_query, set_output, xml_document, xml_wanted

# -- entry points ----------------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[ManagerClient, list[str]], list[str]], Callable[[], str]]] = {
    "ismcfg": (run_cfg, cfg_usage),
    "ismview": (run_view, view_usage),
    "ismioc": (run_ioc, ioc_usage),
    "ismquery": (run_query, lambda: "Usage: iSMquery -cinder -xml -all\n"),
    "clioutmsg": (lambda client, args: [], lambda: "Usage: clioutmsg xml|text\n"),
    # SPEC B4: snapshot operations from the management server itself, as admin
    **{
        name.lower(): (run, lambda name=name: sc_usage(name))  # type: ignore[misc]
        for name, run in SNAPSHOT_COMMANDS.items()
    },
    **{
        name.lower(): (run, lambda name=name: rc_usage(name))  # type: ignore[misc]
        for name, run in REPLICATION_COMMANDS.items()
    },
}


def manager_target(lab_dir: Path) -> str:
    """The manager's HOST:PORT from ``<lab>/runtime.json``."""
    path = lab_dir / "runtime.json"
    try:
        target = json.loads(path.read_text())["manager"]["target"]
    except FileNotFoundError:
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"{path} does not exist; is the lab up?") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"{path} has no manager target") from None
    if not isinstance(target, str) or not target:
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"{path} has no manager target")
    return target


def _client(lab_dir: Path, target: str | None) -> ManagerClient:
    pki = lab_dir / "pki"
    try:
        tls = ClientTLS.from_folder(pki, "admin")
    except OSError:
        raise SnapLabError(E.LAB_UNKNOWN, detail=f"no admin certificate in {pki}") from None
    return ManagerClient(target or manager_target(lab_dir), tls, timeout=TIMEOUT)


def run_console(
    argv: list[str],
    lab_dir: str | Path,
    *,
    target: str | None = None,
    write: Callable[[str], None] | None = None,
) -> tuple[str, str, int]:
    """Run one console command line (``argv[0]`` is ``iSMcfg`` or ``iSMview``); returns (stdout, stderr, status).

    ``write``: where a command that writes as it goes (``iSMview -event -follow``) writes; without
    it such a command is refused."""
    name = argv[0].replace("\\", "/").rsplit("/", 1)[-1] if argv else ""
    if name.lower().endswith(".exe"):
        name = name[:-4]
    entry = COMMANDS.get(name.lower())
    if entry is None:
        return "", f"'{name}' is not recognized as an internal or external command.\n", 9009
    run, usage = entry
    args = list(argv[1:])
    if args and args[0].lower() in ("-h", "-help", "--help", "-?"):
        return usage(), "", 0
    client: ManagerClient | None = None
    lab = Path(lab_dir).expanduser()
    try:
        if name.lower() == "clioutmsg":  # a setting of the console, no call to the manager
            return "".join(line + "\n" for line in set_output(lab, args)), "", 0
        client = _client(lab, target)
        if name.lower() == "ismview" and args[:1] == ["-all"] and len(args) <= 2 and xml_wanted(lab):
            reply = client.monitor(args[1] if len(args) == 2 else "")
            return xml_document(reply, "iSMview", " ".join(args[1:]) + " ") + "\n", "", 0
        if name.lower() == "ismsc_restore" and write is not None:  # its progress as it goes
            lines = sc_restore(client, args, progress=write)
            return "".join(line + "\n" for line in lines), "", 0
        if name.lower() == "ismview" and follows(args):
            if write is None:
                raise Usage("-follow writes as events come: run it as a command of its own")
            follow_events(client, args, write)
            return "", "", 0
        lines = run(client, args)
        return "".join(line + "\n" for line in lines), "", 0
    except Usage as exc:
        usage_text = E.USAGE.text.format(detail=str(exc))
        return "", f"{name}:Error: {E.USAGE.msg_id}: {usage_text}\n{usage()}", 1
    except SnapLabError as exc:
        return "", f"{name}:Error: {exc.msg_id}: {exc.text}\n", 1
    except SnapLabClientError as exc:
        msg_id: str | None = exc.msg_id
        text = exc.text
        if not msg_id:
            if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                msg_id = E.MANAGER_UNREACHABLE.msg_id
                text = E.MANAGER_UNREACHABLE.text.format(name=client.target if client else "-")
            else:
                msg_id, text = E.INTERNAL.msg_id, E.INTERNAL.text.format(detail=exc.details or exc.code.name)
        return "", f"{name}:Error: {msg_id}: {text}\n", 1
    except Exception as exc:  # noqa: BLE001 - never a traceback for the operator
        return (
            "",
            f"{name}:Error: {E.INTERNAL.msg_id}: {E.INTERNAL.text.format(detail=type(exc).__name__)}\n",
            1,
        )
    finally:
        if client is not None:
            client.close()


def write_now(text: str) -> None:
    """Write to stdout at once (a follower's reader sees each line as it is logged)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _main(command: str) -> int:
    lab = os.environ.get("SNAPLAB_LAB") or DEFAULT_LAB
    try:
        out, err, code = run_console(
            [command, *sys.argv[1:]], lab, target=os.environ.get("SNAPLAB_MANAGER") or None, write=write_now
        )
    except KeyboardInterrupt:  # Ctrl-C before the command got going: no traceback
        return 130
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def main_cfg() -> int:
    """Console script ``iSMcfg``."""
    return _main("iSMcfg")


def main_view() -> int:
    """Console script ``iSMview``."""
    return _main("iSMview")


def main_query() -> int:
    """Console script ``iSMquery``."""
    return _main("iSMquery")


def main_clioutmsg() -> int:
    """Console script ``clioutmsg``."""
    return _main("clioutmsg")


def main_console(command: str) -> int:
    """Any console command by name (the management server's ``iSMsc_*``)."""
    return _main(command)
