"""One error catalogue: each domain error has an iSM message id, a text and one gRPC status."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    """gRPC status names used by the catalogue (kept free of a grpc import so the domain stays pure)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


@dataclass(frozen=True)
class Message:
    msg_id: str
    text: str
    status: Status


class SnapLabError(Exception):
    """A refusal with its iSM message; ``str()`` is the message line ``iSMnnnnn: text``."""

    def __init__(self, message: Message, **fields: object) -> None:
        self.message = message
        self.text = message.text.format(**fields) if fields else message.text
        super().__init__(f"{message.msg_id}: {self.text}")

    @property
    def msg_id(self) -> str:
        return self.message.msg_id

    @property
    def status(self) -> Status:
        return self.message.status


def _m(msg_id: str, text: str, status: Status) -> Message:
    return Message(msg_id, text, status)


S = Status


class E:
    """The catalogue. Ids the guide quotes are kept; the others are designed in the same style and stay
    stable once released. ``python3 -m snaplab.common.errors`` prints the whole table."""

    # -- generic / request --------------------------------------------------------------------
    BAD_ARGUMENT = _m("iSM19001", "Specified argument is invalid. ({detail})", S.INVALID_ARGUMENT)
    BAD_RANGE = _m("iSM19002", "Specified I/O range is out of the volume. ({detail})", S.INVALID_ARGUMENT)
    NOT_FOUND = _m("iSM19003", "Specified volume does not exist. ({name})", S.NOT_FOUND)
    ALREADY_EXISTS = _m("iSM19004", "Specified object already exists. ({name})", S.ALREADY_EXISTS)
    NAME_INVALID = _m("iSM19005", "Specified name is invalid. ({detail})", S.INVALID_ARGUMENT)
    BAD_REQUEST = _m("iSM19006", "Request cannot be decoded. ({detail})", S.INVALID_ARGUMENT)
    BUSY = _m("iSM19411", "Specified volume is busy in another operation. ({name})", S.UNAVAILABLE)
    INTERNAL = _m("iSM19999", "Internal error occurred. ({detail})", S.INTERNAL)
    # -- configuration: pools, LDs (A1, A3) -------------------------------------------------------
    POOL_NOT_FOUND = _m("iSM31001", "Specified pool does not exist. ({name})", S.NOT_FOUND)
    POOL_CAPACITY = _m("iSM31002", "Pool capacity is insufficient. ({name})", S.RESOURCE_EXHAUSTED)
    LD_NUMBER_IN_USE = _m("iSM31003", "Specified logical disk number is in use. ({name})", S.ALREADY_EXISTS)
    LD_NAME_IN_USE = _m("iSM31004", "Specified logical disk name is in use. ({name})", S.ALREADY_EXISTS)
    LD_IN_USE = _m("iSM31005", "Specified logical disk is in use. ({name})", S.FAILED_PRECONDITION)
    # not iSM31005: Cinder retries that one for five minutes, and a snapshot-system LD never becomes expandable
    LDSET_EXISTS = _m("iSM31227", "Specified LD set already exists. ({name})", S.ALREADY_EXISTS)
    LDSET_NO_PATH = _m("iSM31228", "Specified LD set has no path. ({name})", S.FAILED_PRECONDITION)
    LDSET_HAS_LD = _m("iSM31229", "Specified logical disk is already in the LD set. ({name})", S.ALREADY_EXISTS)
    LDSET_NO_LD = _m("iSM31230", "Specified logical disk is not in the LD set. ({name})", S.FAILED_PRECONDITION)
    LDSET_OTHER_TYPE = _m(  # iSM31240 is addldsetinitiator's success line (manager/console/ldsets.py)
        "iSM31241", "Specified LD set is of the other type (FC paths and iSCSI initiators do not mix). ({name})",
        S.FAILED_PRECONDITION,
    )
    RPL_NOT_PLAIN = _m("iSM31231", "Specified logical disk cannot be a replication volume. ({name})", S.FAILED_PRECONDITION)
    RPL_NOT_PAIRED = _m("iSM31232", "Specified volumes are not a pair. ({name})", S.FAILED_PRECONDITION)
    RPL_MISMATCH = _m("iSM31233", "Specified volumes differ in capacity or are the same. ({name})", S.FAILED_PRECONDITION)
    RPL_PAIRED = _m("iSM31234", "Specified logical disk is already paired. ({name})", S.FAILED_PRECONDITION)
    RPL_NOT_SEPARATED = _m("iSM31235", "Specified pair is not separated. ({name})", S.FAILED_PRECONDITION)
    RPL_NOT_REPLICATING = _m(
        "iSM31242", "Specified pair is not replicating (replicate it before separating). ({name})", S.FAILED_PRECONDITION
    )
    LD_NOT_EXPANDABLE = _m(
        "iSM31222", "Specified logical disk is part of the snapshot system and cannot be expanded. ({name})",
        S.FAILED_PRECONDITION,
    )
    PORT_NOT_FOUND = _m("iSM31006", "Specified port does not exist. ({name})", S.NOT_FOUND)
    HOST_NOT_FOUND = _m("iSM31007", "Specified server is not registered to the disk array. ({name})", S.NOT_FOUND)
    BV_POOL_KIND = _m("iSM31010", "BV must be in a basic pool or a dynamic pool. ({name})", S.FAILED_PRECONDITION)
    SV_POOL_KIND = _m("iSM31011", "SV and LV must be in a dynamic pool. ({name})", S.FAILED_PRECONDITION)
    SV_POOL_MIXED = _m("iSM31012", "All SVs of a BV must be in one pool. ({name})", S.FAILED_PRECONDITION)
    LV_POOL_MISMATCH = _m("iSM31013", "LV must be in the same pool as the SV. ({name})", S.FAILED_PRECONDITION)
    SRA_NOT_BUILT = _m("iSM31014", "Snapshot reserve area is not built in the pool. ({name})", S.FAILED_PRECONDITION)
    SRA_EXISTS = _m("iSM31016", "Snapshot reserve area is already built in the pool. ({name})", S.ALREADY_EXISTS)
    CV_POOL_KIND = _m("iSM31017", "CV must be in a basic pool or a dynamic pool. ({name})", S.FAILED_PRECONDITION)
    NOT_A_BV_CANDIDATE = _m("iSM31018", "Specified logical disk cannot be used as a BV. ({name})", S.FAILED_PRECONDITION)
    GENERATION_LIMIT = _m("iSM31019", "The number of generations exceeds the limit. ({name})", S.RESOURCE_EXHAUSTED)
    # -- usage format (A2) ----------------------------------------------------------------------
    FORMAT_INVALID = _m("iSM31020", "Specified usage format is invalid. ({name})", S.INVALID_ARGUMENT)
    SDV_NO_FORMAT = _m("iSM31021", "SDV cannot have a usage format. ({name})", S.INVALID_ARGUMENT)
    FORMAT_PLATFORM = _m("iSM31022", "Usage format of BV does not match its platform. ({name})", S.FAILED_PRECONDITION)
    FORMAT_LOCKED = _m(
        "iSM31023", "Usage format cannot be changed while a generation exists. ({name})", S.FAILED_PRECONDITION
    )
    # -- licences (A4) ------------------------------------------------------------------------
    LICENCE_MISSING = _m("iSM31030", "Product {product} is not licensed. (product fault)", S.FAILED_PRECONDITION)
    LICENCE_CAPACITY = _m(
        "iSM31031",
        "Licensed capacity of DynamicSnapVolume ({licensed}) is less than physical capacity ({physical}).",
        S.FAILED_PRECONDITION,
    )
    LICENCE_VERSION3 = _m("iSM31032", "RV cannot be used as a BV without the Version3 licence. ({name})", S.FAILED_PRECONDITION)
    # -- access control (A5) ------------------------------------------------------------------
    AC_FORBIDDEN_TYPE = _m("iSM31040", "SV and SDV cannot be assigned to a server. ({name})", S.FAILED_PRECONDITION)
    AC_GPT_SAME_SERVER = _m(
        "iSM31041", "LVs of one GPT BV must be assigned to different servers. ({name})", S.FAILED_PRECONDITION
    )
    AC_DENIED = _m("iSM31042", "Access to the logical disk is not permitted. ({name})", S.PERMISSION_DENIED)
    AC_BV_LINKED = _m(
        "iSM31043", "BV is linked to an LV and is reachable only through the LV. ({name})", S.PERMISSION_DENIED
    )
    CONTROL_DENIED = _m("iSM31044", "Caller is not allowed to perform this operation. ({detail})", S.PERMISSION_DENIED)
    # -- snapshot operations (A8) -------------------------------------------------------------
    NOT_BV = _m("iSM19020", "Specified volume is not a BV. ({name})", S.FAILED_PRECONDITION)
    NOT_SV = _m("iSM19021", "Specified volume is not an SV of the BV. ({name})", S.FAILED_PRECONDITION)
    NOT_LV = _m("iSM19022", "Specified volume is not an LV. ({name})", S.FAILED_PRECONDITION)
    SV_ACTIVE = _m("iSM19023", "Snapshot of the specified SV already exists. ({name})", S.FAILED_PRECONDITION)
    SV_NOT_ACTIVE = _m("iSM19024", "Specified SV is not in snap/active state. ({name})", S.FAILED_PRECONDITION)
    SV_GUARDED = _m("iSM19025", "Specified SV is guarded. ({name})", S.FAILED_PRECONDITION)
    NO_CYCLIC_SV = _m("iSM19026", "There is no SV that can be used cyclically. ({name})", S.FAILED_PRECONDITION)
    GEN_NOT_FOUND = _m("iSM19027", "Specified generation does not exist. ({name})", S.NOT_FOUND)
    SV_LINKED = _m("iSM19028", "Specified SV is linked to an LV. ({name})", S.FAILED_PRECONDITION)
    RESTORING = _m("iSM19029", "Restore is in progress. ({name})", S.FAILED_PRECONDITION)
    NOTHING_TO_DELETE = _m("iSM19030", "There is no snapshot to delete. ({name})", S.FAILED_PRECONDITION)
    LV_LINKED = _m("iSM20021", "Specified LV is already linked. ({name})", S.FAILED_PRECONDITION)
    LV_NOT_LINKED = _m("iSM20031", "Specified LV is not linked. ({name})", S.FAILED_PRECONDITION)
    LINK_MISMATCH = _m("iSM20032", "Specified LV is not linked to the specified volume. ({name})", S.FAILED_PRECONDITION)
    LV_OTHER_BV = _m("iSM20022", "Specified LV is not built for the BV of the SV. ({name})", S.FAILED_PRECONDITION)
    BAD_ACCESS_MODE = _m("iSM20023", "Specified access restriction is invalid. ({detail})", S.INVALID_ARGUMENT)
    BV_BUSY_LINK = _m("iSM20024", "BV is already linked to an LV. ({name})", S.FAILED_PRECONDITION)
    WAIT_TIMEOUT = _m("iSM19040", "Wait for the condition timed out. ({name})", S.UNAVAILABLE)
    # -- signatures and partitions (A10, A11) ----------------------------------------------
    MULTI_PARTITION = _m(
        "iSM19050", "Volume has several partitions or logical volumes; the operation is not permitted. ({name})",
        S.FAILED_PRECONDITION,
    )
    DYNAMIC_DISK = _m("iSM19051", "Dynamic disk volume is not supported. ({name})", S.FAILED_PRECONDITION)
    GPT_NOT_ALLOWED = _m(
        "iSM19052", "GPT disk is permitted only with usage format WG and the GPT option. ({name})", S.FAILED_PRECONDITION
    )
    # -- SRA and faults (A6, A13) ---------------------------------------------------------------
    SRA_FULL = _m("iSM19060", "Snapshot reserve area has no free space. ({name})", S.RESOURCE_EXHAUSTED)
    SRA_FAILURE = _m("iSM19061", "Snapshot reserve area has failed; snapshot is not accessible. ({name})", S.DATA_LOSS)
    BV_FAILURE = _m("iSM19062", "BV has a physical failure; volume is not accessible. ({name})", S.DATA_LOSS)
    PATH_FAILURE = _m("iSM19063", "Path between the server and the disk array is broken. ({name})", S.UNAVAILABLE)
    NOT_READY = _m("iSM19064", "Volume is Not Ready. ({name})", S.FAILED_PRECONDITION)
    READ_ONLY = _m("iSM19065", "Volume is read only. ({name})", S.PERMISSION_DENIED)
    LINK_LOST = _m(
        "iSM19066", "LV was unlinked because its snapshot was deleted; I/O failed. ({name})", S.FAILED_PRECONDITION
    )
    FAULT_NOT_SET = _m("iSM19080", "Specified fault is not set. ({name})", S.NOT_FOUND)
    # -- SnapLab extensions (issue 14, docs/extensions-sra-quiesce.md): SRA-full policies ------------
    SRA_FULL_WRITE_REFUSED = _m(
        "iSM31275", "Snapshot reserve area is full; the write to the BV is refused (policy fail-writes). ({name})",
        S.RESOURCE_EXHAUSTED,
    )
    SRA_FULL_QUEUE_TIMEOUT = _m(
        "iSM31276", "Snapshot reserve area stayed full; the queued write to the BV failed (policy queue). ({detail})",
        S.RESOURCE_EXHAUSTED,
    )
    # Never a client's answer: the array service waits on it (servicer.Write) and retries the write.
    SRA_FULL_QUEUED = _m("iSM31277", "Snapshot reserve area is full; the write waits for free space. ({name})",
                         S.UNAVAILABLE)
    SRA_POLICY_BAD = _m("iSM31278", "Specified SRA-full policy setting is not valid. ({detail})", S.INVALID_ARGUMENT)
    # events the array logs (ArrayState.events; the manager copies them into its event log)
    SRA_INVALIDATED = _m(
        "iSM31279", "Snapshot reserve area is full; every snapshot sharing it is invalidated. ({detail})", S.INTERNAL
    )
    SRA_THRESHOLD = _m("iSM31280", "Snapshot reserve area usage reached its warning threshold. ({detail})", S.INTERNAL)
    SRA_AUTO_DELETED = _m(
        "iSM31281", "Snapshot reserve area is full; a snapshot is deleted to free space. ({detail})", S.INTERNAL
    )
    # -- SnapLab extensions: application-consistent snapshots (iSMsc_create -quiesce) --------------
    QUIESCED = _m(
        "iSM31282", "Volumes of the BV were frozen for {ms} ms; the snapshot is application-consistent. ({name})",
        S.INTERNAL,
    )
    QUIESCE_DEADLINE = _m(
        "iSM31283",
        "Quiesce did not finish within its deadline; the freeze was released and the snapshot is crash-consistent. "
        "({detail})",
        S.INTERNAL,
    )
    QUIESCE_HOOK_FAILED = _m(
        "iSM31284", "Quiesce hook failed; the snapshot is crash-consistent. ({detail})", S.INTERNAL
    )
    # -- SnapLab extensions (issue 14, docs/extensions.md): consistency groups and holds -------------
    GROUP_NOT_FOUND = _m("iSM31260", "Specified consistency group does not exist. ({name})", S.NOT_FOUND)
    GROUP_EXISTS = _m("iSM31261", "Specified consistency group already exists. ({name})", S.ALREADY_EXISTS)
    GROUP_BAD = _m("iSM31262", "Specified consistency group definition is not valid. ({detail})", S.INVALID_ARGUMENT)
    GROUP_MEMBER_TAKEN = _m(
        "iSM31263", "Specified BV is already a member of another consistency group. ({name})", S.FAILED_PRECONDITION
    )
    GROUP_CHANGED = _m(
        "iSM31264", "Members of the consistency group changed during the operation; retry. ({name})",
        S.FAILED_PRECONDITION,
    )
    GROUP_NO_FREE_SV = _m(
        "iSM31265", "A member of the consistency group has no unused SV; use -cyclic or delete a generation. ({name})",
        S.FAILED_PRECONDITION,
    )
    GROUP_GEN_NOT_FOUND = _m(
        "iSM31266", "Specified generation of the consistency group does not exist. ({name})", S.NOT_FOUND
    )
    # all-or-nothing: the member's own refusal is in the detail, and no member was changed
    GROUP_REFUSED = _m(
        "iSM31267", "Consistency group operation is refused; no member was changed. ({detail})", S.FAILED_PRECONDITION
    )
    GROUP_LVS_BAD = _m(
        "iSM31268", "Specified LVs do not match the members of the consistency group. ({detail})", S.INVALID_ARGUMENT
    )
    GEN_HELD = _m("iSM31269", "Specified SV has holds; release them first. ({name})", S.FAILED_PRECONDITION)
    HOLD_EXISTS = _m("iSM31270", "Specified hold already exists on the SV. ({name})", S.ALREADY_EXISTS)
    HOLD_NOT_FOUND = _m("iSM31271", "Specified hold does not exist on the SV. ({name})", S.NOT_FOUND)
    HOLD_BAD = _m("iSM31272", "Specified hold name is not valid. ({detail})", S.INVALID_ARGUMENT)
    # iSM31273, iSM31274: iSMcfg cgadd / cgdel success lines (manager/console/groups.py)
    # -- lab checkpoints (issue 10 part 3: `snaplab lab checkpoint|rollback|checkpoints`) ----------
    CHECKPOINT_BAD_NAME = _m("iSM31290", "Specified checkpoint name is invalid. ({detail})", S.INVALID_ARGUMENT)
    CHECKPOINT_NOT_FOUND = _m("iSM31291", "Specified checkpoint does not exist. ({name})", S.NOT_FOUND)
    CHECKPOINT_EXISTS = _m("iSM31292", "Specified checkpoint already exists. ({name})", S.ALREADY_EXISTS)
    CHECKPOINT_LAB_DOWN = _m(
        "iSM31293", "Lab is not running; checkpoints need a running lab. ({detail})", S.FAILED_PRECONDITION
    )
    CHECKPOINT_FAILED = _m("iSM31294", "Checkpoint operation failed. ({detail})", S.FAILED_PRECONDITION)
    CHECKPOINT_TAKEN = _m("iSM31295", "Lab checkpoint was taken. ({name})", S.INTERNAL)  # an event
    CHECKPOINT_ROLLED_BACK = _m("iSM31296", "Lab was rolled back to a checkpoint. ({name})", S.INTERNAL)  # an event
    # -- identity ------------------------------------------------------------------------------
    UNAUTHENTICATED = _m("iSM31050", "Caller has no valid certificate of this lab. ({detail})", S.UNAUTHENTICATED)
    # -- daemon resources: per-caller limits (every daemon's gRPC server, snaplab/common/rpc_guard.py) --
    CALLER_LIMIT = _m(
        "iSM31150", "Too many requests of this caller are in progress; retry later. ({detail})", S.RESOURCE_EXHAUSTED
    )
    SERVER_BUSY = _m(
        "iSM31151", "Too many requests of servers are in progress; retry later. ({detail})", S.RESOURCE_EXHAUSTED
    )
    STREAM_IDLE = _m("iSM31152", "Stream was idle too long and is closed. ({detail})", S.DEADLINE_EXCEEDED)
    STOPPING = _m("iSM31153", "Service is stopping; the stream is closed. ({name})", S.UNAVAILABLE)
    # -- array storage (its state folder's file system: array.db and the LDs' data files) --------
    STORAGE_FULL = _m(
        "iSM31160", "Disk array storage is full; the request was not done. ({detail})", S.RESOURCE_EXHAUSTED
    )
    STORAGE_UNWRITABLE = _m(
        "iSM31161", "Disk array state cannot be written; the request was not done. ({detail})", S.UNAVAILABLE
    )
    STORAGE_FAILED = _m("iSM31162", "Disk array storage failed; the request was not done. ({detail})", S.UNAVAILABLE)
    STATE_UNREADABLE = _m(
        "iSM31163", "Disk array state cannot be read from its storage; retry once it is back. ({detail})",
        S.UNAVAILABLE,
    )
    # -- manager: control I/O routing (B3) ----------------------------------------------------
    NOT_ENROLLED = _m("iSM31060", "Server is not registered to the management server. ({name})", S.PERMISSION_DENIED)
    CV_RULE = _m(
        "iSM31061",
        "Specified volume cannot be operated through the control volume of this server. ({name})",
        S.PERMISSION_DENIED,
    )
    VIA_NOT_TARGET = _m(
        "iSM31062", "Control I/O must be issued to the operated volume or to a control volume. ({name})",
        S.PERMISSION_DENIED,
    )
    VIA_NOT_READY = _m("iSM31063", "Volume used for control I/O is Not Ready. ({name})", S.FAILED_PRECONDITION)
    ARRAY_UNKNOWN = _m("iSM31064", "Specified disk array is not managed. ({name})", S.NOT_FOUND)
    ARRAY_UNREACHABLE = _m("iSM31065", "Disk array does not respond. ({name})", S.UNAVAILABLE)
    # -- manager: host definitions (B2: a host's HBAs and cabling are the lab's, never its claim) --------
    HOST_NOT_DEFINED = _m(
        "iSM31068", "Server is not defined on the management server. ({name})", S.PERMISSION_DENIED
    )
    HOST_MISMATCH = _m(
        "iSM31069", "Server configuration differs from its definition on the management server. ({detail})",
        S.PERMISSION_DENIED,
    )
    # -- manager console (iSMcfg, iSMview) -------------------------------------------------------
    MANAGER_UNREACHABLE = _m("iSM31066", "Management server does not respond. ({name})", S.UNAVAILABLE)
    LAB_UNKNOWN = _m("iSM31067", "Management server of the lab is not known. ({detail})", S.FAILED_PRECONDITION)
    # -- lab: host lifecycle (snaplab host stop|kill|start|restart; guide 2.3.4, 3.9) ------------
    LAB_HOST_UNKNOWN = _m("iSM31180", "Specified server is not a server of the lab. ({name})", S.NOT_FOUND)
    LAB_HOST_RUNNING = _m("iSM31181", "Specified server is already running. ({name})", S.FAILED_PRECONDITION)
    LAB_HOST_DOWN = _m("iSM31182", "Specified server is not running. ({name})", S.FAILED_PRECONDITION)
    LAB_HOST_START_FAILED = _m("iSM31183", "Specified server cannot be started. ({detail})", S.UNAVAILABLE)
    # -- lab: clusters (snaplab cluster status|move; guide 3.10 (9)-(12)) ------------------------
    CLUSTER_UNKNOWN = _m("iSM31200", "Specified cluster or group is not defined in the lab. ({name})", S.NOT_FOUND)
    NOT_A_NODE = _m("iSM31201", "Specified server is not a node of the cluster. ({name})", S.FAILED_PRECONDITION)
    GROUP_ALREADY_THERE = _m(
        "iSM31202", "Specified group is already online on the server. ({name})", S.FAILED_PRECONDITION
    )
    GROUP_MOVE_FAILED = _m("iSM31203", "Group cannot be moved to the server. ({detail})", S.FAILED_PRECONDITION)
    SIGNATURES_LOST = _m(
        "iSM31204",
        "Disk signature of the shared disk was not imported on the node; the signature is lost. ({name})",
        S.FAILED_PRECONDITION,
    )
    HOST_DOWN = _m("iSM31205", "Server is down. ({name})", S.UNAVAILABLE)
    HOST_UP = _m("iSM31206", "Server is up. ({name})", S.INTERNAL)
    SHARED_NOT_BV = _m(
        "iSM31207",
        "Specified logical disk cannot be a cluster shared disk; only a BV can. ({name})",
        S.FAILED_PRECONDITION,
    )
    CLUSTER_NOT_CONFIGURED = _m(
        "iSM31208", "Specified server is not configured as a node of the cluster. ({name})", S.PERMISSION_DENIED
    )
    # -- manager: quorum witness of the clusters (events of failover) ----------------------------
    HEARTBEAT_LOST = _m("iSM31210", "Heartbeat of the cluster node is lost. ({name})", S.UNAVAILABLE)
    GROUP_TAKEN_OVER = _m("iSM31211", "Cluster group is taken over by the node. ({name})", S.INTERNAL)
    RESERVATION_MOVED = _m("iSM31212", "Reservation of the shared disk is moved. ({name})", S.INTERNAL)
    CLAIM_REFUSED = _m(
        "iSM31213", "Claim of the cluster group is refused: its owner is alive. ({name})", S.FAILED_PRECONDITION
    )
    NODE_DOWN = _m("iSM31214", "Cluster node is down. ({name})", S.UNAVAILABLE)
    NODE_UP = _m("iSM31215", "Cluster node is up. ({name})", S.INTERNAL)
    RESOURCE_FAILED = _m(
        "iSM31216", "Disk resource of the cluster group failed; the group fails over. ({name})", S.FAILED_PRECONDITION
    )
    UMOUNT_SHARED = _m(
        "iSM31217",
        "Specified disk is a cluster shared disk online in the cluster; unmounting it fails the group over. ({name})",
        S.FAILED_PRECONDITION,
    )
    GROUP_OFFLINE = _m("iSM31218", "Cluster group is offline. ({name})", S.INTERNAL)
    GROUP_ONLINE = _m("iSM31219", "Cluster group is online. ({name})", S.INTERNAL)
    # -- array: persistent reservations of cluster shared disks (SCSI-3 PR, guide 3.10 (11)) -----
    RESERVATION_CONFLICT = _m(
        "iSM31190", "Specified disk is reserved by another server; I/O failed. ({name})", S.FAILED_PRECONDITION
    )
    RESERVE_NOT_BV = _m("iSM31191", "Only a BV can be a cluster shared disk. ({name})", S.FAILED_PRECONDITION)
    RESERVE_NO_PATH = _m(
        "iSM31192", "Specified server cannot reach the disk it would reserve. ({name})", S.FAILED_PRECONDITION
    )
    RESERVED_ELSEWHERE = _m(
        "iSM31193", "Specified disk is owned by another node of the cluster. ({name})", S.FAILED_PRECONDITION
    )
    # -- agent: volume list (C2, C3) ------------------------------------------------------------
    VOLLIST_CREATED = _m("iSM11701", "Volume list is created successfully.", S.INTERNAL)
    VOLLIST_MISSING = _m("iSM11702", "Volume list does not exist. Create it with iSMvollist -cr.", S.FAILED_PRECONDITION)
    NOT_IN_VOLLIST = _m("iSM11703", "Specified volume is not registered in the volume list. ({name})", S.NOT_FOUND)
    VOLLIST_STALE = _m(
        "iSM11704", "Volume list does not match the system. Recreate it with iSMvollist -cr. ({name})",
        S.FAILED_PRECONDITION,
    )
    NO_CV = _m("iSM11705", "Control volume is not defined for the disk array. ({name})", S.FAILED_PRECONDITION)
    CV_CANDIDATE = _m("iSM11706", "Specified volume cannot be a control volume. ({name})", S.FAILED_PRECONDITION)
    VOLLIST_MATCHES = _m("iSM11707", "Volume list matches the system.", S.INTERNAL)
    CV_DEFINED = _m("iSM11708", "Control volume is defined. Recreate the volume list with iSMvollist -cr. ({name})", S.INTERNAL)
    CV_UNDEFINED = _m(
        "iSM11709", "Control volume definition is deleted. Recreate the volume list with iSMvollist -cr. ({name})",
        S.INTERNAL,
    )
    GATHERED = _m("iSM11710", "Information for fault analysis is collected. ({name})", S.INTERNAL)
    GATHER_FAILED = _m("iSM11711", "Information for fault analysis cannot be collected. ({detail})", S.FAILED_PRECONDITION)
    # -- agent: disk commands (C5, C6) ---------------------------------------------------------
    DISK_REFUSED = _m("iSM13609", "Access of specified disk was refused.", S.FAILED_PRECONDITION)
    PATH_NOT_NORMAL = _m("iSM13639", "Specified path is not normal status.", S.FAILED_PRECONDITION)
    NOT_MOUNTED = _m("iSM13610", "Specified volume is not mounted. ({name})", S.FAILED_PRECONDITION)
    MOUNT_POINT_COUNT = _m(
        "iSM13611", "Specified volume must have exactly one mount point to be unmounted. ({name})", S.FAILED_PRECONDITION
    )
    MOUNT_POINT_IN_USE = _m("iSM13612", "Specified mount point is already in use. ({name})", S.ALREADY_EXISTS)
    NO_SUCH_VOLUME = _m("iSM13613", "Specified volume is not recognized by the server. ({name})", S.NOT_FOUND)
    NO_MOUNT_POINT = _m(
        "iSM13614", "No mount point is specified or registered for the volume. ({name})", S.FAILED_PRECONDITION
    )
    SIGNATURE_FILE = _m("iSM13620", "Signature file cannot be used. ({detail})", S.INVALID_ARGUMENT)
    SIGNATURE_CONFLICT = _m(
        "iSM13621", "Disk signature is already used by another disk of the server. ({name})", S.FAILED_PRECONDITION
    )
    SIGNATURE_FAILED = _m("iSM13622", "Disk signature of some disks cannot be imported. ({name})", S.FAILED_PRECONDITION)
    DISK_OPERATION = _m("iSM13630", "Disk management operation failed. ({detail})", S.FAILED_PRECONDITION)
    # -- agent: host-side checks of the snapshot commands (guide 1.7, 2.2.1, 2.2.2.2, 3.6) ---------
    LV_MOUNTED = _m(
        "iSM13680", "Volume of the specified LV is mounted. Flush and unmount it with iSMrc_umount first. ({name})",
        S.FAILED_PRECONDITION,
    )
    BV_MOUNTED = _m(
        "iSM13681", "Volume of the specified BV is mounted. Flush and unmount it with iSMrc_umount first. ({name})",
        S.FAILED_PRECONDITION,
    )
    # -- chaos rules (issue 10: `snaplab chaos`, snaplab/common/chaos.py) -------------------------
    CHAOS_BAD_RULE = _m("iSM31335", "Specified chaos rule is invalid. ({detail})", S.INVALID_ARGUMENT)
    CHAOS_NO_RULE = _m("iSM31336", "Specified chaos rule does not exist. ({name})", S.NOT_FOUND)
    CHAOS_BAD_TARGET = _m("iSM31337", "Specified chaos target is not a process of the lab. ({name})", S.NOT_FOUND)
    CHAOS_BAD_OP = _m(
        "iSM31338", "Specified operation is not an operation of the chaos target. ({name})", S.INVALID_ARGUMENT
    )
    # -- the manager's web console (manager/web/) --------------------------------------------------
    CONSOLE_LOGIN = _m("iSM31350", "Login to the operator console is refused. ({detail})", S.UNAUTHENTICATED)
    CONSOLE_SESSION = _m(
        "iSM31351", "Operator console session is missing or has expired. Log in again.", S.UNAUTHENTICATED
    )
    CONSOLE_FORBIDDEN = _m(
        "iSM31352", "Operator console refused a request from another site. ({detail})", S.PERMISSION_DENIED
    )
    CONSOLE_REQUEST = _m("iSM31353", "Operator console request is incorrect. ({detail})", S.INVALID_ARGUMENT)
    CONSOLE_DOWN = _m("iSM31354", "Operator console is not running. ({detail})", S.UNAVAILABLE)
    # -- agent: commands in general --------------------------------------------------------------
    USAGE = _m("iSM11100", "Command syntax is incorrect. ({detail})", S.INVALID_ARGUMENT)
    AGENT_DOWN = _m("iSM11101", "SnapControl service of the server does not respond. ({name})", S.UNAVAILABLE)


def all_messages() -> list[Message]:
    return [v for v in vars(E).values() if isinstance(v, Message)]


if __name__ == "__main__":
    for m in sorted(all_messages(), key=lambda m: m.msg_id):
        print(f"{m.msg_id}  {m.status.name:<20} {m.text}")
