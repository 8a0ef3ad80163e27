"""``iSMview`` layouts (proto to text lines), shared by the manager's console and each host's own iSMview.

The layouts follow what real parsers read (docs/manager.md "iSMview"): ``iSMview -d`` is split on
blanks (the name is the second token), ``iSMview -all`` is read as ``Key : value`` lines at column 0
and ``--- … Detail Information ---`` blocks that each end at the next ``---`` line, values cut at the
first ``:``. So no value printed here may hold a ``:`` and every detail block is followed by a header.
"""

from __future__ import annotations

import hashlib

from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb

from .units import size_text

DEFAULT_PRODUCT_ID = "D1-10"  # an array whose lab file names no product id
VENDOR_ID = "NEC"
FW_REVISION = "SL0100"  # the emulator's "firmware": changes only with the layouts
CACHE_MODULE_GB = 4
GiB = 1 << 30
KEY_WIDTH = 25


def product_id(state: apb.ArrayState) -> str:
    return state.product_id or DEFAULT_PRODUCT_ID


def array_wwn(name: str) -> str:
    """A stable 16-hex-digit World Wide Name per array name (NAA 2, lower case as parsers store it)."""
    return "2000" + hashlib.sha256(name.encode()).hexdigest()[:12]


def port_wwpn(array_name: str, director: int, port: int) -> str:
    """Each port's WWPN: the array's WWN with the port's director and number in front."""
    return f"2{director & 0xF:x}{port & 0xFF:02x}" + array_wwn(array_name)[4:]


ISCSI_NET = (198 << 24) | (18 << 16)  # 198.18.0.0/15 (RFC 2544, benchmarking): never a real network's


def port_ip(array_name: str, director: int, port: int) -> str:
    """Each port's iSCSI IP address, derived (the lab file gives none): four bits of the array's name,
    the director and port number + 1, inside 198.18.0.0/15, never its first or last address."""
    a = int(hashlib.sha256(array_name.encode()).hexdigest()[:2], 16) & 0xF
    n = ISCSI_NET | (a << 13) | ((director & 0xF) << 9) | ((port & 0xFF) + 1)
    return ".".join(str((n >> s) & 0xFF) for s in (24, 16, 8, 0))


def target_name(array_name: str, ldset: str) -> str:
    """The iSCSI target name of an LD set (one target per set, Target Mode ``Normal``)."""
    def part(text: str) -> str:  # iSCSI names allow letters, digits, '-', '.' and ':' only
        return "".join(c if c.isascii() and (c.isalnum() or c in "-.") else "-" for c in text.lower())

    return f"iqn.2001-03.lab.snaplab:{part(array_name)}.{part(ldset)}"


def gb_text(n: int) -> str:
    """Pool sizes always in GB (a parser cuts the value at its ``G``)."""
    return f"{n / GiB:.1f}GB" if n >= GiB or n == 0 else f"{n / GiB:.3f}GB"


def _kv(key: str, value: object) -> str:
    return f"{key:<{KEY_WIDTH}}: {value}"


def _io_limit(stored: str) -> str:
    """``iSMioc setlimit`` values: ``upper=N lower=N report=on|off`` (``-`` where not set)."""
    if not stored:
        return "-"
    upper, lower, report = stored.split()
    return f"upper={upper} lower={lower} report={report}"


def disk_array_list(reply: mpb.MonitorReply) -> list[str]:
    """``iSMview -d`` (SPEC §8)."""
    lines = [
        "--- Disk Array List ---",
        f"{'Product ID':<17} {'Disk Array Name':<33} {'Resource State':<15} Monitoring",
    ]
    for a in reply.arrays:
        lines.append(f"{product_id(a.state):<17} {a.state.name:<33} {a.resource_state:<15} {a.monitoring}")
    return lines


def raid_type(pool_kind: str) -> str:
    return "RAID6" if pool_kind == "dynamic" else "RAID1"


