"""What the array says when its storage fails (issue 8 item 9): the file system of its state folder
(``array.db`` and the LDs' data files) full, not writable, or failing. Such a failure is a refusal
with its own iSM message, logged with its cause; it never ends the daemon (engine.py's ``_tx``)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from snaplab.common.errors import E, SnapLabError

STORAGE_ERRORS = (OSError, sqlite3.Error)  # what a failing file system raises through os and SQLite

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # EFBIG: a file-size limit (RLIMIT_FSIZE)
_UNWRITABLE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
# SQLite's primary result codes (the low byte of an extended one)
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_FULL, _SQLITE_CANTOPEN = 3, 8, 13, 14


def storage_refusal(exc: BaseException) -> SnapLabError:
    """The catalogue refusal for a storage error: full (iSM31160), not writable (iSM31161), or
    failed (iSM31162), naming the file (not its folder) and the system's own words."""
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        detail = f"array.db: {exc}"
        if code == _SQLITE_FULL:
            return SnapLabError(E.STORAGE_FULL, detail=detail)
        if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN):
            return SnapLabError(E.STORAGE_UNWRITABLE, detail=detail)
        return SnapLabError(E.STORAGE_FAILED, detail=detail)
    if isinstance(exc, OSError):
        what = exc.strerror or type(exc).__name__
        detail = f"{Path(exc.filename).name}: {what}" if exc.filename else what
        if exc.errno in _FULL_ERRNOS:
            return SnapLabError(E.STORAGE_FULL, detail=detail)
        if exc.errno in _UNWRITABLE_ERRNOS:
            return SnapLabError(E.STORAGE_UNWRITABLE, detail=detail)
        return SnapLabError(E.STORAGE_FAILED, detail=detail)
    return SnapLabError(E.STORAGE_FAILED, detail=type(exc).__name__)


def unreadable(exc: BaseException) -> SnapLabError:
    """The refusal while the state cannot be (re)loaded from storage (iSM31163)."""
    return SnapLabError(E.STATE_UNREADABLE, detail=storage_refusal(exc).text.rpartition("(")[2].rstrip(")"))
