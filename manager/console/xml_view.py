"""XML output of the management server (``iSMquery -cinder -xml -all``, ``iSMview -all`` after ``clioutmsg xml``).

The schema is the one Cinder's NEC driver reads: ``<REQUEST><CMD_REQUEST cmd_name arg version>``
with ``<CHAPTER name>/<OBJECT name>/<SECTION name>/<UNIT name>`` elements; sizes are bytes,
numbers hex as the product shows them. Built with ``xml.etree.ElementTree`` (every value escaped).
``clioutmsg xml|text`` sets the console's output format for later commands of the lab: a real
management server keeps it per user; the lab keeps one setting in ``<lab>/run/clioutmsg``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from snaplab.common import ismview as layouts
from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb

from ..client import ManagerClient
from .ldsets import PLATFORM_FORMAT
from .options import Usage

VERSION = "Version 9.4.001"  # the CLI version the driver checks (its first three characters after "Version ")
SETTING = "clioutmsg"  # file name under <lab>/run
CMD_NAME = {"iSMquery": "/opt/iSMCliGateway/impl/query/iSMquery", "iSMview": "/opt/iSMCliGateway/impl/view/iSMview"}


def _obj(chapter: ET.Element, name: str, section: str, units: list[tuple[str, str]]) -> ET.Element:
    obj = ET.SubElement(chapter, "OBJECT", name=name)
    _section(obj, section, units)
    return obj


def _section(obj: ET.Element, name: str, units: list[tuple[str, str]]) -> None:
    sec = ET.SubElement(obj, "SECTION", name=name)
    for key, value in units:
        ET.SubElement(sec, "UNIT", name=key).text = value


def _rpl(ld: apb.Ld) -> str:
    return ld.rpl_role or {"mv": "MV", "rv": "RV"}.get(ld.attr, "IV")


def _purpose(ld: apb.Ld) -> str:
    """What the LD is to the snapshot system (the driver skips LDs whose purpose is not ``---``)."""
    return {"BV": "BV", "SV": "SV", "LV": "LV", "SDV": "SDV", "CV": "CV"}.get(ld.type, "---")


def _path_text(wwn: str) -> str:
    digits = wwn.replace(":", "").upper()
    return "-".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _array(cmd: ET.Element, a: mpb.ArrayMonitor) -> None:
    s = a.state
    ch = ET.SubElement(cmd, "CHAPTER", name="Disk Array")
    _obj(ch, "Disk Array", "Disk Array Detail Information", [
        ("Disk Array Name", s.name), ("Vendor ID", layouts.VENDOR_ID), ("Product ID", layouts.product_id(s)),
        ("Product FW Revision", layouts.FW_REVISION), ("World Wide Name", layouts.array_wwn(s.name)),
        ("Resource State", a.resource_state), ("Monitoring", a.monitoring),
    ])
    pools = {p.name: p for p in s.pools}
    ch = ET.SubElement(cmd, "CHAPTER", name="Logical Disk")
    for ld in s.lds:
        pool = pools.get(ld.pool)
        _obj(ch, "Logical Disk", "LD Detail Information", [
            ("LDN(h)", ld.number.removesuffix("h")), ("OS Type", ld.format or "  "), ("LD Name", ld.name),
            ("LD Capacity", str(ld.capacity)), ("Pool No.(h)", f"{pool.number:04x}" if pool else "----"),
            ("Purpose", _purpose(ld)), ("RPL Attribute", _rpl(ld)),
        ])
    ch = ET.SubElement(cmd, "CHAPTER", name="Pool")
    for p in s.pools:
        _obj(ch, "Pool", "Pool Detail Information", [
            ("Pool No.(h)", f"{p.number:04x}"), ("Pool Name", p.name), ("Pool Capacity", str(p.capacity)),
            ("Used Pool Capacity", str(p.used)), ("Free Pool Capacity", str(max(0, p.capacity - p.used))),
        ])
    ch = ET.SubElement(cmd, "CHAPTER", name="Controller")
    for port in s.ports:
        _obj(ch, "Host Port", "Host Director/Host Port Information", [
            ("Port No.(h)", f"{port.director:02x}-{port.port:02x}"), ("Port Name", port.name),
            ("WWPN", layouts.port_wwpn(s.name, port.director, port.port).upper()),
        ])
    # Every lab port is also an iSCSI port: the driver takes a Host Port with an IP Address as iSCSI
    # and one with a WWPN as FC, so each port is listed once per protocol under the same number.
    for port in s.ports:
        _obj(ch, "Host Port", "Host Director/Host Port Information", [
            ("Port No.(h)", f"{port.director:02x}-{port.port:02x}"), ("Port Name", port.name),
            ("IP Address", layouts.port_ip(s.name, port.director, port.port)), ("Link Status", "Link Up"),
        ])
    ch = ET.SubElement(cmd, "CHAPTER", name="Access Control")
    for h in s.hosts:
        if h.wwns:
            obj = _obj(ch, "LD Set(FC)", "LD Set(FC) Information", [
                ("Platform", PLATFORM_FORMAT.get(h.platform, "--")), ("LD Set Name", h.name),
            ])
            for w in h.wwns:
                _section(obj, "Path List", [("Path", _path_text(w))])
            paths = {f"wwn:{w}" for w in h.wwns}
        elif h.initiators:
            obj = _obj(ch, "LD Set(iSCSI)", "LD Set(iSCSI) Information", [
                ("Platform", PLATFORM_FORMAT.get(h.platform, "--")), ("LD Set Name", h.name),
                ("Target Mode", "Normal"), ("Target Name", layouts.target_name(s.name, h.name)),
            ])
            for port in s.ports:
                _section(obj, "Portal", [("Portal", f"{layouts.port_ip(s.name, port.director, port.port)}:3260")])
            for i in h.initiators:
                _section(obj, "Initiator List", [("Initiator List", i)])
            paths = {f"iqn:{i}" for i in h.initiators}
        else:
            continue  # a set without paths reaches nothing (the real product lists it; no client reads it)
        members = [ld for ld in s.lds if paths & set(ld.access)]
        for lun, ld in enumerate(members):
            _section(obj, "LUN/LD List", [("LUN(h)", f"{lun:04x}"), ("LDN(h)", ld.number.removesuffix("h"))])


def xml_document(reply: mpb.MonitorReply, command: str, arg: str) -> str:
    root = ET.Element("REQUEST")
    for a in reply.arrays:
        cmd = ET.SubElement(root, "CMD_REQUEST", cmd_name=CMD_NAME[command], arg=arg, version=VERSION)
        _array(cmd, a)
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="unicode")


def xml_wanted(lab_dir: Path) -> bool:
    try:
        return (lab_dir / "run" / SETTING).read_text().strip() == "xml"
    except OSError:
        return False


def run_query(client: ManagerClient, args: list[str]) -> list[str]:
    """``iSMquery -cinder -xml -all``: the whole configuration as XML."""
    if [a.lower() for a in args] != ["-cinder", "-xml", "-all"]:
        raise Usage("give -cinder -xml -all")
    return xml_document(client.monitor(), "iSMquery", "-cinder -xml -all ").splitlines()


def set_output(lab_dir: Path, args: list[str]) -> list[str]:
    """``clioutmsg xml|text``."""
    if len(args) != 1 or args[0].lower() not in ("xml", "text"):
        raise Usage("give xml or text")
    run = lab_dir / "run"
    tmp = run / f".{SETTING}.tmp"
    tmp.write_text(args[0].lower() + "\n")
    tmp.replace(run / SETTING)
    return []
