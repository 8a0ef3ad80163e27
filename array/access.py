"""Access control (SPEC A5): hosts, their paths, LD assignment, and who may do I/O on what now."""

from __future__ import annotations

import json

from snaplab.common.errors import E, SnapLabError

from .model import ACCESS_CONTROL, LD, PLATFORM_FORMATS, STATE_RESTORING, Gen, Host

UNREACHABLE_TYPES = ("SV", "SDV")  # never assigned to a host
CV_CANDIDATE_ATTRS = ("iv", "mv")  # C3: an IV or MV LD may be a host's CV (as the manager's routing counts it)
READY_MODES = ("rw", "ro")


def _path(port: str | None, wwn: str | None, initiator: str | None) -> str:
    """The access path of exactly one of a port, a WWN and an iSCSI initiator name."""
    given = [(k, v) for k, v in (("port", port), ("wwn", wwn), ("iqn", initiator)) if v is not None]
    if len(given) != 1:
        raise SnapLabError(E.BAD_ARGUMENT, detail="give a port, a WWN or an initiator")
    kind, value = given[0]
    return f"{kind}:{value}" if kind == "port" else f"{kind}:{value.lower()}"


class AccessMixin:
    """Hosts reach an LD through a port or an HBA WWN it is assigned to; SVs and SDVs never.

    A mixin of ``ArrayEngine`` (engine.py); the fault checks of an I/O come from faults.py.
    """

    def register_host(
        self, name: str, wwns: list[str], ports: list[str], platform: str = "windows", initiators: list[str] | None = None
    ) -> Host:
        if platform not in PLATFORM_FORMATS:
            raise SnapLabError(E.BAD_ARGUMENT, detail=f"platform {platform}")
        with self._tx():
            for port in ports:
                if not any(p.name == port for p in self.ports.values()):
                    raise SnapLabError(E.PORT_NOT_FOUND, name=port)
            # iSCSI names compare case-insensitively (RFC 3722): kept lower case, as WWNs are
            h = Host(name, [w.lower() for w in wwns], list(ports), platform, [i.lower() for i in initiators or []])
            self.db.execute(
                "INSERT OR REPLACE INTO hosts(name, wwns, ports, platform, initiators) VALUES (?,?,?,?,?)",
                [name, json.dumps(h.wwns), json.dumps(h.ports), platform, json.dumps(h.initiators)],
            )
            self.hosts[name] = h
            return h

    def _host_paths(self, host: Host) -> set[str]:
        return ({f"wwn:{w}" for w in host.wwns} | {f"port:{p}" for p in host.ports}
                | {f"iqn:{i}" for i in host.initiators})

    def _hosts_on_path(self, path: str) -> list[Host]:
        return [h for h in self.hosts.values() if path in self._host_paths(h)]

    def reaches(self, host: str, ld: LD) -> bool:
        h = self.hosts.get(host)
        return h is not None and bool(self.access.get(ld.number, set()) & self._host_paths(h))

    def assign_access(
        self, ref: str | int, *, port: str | None = None, wwn: str | None = None, initiator: str | None = None
    ) -> None:
        """Assign an LD to a port, an HBA WWN or an iSCSI initiator (A5). SV and SDV never; GPT LVs of
        one BV on distinct servers."""
        path = _path(port, wwn, initiator)
        with self._tx():
            if ACCESS_CONTROL not in self.licences or ("licence", ACCESS_CONTROL) in self.faults:
                raise SnapLabError(E.LICENCE_MISSING, product=ACCESS_CONTROL)
            ld = self.ld(ref)
            if ld.type in ("SV", "SDV"):
                raise SnapLabError(E.AC_FORBIDDEN_TYPE, name=ld.name)
            if port is not None and not any(p.name == port for p in self.ports.values()):
                raise SnapLabError(E.PORT_NOT_FOUND, name=port)
            hosts = self._hosts_on_path(path)
            for h in hosts:
                if ld.format not in PLATFORM_FORMATS[h.platform]:
                    raise SnapLabError(E.FORMAT_PLATFORM, name=f"{ld.name} ({ld.format}) to {h.name}")
            if ld.format == "WG" and ld.type in ("LV", "BV"):
                # Guide 3.1 (GPT): the BV and each of its LVs must all be used on different servers.
                bv_num = ld.bv if ld.type == "LV" else ld.number
                partners = [self.lds[bv_num], *self._lvs_of(bv_num)]  # type: ignore[index,arg-type]
                for other in partners:
                    if other.number != ld.number and any(self.reaches(h.name, other) for h in hosts):
                        raise SnapLabError(E.AC_GPT_SAME_SERVER, name=ld.name)
            self.db.execute("INSERT OR IGNORE INTO access VALUES (?,?)", [path, ld.number])
            self.access.setdefault(ld.number, set()).add(path)

    def unassign_access(
        self, ref: str | int, *, port: str | None = None, wwn: str | None = None, initiator: str | None = None
    ) -> None:
        path = _path(port, wwn, initiator)
        with self._tx():
            ld = self.ld(ref)
            self.db.execute("DELETE FROM access WHERE path=? AND ld=?", [path, ld.number])
            self.access.get(ld.number, set()).discard(path)

    def visible_lds(self, host: str) -> list[LD]:
        """The LDs a host sees as disks: assigned to one of its paths, and not SV/SDV."""
        with self._state():
            if ("path", host) in self.faults:
                return []
            return [x for x in sorted(self.lds.values(), key=lambda x: x.number)
                    if x.type not in ("SV", "SDV") and self.reaches(host, x)]

    # -- what a host may look up directly (Query, LinkInfoOf, Describe): the manager's routing (B3) answer
    def _reached(self, host: str) -> list[LD]:
        return [x for x in self.lds.values() if x.type not in UNREACHABLE_TYPES and self.reaches(host, x)]

    def _partners(self, ld: LD) -> set[int]:
        """The LDs paired with one (routing rule 5): an LV's BV and that BV's SVs; a BV's SVs and LVs."""
        if ld.type == "LV" and ld.bv is not None:
            return {ld.bv} | {x.number for x in self._svs_of(ld.bv)}
        if ld.type == "BV":
            return {x.number for x in (*self._svs_of(ld.number), *self._lvs_of(ld.number))}
        return set()

    def check_host_lookup(self, host: str, ref: str) -> None:
        """Raise unless ``host`` may look up LD ``ref`` (query, linkinfo) on the array directly: allowed
        exactly when the manager would route the look-up for it through some volume it reaches —
        through a CV (an LD of type CV, or an IV/MV LD) for any LD it reaches or that is paired with
        one it reaches; else through the LD itself, which must be reachable, not a BV linked to an LV
        and, for an LV, linked rw or ro. Refusals are routing's: iSM19063, iSM19003 (unknown, asked
        through a CV), iSM31042, iSM31043, iSM31063."""
        with self._state():
            if ("path", host) in self.faults:
                raise SnapLabError(E.PATH_FAILURE, name=host)
            reached = self._reached(host)
            through_cv = any(x.type == "CV" or (x.type == "IV" and x.attr in CV_CANDIDATE_ATTRS) for x in reached)
            try:
                ld = self.ld(ref)
            except SnapLabError:
                if through_cv:
                    raise
                raise SnapLabError(E.AC_DENIED, name=ref) from None
            if through_cv:
                allowed = {x.number for x in reached}
                for x in reached:
                    allowed |= self._partners(x)
                if ld.number in allowed:
                    return
            if all(x.number != ld.number for x in reached):
                raise SnapLabError(E.AC_DENIED, name=ld.name)
            if ld.type == "BV" and self._bv_link(ld.number) is not None:
                raise SnapLabError(E.AC_BV_LINKED, name=ld.name)
            if ld.type == "LV":
                lk = self.links.get(ld.number)
                if lk is None or lk.mode not in READY_MODES:
                    raise SnapLabError(E.VIA_NOT_READY, name=ld.name)

    def describe_for_host(self, host: str) -> dict:
        """``describe()`` as ``host`` may see it: its own record and ports, the LDs it sees as disks
        (their access paths only its own), the pools they and their SVs use, and the faults on those,
        on its own path and on licences. Nothing about other hosts or LDs it is not given."""
        with self._state():
            d = self.describe()
            h = self.hosts.get(host)
            paths = self._host_paths(h) if h is not None else set()
            visible = self.visible_lds(host)
            names = {x.name for x in visible}
            pools = {self.pools[x.pool].name for x in visible}
            pools |= {self.pools[p].name for x in visible if x.type == "BV" and (p := self._sv_pool(x.number)) is not None}

            def shown(fault: str) -> bool:
                kind, _, target = fault.partition(":")
                return (kind == "licence" or (kind == "path" and target == host)
                        or (kind == "bv_failure" and target in names) or (kind.startswith("sra_") and target in pools))

            d["lds"] = [dict(x, access=[a for a in x["access"] if a in paths]) for x in d["lds"] if x["name"] in names]
            d["pools"] = [p for p in d["pools"] if p["name"] in pools]
            d["ports"] = [p for p in d["ports"] if h is not None and p["name"] in h.ports]
            d["hosts"] = [x for x in d["hosts"] if x["name"] == host]
            d["faults"] = [f for f in d["faults"] if shown(f)]
            d["events"] = []  # they name other hosts' LDs
            return d

    def check_access(self, ref: str | int, host: str, write: bool = False) -> LD:
        """Raise unless ``host`` may do I/O on the LD now; returns the LD."""
        with self._state():
            ld = self.ld(ref)
            self._io_target(ld, host, write)
            return ld

    def _io_target(self, ld: LD, host: str | None, write: bool) -> tuple[str, LD, Gen | None]:
        """Resolve what an I/O on ``ld`` reaches: ("head", BV-or-IV, None) or ("gen", SV, gen),
        enforcing the calling host's access control (A5), link modes and faults."""
        if host is not None:
            if ("path", host) in self.faults:
                raise SnapLabError(E.PATH_FAILURE, name=host)
            if ld.type in ("SV", "SDV") or not self.reaches(host, ld):
                raise SnapLabError(E.AC_DENIED, name=ld.name)
            if ld.type == "BV" and self._bv_link(ld.number) is not None:
                raise SnapLabError(E.AC_BV_LINKED, name=ld.name)
            if self.rv_blocked(ld):  # type: ignore[attr-defined]  # an RV being replicated (replication.py)
                raise SnapLabError(E.NOT_READY, name=ld.name)
        if ld.type == "SDV":
            raise SnapLabError(E.AC_DENIED, name=ld.name)
        if ld.type == "LV":
            lk = self.links.get(ld.number)
            if lk is None:
                raise SnapLabError(E.LINK_LOST if ld.link_lost else E.NOT_READY, name=ld.name)
            if lk.mode == "na":
                raise SnapLabError(E.AC_DENIED, name=ld.name)
            if lk.mode == "nr":
                raise SnapLabError(E.NOT_READY, name=ld.name)
            if lk.mode == "ro" and write:
                raise SnapLabError(E.READ_ONLY, name=ld.name)
            ld = self.lds[lk.target]
        if ld.type == "SV":
            g = self.gens[ld.number]
            if not g.live:
                raise SnapLabError(E.NOT_READY, name=ld.name)
            self._check_gen_readable(ld, g)
            if write and g.state == STATE_RESTORING:
                raise SnapLabError(E.RESTORING, name=ld.name)
            return "gen", ld, g
        self._check_bv_usable(ld)
        if write and host is not None:
            self._check_reservation(ld, host)  # type: ignore[attr-defined]  # reservations.py
        return "head", ld, None
