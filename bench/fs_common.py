"""Helpers for the file-system benchmarks (bench_flush.py, bench_mount.py): a host with a real
agent file system (``snaplab.agent.host.Host`` + ``agent/fs/``) over gRPC to an array, in this
process or (``array_process=True``) the real array daemon as its own process, as in a lab: the
array's serving CPU then does not share this process's GIL with the host's file system.

``FsRig(capacity)``: an ArrayEngine in a temp dir served over gRPC (insecure, test identities), a
host ``bench01`` that sees one BV (``bv001``, ``capacity`` bytes, WN, 2 SVs in the SRA's pool)
partitioned, formatted and mounted at G: with a volume list; ``rig.run(argv...)`` runs a host command
as the agent does and returns its wall time; ``rig.host.io`` counts the host's block I/O (bytes and
calls, read and write); ``rig.sra_used()`` is the SRA usage the array's Describe reports.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Self

from snaplab.agent.daemon import load_commands, run_command
from snaplab.agent.host import Host
from snaplab.array.engine import ArrayEngine
from snaplab.array.servicer import SERVICE_NAME, add_to_server

from snaplab.common.rpc import AioServerThread

ARRAY = "BenchArray"
MiB = 1 << 20
SRA_POOL = "SnapPool"


class FsRig:
    def __init__(self, capacity: int, label: str = "fs", base: Path | None = None, *,
                 array_process: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"snaplab-bench-{label}-", dir=base))
        self.server = None
        self.process = None
        self.host: Host | None = None
        try:
            e = self.engine = ArrayEngine(self.dir / "array", name=ARRAY)
            e.add_port(0, 0, "P0")
            e.set_licence("DynamicSnapVolume", 1 << 50)
            e.set_licence("AccessControl")
            e.bind_pool(0, "BvPool", "dynamic", 1 << 45)
            e.bind_pool(1, SRA_POOL, "dynamic", 1 << 45)
            e.build_sra(SRA_POOL, 64 << 30, sdv_name="SDV_BENCH")
            e.bind_ld("bv001", capacity, "BvPool", "WN")
            self.svs = [sv.name for sv in e.add_generations("bv001", SRA_POOL, count=2)]
            e.register_host("bench01", [], ["P0"])
            e.assign_access("bv001", port="P0")
            if array_process:  # configured here, served by the daemon on the same state
                from snaplab.array.process import ArrayProcess

                e.close()
                self.process = ArrayProcess(self.dir / "array", name=ARRAY, log_level="WARNING").start()
                target = self.process.target
            else:
                self.server = AioServerThread(
                    lambda s: add_to_server(e, s),
                    tls=None,
                    service_names=[SERVICE_NAME],
                    insecure_test_identities=True,
                )
                target = f"127.0.0.1:{self.server.port}"
            load_commands()
            self.host = Host("bench01", self.dir / "bench01", arrays={ARRAY: target})
            self.run(
                "DISKPART",
                stdin="select disk 1\ncreate partition primary\nformat quick label=BENCH\nassign letter=G\n",
            )
            self.run("iSMvollist", "-cr")
            self.g = self.host.mount_path("G:")
        except BaseException:
            self.close()
            raise

    def run(self, *argv: str, stdin: str = "") -> float:
        assert self.host is not None
        t = time.perf_counter()
        with self.host.command():
            out, err, code = run_command(self.host, list(argv), stdin)
        dt = time.perf_counter() - t
        if code != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {code}\n{out}{err}")
        return dt

    def sra_used(self) -> int:
        assert self.process is None, "sra_used reads the in-process engine"
        return next(p["sra_used"] for p in self.engine.describe()["pools"] if p["name"] == SRA_POOL)

    def close(self) -> None:
        try:
            if self.host is not None:
                self.host.close()
            if self.server is not None:
                self.server.stop(0)
            if self.process is not None:
                self.process.stop()
            else:
                self.engine.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fill(folder: Path, count: int, total: int, seed: int) -> tuple[int, int]:
    """``count`` files totalling about ``total`` bytes under ``folder`` (100 files per subfolder): three
    quarters small (1-8 KiB), every fourth larger (uniform up to twice what makes the total), half of
    them text (compressible), half random. Returns (files, bytes)."""
    rng = random.Random(seed)
    large = max((total - count * 3 // 4 * 4608) // max(count // 4, 1), 16384)  # mean size of the larger ones
    words = [rng.randbytes(6).hex() for _ in range(512)]
    written = 0
    for i in range(count):
        if i % 4:
            size = rng.randint(1024, 8192)
        else:
            size = rng.randint(8192, 2 * large - 8192)
        sub = folder / f"d{i // 100:03d}"
        sub.mkdir(exist_ok=True)
        if (i // 4) % 2:  # random, half of the small and half of the larger ones
            data = rng.randbytes(size)
        else:
            text = " ".join(rng.choices(words, k=size // 12 + 1)).encode()
            data = (text * (size // max(len(text), 1) + 1))[:size]
        (sub / f"f{i:05d}.{'bin' if (i // 4) % 2 else 'txt'}").write_bytes(data)
        written += size
    return count, written


class Tmpfs:
    """``with Tmpfs() as folder:`` a tmpfs mounted here for the benchmark (root), unmounted and removed
    on exit; ``folder`` is None with ``why`` set when it cannot be mounted (not root, no mount)."""

    def __init__(self, size: str = "8g") -> None:
        self.size = size
        self.folder: Path | None = None
        self.mounted = False
        self.why = ""

    def __enter__(self) -> Path | None:
        import subprocess

        self.folder = Path(tempfile.mkdtemp(prefix="snaplab-bench-tmpfs-"))
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0700", "tmpfs",
                               str(self.folder)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            self.why = (proc.stderr.strip() or f"mount exited {proc.returncode}").splitlines()[0]
            self.folder.rmdir()
            self.folder = None
            return None
        self.mounted = True
        return self.folder

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.folder is not None:
            if self.mounted:
                subprocess.run(["umount", str(self.folder)], check=False)
            shutil.rmtree(self.folder, ignore_errors=True)


def filesystem_of(path: Path) -> str:
    """The file-system type holding ``path`` (/proc/mounts, longest mount point that contains it)."""
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            mp = fields[1]
            if (str(path) == mp or str(path).startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, kind = mp, fields[2]
    return kind


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        os.unlink(path)
