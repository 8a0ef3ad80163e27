"""Issue 8 item 9: the array daemon whose storage fails answers with an iSM message, logs why, never
dies of it, and serves again once its storage is back.

Real processes on a real file system: the daemon's state folder is on a small tmpfs this test mounts
(as root; skipped otherwise) and always unmounts. The faults are the kernel's own:

* **disk full**: a filler file takes the tmpfs' last byte; a write needing new blocks gets ENOSPC
  (iSM31160, RESOURCE_EXHAUSTED), reads go on, and once the filler is gone the same write succeeds;
* **state not writable**: the state folder is bind-mounted read-only over itself while the daemon
  runs (the files it holds open stay writable, as on a real remount, so what fails is what opens a
  file: a new LD's data file, and the reload after that failure: iSM31161);
* **failed reload**: that reload cannot reopen the data files, so the engine is left unloaded; every
  request is then refused (iSM31163, never a KeyError of an empty engine) until the bind is gone,
  when the next request reloads the state and is served.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from snaplab.array.process import ArrayProcess

from snaplab.common.rpc_errors import SnapLabClientError

pytestmark = pytest.mark.timeout(120)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root only)")

MiB = 1 << 20
FS_SIZE = 24 * MiB
PATTERN_A = bytes(range(256)) * (MiB // 256)
PATTERN_B = b"\xb5" * (2 * MiB)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def _tmpfs(where: Path, size: int) -> Iterator[Path]:
    where.mkdir(parents=True)
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-R", str(where)], check=False, capture_output=True, timeout=30)
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=30)  # if still busy


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for new opens (a bind mount of itself, remounted ro), until the block ends."""
    _run("mount", "--bind", str(folder), str(folder))
    try:
        _run("mount", "-o", "remount,bind,ro", str(folder))
        yield
    finally:
        _run("umount", str(folder))


def _fill(path: Path) -> None:
    """Take every free byte of the file system ``path`` is on."""
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * MiB
        while True:
            try:
                if f.write(chunk) < len(chunk):
                    chunk = chunk[: max(1, len(chunk) // 2)]
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]


def _refused(call, *args) -> SnapLabClientError:
    with pytest.raises(SnapLabClientError) as info:
        call(*args)
    return info.value


@pytest.fixture
def array(tmp_path: Path) -> Iterator[ArrayProcess]:
    with _tmpfs(tmp_path / "fs", FS_SIZE) as fs:
        proc = ArrayProcess(fs / "state", log_path=tmp_path / "array.log")
        try:
            proc.start()
            admin = proc.client("admin")
            admin.bind_pool(0, "Pool0", "basic", 1 << 30)
            admin.bind_ld("ld1", 64 * MiB, "Pool0", "LX")
            admin.write("ld1", 0, PATTERN_A)
            admin.close()
            yield proc
        finally:
            proc.stop()


def _log(proc: ArrayProcess) -> str:
    return proc.log_path.read_text(errors="replace")


@needs_root
def test_disk_full_is_refused_logged_and_recovered(array: ArrayProcess) -> None:
    admin = array.client("admin")
    filler = array.state_dir.parent / "filler"
    _fill(filler)
    err = _refused(admin.write, "ld1", 4 * MiB, PATTERN_B)
    assert (err.code, err.msg_id) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "iSM31160"), err
    assert "ld_0000.dat" in err.text or "array.db" in err.text, err.text
    # the daemon is alive, logged why, and serves what it holds
    assert array.running
    log = _log(array)
    assert "iSM31160" in log and ("No space left on device" in log or "disk is full" in log), log[-2000:]
    assert "Traceback" not in log
    assert admin.read("ld1", 0, MiB) == PATTERN_A
    assert admin.read("ld1", 4 * MiB, len(PATTERN_B)) == bytes(len(PATTERN_B))  # nothing of the refused write
    assert admin.describe().lds[0].name == "ld1"
    # storage back: the same write succeeds, and everything survives a restart
    filler.unlink()
    assert admin.write("ld1", 4 * MiB, PATTERN_B) == len(PATTERN_B)
    admin.close()
    array.stop()
    array.start()
    with array.client("admin") as admin:
        assert admin.read("ld1", 0, MiB) == PATTERN_A
        assert admin.read("ld1", 4 * MiB, len(PATTERN_B)) == PATTERN_B