def array_detail(a: mpb.ArrayMonitor) -> list[str]:
    """``iSMview -all ARRAY``: the design is in docs/manager.md."""
    s = a.state
    wwn = array_wwn(s.name)
    lines = [
        "--- Disk Array Detail Information ---",
        _kv("Disk Array Name", s.name),
        _kv("Vendor ID", VENDOR_ID),
        _kv("Product ID", product_id(s)),
        _kv("Product FW Revision", FW_REVISION),
        _kv("World Wide Name", wwn),
        _kv("Resource State", a.resource_state),
        _kv("Monitoring", a.monitoring),
        _kv("Physical Capacity", size_text(s.physical_capacity)),
        _kv("Cache Module", f"{CACHE_MODULE_GB}GB"),
        "",
    ]
    for p in s.ports:
        lines += [
            "--- Port Detail Information ---",
            _kv("Port No.(h)", f"{p.director:02x}h-{p.port:02x}h"),
            _kv("Port Name", p.name),
            _kv("WWPN", port_wwpn(s.name, p.director, p.port)),
            _kv("IP Address", port_ip(s.name, p.director, p.port)),
            "",
        ]
    pools = {p.name: p for p in s.pools}
    for ld in s.lds:
        pool = pools.get(ld.pool)
        lines += [
            "--- LD Detail Information ---",
            _kv("LDN(h)", ld.number.removesuffix("h")),
            _kv("LD Name", ld.name),
            _kv("Type", ld.type),
            _kv("OS Type", ld.format or "-"),
            _kv("LD Capacity", size_text(ld.capacity)),
            _kv("Pool No.(h)", f"{pool.number:04x}" if pool else "-"),
            _kv("Pool Name", ld.pool),
            _kv("RaidType", raid_type(pool.kind) if pool else "-"),
            _kv("Attribute", ld.attr.upper() or "-"),
            _kv("BV Name", ld.bv or "-"),
            _kv("I/O Limit", _io_limit(ld.io_limit)),
            "",
        ]
    for p in s.pools:
        used = p.used
        lines += [
            "--- Pool Detail Information ---",
            _kv("Pool No.(h)", f"{p.number:04x}"),
            _kv("Pool Name", p.name),
            _kv("Pool Type", p.kind),
            _kv("RaidType", raid_type(p.kind)),
            _kv("Pool Capacity", gb_text(p.capacity)),
            _kv("Used Pool Capacity", gb_text(used)),
            _kv("Free Pool Capacity", gb_text(max(0, p.capacity - used))),
            _kv("Snapshot Reserve Area", gb_text(p.sra_capacity) if p.sra_capacity else "-"),
            _kv("Snapshot Reserve Used", gb_text(p.sra_used) if p.sra_capacity else "-"),
            *_sra_policy_lines(p),
            "",
        ]
    return lines + _tables(a)


def _sra_policy_lines(p: apb.Pool) -> list[str]:
    """SnapLab extension (issue 14): shown only for a pool whose SRA-full policy or thresholds were
    set, so the guide's layout is unchanged when the extension is not used."""
    if not p.sra_capacity or (p.sra_policy in ("", "auto-delete") and not p.sra_warn_percents):
        return []
    lines = [
        _kv("SRA Full Policy", f"{p.sra_policy} (SnapLab extension)"),
        _kv("SRA Used Percent", f"{100 * p.sra_used // p.sra_capacity}%"),
        _kv("SRA Warn Thresholds", ",".join(f"{w}%" for w in p.sra_warn_percents) or "-"),
    ]
    if p.sra_policy == "queue":
        lines.append(_kv("SRA Queue Timeout", f"{p.sra_queue_timeout_seconds:g} s"))
    return lines


