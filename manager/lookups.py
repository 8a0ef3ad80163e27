"""Routing's look-ups in flight to one array, over the ``Array.Lookup`` gRPC stream or the array's
look-up socket (lookup_socket.py): what both carry, and the stream itself."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import grpc

from snaplab.common.rpc import SnapLabClientError
from snaplab.v1 import array_pb2, array_pb2_grpc

log = logging.getLogger("snaplab.manager")


class StreamLost(Exception):
    """The look-up stream or socket ended or failed before answering: resend over the unary RPC."""


def expire(fut: asyncio.Future[Any]) -> None:
    """A look-up's deadline: it fails as a unary call past its deadline would."""
    if not fut.done():
        fut.set_exception(SnapLabClientError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


class Lookups:
    """Concurrent look-ups told apart by id: each ``ask`` joins the batch waiting to be sent (the
    transport takes it with ``_take()`` when ``_wake()`` tells it) and gets its reply from
    ``_answer()``. When the transport ends (``close()``), every look-up still waiting gets
    ``StreamLost`` (look-ups change nothing, so resending them is safe)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, asyncio.Future[array_pb2.LookupReply]] = {}
        self._ids = itertools.count(1)
        self._batch = array_pb2.LookupBatch()
        self.lost = False

    def _wake(self) -> None:
        """A look-up joined the batch."""
        raise NotImplementedError

    def _stop(self) -> None:
        """End the transport (once)."""
        raise NotImplementedError

    def _take(self) -> array_pb2.LookupBatch:
        batch, self._batch = self._batch, array_pb2.LookupBatch()
        return batch

    def _answer(self, replies: array_pb2.LookupReplies) -> None:
        for reply in replies.replies:
            fut = self._pending.pop(reply.id, None)
            if fut is not None and not fut.done():
                fut.set_result(reply)

    def close(self) -> None:
        if not self.lost:
            self.lost = True
            self._stop()
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
        self._wake()
        timer = self._loop.call_later(timeout, expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self._pending.pop(i, None)


class LookupStream(Lookups):
    """One ``Array.Lookup`` stream. A writer task sends whatever look-ups are waiting as one batch
    whenever the previous write is done, so at low load each goes out at once and under load they
    share writes."""

    def __init__(self, stub: array_pb2_grpc.ArrayStub, metadata: tuple[tuple[str, str], ...] | None) -> None:
        super().__init__()
        self._call = stub.Lookup(metadata=metadata)
        self._waiting = asyncio.Event()
        self.unimplemented = False
        self._writer = self._loop.create_task(self._write())
        self._reader = self._loop.create_task(self._read())

    def _wake(self) -> None:
        self._waiting.set()

    def _stop(self) -> None:
        self._call.cancel()
        self._waiting.set()

    async def _write(self) -> None:
        try:
            while not self.lost:
                if not self._batch.requests:
                    self._waiting.clear()
                    await self._waiting.wait()
                    continue
                await self._call.write(self._take())
        except (grpc.RpcError, asyncio.InvalidStateError, asyncio.CancelledError):
            pass
        except Exception:  # pragma: no cover - a bug here must not leave look-ups hanging
            log.exception("Lookup stream writer failed")
        finally:
            self.close()

    async def _read(self) -> None:
        try:
            while True:
                replies = await self._call.read()
                if replies is grpc.aio.EOF:
                    break
                self._answer(replies)
        except grpc.RpcError as exc:
            self.unimplemented = exc.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            pass
        except Exception:  # pragma: no cover - a bug here must not leave look-ups hanging
            log.exception("Lookup stream reader failed")
        finally:
            self.close()
