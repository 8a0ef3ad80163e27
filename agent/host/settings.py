"""The host's option settings (``etc/iSMrpl.ini``), its command trace (``etc/iSM_Log<yyyymmdd>.txt``)
and its operation trace (``log/operations.jsonl``: one JSON line per command run; iSMvolgather).

Settings, ``etc/iSMrpl.ini`` (read at each use; ON/OFF, YES/NO, 1/0)::

    [SNAPSHOT]
    MULTI_PARTITION = OFF   ; ON: snapshot, restore and link may act on LDs holding several partitions (A11)
    GPT = OFF               ; ON: they may act on GPT disks (usage format WG) (A11)
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from snaplab.agent.commands.base import trace_line

log = logging.getLogger("snaplab.agent.host")

OPERATIONS_KEPT = 1 << 20  # bytes of the operation trace before it rolls over to operations.jsonl.1

DEFAULT_INI = """\
; SnapControl option settings of this server (SnapLab). Values: ON or OFF.
[SNAPSHOT]
; ON: snapshot, restore and link may act on an LD that holds several partitions or logical drives.
MULTI_PARTITION = OFF
; ON: they may act on GPT disks (the LD's usage format must be WG).
GPT = OFF
"""


class Settings:
    """Part of Host: iSMrpl.ini, read at each use, and the message log."""

    # State that Host.__init__ sets (host.py), named here so this part reads on its own.
    name: str
    etc: Path
    _trace_lock: threading.Lock

    def settings(self) -> configparser.ConfigParser:
        cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
        try:
            cp.read(self.etc / "iSMrpl.ini", encoding="utf-8")
        except configparser.Error as exc:
            log.warning("iSMrpl.ini is not readable: %s", exc)
        return cp

    def setting(self, section: str, key: str, default: str = "") -> str:
        cp = self.settings()
        for s in cp.sections():
            if s.upper() == section.upper():
                return cp.get(s, key, raw=True, fallback=default).strip()  # raw: hook commands may hold %
        return default

    def flag(self, section: str, key: str, default: bool = False) -> bool:
        value = self.setting(section, key, "").upper()
        if value in ("ON", "YES", "1", "TRUE"):
            return True
        if value in ("OFF", "NO", "0", "FALSE"):
            return False
        return default

    def lazy_write_delay(self) -> float:
        """[LAZYWRITER] DELAY: seconds before the lazy writer writes a file (agent/fs/lazywriter.py;
        0 off). A value that is not a number is the default, with a warning."""
        from snaplab.agent.fs.lazywriter import DEFAULT_DELAY

        raw = self.setting("LAZYWRITER", "DELAY", "")
        if not raw:
            return DEFAULT_DELAY
        try:
            value = float(raw)
        except ValueError:
            log.warning("iSMrpl.ini [LAZYWRITER] DELAY %r is not a number of seconds", raw)
            return DEFAULT_DELAY
        return max(0.0, value)

    def layout_options(self) -> tuple[bool, bool]:
        """(allow_multi_partition, allow_gpt) from iSMrpl.ini [SNAPSHOT] MULTI_PARTITION / GPT."""
        return self.flag("SNAPSHOT", "MULTI_PARTITION"), self.flag("SNAPSHOT", "GPT")

    def trace(self, command: str, classification: str, msg_id: str, text: str) -> None:
        """Append one message-log line (SPEC §8) to etc/iSM_Log<yyyymmdd>.txt; never fails the command."""
        line = trace_line(self.name, command, classification, msg_id, text)
        try:
            with (
                self._trace_lock,
                open(self.etc / f"iSM_Log{datetime.now():%Y%m%d}.txt", "a", encoding="utf-8") as f,
            ):
                f.write(line + "\n")
        except OSError as exc:
            log.warning("command trace not written: %s", exc)

    @property
    def operations_path(self) -> Path:
        return self.etc.parent / "log" / "operations.jsonl"

    def record_operation(self, record: dict) -> None:
        """Append one command's record (time, argv, exit status, duration, error id) to the
        operation trace; never fails the command. The trace rolls over at ``OPERATIONS_KEPT``."""
        path = self.operations_path
        try:
            with self._trace_lock:
                path.parent.mkdir(exist_ok=True)
                if path.exists() and path.stat().st_size > OPERATIONS_KEPT:
                    os.replace(path, path.with_name(path.name + ".1"))
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.warning("operation trace not written: %s", exc)
