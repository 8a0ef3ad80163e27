from snaplab.v1 import checkpoint_pb2 as _checkpoint_pb2
from snaplab.v1 import array_pb2 as _array_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LabEventRequest(_message.Message):
    __slots__ = ("host", "kind", "detail")
    HOST_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    host: str
    kind: str
    detail: str
    def __init__(self, host: _Optional[str] = ..., kind: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ClusterBeat(_message.Message):
    __slots__ = ("cluster", "timeout_seconds")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    timeout_seconds: float
    def __init__(self, cluster: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class ClusterView(_message.Message):
    __slots__ = ("alive",)
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    alive: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, alive: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterClaimRequest(_message.Message):
    __slots__ = ("cluster", "group", "array", "lds", "timeout_seconds", "release", "unsigned")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    LDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    UNSIGNED_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    group: str
    array: str
    lds: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: float
    release: bool
    unsigned: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cluster: _Optional[str] = ..., group: _Optional[str] = ..., array: _Optional[str] = ..., lds: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[float] = ..., release: _Optional[bool] = ..., unsigned: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterClaimReply(_message.Message):
    __slots__ = ("granted", "owner", "previous", "reason")
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    owner: str
    previous: str
    reason: str
    def __init__(self, granted: _Optional[bool] = ..., owner: _Optional[str] = ..., previous: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EnrolRequest(_message.Message):
    __slots__ = ("role", "platform", "wwns", "ports", "cluster", "cluster_role")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    WWNS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ROLE_FIELD_NUMBER: _ClassVar[int]
    role: str
    platform: str
    wwns: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedScalarFieldContainer[str]
    cluster: str
    cluster_role: str
    def __init__(self, role: _Optional[str] = ..., platform: _Optional[str] = ..., wwns: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[str]] = ..., cluster: _Optional[str] = ..., cluster_role: _Optional[str] = ...) -> None: ...

class ArrayEndpoint(_message.Message):
    __slots__ = ("name", "target")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    name: str
    target: str
    def __init__(self, name: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class EnrolReply(_message.Message):
    __slots__ = ("arrays",)
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    arrays: _containers.RepeatedCompositeFieldContainer[ArrayEndpoint]
    def __init__(self, arrays: _Optional[_Iterable[_Union[ArrayEndpoint, _Mapping]]] = ...) -> None: ...

class ControlRequest(_message.Message):
    __slots__ = ("array", "via", "create", "delete", "restore", "wait", "guard", "link", "unlink", "query", "linkinfo", "group", "probe")
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    UNLINK_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LINKINFO_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    array: str
    via: str
    create: _array_pb2.CreateRequest
    delete: _array_pb2.DeleteRequest
    restore: _array_pb2.RestoreRequest
    wait: _array_pb2.WaitRequest
    guard: _array_pb2.GuardRequest
    link: _array_pb2.LinkRequest
    unlink: _array_pb2.UnlinkRequest
    query: _array_pb2.QueryRequest
    linkinfo: _array_pb2.VolumeRef
    group: _array_pb2.GroupRequest
    probe: bool
    def __init__(self, array: _Optional[str] = ..., via: _Optional[str] = ..., create: _Optional[_Union[_array_pb2.CreateRequest, _Mapping]] = ..., delete: _Optional[_Union[_array_pb2.DeleteRequest, _Mapping]] = ..., restore: _Optional[_Union[_array_pb2.RestoreRequest, _Mapping]] = ..., wait: _Optional[_Union[_array_pb2.WaitRequest, _Mapping]] = ..., guard: _Optional[_Union[_array_pb2.GuardRequest, _Mapping]] = ..., link: _Optional[_Union[_array_pb2.LinkRequest, _Mapping]] = ..., unlink: _Optional[_Union[_array_pb2.UnlinkRequest, _Mapping]] = ..., query: _Optional[_Union[_array_pb2.QueryRequest, _Mapping]] = ..., linkinfo: _Optional[_Union[_array_pb2.VolumeRef, _Mapping]] = ..., group: _Optional[_Union[_array_pb2.GroupRequest, _Mapping]] = ..., probe: _Optional[bool] = ...) -> None: ...

class ControlReply(_message.Message):
    __slots__ = ("generation", "deleted", "linkinfo", "query", "group")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    LINKINFO_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    generation: _array_pb2.Generation
    deleted: _array_pb2.DeleteReply
    linkinfo: _array_pb2.LinkInfo
    query: _array_pb2.QueryReply
    group: _array_pb2.GroupReply
    def __init__(self, generation: _Optional[_Union[_array_pb2.Generation, _Mapping]] = ..., deleted: _Optional[_Union[_array_pb2.DeleteReply, _Mapping]] = ..., linkinfo: _Optional[_Union[_array_pb2.LinkInfo, _Mapping]] = ..., query: _Optional[_Union[_array_pb2.QueryReply, _Mapping]] = ..., group: _Optional[_Union[_array_pb2.GroupReply, _Mapping]] = ...) -> None: ...

class ManagedConfig(_message.Message):
    __slots__ = ("array", "request", "cluster")
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    array: str
    request: _array_pb2.ConfigRequest
    cluster: str
    def __init__(self, array: _Optional[str] = ..., request: _Optional[_Union[_array_pb2.ConfigRequest, _Mapping]] = ..., cluster: _Optional[str] = ...) -> None: ...

class ManagedFault(_message.Message):
    __slots__ = ("array", "fault")
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    array: str
    fault: _array_pb2.FaultRequest
    def __init__(self, array: _Optional[str] = ..., fault: _Optional[_Union[_array_pb2.FaultRequest, _Mapping]] = ...) -> None: ...

class MonitorRequest(_message.Message):
    __slots__ = ("array",)
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    array: str
    def __init__(self, array: _Optional[str] = ...) -> None: ...

class ArrayMonitor(_message.Message):
    __slots__ = ("state", "target", "resource_state", "monitoring", "snapshots")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    MONITORING_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    state: _array_pb2.ArrayState
    target: str
    resource_state: str
    monitoring: str
    snapshots: _containers.RepeatedCompositeFieldContainer[_array_pb2.QueryReply]
    def __init__(self, state: _Optional[_Union[_array_pb2.ArrayState, _Mapping]] = ..., target: _Optional[str] = ..., resource_state: _Optional[str] = ..., monitoring: _Optional[str] = ..., snapshots: _Optional[_Iterable[_Union[_array_pb2.QueryReply, _Mapping]]] = ...) -> None: ...

class HostInfo(_message.Message):
    __slots__ = ("name", "role", "platform", "wwns", "ports", "cluster", "cluster_role", "enrolled", "heartbeat_age")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    WWNS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ROLE_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    platform: str
    wwns: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedScalarFieldContainer[str]
    cluster: str
    cluster_role: str
    enrolled: str
    heartbeat_age: float
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., platform: _Optional[str] = ..., wwns: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[str]] = ..., cluster: _Optional[str] = ..., cluster_role: _Optional[str] = ..., enrolled: _Optional[str] = ..., heartbeat_age: _Optional[float] = ...) -> None: ...

class MonitorReply(_message.Message):
    __slots__ = ("arrays", "hosts")
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    arrays: _containers.RepeatedCompositeFieldContainer[ArrayMonitor]
    hosts: _containers.RepeatedCompositeFieldContainer[HostInfo]
    def __init__(self, arrays: _Optional[_Iterable[_Union[ArrayMonitor, _Mapping]]] = ..., hosts: _Optional[_Iterable[_Union[HostInfo, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "time", "source", "classification", "operation", "msg_id", "text")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: str
    source: str
    classification: str
    operation: str
    msg_id: str
    text: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[str] = ..., source: _Optional[str] = ..., classification: _Optional[str] = ..., operation: _Optional[str] = ..., msg_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("after_seq", "limit")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    limit: int
    def __init__(self, after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class EventsReply(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...
