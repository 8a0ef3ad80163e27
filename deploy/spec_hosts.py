"""The ``[[hosts]]`` sections: role, platform, WWNs and cabled ports, cluster membership, pinned volumes."""

from __future__ import annotations

from snaplab.array.model import PLATFORM_FORMATS

from .spec import HostSpec, LabSpec, PinnedVolume
from .spec_reader import TableReader, listing, unique
from .values import WWN, normalise_guid, wwn_key

HOST_ROLES = ("business", "backup", "test", "standby")
CLUSTER_ROLES = ("active", "standby")


class HostsReader(TableReader):
    def quiesce(self, raw: object, where: str) -> dict[str, str]:
        """``quiesce = { freeze = "CMD", thaw = "CMD", deadline = SECONDS }`` (SnapLab extension)."""
        qt = self.table(raw, where, ("freeze", "thaw", "deadline"), ())
        out = {}
        for key in ("freeze", "thaw"):
            value = self.string(qt, key, where, "")
            if "\n" in value or " ;" in value or " #" in value:
                raise self.fail(f"{where}.{key}", "one command line, without ' ;' or ' #' (iSMrpl.ini comments)")
            if value:
                out[key] = value
        if "deadline" in qt:
            d = qt["deadline"]
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d <= 600:
                raise self.fail(f"{where}.deadline", "expected seconds, more than 0 and at most 600")
            out["deadline"] = f"{d:g}"
        return out

    def host(self, raw: object, where: str, spec: LabSpec) -> HostSpec:
        allowed = ("name", "role", "platform", "wwns", "ports", "cluster", "cluster_role", "volumes", "address",
                   "quiesce")
        t = self.table(raw, where, allowed, ("name", "role"))
        h = HostSpec(
            self.name(self.string(t, "name", where), f"{where}.name", "host name"),
            self.string(t, "role", where),
        )
        where = f"hosts[{h.name}]"
        if h.role not in HOST_ROLES:
            raise self.fail(f"{where}.role", f"{h.role!r} is not a role ({', '.join(HOST_ROLES)})")
        h.platform = self.string(t, "platform", where, "windows")
        if h.platform not in PLATFORM_FORMATS:
            raise self.fail(
                f"{where}.platform", f"{h.platform!r} is not a platform ({', '.join(PLATFORM_FORMATS)})"
            )
        h.wwns = self.strings(t, "wwns", where)
        for w in h.wwns:
            if not WWN.fullmatch(w):
                raise self.fail(
                    f"{where}.wwns", f"{w!r} is not a WWN (16 hex digits, e.g. 10:00:00:00:c9:2a:00:01)"
                )
        unique(
            [wwn_key(w) for w in h.wwns], lambda n: self.fail(f"{where}.wwns", f"WWN {n} is listed twice")
        )
        h.ports = self.strings(t, "ports", where)
        known = {p for a in spec.arrays for p in a.port_names()}
        for p in h.ports:
            if p not in known:
                raise self.fail(f"{where}.ports", f"no array has a port named {p!r} (ports: {listing(known)})")
        unique(h.ports, lambda n: self.fail(f"{where}.ports", f"port {n} is listed twice"))
        h.address = self.address(t, "address", where)
        h.cluster = self.string(t, "cluster", where, "")
        h.cluster_role = self.string(t, "cluster_role", where, "")
        if h.cluster_role and h.cluster_role not in CLUSTER_ROLES:
            raise self.fail(
                f"{where}.cluster_role", f"{h.cluster_role!r} is not {' or '.join(CLUSTER_ROLES)}"
            )
        if h.cluster_role and not h.cluster:
            raise self.fail(f"{where}.cluster_role", "a cluster role needs a 'cluster' name")
        if h.cluster and not h.cluster_role:
            raise self.fail(f"{where}.cluster", "a cluster node needs a 'cluster_role' (active or standby)")
        if "quiesce" in t:
            h.quiesce = self.quiesce(t["quiesce"], f"{where}.quiesce")
        raw_vols = t.get("volumes", [])
        if not isinstance(raw_vols, list):
            raise self.fail(f"{where}.volumes", "expected a list of {array, ld, partition, guid} tables")
        for i, raw_vol in enumerate(raw_vols):
            w = f"{where}.volumes[{i}]"
            vt = self.table(raw_vol, w, ("array", "ld", "partition", "guid"), ("ld", "guid"))
            array = self.array_ref(vt, w, spec)
            ld = self.string(vt, "ld", w)
            if ld not in array.ld_kinds():
                raise self.fail(f"{w}.ld", f"{ld!r} is not an LD of array {array.name}")
            part = vt.get("partition", 1)
            if isinstance(part, bool) or not isinstance(part, int) or not 1 <= part <= 128:
                raise self.fail(f"{w}.partition", "expected a partition number from 1")
            try:
                guid = normalise_guid(self.string(vt, "guid", w))
            except ValueError:
                raise self.fail(
                    f"{w}.guid", f"{vt['guid']!r} is not a GUID like 37d84cca-2507-11d5-a0f7-00004c714491"
                ) from None
            h.volumes.append(PinnedVolume(array.name, ld, part, guid))
        unique(
            [f"{v.array}/{v.ld}/{v.partition}" for v in h.volumes],
            lambda n: self.fail(f"{where}.volumes", f"partition {n} is pinned twice"),
        )
        unique(
            [v.guid for v in h.volumes], lambda n: self.fail(f"{where}.volumes", f"GUID {n} is pinned twice")
        )
        return h
