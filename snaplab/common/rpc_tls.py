"""TLS material of a lab principal (its certificate, key and the lab CA) and the gRPC credentials made of it."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import grpc

MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]


@dataclass(frozen=True)
class _Material:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    @classmethod
    def from_folder(cls, folder: Path | str, name: str) -> Self:
        """``NAME.crt``, ``NAME.key`` and ``ca.crt`` of a lab PKI folder."""
        folder = Path(folder)
        return cls(
            (folder / f"{name}.crt").read_bytes(), (folder / f"{name}.key").read_bytes(), (folder / "ca.crt").read_bytes()
        )


@dataclass(frozen=True)
class ServerTLS(_Material):
    """What a daemon serves mTLS with."""


@dataclass(frozen=True)
class ClientTLS(_Material):
    """What a caller presents to a daemon."""


def server_credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    """mTLS: the client must present a certificate of the lab CA."""
    return grpc.ssl_server_credentials(
        [(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem, require_client_auth=True
    )


def channel_credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca_pem, private_key=tls.key_pem, certificate_chain=tls.cert_pem
    )


def ssl_context(tls: _Material, *, server: bool) -> ssl.SSLContext:
    """The same mTLS as the gRPC credentials, for a plain TLS socket (the array's look-up socket):
    TLS 1.2+, the lab CA only; a server requires the client's certificate, a client checks the
    server's name. ``ssl`` loads a certificate and key from files only, so they pass through a
    private temporary folder, removed at once."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=tls.ca_pem.decode("ascii"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    with tempfile.TemporaryDirectory(prefix="snaplab-tls-") as folder:  # mode 0700
        cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert.write_bytes(tls.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(tls.key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx
