"""Our own length-prefixed frames, each up to MAX_MESSAGE_BYTES (trap 3 of docs/libp2p.md): libp2p keeps
no message boundaries on a stream.
"""

from __future__ import annotations

import struct

from libp2p.abc import INetStream

from core.envelope import MAX_MESSAGE_BYTES, MessageTooLarge

from .errors import FrameTooLarge, PeerUnavailable

READ_CHUNK_BYTES = 64 * 1024  # fewer, larger reads: each costs libp2p a yamux window update

_HEADER = struct.Struct(">I")  # frame length, then that many bytes of envelope


async def write_frame(stream: INetStream, data: bytes) -> None:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"a frame of {len(data)} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes")
    await stream.write(_HEADER.pack(len(data)) + data)


class FrameReader:
    """The frames of one stream. A stream read returns whatever has arrived (trap 3): read in a loop,
    asking for a chunk at a time, and keep what belongs to the next frame.
    """

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def read(self) -> bytes:
        await self._fill(_HEADER.size)
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_MESSAGE_BYTES:
            raise FrameTooLarge(f"a frame of {size} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes")
        end = _HEADER.size + size
        await self._fill(end)
        frame = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return frame

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = await self._stream.read(max(size - len(self._buffer), READ_CHUNK_BYTES))
            if not chunk:
                raise PeerUnavailable(f"the stream ended {size - len(self._buffer)} bytes short of a frame")
            self._buffer += chunk
