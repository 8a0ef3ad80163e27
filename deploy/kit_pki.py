"""``snaplab pki``: the lab CA for deploy kits, and certificates for machines that join later."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from snaplab.common import pki

from .errors import LabError

# A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123), 253 characters at most.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
SERVER_ROLES = ("array", "manager")  # they serve TCP: their clients check the address they dial
DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")


def check_san(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.removesuffix(".")
    if name and len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split(".")):
        return name
    raise LabError(f"--san {text!r} is neither an IP address nor a DNS name")


def make_ca(folder: Path) -> Path:
    if (folder / "ca.key").exists():
        raise LabError(
            f"{folder} already holds a CA (ca.key); issue certificates from it with: snaplab pki issue"
        )
    try:
        pki.write_ca(folder)
    except OSError as exc:
        raise LabError(f"cannot write the CA in {folder}: {exc.strerror}") from None
    return folder / "ca.crt"


def issue(ca: Path, name: str, role: str, sans: list[str], out: Path) -> Path:
    """``<out>/<name>.crt`` and ``.key`` from the CA in ``ca``, with ``ca.crt`` beside them."""
    if role not in pki.ROLES:
        raise LabError(f"--role {role!r} is not a lab role ({', '.join(pki.ROLES)})")
    checked = [check_san(s) for s in sans]
    if role in SERVER_ROLES and not checked:
        raise LabError(f"a certificate of role {role} needs --san: the addresses or names its clients dial")
    try:
        ca_cert, ca_key = (ca / "ca.crt").read_bytes(), (ca / "ca.key").read_bytes()
    except OSError as exc:
        raise LabError(
            f"cannot read the lab CA: {exc.strerror}: {exc.filename} (make one with: snaplab pki ca)"
        ) from None
    if (out / f"{name}.crt").exists():
        raise LabError(f"{out / f'{name}.crt'} already exists (remove it to issue a new one)")
    try:
        cert, key = pki.issue(ca_cert, ca_key, name, role, hostnames=checked or list(DEFAULT_SANS))
    except ValueError as exc:
        raise LabError(str(exc)) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write(out / f"{name}.crt", cert, 0o644)
        _write(out / f"{name}.key", key, 0o600)
        if not (out / "ca.crt").exists():
            _write(out / "ca.crt", ca_cert, 0o644)
    except OSError as exc:
        raise LabError(f"cannot write the certificate in {out}: {exc.strerror}") from None
    return out / f"{name}.crt"


def _write(path: Path, data: bytes, mode: int) -> None:
    # A key is created 0600, never world-readable for a moment (as snaplab.common.pki writes them).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
