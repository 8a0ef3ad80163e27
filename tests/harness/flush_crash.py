"""Flush crash harness: SIGKILL the real agent daemon in the middle of its flushes (issue 8 item 7).

Used by ``tests/test_flush_crash.py`` (a CI budget of kills) and ``bench/soak_flush_crash.py`` (the
full count). Real processes: the array daemon, the manager and ``business01``'s agent (mTLS), and
each command a process of its own (the console scripts). A 128 MiB BV is partitioned, formatted and
mounted at G:. Each cycle:

1. G: gets random changes (files of 100 B to 2 MiB created, rewritten, deleted; folders), so a flush
   writes free pages, a journal and pages in place;
2. ``iSMrc_flush -drv G:`` runs, and the agent is SIGKILLed while the flush writes: either at a place
   chosen with the debug hook ``flush_pause_at`` (``PHASE K``: after K pages of the free-page write
   ``data``, of the journal ``journal``, or of the in-place write ``place``; the flush pauses there and
   says so in ``flush_paused``, so the kill lands inside that window every time), or at a random time
   once the flush has begun to write (it pauses before its first page, is let go, and is killed 0-300 ms
   later: wherever that lands);
3. the agent starts again on its state (a server restart mounts G: anew, replaying a committed
   journal) and is verified: G: holds exactly the files of the last completed flush or of the killed
   one (sha256 of every file); every file flushed before and not changed by the killed flush is there
   (the count of lost ones must be 0); ``CHKDSK G:`` finds no problems (the volume mounted without
   repair).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from snaplab.agent.process import AgentProcess, script
from snaplab.array.process import ArrayProcess, make_lab_certs
from snaplab.manager.process import ManagerProcess

MiB = 1024 * 1024
ARRAY = "Flush_Crash_Array"
HOST = "business01"
BV_SCRIPT = "select disk 1\ncreate partition primary\nformat fs=ntfs label=BV001 quick\nassign letter=G\n"
PHASES = ("data", "journal", "place")
PAUSE_WAIT = 60.0  # from starting the flush to its pause
CAP = 40 * MiB  # the files G: holds at most


class FlushCrashFailure(AssertionError):
    """A verification after a kill failed."""


@dataclass
class Stats:
    kills: int = 0
    placed: Counter[str] = field(default_factory=Counter)  # kills at a pause, per phase
    random_kills: int = 0
    random_after_exit: int = 0  # random kills that came after the flush had ended
    outcomes: Counter[str] = field(default_factory=Counter)  # old / new
    replays: int = 0  # restarts that replayed a committed journal
    files_checked: int = 0  # files flushed before a kill and checked after it
    files_lost: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        placed = ", ".join(f"{p} {self.placed[p]}" for p in PHASES)
        return (
            f"{self.kills} SIGKILLs of the agent mid-flush ({sum(self.placed.values())} at a pause: "
            f"{placed}; {self.random_kills} at random times, {self.random_after_exit} of them after the "
            f"flush ended); outcome old flush {self.outcomes['old']}, new flush {self.outcomes['new']}; "
            f"{self.replays} journal replays at restart; {self.files_checked} previously flushed files "
            f"checked, {self.files_lost} lost; {len(self.failures)} failures"
        )


def tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative names)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def mutate(g: Path, rng: random.Random, step: int) -> None:
    """Random changes of every size class: inline rows, overflow rows, deletes, folders."""
    files = sorted(p for p in g.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    drop = rng.randint(0, 3) + (len(files) // 3 if total > CAP else 0)
    for p in rng.sample(files, min(len(files), drop)):
        p.unlink()
    for p in rng.sample(files, min(len(files), rng.randint(1, 4))):
        if p.exists():
            p.write_bytes(rng.randbytes(rng.choice([200, 6000, 70_000, 500_000, 2 * MiB])))
    for i in range(rng.randint(1, 6)):
        folder = g / rng.choice(["", "sales", "sales/2024", "hr", "db"])
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([100, 3000, 20_000, 90_000, 700_000, 2 * MiB])
        data = (
            rng.randbytes(size) if rng.random() < 0.5 else (f"row {step}.{i}\n" * (size // 10 + 1)).encode()
        )
        (folder / f"f{step:04d}_{i}.dat").write_bytes(data)


class FlushCrashHarness:
    """``with FlushCrashHarness(root, seed=...) as h: stats = h.run(kills)``"""

    def __init__(
        self, root: Path, *, seed: int | None = None, log: Callable[[str], None] = lambda _s: None
    ) -> None:
        self.root = Path(root)
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.log = log
        self.stats = Stats()
        self.array: ArrayProcess | None = None
        self.manager: ManagerProcess | None = None
        self.agent: AgentProcess | None = None

    # -- the lab -----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pki = make_lab_certs(
            self.root / "pki",
            [("array", "array"), ("manager", "manager"), ("admin", "admin"), (HOST, "host")],
        )
        self.array = ArrayProcess(self.root / "arrays" / ARRAY, certs=pki, name=ARRAY).start()
        admin = self.array.client("admin")
        try:
            admin.add_port(0, 0, "P0")
            admin.set_licence("DynamicSnapVolume", 10**12)
            admin.set_licence("AccessControl")
            admin.bind_pool(0, "Pool0", "basic", 1 << 30)
            admin.bind_ld("bv001", 128 * MiB, 0, "WN", number=0x10)
            admin.register_host(HOST, [], ["P0"])  # its definition: what it may enrol as (SPEC B2)
            self.manager = ManagerProcess(
                self.root / "manager", certs=pki, arrays={ARRAY: self.array.target}
            ).start()
            self.agent = AgentProcess(
                self.root, HOST, certs=pki, manager=self.manager.target, ports=["P0"]
            ).start()
            admin.assign_access("bv001", port="P0")
        finally:
            admin.close()
        # The harness checks that G: holds the last flush or the killed one: a lazy writer's own
        # flushes (agent/fs/lazywriter.py) would be a third state, so it is off on this host.
        ini = self.agent.state / "etc" / "iSMrpl.ini"
        ini.write_text(ini.read_text() + "\n[LAZYWRITER]\nDELAY = 0\n")
        self.command("DISKPART", stdin=BV_SCRIPT)
        self.command("iSMvollist", "-cr")

    def close(self) -> None:
        for p in (self.agent, self.manager, self.array):
            if p is not None:
                p.stop()

    @property
    def g(self) -> Path:
        assert self.agent is not None
        return self.agent.state / "mnt" / "G"

    @property
    def debug(self) -> Path:
        assert self.agent is not None
        return self.agent.state / "debug"

    def command(
        self, *argv: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        assert self.agent is not None
        r = self.agent.shell(*argv, stdin=stdin)
        if check and r.returncode != 0:
            raise FlushCrashFailure(f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    # -- the cycles --------------------------------------------------------------------------------
    def run(self, kills: int, progress: Callable[[int, str], None] | None = None) -> Stats:
        """``kills`` cycles; every third kill at a random time, the others at a pause of a random phase."""
        for folder in ("", "sales", "sales/2024", "hr", "db"):  # files flushed before any kill
            (self.g / folder).mkdir(parents=True, exist_ok=True)
            for j in range(12):
                size = self.rng.choice([100, 3000, 20_000, 90_000, 700_000])
                (self.g / folder / f"base{j:02d}.dat").write_bytes(self.rng.randbytes(size))
        self.command("iSMrc_flush", "-drv", "G:")
        for i in range(1, kills + 1):
            how = "random" if i % 3 == 0 else PHASES[(i // 3 + i) % 3]
            try:
                line = self.cycle(i, how)
            except FlushCrashFailure as exc:
                self.stats.failures.append(f"kill {i} ({how}, seed {self.seed}): {exc}")
                line = f"FAILED: {str(exc).splitlines()[0][:300]}"
                self._resync()
            if progress is not None:
                progress(i, line)
        return self.stats

    def cycle(self, i: int, how: str) -> str:
        assert self.agent is not None
        before = tree(self.g)
        mutate(self.g, self.rng, i)
        after = tree(self.g)
        self.debug.mkdir(parents=True, exist_ok=True)
        marker = self.debug / "flush_paused"
        marker.unlink(missing_ok=True)
        pause = "data 0" if how == "random" else f"{how} {self.rng.randint(0, 3)}"
        (self.debug / "flush_pause_at").write_text(pause + "\n")
        flush = subprocess.Popen(
            [script("iSMrc_flush"), "-drv", "G:"],
            env=self.agent.command_env(),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        where = how
        try:
            paused = self._wait_paused(flush, marker, how)
            if how == "random":  # the flush has begun to write: let it go on, kill it a moment later
                marker.unlink()
                time.sleep(self.rng.uniform(0.0, 0.3))
                ended = flush.poll() is not None
                self.stats.random_kills += 1
                self.stats.random_after_exit += ended
                where = "random, after the flush ended" if ended else "random"
            else:
                where = f"{how} {paused.get('pages')}/{paused.get('of')}"
                self.stats.placed[how] += 1
            self.agent.kill(signal.SIGKILL)
            self.stats.kills += 1
        finally:
            if flush.poll() is None:
                try:
                    flush.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    flush.kill()
                    flush.wait()
            if flush.stdout is not None:
                flush.stdout.close()
            if flush.stderr is not None:
                flush.stderr.close()
        (self.debug / "flush_pause_at").unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
        self.agent.start()
        replayed = "journal replayed" in self.agent.log_tail(1 << 20)
        self.stats.replays += replayed
        got = tree(self.g)
        kept_files = {n: d for n, d in before.items() if after.get(n) == d}
        lost = [n for n, d in kept_files.items() if got.get(n) != d]
        self.stats.files_checked += len(kept_files)
        self.stats.files_lost += len(lost)
        if lost:
            raise FlushCrashFailure(f"{len(lost)} files flushed before were lost: {lost[:5]}")
        if got not in (before, after):
            raise FlushCrashFailure(
                f"G: holds neither the last flush nor the killed one ({len(got)} files, "
                f"{len(set(got) ^ set(after))} names differ from the killed flush's)"
            )
        outcome = "old" if got == before else "new"
        self.stats.outcomes[outcome] += 1
        chk = self.command("CHKDSK", "G:", check=False)
        if chk.returncode != 0 or "found no problems" not in chk.stdout:
            raise FlushCrashFailure(f"CHKDSK G: exit {chk.returncode}:\n{chk.stdout[-1500:]}")
        return (
            f"killed at {where}: {outcome} flush{' (replayed)' if replayed else ''}, {len(got)} files whole"
        )

    def _wait_paused(self, flush: subprocess.Popen[bytes], marker: Path, how: str) -> dict[str, object]:
        """Until the agent's flush pauses at the hook (its marker file), what the marker says."""
        deadline = time.monotonic() + PAUSE_WAIT
        while not marker.exists():
            if flush.poll() is not None or time.monotonic() > deadline:
                out, err = flush.communicate(timeout=10)
                raise FlushCrashFailure(
                    f"the flush did not pause ({how}): exit {flush.returncode} {out!r} {err!r}"
                )
            time.sleep(0.005)
        try:
            return dict(json.loads(marker.read_text() or "{}"))
        except ValueError:
            return {}

    def _resync(self) -> None:
        """After a failure: make sure the agent runs and G: is what the volume holds, to go on."""
        assert self.agent is not None
        if not self.agent.running:
            self.agent.start()
        if not self.g.is_dir():
            shutil.rmtree(self.g, ignore_errors=True)
            self.command("CHKDSK", "G:", "/F", check=False)
