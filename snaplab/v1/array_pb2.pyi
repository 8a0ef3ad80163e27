from snaplab.v1 import checkpoint_pb2 as _checkpoint_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConfigRequest(_message.Message):
    __slots__ = ("set_array_name", "add_port", "bind_pool", "bind_ld", "unbind_ld", "build_sra", "add_generations", "delete_generations", "bind_lv", "set_licence", "remove_licence", "register_host", "assign_access", "unassign_access", "set_format", "rename_ld", "expand_ld", "pair_lds", "replicate_ld", "separate_ld", "set_io_limit", "set_sra_policy", "group_define", "group_remove")
    SET_ARRAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ADD_PORT_FIELD_NUMBER: _ClassVar[int]
    BIND_POOL_FIELD_NUMBER: _ClassVar[int]
    BIND_LD_FIELD_NUMBER: _ClassVar[int]
    UNBIND_LD_FIELD_NUMBER: _ClassVar[int]
    BUILD_SRA_FIELD_NUMBER: _ClassVar[int]
    ADD_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    DELETE_GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    BIND_LV_FIELD_NUMBER: _ClassVar[int]
    SET_LICENCE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_LICENCE_FIELD_NUMBER: _ClassVar[int]
    REGISTER_HOST_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_ACCESS_FIELD_NUMBER: _ClassVar[int]
    UNASSIGN_ACCESS_FIELD_NUMBER: _ClassVar[int]
    SET_FORMAT_FIELD_NUMBER: _ClassVar[int]
    RENAME_LD_FIELD_NUMBER: _ClassVar[int]
    EXPAND_LD_FIELD_NUMBER: _ClassVar[int]
    PAIR_LDS_FIELD_NUMBER: _ClassVar[int]
    REPLICATE_LD_FIELD_NUMBER: _ClassVar[int]
    SEPARATE_LD_FIELD_NUMBER: _ClassVar[int]
    SET_IO_LIMIT_FIELD_NUMBER: _ClassVar[int]
    SET_SRA_POLICY_FIELD_NUMBER: _ClassVar[int]
    GROUP_DEFINE_FIELD_NUMBER: _ClassVar[int]
    GROUP_REMOVE_FIELD_NUMBER: _ClassVar[int]
    set_array_name: SetArrayName
    add_port: AddPort
    bind_pool: BindPool
    bind_ld: BindLd
    unbind_ld: UnbindLd
    build_sra: BuildSra
    add_generations: AddGenerations
    delete_generations: DeleteGenerations
    bind_lv: BindLv
    set_licence: SetLicence
    remove_licence: RemoveLicence
    register_host: RegisterHost
    assign_access: AssignAccess
    unassign_access: UnassignAccess
    set_format: SetFormat
    rename_ld: RenameLd
    expand_ld: ExpandLd
    pair_lds: PairLds
    replicate_ld: ReplicatePair
    separate_ld: ReplicatePair
    set_io_limit: SetIoLimit
    set_sra_policy: SetSraPolicy
    group_define: GroupDefine
    group_remove: GroupRemove
    def __init__(self, set_array_name: _Optional[_Union[SetArrayName, _Mapping]] = ..., add_port: _Optional[_Union[AddPort, _Mapping]] = ..., bind_pool: _Optional[_Union[BindPool, _Mapping]] = ..., bind_ld: _Optional[_Union[BindLd, _Mapping]] = ..., unbind_ld: _Optional[_Union[UnbindLd, _Mapping]] = ..., build_sra: _Optional[_Union[BuildSra, _Mapping]] = ..., add_generations: _Optional[_Union[AddGenerations, _Mapping]] = ..., delete_generations: _Optional[_Union[DeleteGenerations, _Mapping]] = ..., bind_lv: _Optional[_Union[BindLv, _Mapping]] = ..., set_licence: _Optional[_Union[SetLicence, _Mapping]] = ..., remove_licence: _Optional[_Union[RemoveLicence, _Mapping]] = ..., register_host: _Optional[_Union[RegisterHost, _Mapping]] = ..., assign_access: _Optional[_Union[AssignAccess, _Mapping]] = ..., unassign_access: _Optional[_Union[UnassignAccess, _Mapping]] = ..., set_format: _Optional[_Union[SetFormat, _Mapping]] = ..., rename_ld: _Optional[_Union[RenameLd, _Mapping]] = ..., expand_ld: _Optional[_Union[ExpandLd, _Mapping]] = ..., pair_lds: _Optional[_Union[PairLds, _Mapping]] = ..., replicate_ld: _Optional[_Union[ReplicatePair, _Mapping]] = ..., separate_ld: _Optional[_Union[ReplicatePair, _Mapping]] = ..., set_io_limit: _Optional[_Union[SetIoLimit, _Mapping]] = ..., set_sra_policy: _Optional[_Union[SetSraPolicy, _Mapping]] = ..., group_define: _Optional[_Union[GroupDefine, _Mapping]] = ..., group_remove: _Optional[_Union[GroupRemove, _Mapping]] = ...) -> None: ...

