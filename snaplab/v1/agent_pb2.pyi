from snaplab.v1 import checkpoint_pb2 as _checkpoint_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CommandRequest(_message.Message):
    __slots__ = ("argv", "stdin", "caller_pid")
    ARGV_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    CALLER_PID_FIELD_NUMBER: _ClassVar[int]
    argv: _containers.RepeatedScalarFieldContainer[str]
    stdin: str
    caller_pid: int
    def __init__(self, argv: _Optional[_Iterable[str]] = ..., stdin: _Optional[str] = ..., caller_pid: _Optional[int] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: str
    stderr: str
    exit_code: int
    def __init__(self, stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., exit_code: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("mount_point",)
    MOUNT_POINT_FIELD_NUMBER: _ClassVar[int]
    mount_point: str
    def __init__(self, mount_point: _Optional[str] = ...) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("host", "role", "enrolled", "mounts", "mounted_volume")
    HOST_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    MOUNTED_VOLUME_FIELD_NUMBER: _ClassVar[int]
    host: str
    role: str
    enrolled: bool
    mounts: _containers.RepeatedScalarFieldContainer[str]
    mounted_volume: str
    def __init__(self, host: _Optional[str] = ..., role: _Optional[str] = ..., enrolled: _Optional[bool] = ..., mounts: _Optional[_Iterable[str]] = ..., mounted_volume: _Optional[str] = ...) -> None: ...
