"""What the checkpoint tests compare: a picture of a running lab as its users see it.

Every host's files (sha256 of each file under its mount folders, the file-system caches), mount
table (Agent.Status), volume list and settings; every array's answers (Query of every BV with an
SV set, Describe) and the first bytes of its BVs and live SVs as an administrator reads them. The
guide's ``iSMsc_query`` output is compared as printed, for the BVs the tests change.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from google.protobuf import json_format
from labtools import RefLab, file_digests

BYTES_CHECKED = 32 * 1024 * 1024  # where the guide's file systems keep their data (the partitions' start)
QUERY_HOST = "business01"
QUERIED = ("bv001",)


def host_picture(lab: RefLab, host: str) -> dict[str, Any]:
    from snaplab.deploy.status import agent_status

    state = lab.folder / "hosts" / host
    status, _ = agent_status(lab.folder / "run" / f"agent-{host}.sock")
    etc = {
        p.name: p.read_text()
        for p in sorted((state / "etc").glob("*"))
        if p.is_file() and "iSM_Log" not in p.name
    }
    return {
        "files": file_digests(state / "mnt"),
        "links": sorted(
            str(p.relative_to(state / "mnt")) for p in (state / "mnt").rglob("*") if p.is_symlink()
        ),
        "mounts": list(status.mounts) if status else None,
        "etc": etc,
    }


def array_picture(
    lab: RefLab, bytes_of: tuple[str, ...] | None = None, size: int = BYTES_CHECKED
) -> dict[str, Any]:
    """Describe and every BV's Query; the first ``size`` bytes of each BV (those of ``bytes_of``
    only, if given) and of its live SVs."""
    out: dict[str, Any] = {}
    with lab.array("admin") as a:
        state = a.describe()
        out["describe"] = json_format.MessageToDict(state)
        bvs = sorted(ld.name for ld in state.lds if ld.type == "BV")
        for bv in bvs:
            q = a.query(bv)
            out[f"query {bv}"] = json_format.MessageToDict(q)
            if bytes_of is not None and bv not in bytes_of:
                continue
            names = [bv] + [g.sv for g in q.generations if g.state not in ("snap/deleted",)]
            for name in names:
                try:
                    data = a.read(name, 0, size)
                    out[f"bytes {name}"] = hashlib.sha256(data).hexdigest()
                except Exception as exc:  # noqa: BLE001 - a refusal (a failed generation) is its picture
                    out[f"bytes {name}"] = type(exc).__name__ + str(getattr(exc, "msg_id", ""))
    return out


def guide_queries(lab: RefLab) -> dict[str, str]:
    """``iSMsc_query`` as the business server prints it."""
    out = {}
    for bv in QUERIED:
        ran = lab.cmd(QUERY_HOST, f"iSMsc_query -bv {bv} -bvflg ld")
        out[bv] = f"[{ran.code}]\n{ran.stdout}{ran.stderr}"
    return out


def picture(
    lab: RefLab, *, commands: bool = True, bytes_of: tuple[str, ...] | None = None, size: int = BYTES_CHECKED
) -> dict[str, Any]:
    hosts = sorted((lab.folder / "hosts").iterdir())
    out: dict[str, Any] = {f"host {h.name}": host_picture(lab, h.name) for h in hosts if h.is_dir()}
    out["array"] = array_picture(lab, bytes_of, size)
    if commands:
        out["iSMsc_query"] = guide_queries(lab)
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The top-level and second-level keys where two pictures differ (for assertion messages)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            sub_a, sub_b = a.get(k) or {}, b.get(k) or {}
            if isinstance(sub_a, dict) and isinstance(sub_b, dict):
                out += [f"{k}/{s}" for s in sorted(set(sub_a) | set(sub_b)) if sub_a.get(s) != sub_b.get(s)]
            else:
                out.append(k)
    return out
