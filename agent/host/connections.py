"""The host's connections: the manager (enrolment, control I/O) and the arrays (the SAN's block I/O)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
from snaplab.agent.commands.base import CommandError
from snaplab.agent.host.model import Disk
from snaplab.san.array_client import ArrayClient

from snaplab.common.errors import E
from snaplab.common.rpc import ClientTLS, SnapLabClientError, call_error, make_channel
from snaplab.v1 import manager_pb2, manager_pb2_grpc


class Connections:
    """Part of Host: the manager and the arrays, called with this host's certificate."""

    # State that Host.__init__ sets (host.py), named here so this part reads on its own.
    name: str
    certs: Path | None
    manager_target: str
    arrays: dict[str, str]
    array_targets: dict[str, str]
    io: dict[str, int]
    io_lock: threading.Lock
    _clients: dict[str, ArrayClient]
    _manager_channel: grpc.Channel | None
    _manager: manager_pb2_grpc.ManagerStub | None

    def _tls(self) -> ClientTLS | None:
        return ClientTLS.from_folder(self.certs, self.name) if self.certs is not None else None

    @property
    def manager(self) -> manager_pb2_grpc.ManagerStub:
        """The manager, called with this host's certificate (control I/O routing, B3)."""
        if self._manager is None:
            if not self.manager_target or self.certs is None:
                raise CommandError(E.NOT_ENROLLED, name=self.name)
            self._manager_channel = make_channel(self.manager_target, self._tls())
            self._manager = manager_pb2_grpc.ManagerStub(self._manager_channel)
        return self._manager

    def enrol(self, timeout: float = 10.0) -> dict[str, str]:
        """Register with the manager (B2); keeps the array endpoints it answers."""
        req = manager_pb2.EnrolRequest(
            role=self.role,
            platform=self.platform,
            wwns=self.wwns,
            ports=self.ports,
            cluster=self.cluster,
            cluster_role=self.cluster_role,
        )
        try:
            reply = self.manager.Enrol(req, timeout=timeout)
        except grpc.RpcError as exc:
            raise call_error(exc) from None
        arrays = {a.name: self.array_targets.get(a.name, a.target) for a in reply.arrays}
        if arrays != self.arrays:
            for c in self._clients.values():
                c.close()
            self._clients.clear()
        self.arrays = arrays
        self._set_meta("arrays", json.dumps(arrays))
        self.enrolled = True
        return arrays

    def array_name(self, name: str = "") -> str:
        if name:
            if name not in self.arrays:
                raise CommandError(E.ARRAY_UNKNOWN, name=name)
            return name
        if len(self.arrays) == 1:
            return next(iter(self.arrays))
        if not self.arrays:
            raise CommandError(E.NOT_ENROLLED, name=self.name)
        raise CommandError(E.USAGE, detail="several disk arrays: name one")

    def array(self, name: str = "") -> ArrayClient:
        """The array ``name`` ("" = the only one) as this host: block I/O and ``Disks`` (the SAN)."""
        name = self.array_name(name)
        client = self._clients.get(name)
        if client is None:
            target = self.arrays[name]
            tls = self._tls()
            client = ArrayClient(target, tls, test_identity=None if tls else f"{self.name}/host")
            self._clients[name] = client
        return client

    # -- block I/O ---------------------------------------------------------------------------
    def _count(self, kind: str, n: int, calls: int = 1) -> None:
        with self.io_lock:
            self.io[f"{kind}_calls"] += calls
            self.io[f"{kind}_bytes"] += n

    def read_disk(self, disk: Disk, offset: int, length: int) -> bytes:
        if disk.local:
            return bytes(length)
        if not disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        try:
            data = self.array(disk.array).read(disk.ld_name, offset, length)
        except SnapLabClientError as exc:
            raise CommandError.of(exc, array=disk.array) from None
        self._count("read", len(data))
        return data

    def read_disk_chunks(self, disk: Disk, offset: int, length: int) -> Iterator[bytes | memoryview]:
        """``read_disk`` as the array's messages arrive (a mount's streaming read)."""
        if disk.local:
            yield bytes(length)
            return
        if not disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        self._count("read", 0)
        try:
            for data in self.array(disk.array).read_chunks(disk.ld_name, offset, length):
                self._count("read", len(data), calls=0)
                yield data
        except SnapLabClientError as exc:
            raise CommandError.of(exc, array=disk.array) from None

    def write_disk(self, disk: Disk, offset: int, data: bytes) -> None:
        if disk.local:
            raise CommandError(E.DISK_REFUSED)
        if not disk.ready:
            raise CommandError(E.PATH_NOT_NORMAL)
        try:
            self.array(disk.array).write(disk.ld_name, offset, data)
        except SnapLabClientError as exc:
            raise CommandError.of(exc, array=disk.array) from None
        self._count("write", len(data))
