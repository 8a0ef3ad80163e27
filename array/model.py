"""The array's configuration objects, as the engine keeps them in memory (mirrored in SQLite)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Usage formats ("利用形式") the array accepts; see SPEC §8 for the OS codes.
FORMATS = ("A2", "A4", "AX", "CX", "LX", "NX", "SX", "WN", "WG")
# The formats a host of each platform may be given.
PLATFORM_FORMATS = {"windows": ("WN", "WG"), "linux": ("LX",), "hpux": ("NX",), "solaris": ("CX",), "aix": ("AX",)}
POOL_KINDS = ("basic", "dynamic")
ACCESS_MODES = ("rw", "ro", "nr", "na")
LD_ATTRS = ("iv", "cv", "mv", "rv")

STATE_UNUSED = "snap/deleted"  # an SV of the set that holds no snapshot
STATE_ACTIVE = "snap/active"
STATE_RESTORING = "rst/exec"
STATE_FAULT = "snap/fault"
LIVE_STATES = (STATE_ACTIVE, STATE_RESTORING, STATE_FAULT)

FAULT_NONE, FAULT_SRA, FAULT_BV = 0, 1, 2

# Licensed products (A4).
DSV = "DynamicSnapVolume"
ACCESS_CONTROL = "AccessControl"
VERSION3 = "Version3"
PRODUCTS = (DSV, ACCESS_CONTROL, VERSION3)

# Injectable faults (A13): kind -> what names the target.
FAULT_KINDS = {
    "sra_full": "pool",
    "sra_failure": "pool",
    "bv_failure": "ld",
    "licence": "product",
    "path": "host",
    "array_link": "array",
    "rpl_hold": "ld",  # the replication copy to this RV pauses (replication.py)
}


def ld_number_text(n: int) -> str:
    return f"{n:04x}h"


@dataclass
class Pool:
    number: int
    name: str
    kind: str
    capacity: int


@dataclass
class Port:
    director: int
    port: int
    name: str

    @property
    def text(self) -> str:
        return f"{self.director:02x}h/{self.port:02x}h"


@dataclass(slots=True)  # one per LD / SV: 65,536 SVs at scale (issue 12), ~half the memory
class LD:
    number: int
    name: str
    type: str  # IV, BV, SV, LV, SDV, CV
    format: str
    capacity: int
    pool: int
    attr: str = "iv"
    bv: int | None = None
    seq: int = 0
    signature: bytes | None = None
    link_lost: bool = False

    @property
    def number_text(self) -> str:
        return ld_number_text(self.number)


@dataclass(slots=True)  # one per LD / SV: 65,536 SVs at scale (issue 12), ~half the memory
class Gen:
    """The snapshot state of one SV of a set."""

    sv: int
    state: str = STATE_UNUSED
    epoch: int | None = None
    state_time: str | None = None
    create_time: str | None = None
    guard: bool = False
    orig_signature: bytes | None = None
    fault: int = FAULT_NONE

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


@dataclass
class Link:
    lv: int
    kind: str  # "sv" or "bv"
    target: int
    mode: str


@dataclass
class Restore:
    bv: int
    sv: int
    total: int
    started: str
    signature: bytes | None
    pending: set[int] = field(default_factory=set)


@dataclass
class Host:
    name: str
    wwns: list[str]
    ports: list[str]
    platform: str = "windows"
    initiators: list[str] = field(default_factory=list)  # iSCSI initiator names (an iSCSI LD set)
