"""``snaplab cluster check CLUSTER``: the files every node keeps must match (guide 3.10 (9)).

Each node of a cluster keeps its own volume list (``etc/vollist.json``), control-volume definition
(``etc/cvdef.json``) and option settings (``etc/iSMrpl.ini``). Compared across the nodes: the LDs
each volume list holds (array, LD name, type, format, the CV definition; not disk numbers, volume
names or mount points, which are each node's own), the CV definitions and every ``[SECTION] KEY``
of the settings. Read from the nodes' folders, so a node that does not run is checked too.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path

from .folder import LabFolder
from .spec import ClusterSpec


def _vollist(etc: Path) -> set[str] | None:
    try:
        raw = json.loads((etc / "vollist.json").read_text())
    except FileNotFoundError:
        return None
    return {
        f"{e['array']} {e['ld_name']} {e['ld_type']} {e['format']}"
        + (" control" if e.get("definition") else "")
        for e in raw.get("entries", [])
        if e.get("partition") is None and e.get("array")
    }


def _cvdef(etc: Path) -> dict[str, str]:
    try:
        return dict(json.loads((etc / "cvdef.json").read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return {}


def _settings(etc: Path) -> dict[str, str]:
    p = configparser.ConfigParser()
    p.optionxform = str.upper  # type: ignore[assignment,method-assign]
    try:
        p.read_string((etc / "iSMrpl.ini").read_text(encoding="utf-8"))
    except (FileNotFoundError, configparser.Error):
        return {}
    return {f"[{s.upper()}] {k}": v.strip().upper() for s in p.sections() for k, v in p[s].items()}


def differences(lab: LabFolder, c: ClusterSpec) -> list[str]:
    """One line per difference between the nodes of ``c`` (empty: they match)."""
    etc = {n: lab.host_state(n) / "etc" for n in c.nodes}
    out: list[str] = []
    lists = {n: _vollist(e) for n, e in etc.items()}
    for n, v in lists.items():
        if v is None:
            out.append(f"volume list: {n} has none (iSMvollist -cr)")
    present = {n: v for n, v in lists.items() if v is not None}
    for entry in sorted(set().union(*present.values()) if present else set()):
        missing = [n for n, v in present.items() if entry not in v]
        if missing:
            out.append(f"volume list: {entry} is missing on {', '.join(missing)}")
    for kind, read in (("control volume definition", _cvdef), ("iSMrpl.ini", _settings)):
        values = {n: read(e) for n, e in etc.items()}
        for key in sorted(set().union(*values.values())):
            seen = {n: v.get(key, "-") for n, v in values.items()}
            if len(set(seen.values())) > 1:
                out.append(f"{kind}: {key}: " + ", ".join(f"{n}={x}" for n, x in seen.items()))
    return out
