"""The ``[[clusters]]`` sections: nodes, quorum, heartbeat and failover groups on cluster shared disks.

Rules of the guide checked here (3.10 (9)-(12)): a shared disk is a BV, never an SV or LV; every
node reaches it (access control); a disk witness is not on a BV; the quorum can be reached with one
node down, so a two-node cluster needs a witness.
"""

from __future__ import annotations

import re

from .spec import QUORUM_MAJORITY, QUORUM_WITNESS, ClusterSpec, GroupSpec, LabSpec, SharedDisk
from .spec_reader import TableReader, listing, unique
from .values import split_command, wwn_key

MOUNT = re.compile(r"(?:[D-Zd-z]:|[D-Zd-z]:\\[^\\]+(?:\\[^\\]+)*)")
DEFAULT_HEARTBEAT_TIMEOUT = 5.0


class ClustersReader(TableReader):
    def clusters(self, raw: list, spec: LabSpec) -> list[ClusterSpec]:
        out = [self.cluster(c, f"clusters[{i}]", spec) for i, c in enumerate(raw)]
        unique([c.name for c in out], lambda n: self.fail("clusters", f"cluster name {n!r} is used twice"))
        node_of: dict[str, str] = {}
        for c in out:
            for n in c.nodes:
                if n in node_of:
                    raise self.fail(
                        f"clusters[{c.name}].nodes", f"{n} is already a node of cluster {node_of[n]}"
                    )
                node_of[n] = c.name
        disk_of: dict[tuple[str, str], str] = {}
        for c in out:
            for g in c.groups:
                for d in g.disks:
                    if (d.array, d.ld) in disk_of:
                        raise self.fail(
                            f"clusters[{c.name}].groups[{g.name}].disks",
                            f"{d.ld} is already a shared disk of group {disk_of[(d.array, d.ld)]}",
                        )
                    disk_of[(d.array, d.ld)] = g.name
        return out

    def cluster(self, raw: object, where: str, spec: LabSpec) -> ClusterSpec:
        allowed = ("name", "nodes", "quorum", "witness", "heartbeat_interval", "heartbeat_timeout", "groups")
        t = self.table(raw, where, allowed, ("name", "nodes"))
        c = ClusterSpec(self.name(self.string(t, "name", where), f"{where}.name", "cluster name"))
        where = f"clusters[{c.name}]"
        hosts = {h.name: h for h in spec.hosts}
        c.nodes = self.strings(t, "nodes", where)
        for n in c.nodes:
            if n not in hosts:
                raise self.fail(f"{where}.nodes", f"no host named {n!r} (hosts: {listing(hosts)})")
            if hosts[n].cluster and hosts[n].cluster != c.name:
                raise self.fail(f"{where}.nodes", f"host {n} says it is a node of cluster {hosts[n].cluster}")
        unique(c.nodes, lambda n: self.fail(f"{where}.nodes", f"node {n} is listed twice"))
        if len(c.nodes) < 2:
            raise self.fail(f"{where}.nodes", "a cluster needs at least two nodes")
        for h in spec.hosts:
            if h.cluster == c.name and h.name not in c.nodes:
                raise self.fail(
                    f"{where}.nodes", f"host {h.name} says it is a node of {c.name} but is not listed"
                )
        self._quorum(t, where, c, spec)
        c.heartbeat_timeout = self._seconds(t, "heartbeat_timeout", where, DEFAULT_HEARTBEAT_TIMEOUT)
        c.heartbeat_interval = self._seconds(t, "heartbeat_interval", where, c.heartbeat_timeout / 5)
        if c.heartbeat_interval >= c.heartbeat_timeout:
            raise self.fail(f"{where}.heartbeat_interval", "must be shorter than heartbeat_timeout")
        groups = self.items(t.get("groups"), f"{where}.groups")
        c.groups = [self.group(g, f"{where}.groups[{i}]", c, spec) for i, g in enumerate(groups)]
        unique(
            [g.name for g in c.groups],
            lambda n: self.fail(f"{where}.groups", f"group name {n!r} is used twice"),
        )
        owners = {g.owner for g in c.groups} or {c.nodes[0]}
        for n in c.nodes:  # a node listed here is a node, whether or not its [[hosts]] entry says so
            if not hosts[n].cluster:
                hosts[n].cluster = c.name
                hosts[n].cluster_role = "active" if n in owners else "standby"
        return c

    def _quorum(self, t: dict, where: str, c: ClusterSpec, spec: LabSpec) -> None:
        c.quorum = self.string(t, "quorum", where, QUORUM_WITNESS)
        if c.quorum not in (QUORUM_MAJORITY, QUORUM_WITNESS):
            raise self.fail(f"{where}.quorum", f"{c.quorum!r} is not {QUORUM_MAJORITY} or {QUORUM_WITNESS}")
        if c.quorum == QUORUM_MAJORITY:
            if "witness" in t:
                raise self.fail(f"{where}.witness", "a witness is for quorum = 'witness'")
            c.witness = ""
            if len(c.nodes) < 3:
                raise self.fail(
                    f"{where}.quorum",
                    f"node majority of {len(c.nodes)} nodes loses quorum when one node is down: "
                    "use quorum = 'witness'",
                )
            return
        c.witness = self.string(t, "witness", where, "manager")
        if c.witness == "manager":
            return
        kinds = {ld: (a.name, k) for a in spec.arrays for ld, k in a.ld_kinds().items()}
        if c.witness not in kinds:
            raise self.fail(f"{where}.witness", f"{c.witness!r} is neither 'manager' nor an LD of the lab")
        if kinds[c.witness][1] in ("BV", "SV", "LV", "SDV"):
            raise self.fail(
                f"{where}.witness",
                f"{c.witness} is {_a(kinds[c.witness][1])}: the quorum witness must not be on a BV or its snapshots "
                "(3.10 (12))",
            )

    def _seconds(self, t: dict, key: str, where: str, default: float) -> float:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
            raise self.fail(f"{where}.{key}", f"expected seconds (a number from 0 to 3600), not {value!r}")
        return float(value)

    def group(self, raw: object, where: str, c: ClusterSpec, spec: LabSpec) -> GroupSpec:
        t = self.table(raw, where, ("name", "owner", "disks", "takeover"), ("name", "disks"))
        g = GroupSpec(self.name(self.string(t, "name", where), f"{where}.name", "group name"), "")
        where = f"clusters[{c.name}].groups[{g.name}]"
        g.owner = self.string(t, "owner", where, c.nodes[0])
        if g.owner not in c.nodes:
            raise self.fail(f"{where}.owner", f"{g.owner!r} is not a node of {c.name} ({', '.join(c.nodes)})")
        raw_disks = t["disks"]
        if not isinstance(raw_disks, list) or not raw_disks:
            raise self.fail(f"{where}.disks", "expected a list of {ld, mount} tables")
        for i, rd in enumerate(raw_disks):
            g.disks.append(self.shared_disk(rd, f"{where}.disks[{i}]", c, spec))
        unique(
            [d.mount.upper() for d in g.disks], lambda n: self.fail(f"{where}.disks", f"{n} is used twice")
        )
        for i, line in enumerate(self.strings(t, "takeover", where)):
            try:
                argv = split_command(line)
            except ValueError as exc:
                raise self.fail(f"{where}.takeover[{i}]", str(exc)) from None
            if not argv:
                raise self.fail(f"{where}.takeover[{i}]", "empty command line")
            g.takeover.append((line, tuple(argv)))
        return g

    def shared_disk(self, raw: object, where: str, c: ClusterSpec, spec: LabSpec) -> SharedDisk:
        t = self.table(raw, where, ("array", "ld", "mount"), ("ld", "mount"))
        array = self.array_ref(t, where, spec)
        ld = self.string(t, "ld", where)
        kinds = array.ld_kinds()
        if ld not in kinds:
            raise self.fail(f"{where}.ld", f"{ld!r} is not an LD of array {array.name}")
        if kinds[ld] != "BV":
            raise self.fail(
                f"{where}.ld",
                f"{ld} is {_a(kinds[ld])}: a cluster shared disk must be a BV (an SV or LV never is, 3.10 (11))",
            )
        mount = self.string(t, "mount", where)
        if not MOUNT.fullmatch(mount):
            raise self.fail(
                f"{where}.mount", f"{mount!r} is not a drive letter (G:) or an NTFS folder (G:\\data)"
            )
        for n in c.nodes:
            h = spec.host(n)
            paths = {("port", p) for p in h.ports} | {("wwn", wwn_key(w)) for w in h.wwns}
            given = {
                ("port", a.port) if a.port is not None else ("wwn", wwn_key(a.wwn or ""))
                for a in spec.access
                if a.array == array.name and a.ld == ld
            }
            if not paths & given:
                raise self.fail(f"{where}.ld", f"node {n} does not reach {ld}: give it access ([[access]])")
        return SharedDisk(array.name, ld, mount.upper() if len(mount) == 2 else mount)


def _a(kind: str) -> str:
    """ "an LV", "a CV": the article as the letters are spoken."""
    return f"{'an' if kind[0] in 'AEFHILMNORSX' else 'a'} {kind}"
