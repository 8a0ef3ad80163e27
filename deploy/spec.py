"""The parsed lab file (``LabSpec``): arrays with their pools and LDs, hosts, access paths, setup commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LabError


@dataclass(frozen=True)
class PortSpec:
    director: int
    port: int
    name: str

    @property
    def text(self) -> str:
        return f"{self.director:02x}h/{self.port:02x}h"


@dataclass(frozen=True)
class PoolSpec:
    number: int
    name: str
    kind: str
    capacity: int
    # SnapLab extension (issue 14): the SRA-full policy; None/() = the guide's behaviour (auto-delete)
    sra_policy: str | None = None
    sra_warn: tuple[int, ...] = ()
    sra_queue_timeout: float | None = None

    @property
    def sra_policy_set(self) -> bool:
        return self.sra_policy is not None or bool(self.sra_warn) or self.sra_queue_timeout is not None


@dataclass(frozen=True)
class LdSpec:
    name: str
    capacity: int
    pool: int
    format: str
    number: int | None = None
    attr: str = "iv"


@dataclass(frozen=True)
class SraSpec:
    pool: int
    capacity: int
    name: str | None = None
    number: int | None = None


@dataclass(frozen=True)
class SvSpec:
    name: str | None  # None: the array names it (<BV>_SVnn)
    number: int | None = None


@dataclass(frozen=True)
class GenerationSpec:
    bv: str
    pool: int
    svs: tuple[SvSpec, ...]


@dataclass(frozen=True)
class LvSpec:
    bv: str
    name: str
    number: int | None = None


@dataclass(frozen=True)
class ConsistencyGroupSpec:
    """A consistency group (SnapLab extension, issue 14): a name and the array's BVs it holds."""

    name: str
    bvs: tuple[str, ...]


@dataclass(frozen=True)
class LicenceSpec:
    product: str
    capacity: int


@dataclass
class ArraySpec:
    name: str
    product_id: str = ""
    address: str = ""  # its LAN address on a netns lab ("": the plan's default, deploy/netns.py)
    restore_rate: float = 0.0  # MiB/s a restore copies (0: as fast as it can)
    ports: list[PortSpec] = field(default_factory=list)
    pools: list[PoolSpec] = field(default_factory=list)
    sra: list[SraSpec] = field(default_factory=list)
    lds: list[LdSpec] = field(default_factory=list)
    generations: list[GenerationSpec] = field(default_factory=list)
    lvs: list[LvSpec] = field(default_factory=list)
    licences: list[LicenceSpec] = field(default_factory=list)
    groups: list[ConsistencyGroupSpec] = field(default_factory=list)  # SnapLab extension

    @property
    def physical_capacity(self) -> int:
        return sum(p.capacity for p in self.pools)

    def port_names(self) -> set[str]:
        return {p.name for p in self.ports}

    def ld_kinds(self) -> dict[str, str]:
        """Every LD name this file makes on the array -> IV/CV/BV/SV/LV/SDV."""
        kinds = {ld.name: ("CV" if ld.attr == "cv" else "IV") for ld in self.lds}
        for g in self.generations:
            kinds[g.bv] = "BV"
            kinds.update({sv.name: "SV" for sv in g.svs if sv.name})
        kinds.update({lv.name: "LV" for lv in self.lvs})
        kinds.update({s.name: "SDV" for s in self.sra if s.name})
        return kinds


@dataclass(frozen=True)
class PinnedVolume:
    """The ``\\\\?\\Volume{GUID}\\`` name a host gives partition ``partition`` of LD ``ld``."""

    array: str
    ld: str
    partition: int
    guid: str  # lower case, no braces

    def as_json(self) -> dict[str, Any]:
        return {"array": self.array, "ld": self.ld, "partition": self.partition, "guid": self.guid}


