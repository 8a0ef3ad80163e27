"""A thin client of the Manager service: one method per RPC; refusals raise SnapLabClientError."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

import grpc

from snaplab.common.rpc import ClientTLS, call_error, client_errors, make_channel
from snaplab.v1 import array_pb2, manager_pb2, manager_pb2_grpc


class WatchStream:
    """A live event stream: iterate it for ``Event`` messages; ``cancel()`` ends it (from any thread)."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[manager_pb2.Event]:
        try:
            yield from self._call
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
                return
            raise call_error(exc) from exc

    def cancel(self) -> None:
        self._call.cancel()


class ManagerClient:
    """Calls the manager as the identity of ``tls`` (mTLS). Replies are proto messages."""

    def __init__(self, target: str, tls: ClientTLS, *, timeout: float | None = 30.0) -> None:
        self.target = target
        self.channel = make_channel(target, tls)
        self.stub = manager_pb2_grpc.ManagerStub(self.channel)
        self.timeout = timeout

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        with client_errors():
            return getattr(self.stub, method)(
                request, timeout=timeout if timeout is not None else self.timeout
            )

    def enrol(
        self,
        role: str,
        *,
        platform: str = "windows",
        wwns: list[str] | None = None,
        ports: list[str] | None = None,
        cluster: str = "",
        cluster_role: str = "",
    ) -> manager_pb2.EnrolReply:
        return self._call(
            "Enrol",
            manager_pb2.EnrolRequest(
                role=role,
                platform=platform,
                wwns=wwns or [],
                ports=ports or [],
                cluster=cluster,
                cluster_role=cluster_role,
            ),
        )

    def route(
        self, via: str, *, array: str = "", timeout: float | None = None, **op: Any
    ) -> manager_pb2.ControlReply:
        """``route("bv001", create=array_pb2.CreateRequest(...))``: control I/O issued through ``via``."""
        return self._call("Route", manager_pb2.ControlRequest(array=array, via=via, **op), timeout)

    def snapshot(
        self, *, array: str = "", timeout: float | None = None, **op: Any
    ) -> manager_pb2.ControlReply:
        """B4: a snapshot operation from the management server itself (admin)."""
        return self._call("Snapshot", manager_pb2.ControlRequest(array=array, **op), timeout)

    def configure(self, array: str = "", **op: Any) -> array_pb2.ConfigReply:
        """``configure(bind_pool=array_pb2.BindPool(...))`` on the named (or only) array."""
        return self._call(
            "Configure", manager_pb2.ManagedConfig(array=array, request=array_pb2.ConfigRequest(**op))
        )

    def monitor(self, array: str = "") -> manager_pb2.MonitorReply:
        return self._call("Monitor", manager_pb2.MonitorRequest(array=array))

    def events(self, after_seq: int = 0, limit: int = 0) -> list[manager_pb2.Event]:
        return list(self._call("Events", manager_pb2.EventsRequest(after_seq=after_seq, limit=limit)).events)

    def watch(self, after_seq: int = 0) -> WatchStream:
        """Events after ``after_seq``, then live ones; no deadline (cancel the stream to end it)."""
        return WatchStream(self.stub.Watch(manager_pb2.EventsRequest(after_seq=after_seq)))

    def inject_fault(self, kind: str, target: str, array: str = "") -> array_pb2.ArrayState:
        return self._call(
            "InjectFault",
            manager_pb2.ManagedFault(array=array, fault=array_pb2.FaultRequest(kind=kind, target=target)),
        )

    def clear_fault(self, kind: str, target: str, array: str = "") -> array_pb2.ArrayState:
        return self._call(
            "ClearFault",
            manager_pb2.ManagedFault(array=array, fault=array_pb2.FaultRequest(kind=kind, target=target)),
        )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