def _tables(a: mpb.ArrayMonitor) -> list[str]:
    """The summary tables after the detail blocks (their ``---`` headers also close the last block)."""
    s = a.state
    lines = [
        "--- Port List ---",
        f"{'Port No.':<10} Port Name",
    ]
    lines += [f"{p.director:02x}h/{p.port:02x}h{'':<3} {p.name}" for p in s.ports]
    lines += [
        "",
        "--- Pool List ---",
        f"{'Pool No.':<9} {'Pool Name':<24} {'Type':<8} {'Capacity':>10} {'SRA Capacity':>13} {'SRA Used':>10}",
    ]
    for p in s.pools:
        sra = (size_text(p.sra_capacity), size_text(p.sra_used)) if p.sra_capacity else ("-", "-")
        lines.append(
            f"{p.number:04x}h{'':<4} {p.name:<24} {p.kind:<8} {size_text(p.capacity):>10} {sra[0]:>13} {sra[1]:>10}"
        )
    pool_no = {p.name: p.number for p in s.pools}
    lines += [
        "",
        "--- Logical Disk List ---",
        f"{'LDN':<6} {'LD Name':<32} {'Type':<5} {'OS Type':<7} {'Capacity':>10} {'Pool No.':<8} {'Attr':<4} BV",
    ]
    for ld in s.lds:
        pool = f"{pool_no[ld.pool]:04x}h" if ld.pool in pool_no else ld.pool
        lines.append(
            f"{ld.number:<6} {ld.name:<32} {ld.type:<5} {ld.format or '-':<7} {size_text(ld.capacity):>10}"
            f" {pool:<8} {ld.attr:<4} {ld.bv or '-'}"
        )
    lines += ["", "--- Access Control List ---", f"{'LD Name':<32} Path"]
    for ld in s.lds:
        for path in ld.access:
            kind, _, value = path.partition(":")
            lines.append(f"{ld.name:<32} {kind.upper()} {value}")
    lines += ["", "--- Host List ---", f"{'Host Name':<24} {'Platform':<9} WWN / Port / iSCSI initiator"]
    for h in s.hosts:
        paths = [*(f"WWN {w}" for w in h.wwns), *(f"PORT {p}" for p in h.ports), *(f"IQN {i}" for i in h.initiators)]
        lines.append(f"{h.name:<24} {h.platform:<9} {', '.join(paths) or '-'}")
    lines += ["", "--- License List ---", f"{'Product':<24} State"]
    lines += [f"{product:<24} {s.licences[product]}" for product in sorted(s.licences)]
    lines += ["", "--- Fault List ---", f"{'Kind':<16} Target"]
    for f in s.faults:
        kind, _, target = f.partition(":")
        lines.append(f"{kind:<16} {target}")
    if not s.faults:
        lines.append("(none)")
    return lines


def snapshot_list(a: mpb.ArrayMonitor) -> list[str]:
    """``iSMview -snap``: per BV, every SV with generation, state, time, guard and link (B5)."""
    lines = [f"--- Snapshot List ({a.state.name}) ---"]
    for q in a.snapshots:
        lines.append(f"BV:{q.bv} ({q.bv_number}) {q.format}  State:{q.state}  Reserve Area:{q.reserve_area}")
        lines.append(
            f"  {'Generation':<10} {'SV Name':<32} {'State':<13} {'Time':<19} {'Guard':<5} {'Link':<6} LV"
        )
        for g in q.generations:
            gen = str(g.relgen) if g.has_relgen else "-"
            lines.append(
                f"  {gen:<10} {g.sv:<32} {g.state:<13} {g.state_time or '-':<19} {'on' if g.guard else 'off':<5}"
                f" {g.link:<6} {g.lv or '-'}"
            )
    return lines


def host_list(reply: mpb.MonitorReply) -> list[str]:
    """``iSMview -host``: one row per server; each column as wide as its longest value (a name may
    have 32 characters, a cluster and its role more), so the columns always line up."""
    head = ("Server Name", "Role", "Platform", "Cluster", "Enrolled", "WWN / Port")
    rows = []
    for h in reply.hosts:
        cluster = f"{h.cluster}({h.cluster_role})" if h.cluster else "-"
        paths = [*(f"WWN {w}" for w in h.wwns), *(f"PORT {p}" for p in h.ports)]
        rows.append((h.name, h.role, h.platform, cluster, h.enrolled or "-", ", ".join(paths) or "-"))
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]

    def line(values: tuple[str, ...]) -> str:
        return " ".join(v.ljust(w) for v, w in zip(values[:-1], widths)) + " " + values[-1]

    return ["--- Server List ---", line(head), *(line(r) for r in rows)]
