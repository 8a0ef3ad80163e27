"""Who may use the web console: a login token bound to the lab's admin, sessions, CSRF and Origin checks.

The token is the lab's admin secret for the browser: written 0600 into the manager's state folder
(``console.token``), printed by ``snaplab console``, compared in constant time. A login opens a
session: an HttpOnly, Secure, SameSite=Strict cookie and a CSRF token the page sends back in a
header on every POST. Every POST must also come from the console's own origin (``Origin``), so a
page of another site can neither log in nor operate, even with the cookie.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from snaplab.common.errors import E, SnapLabError

COOKIE = "snaplab_console"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 8 * 3600  # a working day; then log in again
MAX_SESSIONS = 64  # the oldest is dropped past this: a lab has a handful of operators
TOKEN_FILE = "console.token"


def load_or_make_token(state: Path) -> str:
    """The console token of this manager: kept across restarts so a logged-in page survives them."""
    path = state / TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token
    except (OSError, UnicodeDecodeError):
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token


@dataclass
class Session:
    csrf: str
    expires: float


class ConsoleAuth:
    def __init__(self, token: str, *, clock=time.monotonic) -> None:
        self._token = token.encode()
        self._sessions: dict[str, Session] = {}
        self._clock = clock

    def login(self, offered: object) -> tuple[str, Session]:
        """A new session for the right token; iSM31350 otherwise."""
        if not isinstance(offered, str) or not offered:
            raise SnapLabError(E.CONSOLE_LOGIN, detail="no token given")
        if not hmac.compare_digest(offered.encode(), self._token):
            raise SnapLabError(E.CONSOLE_LOGIN, detail="the token is wrong")
        return self.open_session()

    def open_session(self) -> tuple[str, Session]:
        """A session for a caller already proven to be the admin (token, or admin client certificate)."""
        now = self._clock()
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        sid = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), now + SESSION_SECONDS)
        self._sessions[sid] = session
        return sid, session

    def session(self, sid: str | None) -> Session:
        """The live session of a cookie; iSM31351 without one."""
        s = self._sessions.get(sid or "")
        if s is None or s.expires <= self._clock():
            raise SnapLabError(E.CONSOLE_SESSION)
        return s

    def logout(self, sid: str | None) -> None:
        self._sessions.pop(sid or "", None)

    @staticmethod
    def check_csrf(session: Session, offered: str | None) -> None:
        if not offered or not hmac.compare_digest(offered.encode(), session.csrf.encode()):
            raise SnapLabError(E.CONSOLE_FORBIDDEN, detail="the request carries no valid CSRF token")


def check_origin(origin: str | None, fetch_site: str | None, own_origin: str) -> None:
    """A state-changing request must come from the console's own pages (iSM31352 otherwise).

    Browsers send ``Origin`` on every POST; a request without one (a script's, not a page's) must at
    least not say it is cross-site."""
    if origin is not None:
        if origin != own_origin:
            raise SnapLabError(E.CONSOLE_FORBIDDEN, detail=f"origin {origin[:80]}")
        return
    if fetch_site not in (None, "same-origin", "none"):
        raise SnapLabError(E.CONSOLE_FORBIDDEN, detail=f"fetch site {fetch_site[:20]}")