@needs_root
def test_unwritable_state_and_a_failed_reload_are_refused_until_storage_is_back(array: ArrayProcess) -> None:
    admin = array.client("admin")
    with _read_only(array.state_dir):
        err = _refused(admin.bind_ld, "ld2", 8 * MiB, "Pool0", "LX")
        assert (err.code, err.msg_id) == (grpc.StatusCode.UNAVAILABLE, "iSM31161"), err
        assert "Read-only file system" in err.text, err.text
        # the reload after that failure could not reopen the data files: refused, not half-empty
        for call, args in ((admin.read, ("ld1", 0, MiB)), (admin.describe, ()), (admin.write, ("ld1", 0, b"x"))):
            err = _refused(call, *args)
            assert (err.code, err.msg_id) == (grpc.StatusCode.UNAVAILABLE, "iSM31163"), err
        assert array.running
    # storage back: the next request reloads the state and is served
    assert admin.read("ld1", 0, MiB) == PATTERN_A
    admin.bind_ld("ld2", 8 * MiB, "Pool0", "LX")
    admin.write("ld2", 0, PATTERN_B)
    assert [x.name for x in admin.describe().lds] == ["ld1", "ld2"]
    log = _log(array)
    assert "iSM31161" in log and "cannot be reloaded" in log and "storage is back" in log, log[-3000:]
    assert "Traceback" not in log and "KeyError" not in log
    admin.close()
    array.stop()
    array.start()
    with array.client("admin") as admin:
        assert admin.read("ld1", 0, MiB) == PATTERN_A
        assert admin.read("ld2", 0, len(PATTERN_B)) == PATTERN_B


@needs_root
def test_a_state_that_cannot_be_opened_is_a_clear_refusal(tmp_path: Path) -> None:
    """Started on a state it cannot write, the daemon says so (with the iSM message) and exits."""
    with _tmpfs(tmp_path / "fs", FS_SIZE) as fs:
        state = fs / "state"
        state.mkdir()
        (state / "data").mkdir()
        with _read_only(state):
            proc = ArrayProcess(state, log_path=tmp_path / "array.log")
            with pytest.raises(Exception):  # noqa: B017 - the process helper's own error: it did not start
                proc.start()
            proc.stop()
        log = (tmp_path / "array.log").read_text(errors="replace")
        assert "iSM3116" in log and "Traceback" not in log, log[-2000:]


class _SizeLimitedArray(ArrayProcess):
    """The daemon under a file-size limit (RLIMIT_FSIZE): past it a write fails with EFBIG, and the
    kernel's SIGXFSZ, which would kill a process that does not ignore it, is sent too."""

    limit = 8 * MiB

    def command(self) -> list[str]:
        cmd = super().command()
        start = (
            "import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({self.limit}, {self.limit})); "
            "sys.argv = ['snaplab-array', *sys.argv[1:]]; "
            "runpy.run_module('snaplab.array.daemon', run_name='__main__')"
        )
        return [cmd[0], "-c", start, *cmd[3:]]


def test_a_file_size_limit_is_storage_full_not_a_death(tmp_path: Path) -> None:
    array = _SizeLimitedArray(tmp_path / "state", log_path=tmp_path / "array.log")
    with array, array.client("admin") as admin:
        admin.bind_pool(0, "Pool0", "basic", 1 << 30)
        admin.bind_ld("ld1", 64 * MiB, "Pool0", "LX")
        admin.write("ld1", 0, PATTERN_A)
        err = _refused(admin.write, "ld1", MiB, b"\x01" * (16 * MiB))
        assert (err.code, err.msg_id) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "iSM31160"), err
        assert array.running
        assert admin.read("ld1", 0, MiB) == PATTERN_A
        # each 1 MiB chunk is its own transaction: the chunks before the limit are there, whole
        got = admin.read("ld1", MiB, 16 * MiB)
        chunks = [got[i : i + MiB] for i in range(0, len(got), MiB)]
        kinds = ["written" if c == b"\x01" * MiB else "zero" if not any(c) else "torn" for c in chunks]
        k = kinds.count("written")
        assert kinds == ["written"] * k + ["zero"] * (16 - k) and k < 8, kinds
        assert admin.describe().lds[0].name == "ld1"
    assert "iSM31160" in _log(array) and "Traceback" not in _log(array)
