"""The arrays a manager manages: one mTLS client each (manager certificate) and a short-lived description cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from snaplab.array.client import ArrayClient

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import ClientTLS, SnapLabClientError, client_errors
from snaplab.v1 import array_pb2

from . import serde
from .routing import ArrayView

DESCRIBE_TTL = 1.0  # seconds a Describe answer serves routing decisions
CALL_TIMEOUT = 30.0
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class ArrayLink:
    """One managed array: ``key`` is the name given on the command line (``--array KEY=HOST:PORT``).

    ``describe()`` is cached for at most ``ttl`` seconds and dropped by ``invalidate()`` (after any
    configuration change the manager makes), so routing costs no round trip in the common case."""

    def __init__(
        self,
        key: str,
        target: str,
        tls: ClientTLS | None,
        *,
        ttl: float = DESCRIBE_TTL,
        test_identity: str | None = None,
        on_reachability: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.key = key
        self.on_reachability = on_reachability
        self.target = target
        self.client = ArrayClient(target, tls, test_identity=test_identity, timeout=CALL_TIMEOUT)
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, array_pb2.ArrayState, ArrayView] | None = None
        self.last_name = key  # the array's own name, as last described

    @property
    def names(self) -> set[str]:
        return {self.key, self.last_name}

    def call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One Array RPC as the manager; an array that does not answer is iSM31065, refusals pass through."""
        try:
            with client_errors():
                reply = getattr(self.client.stub, method)(
                    request, timeout=timeout if timeout is not None else CALL_TIMEOUT
                )
        except SnapLabClientError as exc:
            if exc.code in _UNREACHABLE and not exc.msg_id:
                self._reached(False)
                raise SnapLabError(E.ARRAY_UNREACHABLE, name=self.key) from None
            self._reached(True)
            raise
        self._reached(True)
        return reply

    def _reached(self, ok: bool) -> None:
        if self.on_reachability is not None:
            self.on_reachability(self.key, ok)

    def describe(self) -> array_pb2.ArrayState:
        return self._describe()[0]

    def view(self) -> ArrayView:
        return self._describe()[1]

    def _describe(self) -> tuple[array_pb2.ArrayState, ArrayView]:
        with self._lock:
            cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1], cached[2]
        state = self.call("Describe", array_pb2.DescribeRequest())
        view = serde.array_view(state)
        with self._lock:
            self._cached = (time.monotonic(), state, view)
            self.last_name = state.name or self.key
        return state, view

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def close(self) -> None:
        self.client.close()


class ArrayRegistry:
    """The managed arrays by key; requests may name an array by key or by its own name."""

    def __init__(self, links: list[ArrayLink]) -> None:
        self.links = links

    def get(self, name: str, *, via: str = "") -> ArrayLink:
        """The array a request names; empty names the only array (or, with several, the one whose
        LDs include ``via`` when exactly one does). Unknown: iSM31064."""
        if name:
            for link in self.links:
                if name in link.names:
                    return link
            raise SnapLabError(E.ARRAY_UNKNOWN, name=name)
        if len(self.links) == 1:
            return self.links[0]
        if via:
            having = []
            for link in self.links:
                try:
                    if via in link.view().lds:
                        having.append(link)
                except SnapLabError:
                    continue
            if len(having) == 1:
                return having[0]
        raise SnapLabError(E.ARRAY_UNKNOWN, name="(name the disk array: several are managed)")

    def select(self, name: str) -> list[ArrayLink]:
        """Every array, or the one ``name`` names."""
        return [self.get(name)] if name else list(self.links)

    def close(self) -> None:
        for link in self.links:
            link.close()