@dataclass
class HostSpec:
    name: str
    role: str
    platform: str = "windows"
    wwns: list[str] = field(default_factory=list)
    ports: list[str] = field(default_factory=list)
    cluster: str = ""
    cluster_role: str = ""
    volumes: list[PinnedVolume] = field(default_factory=list)
    address: str = ""  # its LAN address on a netns lab ("": the plan's default, deploy/netns.py)
    # SnapLab extension (issue 14): iSMsc_create -quiesce hooks, written to the host's iSMrpl.ini [QUIESCE]
    quiesce: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessSpec:
    array: str
    ld: str
    port: str | None = None
    wwn: str | None = None

    @property
    def path(self) -> str:
        return f"port {self.port}" if self.port is not None else f"WWN {self.wwn}"


@dataclass(frozen=True)
class SetupCommand:
    host: str
    line: str
    argv: tuple[str, ...]
    stdin: str = ""
    where: str = ""  # "setup[2]", for messages


@dataclass(frozen=True)
class SharedDisk:
    """A cluster shared disk: a BV, and where the owner node mounts its first partition."""

    array: str
    ld: str
    mount: str  # drive letter ("G:") or NTFS folder


@dataclass
class GroupSpec:
    """A failover group: its shared disks, the node that owns it first, what a new owner runs."""

    name: str
    owner: str
    disks: list[SharedDisk] = field(default_factory=list)
    takeover: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (line, argv)


QUORUM_MAJORITY, QUORUM_WITNESS = "node_majority", "witness"


@dataclass
class ClusterSpec:
    """A cluster (MSCS / CLUSTERPRO, guide 3.10 (9)-(12)): nodes, quorum, heartbeat, groups."""

    name: str
    nodes: list[str] = field(default_factory=list)
    quorum: str = QUORUM_WITNESS
    witness: str = "manager"  # "manager" (a share on the management server) or an LD name ("" none)
    heartbeat_interval: float = 1.0  # seconds between heartbeats on the cluster network
    heartbeat_timeout: float = 5.0  # heartbeats missed this long: the node is down
    groups: list[GroupSpec] = field(default_factory=list)

    def votes(self) -> int:
        return len(self.nodes) + (1 if self.quorum == QUORUM_WITNESS else 0)

    def quorum_size(self) -> int:
        """Votes a partition needs to run the cluster: more than half of all votes."""
        return self.votes() // 2 + 1


@dataclass
class MachineSpec:
    """A machine of a deployment (``[[machines]]``): its address and the lab's parts it runs."""

    name: str
    address: str
    runs: list[str] = field(default_factory=list)  # array names, "manager", host names


@dataclass
class LabSpec:
    source: str  # file name shown in messages
    text: str  # the file as read (copied into the lab folder)
    description: str = ""
    network: str = "loopback"  # or "netns": every process its own network namespace (deploy/netns.py)
    manager_address: str = ""  # the manager's LAN address on a netns lab
    console: str = "127.0.0.1:0"  # where the manager serves the web console ("" none): loopback unless set
    arrays: list[ArraySpec] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)
    access: list[AccessSpec] = field(default_factory=list)
    setup: list[SetupCommand] = field(default_factory=list)
    clusters: list[ClusterSpec] = field(default_factory=list)
    machines: list[MachineSpec] = field(default_factory=list)  # one ("lab") when the file has none

    @classmethod
    def load(cls, path: Path | str) -> LabSpec:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LabError(f"lab file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LabError(f"cannot read lab file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<lab file>") -> LabSpec:
        from .spec_parser import LabParser  # here, not at the top: the parser builds these classes

        return LabParser(source).parse(text)

    def array(self, name: str) -> ArraySpec:
        return next(a for a in self.arrays if a.name == name)

    def host(self, name: str) -> HostSpec:
        return next(h for h in self.hosts if h.name == name)

    def cluster(self, name: str) -> ClusterSpec:
        return next(c for c in self.clusters if c.name == name)

    def machine_of(self, name: str) -> MachineSpec:
        """The machine running array ``name``, the manager (``"manager"``) or host ``name``."""
        return next(m for m in self.machines if name in m.runs)
