"""Length-prefixed messages on an asyncio stream: a 4-byte big-endian length, then the message's bytes.

The wire of the array's look-up socket (array/lookup_socket.py, manager/lookup_socket.py). A frame
longer than the reader's limit ends the connection: nothing on it can be trusted any more.
"""

from __future__ import annotations

import asyncio
import struct

_HEADER = struct.Struct(">I")
MAX_FRAME = 4 * 1024 * 1024  # a look-up batch is at most 10,000 small requests (validation.py)


class FrameError(Exception):
    """The peer sent a frame over the limit or ended inside one."""


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes | None:
    """The next frame's bytes; None when the peer closed cleanly between frames."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("connection ended inside a frame header") from None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise FrameError(f"frame of {size} bytes is over the limit of {limit}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError(f"connection ended inside a frame of {size} bytes") from None
