"""The ``[[machines]]`` sections: which machine runs each array, the manager and each host (deploy kits).

A lab file without them runs on one machine (``lab``, 127.0.0.1): what ``snaplab lab up`` does. With
them, every array, the manager and every host is named in the ``runs`` of exactly one machine, and
``snaplab deploy render`` writes each machine's kit (deploy/kits.py, deploy/README.md).
"""

from __future__ import annotations

import ipaddress

from .spec import LabSpec, MachineSpec
from .spec_reader import TableReader, listing, unique

MANAGER = "manager"  # the manager's name in ``runs``
ONE_MACHINE = MachineSpec("lab", "127.0.0.1", [])


class MachinesReader(TableReader):
    def machines(self, raw: list, spec: LabSpec) -> list[MachineSpec]:
        everything = [a.name for a in spec.arrays] + [MANAGER] + [h.name for h in spec.hosts]
        if not raw:
            return [MachineSpec(ONE_MACHINE.name, ONE_MACHINE.address, everything)]
        machines = []
        placed: dict[str, str] = {}
        for i, t in enumerate(raw):
            where = f"machines[{i}]"
            t = self.table(t, where, ("name", "address", "runs"), ("name", "address", "runs"))
            m = MachineSpec(
                self.name(self.string(t, "name", where), f"{where}.name", "machine name"),
                self.string(t, "address", where),
                self.strings(t, "runs", where),
            )
            where = f"machines[{m.name}]"
            try:
                ipaddress.ip_address(m.address)
            except ValueError:
                raise self.fail(f"{where}.address", f"{m.address!r} is not an IP address") from None
            for name in m.runs:
                if name not in everything:
                    raise self.fail(
                        f"{where}.runs",
                        f"{name!r} is not an array, 'manager' or a host (known: {listing(everything)})",
                    )
                if name in placed:
                    raise self.fail(f"{where}.runs", f"{name} already runs on machine {placed[name]}")
                placed[name] = m.name
            machines.append(m)
        unique(
            [m.name for m in machines], lambda n: self.fail("machines", f"machine name {n!r} is used twice")
        )
        unique(
            [str(ipaddress.ip_address(m.address)) for m in machines],
            lambda a: self.fail("machines", f"address {a} is given to two machines"),
        )
        missing = [n for n in everything if n not in placed]
        if missing:
            raise self.fail("machines", f"{missing[0]} runs on no machine (name it in one machine's 'runs')")
        return machines
