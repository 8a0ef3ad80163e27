"""The ``[[access]]`` sections: which LDs of an array each port or WWN may see (access control)."""

from __future__ import annotations

from .spec import AccessSpec, LabSpec
from .spec_reader import TableReader, listing
from .values import WWN


class AccessReader(TableReader):
    def access(self, raw: object, where: str, spec: LabSpec) -> list[AccessSpec]:
        t = self.table(raw, where, ("array", "ld", "lds", "port", "ports", "wwn", "wwns"))
        array = self.array_ref(t, where, spec)
        lds = self.strings(t, "ld", where) + self.strings(t, "lds", where)
        ports = self.strings(t, "port", where) + self.strings(t, "ports", where)
        wwns = self.strings(t, "wwn", where) + self.strings(t, "wwns", where)
        if not lds:
            raise self.fail(where, "missing 'ld' (or 'lds')")
        if not ports and not wwns:
            raise self.fail(where, "give 'port'/'ports' or 'wwn'/'wwns'")
        kinds = array.ld_kinds()
        for ld in lds:
            if ld not in kinds:
                raise self.fail(f"{where}.ld", f"{ld!r} is not an LD of array {array.name}")
            if kinds[ld] in ("SV", "SDV"):
                raise self.fail(
                    f"{where}.ld", f"{ld} is an {kinds[ld]}: SVs and SDVs are never assigned to a server (A5)"
                )
        for p in ports:
            if p not in array.port_names():
                raise self.fail(
                    f"{where}.port",
                    f"array {array.name} has no port {p!r} (ports: {listing(array.port_names())})",
                )
        for w in wwns:
            if not WWN.fullmatch(w):
                raise self.fail(f"{where}.wwn", f"{w!r} is not a WWN (16 hex digits)")
        if not any(c.product == "AccessControl" for c in array.licences):
            raise self.fail(
                where, f"access control needs the AccessControl licence in [arrays[{array.name}].licences]"
            )
        out = [AccessSpec(array.name, ld, port=p) for ld in lds for p in ports]
        return out + [AccessSpec(array.name, ld, wwn=w) for ld in lds for w in wwns]
