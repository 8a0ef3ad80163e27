"""The whole lab file: TOML decoding, each section read by its reader, then the checks across sections."""

from __future__ import annotations

import tomllib

from .netns import MANAGER_ADDRESS, lan_default
from snaplab.common.daemon_runner import UsageError, host_port

from .spec import LabSpec
from .spec_access import AccessReader
from .spec_arrays import ArraysReader
from .spec_clusters import ClustersReader
from .spec_hosts import HostsReader
from .spec_machines import MachinesReader
from .spec_reader import unique
from .spec_setup import SetupReader
from .values import wwn_key

NETWORKS = ("loopback", "netns")

# Principals of the lab PKI that are not arrays or hosts: names a lab file may not reuse.
RESERVED_NAMES = ("manager", "admin", "ca")


# One reader per section: a new section of the lab file is a new reader class added here.
class LabParser(ArraysReader, HostsReader, AccessReader, SetupReader, ClustersReader, MachinesReader):
    def console(self, lab: dict) -> str:
        """``[lab] console``: HOST:PORT of the web console (default 127.0.0.1:0), or "off"."""
        text = self.string(lab, "console", "lab", "127.0.0.1:0")
        if text == "off":
            return ""
        try:
            host_port(text, "console")
        except UsageError:
            raise self.fail("lab.console", f'expected HOST:PORT (port 0-65535) or "off", not {text[:64]!r}') from None
        return text

    def parse(self, text: str) -> LabSpec:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise self.fail("", f"not valid TOML: {exc}") from None
        self.table(raw, "", ("lab", "arrays", "hosts", "access", "setup", "clusters", "machines"))
        lab = self.table(raw.get("lab", {}), "lab", ("description", "network", "manager_address", "console"))
        spec = LabSpec(self.source, text, description=self.string(lab, "description", "lab", ""))
        spec.network = self.string(lab, "network", "lab", "loopback")
        if spec.network not in NETWORKS:
            raise self.fail("lab.network", f"{spec.network!r} is not a network ({', '.join(NETWORKS)})")
        spec.manager_address = self.address(lab, "manager_address", "lab")
        spec.console = self.console(lab)
        spec.arrays = [
            self.array(a, f"arrays[{i}]") for i, a in enumerate(self.items(raw.get("arrays"), "arrays"))
        ]
        if not spec.arrays:
            raise self.fail("arrays", "a lab needs at least one [[arrays]] entry")
        unique(
            [a.name for a in spec.arrays], lambda n: self.fail("arrays", f"array name {n!r} is used twice")
        )
        spec.hosts = [
            self.host(h, f"hosts[{i}]", spec) for i, h in enumerate(self.items(raw.get("hosts"), "hosts"))
        ]
        unique([h.name for h in spec.hosts], lambda n: self.fail("hosts", f"host name {n!r} is used twice"))
        taken = {a.name for a in spec.arrays} | set(RESERVED_NAMES)
        for i, h in enumerate(spec.hosts):
            if h.name in taken:
                raise self.fail(f"hosts[{i}].name", f"{h.name!r} is already an array name or a reserved name")
        wwns: dict[str, str] = {}
        for h in spec.hosts:
            for w in h.wwns:
                key = wwn_key(w)
                if key in wwns:
                    raise self.fail(f"hosts[{h.name}].wwns", f"WWN {w} is also a WWN of host {wwns[key]}")
                wwns[key] = h.name
        for i, a in enumerate(self.items(raw.get("access"), "access")):
            spec.access.extend(self.access(a, f"access[{i}]", spec))
        for i, s in enumerate(self.items(raw.get("setup"), "setup")):
            spec.setup.extend(self.setup(s, f"setup[{i}]", spec))
        spec.clusters = self.clusters(self.items(raw.get("clusters"), "clusters"), spec)
        spec.machines = self.machines(self.items(raw.get("machines"), "machines"), spec)
        self.check_addresses(spec)
        return spec

    def check_addresses(self, spec: LabSpec) -> None:
        """No two machines of the lab with one LAN address (the defaults included)."""
        owners: dict[str, str] = {}
        machines = [("lab.manager_address", "the manager", spec.manager_address or MANAGER_ADDRESS)]
        machines += [(f"arrays[{a.name}].address", f"array {a.name}", a.address or lan_default("array", i))
                     for i, a in enumerate(spec.arrays)]
        machines += [(f"hosts[{h.name}].address", f"host {h.name}", h.address or lan_default("host", i))
                     for i, h in enumerate(spec.hosts)]
        for where, who, addr in machines:
            if addr in owners:
                raise self.fail(where, f"{addr} is already the address of {owners[addr]}")
            owners[addr] = who
