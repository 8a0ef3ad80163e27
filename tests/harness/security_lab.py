"""A small lab of real daemons for tests/security/: one array and the manager over mTLS, three hosts.

    with security_lab.running(tmp_path) as lab:
        lab.array_client("test01").query("bv001")      # a host straight to the array
        lab.manager_client("backup01").route(...)       # the same host through the manager

What each host is given (access control by WWN), so every routing case has a host to show it:

- ``business01``: bv001 (a BV with sv001_1, sv001_2 and lv001) and iv003 (an IV: a CV candidate);
- ``backup01``: lv001 (linked to bv001's first snapshot) and BACKUP_CV (a CV);
- ``test01``: bv002 (a BV, one SV) and lv002 (its LV, not linked): no CV, so only the volumes themselves.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.manager.client import ManagerClient
from snaplab.manager.process import ManagerProcess

from snaplab.common.rpc import ClientTLS, SnapLabClientError
from snaplab.san.array_client import ArrayClient

ARRAY = "Security_Array"
MiB = 1024 * 1024
WWN = {
    "business01": "10:00:00:00:c9:5e:c0:01",
    "backup01": "10:00:00:00:c9:5e:c0:02",
    "test01": "10:00:00:00:c9:5e:c0:03",
}
ROLES = {"business01": "business", "backup01": "backup", "test01": "test"}
PRINCIPALS = [("array", "array"), ("manager", "manager"), ("admin", "admin"), *((h, "host") for h in WWN)]


@dataclass
class SecurityLab:
    root: Path
    certs: Path
    array: ArrayProcess
    manager: ManagerProcess
    _clients: list

    def array_client(self, principal: str, timeout: float = 30.0) -> ArrayClient:
        c = ArrayClient(self.array.target, ClientTLS.from_folder(self.certs, principal), timeout=timeout)
        self._clients.append(c)
        return c

    def manager_client(self, principal: str, timeout: float = 30.0) -> ManagerClient:
        c = ManagerClient(self.manager.target, ClientTLS.from_folder(self.certs, principal), timeout=timeout)
        self._clients.append(c)
        return c

    def ld_names(self) -> list[str]:
        return [ld.name for ld in self.array_client("admin").describe().lds]


def configure(admin: ArrayClient) -> None:
    """The lab of the module docstring, made by the array's admin."""
    admin.set_licence("DynamicSnapVolume", 1 << 40)
    admin.set_licence("AccessControl")
    admin.add_port(0, 0, "P_BIZ")
    admin.add_port(0, 1, "P_BAK")
    admin.bind_pool(0, "Pool0", "basic", 256 * MiB)
    admin.bind_pool(1, "Pool1", "dynamic", 256 * MiB)
    admin.build_sra(1, 32 * MiB, sdv_name="SDV1")
    admin.bind_ld("bv001", 4 * MiB, 0, "WN")
    admin.add_generations("bv001", 1, 2, sv_names=["sv001_1", "sv001_2"])
    admin.bind_lv("bv001", "lv001")
    admin.bind_ld("iv003", 1 * MiB, 0, "WN")
    admin.bind_ld("BACKUP_CV", 1 * MiB, 0, "WN", attr="cv")
    admin.bind_ld("bv002", 4 * MiB, 0, "WN")
    admin.add_generations("bv002", 1, 1, sv_names=["sv002_1"])
    admin.bind_lv("bv002", "lv002")
    for host, wwn in WWN.items():  # the hosts' definitions: what they may enrol as (SPEC B2)
        admin.register_host(host, [wwn], [])
    for host, lds in (("business01", ("bv001", "iv003")), ("backup01", ("lv001", "BACKUP_CV")),
                      ("test01", ("bv002", "lv002"))):
        for ld in lds:
            admin.assign_access(ld, wwn=WWN[host])
    admin.create("bv001", "sv001_1")
    admin.create("bv002", "sv002_1")
    admin.link("lv001", "sv001_1", mode="rw")


@contextlib.contextmanager
def running(root: Path, *, array_args: Iterable[str] = ()) -> Iterator[SecurityLab]:
    certs = make_lab_certs(root / "pki", PRINCIPALS)
    clients: list = []
    with (
        ArrayProcess(root / "array", certs=certs, name=ARRAY, extra_args=array_args) as array,
        ManagerProcess(root / "manager", certs=certs, arrays={ARRAY: array.target}) as manager,
    ):
        lab = SecurityLab(root, certs, array, manager, clients)
        try:
            configure(lab.array_client("admin"))
            for host, wwn in WWN.items():
                lab.manager_client(host).enrol(ROLES[host], wwns=[wwn])
            yield lab
        finally:
            for c in clients:
                c.close()


def outcome(call: Callable[[], object]) -> tuple[str, object]:
    """("ok", reply) or ("refused", (code name, iSM id))."""
    try:
        return "ok", call()
    except SnapLabClientError as exc:
        return "refused", (exc.code.name, exc.msg_id)


def median_latency(call: Callable[[], object], n: int) -> float:
    """Median seconds of ``n`` calls made one after another."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
