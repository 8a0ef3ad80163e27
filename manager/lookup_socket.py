"""The manager's end of an array's look-up socket (array/lookup_socket.py): routing's look-ups on
one mTLS connection of length-prefixed ``LookupBatch``/``LookupReplies`` frames.

It answers as the Lookup stream does (lookups.py): look-ups asked in the same turn of the event
loop go out as one frame; when the connection cannot be made or ends, every look-up still waiting
gets ``StreamLost`` and is resent over gRPC. The replies are read by an ``asyncio.Protocol``
(no stream reader, no task woken per frame).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from snaplab.common.frames import FrameBuffer, frame
from snaplab.v1 import array_pb2

from .lookups import Lookups

log = logging.getLogger("snaplab.manager")

CONNECT_TIMEOUT = 5.0  # seconds to connect and finish the TLS handshake


class LookupSocket(Lookups):
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__()
        self._flush_due = False
        self._transport: asyncio.Transport | None = None
        self.failure = ""  # why it could not connect ("" if it did)
        self._connecting = self._loop.create_task(self._connect(host, port, context))

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self.lost

    async def _connect(self, host: str, port: int, context: ssl.SSLContext) -> None:
        try:
            transport, _ = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: _Replies(self), host, port, ssl=context, server_hostname=host
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.debug("look-up socket to %s:%d: %s", host, port, self.failure)
            self.close()
            return
        except asyncio.CancelledError:
            self.close()
            return
        if self.lost:  # closed while connecting
            transport.close()
            return
        self._transport = transport  # type: ignore[assignment]
        self._flush()  # what was asked while connecting

    def _wake(self) -> None:
        if not self._flush_due:  # one frame for what is asked in this turn of the loop
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._transport is None or self.lost or not self._batch.requests:
            return
        self._transport.write(frame(self._take().SerializeToString()))

    def _stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        else:
            self._connecting.cancel()


class _Replies(asyncio.Protocol):
    """The connection's replies, each frame a ``LookupReplies`` answered to its look-ups."""

    def __init__(self, lookups: LookupSocket) -> None:
        self.lookups = lookups
        self._frames = FrameBuffer()
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for payload in self._frames.feed(data):
                self.lookups._answer(array_pb2.LookupReplies.FromString(payload))
        except Exception as exc:  # noqa: BLE001 - FrameError, DecodeError: nothing more on it is trusted
            log.warning("look-up socket: %s; closed", exc)
            assert self._transport is not None
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("look-up socket ended: %s", exc)
        self.lookups.close()
