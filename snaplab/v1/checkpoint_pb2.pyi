from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CheckpointRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CheckpointReply(_message.Message):
    __slots__ = ("name", "changes", "taken_at", "event_seq", "bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    changes: int
    taken_at: float
    event_seq: int
    bytes: int
    def __init__(self, name: _Optional[str] = ..., changes: _Optional[int] = ..., taken_at: _Optional[float] = ..., event_seq: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...
