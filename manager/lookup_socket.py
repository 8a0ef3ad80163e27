"""The manager's end of an array's look-up socket (array/lookup_socket.py): routing's look-ups on
one mTLS connection of length-prefixed ``LookupBatch``/``LookupReplies`` frames.

It answers as ``arrays._LookupStream`` does (``ask``, ``close``, ``lost``): look-ups asked in the
same turn of the event loop go out as one frame; when the connection cannot be made or ends, every
look-up still waiting gets ``StreamLost`` and is resent over gRPC (look-ups change nothing).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import Any

import grpc

from snaplab.common.frames import FrameError, frame, read_frame
from snaplab.common.rpc import SnapLabClientError
from snaplab.v1 import array_pb2

log = logging.getLogger("snaplab.manager")

CONNECT_TIMEOUT = 5.0  # seconds to connect and finish the TLS handshake


class StreamLost(Exception):
    """The look-up stream or socket ended or failed before answering: resend over the unary RPC."""


class LookupSocket:
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, asyncio.Future[array_pb2.LookupReply]] = {}
        self._ids = itertools.count(1)
        self._batch = array_pb2.LookupBatch()
        self._flush_due = False
        self._writer: asyncio.StreamWriter | None = None
        self.lost = False
        self.failure = ""  # why it could not connect ("" if it did)
        self._reader = self._loop.create_task(self._run(host, port, context))

    async def _run(self, host: str, port: int, context: ssl.SSLContext) -> None:
        try:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=host), CONNECT_TIMEOUT
            )
            self._flush()  # what was asked while connecting
            while True:
                data = await read_frame(reader)
                if data is None:
                    break
                for reply in array_pb2.LookupReplies.FromString(data).replies:
                    fut = self._pending.pop(reply.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(reply)
        except (OSError, ssl.SSLError, TimeoutError, FrameError, asyncio.IncompleteReadError) as exc:
            if self._writer is None:
                self.failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.debug("look-up socket to %s:%d ended: %s", host, port, exc)
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - a bug here must not leave look-ups hanging
            log.exception("look-up socket reader failed")
        finally:
            self.close()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self.lost

    def _flush(self) -> None:
        self._flush_due = False
        if self._writer is None or self.lost or not self._batch.requests:
            return
        batch, self._batch = self._batch, array_pb2.LookupBatch()
        self._writer.write(frame(batch.SerializeToString()))

    def close(self) -> None:
        if not self.lost:
            self.lost = True
            if self._writer is not None:
                self._writer.close()
            else:
                self._reader.cancel()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(StreamLost())

    async def ask(self, field: str, request: Any, timeout: float) -> array_pb2.LookupReply:
        if self.lost:
            raise StreamLost()
        i = next(self._ids)
        fut: asyncio.Future[array_pb2.LookupReply] = self._loop.create_future()
        self._pending[i] = fut
        getattr(self._batch.requests.add(id=i), field).CopyFrom(request)
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush)
        timer = self._loop.call_later(timeout, expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(i, None)


def expire(fut: asyncio.Future[Any]) -> None:
    """A look-up's deadline: it fails as a unary call past its deadline would."""
    if not fut.done():
        fut.set_exception(SnapLabClientError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
