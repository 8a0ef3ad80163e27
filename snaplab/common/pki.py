"""A throwaway lab CA and per-principal certificates (mTLS identities: CN = name, OU = role)."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("array", "manager", "host", "admin")
_TEN_YEARS = dt.timedelta(days=3652)
# Names become file names (<name>.crt) and the test identity header (name/role): keep them plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Identity:
    """Who is calling: the certificate's CN and OU."""

    name: str
    role: str


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: key generation takes microseconds, so fixtures can mint certificates freely.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    # Backdated a little so a freshly issued certificate is valid on hosts whose clocks lag.
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)


def make_ca(common_name: str = "SnapLab Lab CA") -> tuple[bytes, bytes]:
    """A self-signed CA valid for ten years: (cert_pem, key_pem)."""
    key = _new_key()
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SnapLab"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _TEN_YEARS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _san(hostnames: tuple[str, ...] | list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def issue(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    name: str,
    role: str,
    hostnames: tuple[str, ...] | list[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    sans: list[str] | None = None,
) -> tuple[bytes, bytes]:
    """A leaf certificate for principal ``name`` in ``role``, good for both server and client auth;
    ``sans``: more addresses or DNS names it is valid for (a machine's addresses on a netns lab)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid principal name {name!r}")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the lab CA key must be an EC key (see make_ca)")
    key = _new_key()
    now = _now()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SnapLab"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        # A leaf must not outlive its CA, or verifiers reject the chain at the end.
        .not_valid_after(min(now + _TEN_YEARS, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        # Every daemon is both a server and a client of the others, so one cert serves both ends.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(_san([*hostnames, *(sans or [])]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    # Keys are created 0600 from the start rather than chmod-ed after being world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_ca(folder: Path) -> tuple[bytes, bytes]:
    """Make a CA and write ``ca.crt`` / ``ca.key`` into ``folder``: (cert_pem, key_pem)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = make_ca()
    _write(folder / "ca.crt", cert_pem)
    _write(folder / "ca.key", key_pem, private=True)
    return cert_pem, key_pem


def write_principal(
    folder: Path, name: str, role: str, ca_cert_pem: bytes, ca_key_pem: bytes, *, sans: list[str] | None = None
) -> Path:
    """Issue a certificate and write ``<name>.crt`` / ``<name>.key`` into ``folder``; returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = issue(ca_cert_pem, ca_key_pem, name, role, sans=sans)
    _write(folder / f"{name}.crt", cert_pem)
    _write(folder / f"{name}.key", key_pem, private=True)
    return folder


@functools.lru_cache(maxsize=256)
def identity_from_pem(cert_pem: bytes) -> Identity:
    """The identity a lab certificate carries; ValueError if it has no CN or no known OU role.

    Cached: the server interceptor calls this on every RPC with the same few peer certificates.
    """
    subject = x509.load_pem_x509_certificate(cert_pem).subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(cns) != 1 or len(ous) != 1:
        raise ValueError("certificate must carry exactly one CN and one OU")
    name, role = str(cns[0].value), str(ous[0].value)
    if role not in ROLES:
        raise ValueError(f"certificate role {role!r} is not a lab role")
    return Identity(name, role)
