"""TLS material of a lab principal (its certificate, key and the lab CA) and the gRPC credentials made of it."""

from __future__ import annotations

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
