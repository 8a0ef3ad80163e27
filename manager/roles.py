"""Who may call what on the management server: the caller's role (its certificate's OU) checked."""

from __future__ import annotations

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity

HOST_ROLE = ("host",)
ADMIN_ROLE = ("admin",)


def require_role(ident: Identity, roles: tuple[str, ...], what: str) -> None:
    """iSM (control denied) unless the caller's role is one of ``roles``."""
    if ident.role not in roles:
        raise SnapLabError(E.CONTROL_DENIED, detail=f"{ident.role} {ident.name} may not {what}")
