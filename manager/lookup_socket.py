"""The manager's end of an array's look-up socket (array/lookup_socket.py): routing's look-ups on
one mTLS connection of length-prefixed ``LookupBatch``/``LookupReplies`` frames.

It answers as the Lookup stream does (lookups.py): look-ups asked in the same turn of the event
loop go out as one frame; when the connection cannot be made or ends, every look-up still waiting
gets ``StreamLost`` and is resent over gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from snaplab.common.frames import FrameError, frame, read_frame
from snaplab.v1 import array_pb2

from .lookups import Lookups

log = logging.getLogger("snaplab.manager")

CONNECT_TIMEOUT = 5.0  # seconds to connect and finish the TLS handshake


class LookupSocket(Lookups):
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__()
        self._flush_due = False
        self._writer: asyncio.StreamWriter | None = None
        self.failure = ""  # why it could not connect ("" if it did)
        self._reader = self._loop.create_task(self._run(host, port, context))

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self.lost

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
                self._answer(array_pb2.LookupReplies.FromString(data))
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

    def _wake(self) -> None:
        if not self._flush_due:  # one frame for what is asked in this turn of the loop
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._writer is None or self.lost or not self._batch.requests:
            return
        self._writer.write(frame(self._take().SerializeToString()))

    def _stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self._reader.cancel()
