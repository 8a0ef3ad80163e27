from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("payload", "size", "chunk_size")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    size: int
    chunk_size: int
    def __init__(self, payload: _Optional[bytes] = ..., size: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class EchoChunk(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("payload", "size")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    size: int
    def __init__(self, payload: _Optional[bytes] = ..., size: _Optional[int] = ...) -> None: ...
