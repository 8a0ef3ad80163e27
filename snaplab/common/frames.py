"""Length-prefixed messages: a 4-byte big-endian length, then the message's bytes.

The wire of the array's look-up socket (array/lookup_socket.py, manager/lookup_socket.py): both
ends are ``asyncio.Protocol``s that cut what they receive into frames with a :class:`FrameBuffer`
(no stream reader, no task woken per frame). A frame longer than the limit ends the connection:
nothing on it can be trusted any more.
"""

from __future__ import annotations

import struct

_HEADER = struct.Struct(">I")
MAX_FRAME = 4 * 1024 * 1024  # a look-up batch is at most 10,000 small requests (validation.py)


class FrameError(Exception):
    """The peer sent a frame over the limit or ended inside one."""


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """The frames in the bytes received so far: ``feed(data)`` returns those now complete."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self._held = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        held = self._held
        held += data
        out: list[bytes] = []
        pos, end = 0, len(held)
        while end - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(held, pos)
            if size > self.limit:
                raise FrameError(f"frame of {size} bytes is over the limit of {self.limit}")
            stop = pos + _HEADER.size + size
            if stop > end:
                break
            out.append(bytes(held[pos + _HEADER.size : stop]))
            pos = stop
        del held[:pos]
        return out

    def check_ended(self) -> None:
        """At the end of the connection: FrameError if it ended inside a frame."""
        if self._held:
            raise FrameError(f"connection ended inside a frame ({len(self._held)} bytes of it)")

