"""A host's settings from the lab file: the ``[QUIESCE]`` hooks of iSMrpl.ini (SnapLab extension, issue 14)."""

from __future__ import annotations

import re

from snaplab.agent.host.settings import DEFAULT_INI

from .folder import LabFolder
from .spec import HostSpec

_SECTION = re.compile(r"^\[QUIESCE\][^\[]*", re.MULTILINE | re.IGNORECASE)


def quiesce_section(h: HostSpec) -> str:
    lines = ["[QUIESCE]", "; SnapLab extension: iSMsc_create -quiesce hooks (docs/extensions-sra-quiesce.md)"]
    lines += [f"{key.upper()} = {value}" for key, value in h.quiesce.items()]
    return "\n".join(lines) + "\n"


def write_quiesce_settings(lab: LabFolder, h: HostSpec) -> None:
    """Before the host's agent starts: its iSMrpl.ini gets the lab file's hooks (a section of an
    earlier start is replaced; the rest of the file is kept). Nothing is written without hooks."""
    if not h.quiesce:
        return
    etc = lab.host_state(h.name) / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    ini = etc / "iSMrpl.ini"
    text = ini.read_text(encoding="utf-8") if ini.exists() else DEFAULT_INI
    text = _SECTION.sub("", text).rstrip("\n") + "\n\n" + quiesce_section(h)
    ini.write_text(text, encoding="utf-8")