class SetArrayName(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AddPort(_message.Message):
    __slots__ = ("director", "port", "name")
    DIRECTOR_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    director: int
    port: int
    name: str
    def __init__(self, director: _Optional[int] = ..., port: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class BindPool(_message.Message):
    __slots__ = ("number", "name", "kind", "capacity")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    kind: str
    capacity: int
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., capacity: _Optional[int] = ...) -> None: ...

class BindLd(_message.Message):
    __slots__ = ("name", "capacity", "pool", "format", "number", "attr")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ATTR_FIELD_NUMBER: _ClassVar[int]
    name: str
    capacity: int
    pool: str
    format: str
    number: int
    attr: str
    def __init__(self, name: _Optional[str] = ..., capacity: _Optional[int] = ..., pool: _Optional[str] = ..., format: _Optional[str] = ..., number: _Optional[int] = ..., attr: _Optional[str] = ...) -> None: ...

class UnbindLd(_message.Message):
    __slots__ = ("ld",)
    LD_FIELD_NUMBER: _ClassVar[int]
    ld: str
    def __init__(self, ld: _Optional[str] = ...) -> None: ...

class RenameLd(_message.Message):
    __slots__ = ("ld", "name")
    LD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ld: str
    name: str
    def __init__(self, ld: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ExpandLd(_message.Message):
    __slots__ = ("ld", "capacity")
    LD_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ld: str
    capacity: int
    def __init__(self, ld: _Optional[str] = ..., capacity: _Optional[int] = ...) -> None: ...

class PairLds(_message.Message):
    __slots__ = ("mv", "rv", "unpair", "force")
    MV_FIELD_NUMBER: _ClassVar[int]
    RV_FIELD_NUMBER: _ClassVar[int]
    UNPAIR_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    mv: str
    rv: str
    unpair: bool
    force: bool
    def __init__(self, mv: _Optional[str] = ..., rv: _Optional[str] = ..., unpair: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class ReplicatePair(_message.Message):
    __slots__ = ("mv", "rv")
    MV_FIELD_NUMBER: _ClassVar[int]
    RV_FIELD_NUMBER: _ClassVar[int]
    mv: str
    rv: str
    def __init__(self, mv: _Optional[str] = ..., rv: _Optional[str] = ...) -> None: ...

class SetIoLimit(_message.Message):
    __slots__ = ("ld", "upper", "lower", "report")
    LD_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ld: str
    upper: int
    lower: int
    report: str
    def __init__(self, ld: _Optional[str] = ..., upper: _Optional[int] = ..., lower: _Optional[int] = ..., report: _Optional[str] = ...) -> None: ...

class SetSraPolicy(_message.Message):
    __slots__ = ("pool", "policy", "warn_percents", "set_warn", "queue_timeout_seconds")
    POOL_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WARN_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    SET_WARN_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    pool: str
    policy: str
    warn_percents: _containers.RepeatedScalarFieldContainer[int]
    set_warn: bool
    queue_timeout_seconds: float
    def __init__(self, pool: _Optional[str] = ..., policy: _Optional[str] = ..., warn_percents: _Optional[_Iterable[int]] = ..., set_warn: _Optional[bool] = ..., queue_timeout_seconds: _Optional[float] = ...) -> None: ...

class GroupDefine(_message.Message):
    __slots__ = ("name", "bvs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BVS_FIELD_NUMBER: _ClassVar[int]
    name: str
    bvs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., bvs: _Optional[_Iterable[str]] = ...) -> None: ...

class GroupRemove(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class BuildSra(_message.Message):
    __slots__ = ("pool", "capacity", "sdv_name", "extend", "number")
    POOL_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SDV_NAME_FIELD_NUMBER: _ClassVar[int]
    EXTEND_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    pool: str
    capacity: int
    sdv_name: str
    extend: bool
    number: int
    def __init__(self, pool: _Optional[str] = ..., capacity: _Optional[int] = ..., sdv_name: _Optional[str] = ..., extend: _Optional[bool] = ..., number: _Optional[int] = ...) -> None: ...

class AddGenerations(_message.Message):
    __slots__ = ("bv", "pool", "count", "sv_names", "numbers")
    BV_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SV_NAMES_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    bv: str
    pool: str
    count: int
    sv_names: _containers.RepeatedScalarFieldContainer[str]
    numbers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, bv: _Optional[str] = ..., pool: _Optional[str] = ..., count: _Optional[int] = ..., sv_names: _Optional[_Iterable[str]] = ..., numbers: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteGenerations(_message.Message):
    __slots__ = ("bv", "count")
    BV_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    bv: str
    count: int
    def __init__(self, bv: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class BindLv(_message.Message):
    __slots__ = ("bv", "name", "number")
    BV_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    bv: str
    name: str
    number: int
    def __init__(self, bv: _Optional[str] = ..., name: _Optional[str] = ..., number: _Optional[int] = ...) -> None: ...

class SetLicence(_message.Message):
    __slots__ = ("product", "capacity")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    product: str
    capacity: int
    def __init__(self, product: _Optional[str] = ..., capacity: _Optional[int] = ...) -> None: ...

class RemoveLicence(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: str
    def __init__(self, product: _Optional[str] = ...) -> None: ...

class RegisterHost(_message.Message):
    __slots__ = ("name", "wwns", "ports", "platform", "initiators")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WWNS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    INITIATORS_FIELD_NUMBER: _ClassVar[int]
    name: str
    wwns: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedScalarFieldContainer[str]
    platform: str
    initiators: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., wwns: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[str]] = ..., platform: _Optional[str] = ..., initiators: _Optional[_Iterable[str]] = ...) -> None: ...

class AssignAccess(_message.Message):
    __slots__ = ("ld", "port", "wwn", "initiator")
    LD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    WWN_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    ld: str
    port: str
    wwn: str
    initiator: str
    def __init__(self, ld: _Optional[str] = ..., port: _Optional[str] = ..., wwn: _Optional[str] = ..., initiator: _Optional[str] = ...) -> None: ...

class UnassignAccess(_message.Message):
    __slots__ = ("ld", "port", "wwn", "initiator")
    LD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    WWN_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_FIELD_NUMBER: _ClassVar[int]
    ld: str
    port: str
    wwn: str
    initiator: str
    def __init__(self, ld: _Optional[str] = ..., port: _Optional[str] = ..., wwn: _Optional[str] = ..., initiator: _Optional[str] = ...) -> None: ...

class SetFormat(_message.Message):
    __slots__ = ("ld", "format")
    LD_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ld: str
    format: str
    def __init__(self, ld: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class ConfigReply(_message.Message):
    __slots__ = ("lds", "names")
    LDS_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    lds: _containers.RepeatedCompositeFieldContainer[Ld]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lds: _Optional[_Iterable[_Union[Ld, _Mapping]]] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class SvRef(_message.Message):
    __slots__ = ("sv", "svflg")
    SV_FIELD_NUMBER: _ClassVar[int]
    SVFLG_FIELD_NUMBER: _ClassVar[int]
    sv: str
    svflg: str
    def __init__(self, sv: _Optional[str] = ..., svflg: _Optional[str] = ...) -> None: ...

class LayoutOptions(_message.Message):
    __slots__ = ("allow_multi_partition", "allow_gpt")
    ALLOW_MULTI_PARTITION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_GPT_FIELD_NUMBER: _ClassVar[int]
    allow_multi_partition: bool
    allow_gpt: bool
    def __init__(self, allow_multi_partition: _Optional[bool] = ..., allow_gpt: _Optional[bool] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("bv", "sv", "cyclic", "options", "consistency")
    BV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    CYCLIC_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    bv: str
    sv: SvRef
    cyclic: bool
    options: LayoutOptions
    consistency: str
    def __init__(self, bv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., cyclic: _Optional[bool] = ..., options: _Optional[_Union[LayoutOptions, _Mapping]] = ..., consistency: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("bv", "sv", "auto")
    BV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    AUTO_FIELD_NUMBER: _ClassVar[int]
    bv: str
    sv: SvRef
    auto: bool
    def __init__(self, bv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., auto: _Optional[bool] = ...) -> None: ...

class DeleteReply(_message.Message):
    __slots__ = ("deleted_sv",)
    DELETED_SV_FIELD_NUMBER: _ClassVar[int]
    deleted_sv: str
    def __init__(self, deleted_sv: _Optional[str] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("bv", "sv", "derivsv", "options")
    BV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    DERIVSV_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    bv: str
    sv: SvRef
    derivsv: str
    options: LayoutOptions
    def __init__(self, bv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., derivsv: _Optional[str] = ..., options: _Optional[_Union[LayoutOptions, _Mapping]] = ...) -> None: ...

class WaitRequest(_message.Message):
    __slots__ = ("bv", "sv", "cond", "timeout_seconds")
    BV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    COND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    bv: str
    sv: SvRef
    cond: str
    timeout_seconds: float
    def __init__(self, bv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., cond: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class GuardRequest(_message.Message):
    __slots__ = ("bv", "sv", "on", "hold", "release")
    BV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    bv: str
    sv: SvRef
    on: bool
    hold: str
    release: str
    def __init__(self, bv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., on: _Optional[bool] = ..., hold: _Optional[str] = ..., release: _Optional[str] = ...) -> None: ...

class LinkRequest(_message.Message):
    __slots__ = ("lv", "sv", "bv", "mode", "options")
    LV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    BV_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    lv: str
    sv: SvRef
    bv: str
    mode: str
    options: LayoutOptions
    def __init__(self, lv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., bv: _Optional[str] = ..., mode: _Optional[str] = ..., options: _Optional[_Union[LayoutOptions, _Mapping]] = ...) -> None: ...

class UnlinkRequest(_message.Message):
    __slots__ = ("lv", "sv", "bv")
    LV_FIELD_NUMBER: _ClassVar[int]
    SV_FIELD_NUMBER: _ClassVar[int]
    BV_FIELD_NUMBER: _ClassVar[int]
    lv: str
    sv: SvRef
    bv: str
    def __init__(self, lv: _Optional[str] = ..., sv: _Optional[_Union[SvRef, _Mapping]] = ..., bv: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("bv",)
    BV_FIELD_NUMBER: _ClassVar[int]
    bv: str
    def __init__(self, bv: _Optional[str] = ...) -> None: ...

class VolumeRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("sv", "sv_number", "bv", "format", "has_relgen", "relgen", "attribute", "state", "state_time", "create_time", "guard", "link", "lv", "lv_mode", "data_size", "restore_total", "restore_done", "pool", "consistency", "holds", "group")
    SV_FIELD_NUMBER: _ClassVar[int]
    SV_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BV_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    HAS_RELGEN_FIELD_NUMBER: _ClassVar[int]
    RELGEN_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    LV_FIELD_NUMBER: _ClassVar[int]
    LV_MODE_FIELD_NUMBER: _ClassVar[int]
    DATA_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESTORE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESTORE_DONE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    sv: str
    sv_number: str
    bv: str
    format: str
    has_relgen: bool
    relgen: int
    attribute: str
    state: str
    state_time: str
    create_time: str
    guard: bool
    link: str
    lv: str
    lv_mode: str
    data_size: int
    restore_total: int
    restore_done: int
    pool: str
    consistency: str
    holds: _containers.RepeatedScalarFieldContainer[str]
    group: str
    def __init__(self, sv: _Optional[str] = ..., sv_number: _Optional[str] = ..., bv: _Optional[str] = ..., format: _Optional[str] = ..., has_relgen: _Optional[bool] = ..., relgen: _Optional[int] = ..., attribute: _Optional[str] = ..., state: _Optional[str] = ..., state_time: _Optional[str] = ..., create_time: _Optional[str] = ..., guard: _Optional[bool] = ..., link: _Optional[str] = ..., lv: _Optional[str] = ..., lv_mode: _Optional[str] = ..., data_size: _Optional[int] = ..., restore_total: _Optional[int] = ..., restore_done: _Optional[int] = ..., pool: _Optional[str] = ..., consistency: _Optional[str] = ..., holds: _Optional[_Iterable[str]] = ..., group: _Optional[str] = ...) -> None: ...

class LvState(_message.Message):
    __slots__ = ("lv", "link", "mode")
    LV_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    lv: str
    link: str
    mode: str
    def __init__(self, lv: _Optional[str] = ..., link: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class QueryReply(_message.Message):
    __slots__ = ("bv", "bv_number", "format", "state", "reserve_area", "generations", "lvs", "bv_link_lv")
    BV_FIELD_NUMBER: _ClassVar[int]
    BV_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESERVE_AREA_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    LVS_FIELD_NUMBER: _ClassVar[int]
    BV_LINK_LV_FIELD_NUMBER: _ClassVar[int]
    bv: str
    bv_number: str
    format: str
    state: str
    reserve_area: str
    generations: _containers.RepeatedCompositeFieldContainer[Generation]
    lvs: _containers.RepeatedCompositeFieldContainer[LvState]
    bv_link_lv: str
    def __init__(self, bv: _Optional[str] = ..., bv_number: _Optional[str] = ..., format: _Optional[str] = ..., state: _Optional[str] = ..., reserve_area: _Optional[str] = ..., generations: _Optional[_Iterable[_Union[Generation, _Mapping]]] = ..., lvs: _Optional[_Iterable[_Union[LvState, _Mapping]]] = ..., bv_link_lv: _Optional[str] = ...) -> None: ...

class LookupBatch(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[LookupRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[LookupRequest, _Mapping]]] = ...) -> None: ...

class LookupReplies(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[LookupReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[LookupReply, _Mapping]]] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("id", "query", "linkinfo")
    ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LINKINFO_FIELD_NUMBER: _ClassVar[int]
    id: int
    query: QueryRequest
    linkinfo: VolumeRef
    def __init__(self, id: _Optional[int] = ..., query: _Optional[_Union[QueryRequest, _Mapping]] = ..., linkinfo: _Optional[_Union[VolumeRef, _Mapping]] = ...) -> None: ...

class LookupReply(_message.Message):
    __slots__ = ("id", "code", "details", "msg_id", "query", "linkinfo")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LINKINFO_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    details: str
    msg_id: str
    query: QueryReply
    linkinfo: LinkInfo
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., details: _Optional[str] = ..., msg_id: _Optional[str] = ..., query: _Optional[_Union[QueryReply, _Mapping]] = ..., linkinfo: _Optional[_Union[LinkInfo, _Mapping]] = ...) -> None: ...

class LinkEntry(_message.Message):
    __slots__ = ("lv", "target", "kind", "mode")
    LV_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    lv: str
    target: str
    kind: str
    mode: str
    def __init__(self, lv: _Optional[str] = ..., target: _Optional[str] = ..., kind: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class LinkInfo(_message.Message):
    __slots__ = ("volume", "type", "format", "state", "link_lost", "links")
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LINK_LOST_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    volume: str
    type: str
    format: str
    state: str
    link_lost: bool
    links: _containers.RepeatedCompositeFieldContainer[LinkEntry]
    def __init__(self, volume: _Optional[str] = ..., type: _Optional[str] = ..., format: _Optional[str] = ..., state: _Optional[str] = ..., link_lost: _Optional[bool] = ..., links: _Optional[_Iterable[_Union[LinkEntry, _Mapping]]] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("ld", "offset", "length", "chunk_size")
    LD_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    ld: str
    offset: int
    length: int
    chunk_size: int
    def __init__(self, ld: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class DataChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ReadHeadsRequest(_message.Message):
    __slots__ = ("lds", "length")
    LDS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    lds: _containers.RepeatedScalarFieldContainer[str]
    length: int
    def __init__(self, lds: _Optional[_Iterable[str]] = ..., length: _Optional[int] = ...) -> None: ...

class LdHead(_message.Message):
    __slots__ = ("ld", "data", "code", "details", "msg_id")
    LD_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ld: str
    data: bytes
    code: str
    details: str
    msg_id: str
    def __init__(self, ld: _Optional[str] = ..., data: _Optional[bytes] = ..., code: _Optional[str] = ..., details: _Optional[str] = ..., msg_id: _Optional[str] = ...) -> None: ...

class ReadHeadsReply(_message.Message):
    __slots__ = ("heads",)
    HEADS_FIELD_NUMBER: _ClassVar[int]
    heads: _containers.RepeatedCompositeFieldContainer[LdHead]
    def __init__(self, heads: _Optional[_Iterable[_Union[LdHead, _Mapping]]] = ...) -> None: ...

class WriteChunk(_message.Message):
    __slots__ = ("ld", "offset", "data")
    LD_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ld: str
    offset: int
    data: bytes
    def __init__(self, ld: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class WriteReply(_message.Message):
    __slots__ = ("bytes_written",)
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    bytes_written: int
    def __init__(self, bytes_written: _Optional[int] = ...) -> None: ...

class DisksRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class Ld(_message.Message):
    __slots__ = ("number", "name", "type", "format", "capacity", "pool", "attr", "access", "bv", "reserved_by", "rpl_partner", "sync_state", "rpl_role", "io_limit", "rpl_progress", "rpl_diff")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    ATTR_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    BV_FIELD_NUMBER: _ClassVar[int]
    RESERVED_BY_FIELD_NUMBER: _ClassVar[int]
    RPL_PARTNER_FIELD_NUMBER: _ClassVar[int]
    SYNC_STATE_FIELD_NUMBER: _ClassVar[int]
    RPL_ROLE_FIELD_NUMBER: _ClassVar[int]
    IO_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RPL_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RPL_DIFF_FIELD_NUMBER: _ClassVar[int]
    number: str
    name: str
    type: str
    format: str
    capacity: int
    pool: str
    attr: str
    access: _containers.RepeatedScalarFieldContainer[str]
    bv: str
    reserved_by: str
    rpl_partner: str
    sync_state: str
    rpl_role: str
    io_limit: str
    rpl_progress: int
    rpl_diff: int
    def __init__(self, number: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., format: _Optional[str] = ..., capacity: _Optional[int] = ..., pool: _Optional[str] = ..., attr: _Optional[str] = ..., access: _Optional[_Iterable[str]] = ..., bv: _Optional[str] = ..., reserved_by: _Optional[str] = ..., rpl_partner: _Optional[str] = ..., sync_state: _Optional[str] = ..., rpl_role: _Optional[str] = ..., io_limit: _Optional[str] = ..., rpl_progress: _Optional[int] = ..., rpl_diff: _Optional[int] = ...) -> None: ...

class DisksReply(_message.Message):
    __slots__ = ("lds",)
    LDS_FIELD_NUMBER: _ClassVar[int]
    lds: _containers.RepeatedCompositeFieldContainer[Ld]
    def __init__(self, lds: _Optional[_Iterable[_Union[Ld, _Mapping]]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("for_host", "routing", "known_version")
    FOR_HOST_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    for_host: str
    routing: bool
    known_version: str
    def __init__(self, for_host: _Optional[str] = ..., routing: _Optional[bool] = ..., known_version: _Optional[str] = ...) -> None: ...

class Pool(_message.Message):
    __slots__ = ("number", "name", "kind", "capacity", "sra_capacity", "sra_used", "used", "sra_policy", "sra_warn_percents", "sra_queue_timeout_seconds")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SRA_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SRA_USED_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    SRA_POLICY_FIELD_NUMBER: _ClassVar[int]
    SRA_WARN_PERCENTS_FIELD_NUMBER: _ClassVar[int]
    SRA_QUEUE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    number: int
    name: str
    kind: str
    capacity: int
    sra_capacity: int
    sra_used: int
    used: int
    sra_policy: str
    sra_warn_percents: _containers.RepeatedScalarFieldContainer[int]
    sra_queue_timeout_seconds: float
    def __init__(self, number: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., capacity: _Optional[int] = ..., sra_capacity: _Optional[int] = ..., sra_used: _Optional[int] = ..., used: _Optional[int] = ..., sra_policy: _Optional[str] = ..., sra_warn_percents: _Optional[_Iterable[int]] = ..., sra_queue_timeout_seconds: _Optional[float] = ...) -> None: ...

class Port(_message.Message):
    __slots__ = ("director", "port", "name")
    DIRECTOR_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    director: int
    port: int
    name: str
    def __init__(self, director: _Optional[int] = ..., port: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class Host(_message.Message):
    __slots__ = ("name", "wwns", "ports", "platform", "initiators")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WWNS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    INITIATORS_FIELD_NUMBER: _ClassVar[int]
    name: str
    wwns: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedScalarFieldContainer[str]
    platform: str
    initiators: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., wwns: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[str]] = ..., platform: _Optional[str] = ..., initiators: _Optional[_Iterable[str]] = ...) -> None: ...

class ArrayState(_message.Message):
    __slots__ = ("name", "physical_capacity", "ports", "pools", "lds", "licences", "faults", "hosts", "product_id", "events", "groups", "routing_version", "unchanged", "lookup_port")
    class LicencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    POOLS_FIELD_NUMBER: _ClassVar[int]
    LDS_FIELD_NUMBER: _ClassVar[int]
    LICENCES_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    physical_capacity: int
    ports: _containers.RepeatedCompositeFieldContainer[Port]
    pools: _containers.RepeatedCompositeFieldContainer[Pool]
    lds: _containers.RepeatedCompositeFieldContainer[Ld]
    licences: _containers.ScalarMap[str, str]
    faults: _containers.RepeatedScalarFieldContainer[str]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    product_id: str
    events: _containers.RepeatedCompositeFieldContainer[ArrayEvent]
    groups: _containers.RepeatedCompositeFieldContainer[GroupInfo]
    routing_version: str
    unchanged: bool
    lookup_port: int
    def __init__(self, name: _Optional[str] = ..., physical_capacity: _Optional[int] = ..., ports: _Optional[_Iterable[_Union[Port, _Mapping]]] = ..., pools: _Optional[_Iterable[_Union[Pool, _Mapping]]] = ..., lds: _Optional[_Iterable[_Union[Ld, _Mapping]]] = ..., licences: _Optional[_Mapping[str, str]] = ..., faults: _Optional[_Iterable[str]] = ..., hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ..., product_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[ArrayEvent, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[GroupInfo, _Mapping]]] = ..., routing_version: _Optional[str] = ..., unchanged: _Optional[bool] = ..., lookup_port: _Optional[int] = ...) -> None: ...

class GroupInfo(_message.Message):
    __slots__ = ("name", "bvs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BVS_FIELD_NUMBER: _ClassVar[int]
    name: str
    bvs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., bvs: _Optional[_Iterable[str]] = ...) -> None: ...

class ArrayEvent(_message.Message):
    __slots__ = ("seq", "time", "classification", "msg_id", "text")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    MSG_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: str
    classification: str
    msg_id: str
    text: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[str] = ..., classification: _Optional[str] = ..., msg_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class FaultRequest(_message.Message):
    __slots__ = ("kind", "target")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    kind: str
    target: str
    def __init__(self, kind: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class ReservationRequest(_message.Message):
    __slots__ = ("ld", "owner")
    LD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ld: str
    owner: str
    def __init__(self, ld: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("ld", "owner", "previous")
    LD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    ld: str
    owner: str
    previous: str
    def __init__(self, ld: _Optional[str] = ..., owner: _Optional[str] = ..., previous: _Optional[str] = ...) -> None: ...

class GroupRequest(_message.Message):
    __slots__ = ("group", "members", "create", "delete", "restore", "guard", "link", "unlink", "query")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    UNLINK_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    group: str
    members: _containers.RepeatedScalarFieldContainer[str]
    create: GroupCreate
    delete: GroupGen
    restore: GroupRestore
    guard: GroupGuard
    link: GroupLink
    unlink: GroupUnlink
    query: GroupGen
    def __init__(self, group: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., create: _Optional[_Union[GroupCreate, _Mapping]] = ..., delete: _Optional[_Union[GroupGen, _Mapping]] = ..., restore: _Optional[_Union[GroupRestore, _Mapping]] = ..., guard: _Optional[_Union[GroupGuard, _Mapping]] = ..., link: _Optional[_Union[GroupLink, _Mapping]] = ..., unlink: _Optional[_Union[GroupUnlink, _Mapping]] = ..., query: _Optional[_Union[GroupGen, _Mapping]] = ...) -> None: ...

class GroupCreate(_message.Message):
    __slots__ = ("cyclic", "options")
    CYCLIC_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    cyclic: bool
    options: LayoutOptions
    def __init__(self, cyclic: _Optional[bool] = ..., options: _Optional[_Union[LayoutOptions, _Mapping]] = ...) -> None: ...

class GroupGen(_message.Message):
    __slots__ = ("gen",)
    GEN_FIELD_NUMBER: _ClassVar[int]
    gen: int
    def __init__(self, gen: _Optional[int] = ...) -> None: ...

class GroupRestore(_message.Message):
    __slots__ = ("gen", "derivsv", "options")
    GEN_FIELD_NUMBER: _ClassVar[int]
    DERIVSV_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    gen: int
    derivsv: str
    options: LayoutOptions
    def __init__(self, gen: _Optional[int] = ..., derivsv: _Optional[str] = ..., options: _Optional[_Union[LayoutOptions, _Mapping]] = ...) -> None: ...

class GroupGuard(_message.Message):
    __slots__ = ("gen", "set", "cancel", "hold", "release")
    GEN_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    gen: int
    set: bool
    cancel: bool
    hold: str
    release: str
    def __init__(self, gen: _Optional[int] = ..., set: _Optional[bool] = ..., cancel: _Optional[bool] = ..., hold: _Optional[str] = ..., release: _Optional[str] = ...) -> None: ...

class GroupLink(_message.Message):
    __slots__ = ("gen", "lvs", "mode", "options")
    GEN_FIELD_NUMBER: _ClassVar[int]
    LVS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    gen: int
    lvs: _containers.RepeatedScalarFieldContainer[str]
    mode: str
    options: LayoutOptions
    def __init__(self, gen: _Optional[int] = ..., lvs: _Optional[_Iterable[str]] = ..., mode: _Optional[str] = ..., options: _Optional[_Union[LayoutOptions, _Mapping]] = ...) -> None: ...

class GroupUnlink(_message.Message):
    __slots__ = ("lvs",)
    LVS_FIELD_NUMBER: _ClassVar[int]
    lvs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lvs: _Optional[_Iterable[str]] = ...) -> None: ...

class GroupGeneration(_message.Message):
    __slots__ = ("relgen", "create_time", "members", "missing")
    RELGEN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    relgen: int
    create_time: str
    members: _containers.RepeatedCompositeFieldContainer[Generation]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, relgen: _Optional[int] = ..., create_time: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Generation, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class GroupReply(_message.Message):
    __slots__ = ("group", "bvs", "generations", "links")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    BVS_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    group: str
    bvs: _containers.RepeatedScalarFieldContainer[str]
    generations: _containers.RepeatedCompositeFieldContainer[GroupGeneration]
    links: _containers.RepeatedCompositeFieldContainer[LinkInfo]
    def __init__(self, group: _Optional[str] = ..., bvs: _Optional[_Iterable[str]] = ..., generations: _Optional[_Iterable[_Union[GroupGeneration, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[LinkInfo, _Mapping]]] = ...) -> None: ...
