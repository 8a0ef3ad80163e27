"""`snaplab lab checkpoint NAME`, `snaplab lab rollback NAME`, `snaplab lab checkpoints` (deploy/checkpoints.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .folder import default_lab_dir


def add_parsers(lab_sub: argparse._SubParsersAction, lab_opt: argparse.ArgumentParser) -> None:
    """The three subcommands of ``snaplab lab``."""
    take = lab_sub.add_parser(
        "checkpoint", parents=[lab_opt], help="take a named checkpoint of the running lab"
    )
    take.add_argument("name", metavar="NAME", help="checkpoint name (1-32 letters, digits, _ . -)")
    back = lab_sub.add_parser(
        "rollback", parents=[lab_opt], help="bring the whole running lab back to a named checkpoint"
    )
    back.add_argument("name", metavar="NAME")
    lab_sub.add_parser("checkpoints", parents=[lab_opt], help="list the lab's checkpoints")


def _lab_dir(args: argparse.Namespace) -> Path:
    return Path(args.lab) if getattr(args, "lab", None) else default_lab_dir()


def _enter(lab_dir: Path) -> None:
    """On a netns lab, this process joins the manager's namespace first (where the daemons are reached)."""
    from . import netns
    from .lab import Lab

    netns.enter_lab(Lab(lab_dir))


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from . import checkpoints

    _enter(_lab_dir(args))
    start = time.monotonic()
    info = checkpoints.take(_lab_dir(args), args.name)
    print(f"checkpoint {info.name} taken ({time.monotonic() - start:.2f} s; event log at {info.event_seq})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from . import checkpoints

    _enter(_lab_dir(args))
    start = time.monotonic()
    checkpoints.rollback(_lab_dir(args), args.name)
    print(f"lab rolled back to checkpoint {args.name} ({time.monotonic() - start:.2f} s)")
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from . import checkpoints

    infos = checkpoints.list_checkpoints(_lab_dir(args))
    if not infos:
        print("no checkpoints")
        return 0
    rows = [["NAME", "TAKEN", "EVENT_SEQ"]]
    rows += [
        [i.name, time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(i.taken_at)), str(i.event_seq)]
        for i in infos
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


COMMANDS = {
    ("lab", "checkpoint"): cmd_checkpoint,
    ("lab", "rollback"): cmd_rollback,
    ("lab", "checkpoints"): cmd_checkpoints,
}
