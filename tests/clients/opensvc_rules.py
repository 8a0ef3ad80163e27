"""OpenSVC's parsing rules for the iSM commands, restated from its NEC drivers (facts, our own code).

Each function takes a command's stdout and applies exactly the rule the client applies (which
tokens, which prefixes, which split): if the lab's output drifts from what the client reads,
these return the wrong thing and the tests in this folder fail. The rules are listed in docs/clients.md.
"""

from __future__ import annotations

from datetime import datetime

OS_TYPES = ("-", "A2", "A4", "AX", "LX", "NX", "SX", "WN", "WG")  # the array driver's list


def array_names(out: str) -> list[str]:
    """``iSMview -d``: skip blank, ``---`` and header lines; the name is the second blank-separated token."""
    names = []
    for line in out.split("\n"):
        if not line or "---" in line or "Product ID" in line:
            continue
        tokens = line.split()
        if len(tokens) >= 3:
            names.append(tokens[1])
    return names


def sv_query(out: str) -> dict:
    """``iSMsc_query -sv SV -svflg ld``: ``Key: value`` lines (stripped), SV lines after an OS type and ``:``."""
    data: dict = {"sv": []}
    for raw in out.splitlines():
        line = raw.strip()
        for key in ("LD Name", "Type", "Special File", "State", "Reserve Area"):
            if line.startswith(key):
                data[key] = line.split(": ")[1]
                break
        else:
            if line.split(":", 1)[0] in OS_TYPES:
                data["sv"].append(line[line.index(":") + 1 :])
    return data


def sv_timestamp(sv_line: str) -> datetime:
    """The sync driver's snapshot time: between the first ``[`` and ``]`` of the SV line."""
    return datetime.strptime(sv_line[sv_line.index("[") + 1 : sv_line.index("]")], "%Y/%m/%d %H:%M:%S")


def linkinfo(out: str) -> dict:
    """``iSMsc_linkinfo -vol SV -volflg ld -lcl``: the SV's keys and the destination LV lines."""
    data: dict = {"dst": []}
    for line in out.split("\n"):
        stripped = line.strip()
        if line.startswith("SV:LD Name"):
            data["SV:LD Name"] = line.split(": ")[1]
        elif stripped.startswith(("Type", "Special File", "State", "Mode")):
            key = next(k for k in ("Type", "Special File", "State", "Mode") if stripped.startswith(k))
            data[key] = line.split(": ")[1]
        elif stripped.startswith("LV:"):
            data["dst"].append(line.split(":")[1])
    return data


def linked(li: dict, ld: str) -> bool:
    """The sync driver's link check: exactly one destination naming the LD and ``link``."""
    return len([d for d in li["dst"] if ld in d.split() and "link" in d.split()]) == 1


def bv_detail(out: str) -> dict:
    """``iSMsc_query -bv BV -bvflg ld -detail``: per SV its ``Snap State`` (sections by their titles)."""
    data: dict = {"sv": {}, "lv": {}}
    section, name = "", ""
    for raw in out.split("\n"):
        line = raw.strip()
        if line.startswith("BV Information"):
            section = "bvinfo"
            continue
        if line.startswith("Pair Information"):
            section = "pairinfo"
            continue
        if section == "bvinfo" and line.startswith("LD Name"):
            data["LD Name"] = line.split(": ")[1]
        elif section.startswith("pairinfo") and line.startswith("SV:LD Name"):
            name = line.split(": ")[1]
            data["sv"].setdefault(name, {})
            section = "pairinfo_sv"
        elif section == "pairinfo_sv" and line.startswith("Snap State"):
            data["sv"][name]["Snap State"] = line.split(": ")[1]
        elif section.startswith("pairinfo") and line.startswith("LV:LD Name"):
            name = line.split(": ")[1]
            data["lv"].setdefault(name, {})
            section = "pairinfo_lv"
        elif section == "pairinfo_lv" and line.startswith("Type"):
            data["lv"][name]["Type"] = line.split(": ")[1]
    return data


def changing(detail: dict) -> list[str]:
    """SVs whose state ends in ``ing`` (the sync driver waits for them before it creates)."""
    return [sv for sv, d in detail["sv"].items() if d.get("Snap State", "").endswith("ing")]


class Collected:
    """The collector's reading of a saved ``iSMview -all`` (column-0 prefixes, blocks up to the next ``---``)."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.model: str | None = None
        self.product: str | None = None
        self.firmware = self.wwn = self.wwn_prefix = ""
        self.cache = 0
        self.ports: list[str] = []
        self.vdisks: list[dict] = []
        self.pools: list[dict] = []
        for i, line in enumerate(self.lines):
            if line.startswith("Vendor ID") and self.model is None:
                self.model = line.split(":")[1].strip()
            elif line.startswith("Product ID") and self.product is None:
                self.product = " " + line.split(":")[1].strip()
                assert self.model is not None, "Product ID before Vendor ID: the collector fails here"
                self.model += self.product
            elif line.startswith("Product FW Revision"):
                self.firmware = line.split(":")[1].strip()
            elif line.startswith("World Wide Name"):
                self.wwn = line.split(":")[1].strip().lower()
                self.wwn_prefix = self.wwn[4:]
            elif line.startswith("WWPN"):
                self.ports.append(line.split(":")[1].strip().lower())
            elif line.startswith("Cache Module"):
                self.cache += int(line.split(":")[-1].strip().replace("GB", "")) * 1024
            elif line.startswith("--- LD Detail Information"):
                self._block(i + 1, self.vdisks, self._ld_line)
            elif line.startswith("--- Pool Detail Information"):
                self._block(i + 1, self.pools, self._pool_line)

    def _block(self, start: int, into: list[dict], read) -> None:
        item: dict = {}
        for line in self.lines[start:]:
            if line.startswith("---"):
                into.append(item)
                return
            read(line, item)
        # no closing '---': the collector drops the block

    def _ld_line(self, line: str, d: dict) -> None:
        value = line.split(":")[-1].strip()
        if line.startswith("LDN(h)"):
            d["lunid"] = value
            d["wwid"] = self.wwn_prefix + value
        if line.startswith("LD Name"):
            d["name"] = value
        if line.startswith("LD Capacity"):
            if "M" in value:
                d["size"] = int(float(value[: value.index("M")]))
            elif "G" in value:
                d["size"] = int(float(value[: value.index("G")]) * 1024)
            elif "T" in value:
                d["size"] = int(float(value[: value.index("T")]) * 1024 * 1024)
        if line.startswith("Pool Name"):
            d["disk_group"] = value
        if line.startswith("RaidType"):
            d["raid"] = value.lower()

    @staticmethod
    def _pool_line(line: str, d: dict) -> None:
        value = line.split(":")[-1].strip()
        for key, field in (("Pool Name", "name"), ("Pool Capacity", "size"), ("Used Pool Capacity", "used"),
                           ("Free Pool Capacity", "free")):
            if line.startswith(key):
                d[field] = value if field == "name" else int(float(value[: value.index("G")]) * 1024)
