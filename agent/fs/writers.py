"""A mount's file writers: unpack, check and write files, in worker processes that map the working copy.

A file is a handful of system calls (open, write, utime, close) and an inflate; each releases the
GIL, so threads writing files hand it back and forth with the mount's thread, which reads rows in
Python, and spend as much CPU on the hand-offs as on the files (a second thread made a mount no
faster). Writer processes (PROCESSES, ``python -m`` this module: none of the agent's threads or
modules) have a GIL each: they get a batch of files as (start, stop) spans of the working copy the
reader thread has already written, map that file themselves and return each file's size and hash.
The checks are the threads' (unpack_file, shared): size, zlib stream, recorded hash. When the
processes cannot be started, ``pool()`` answers None and the caller writes with threads; a batch
whose process died raises Stopped (the mount then extracts through SQLite) and a new process takes
its place.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import mmap
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import zlib
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from typing import Any

import xxhash
from isal import isal_zlib

from snaplab.agent.fs.archive import DIGEST, Damaged, unpack

log = logging.getLogger("snaplab.agent.filesystem")

PROCESSES = 2  # worker processes (0: threads only)
IOV_MAX = 1024  # pieces per writev (Linux's limit)

Data = bytes | str | list[memoryview] | None  # a row's data: as SQLite gives it, or views of pages
Span = tuple[int, int]


def write_file(path: str, content: bytes | list[memoryview], perm: int, mt: int, umask: int | None) -> None:
    """Create ``path`` with ``content``, ``perm`` and mtime ``mt``: created with its mode (a read-only
    one still lets this descriptor write), chmod only when the umask would take bits off."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, perm | 0o200)
    try:
        parts = [content] if isinstance(content, bytes) else content
        for i in range(0, len(parts), IOV_MAX):  # one call for a file's pieces (each call hands the GIL on)
            group = parts[i : i + IOV_MAX]
            done = os.writev(fd, group) if len(group) > 1 else os.write(fd, group[0])
            if done < sum(len(p) for p in group):  # a short write (rare): the rest byte-exact
                rest = memoryview(b"".join(group))[done:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
        if umask is None or perm & umask or not perm & 0o200:
            os.fchmod(fd, perm)
        os.utime(fd, ns=(mt, mt))
    finally:
        os.close(fd)


def content_of(sz: int, data: Data) -> bytes | list[memoryview]:
    """A file row's content (archive.unpack; pieces of pages stay pieces when stored as they are)."""
    if not isinstance(data, list):
        return unpack(sz, data)
    n = sum(len(p) for p in data)
    if sz == -1 or n == sz:
        return data
    if n > sz:
        raise ValueError("data longer than its size")
    try:
        out = isal_zlib.decompress(data[0] if len(data) == 1 else b"".join(data), bufsize=sz)
    except isal_zlib.error as exc:
        raise ValueError(f"zlib stream: {exc}") from None
    if len(out) != sz:
        raise ValueError("size mismatch")
    return out


def hash_of(content: bytes | list[memoryview], legacy: bool) -> bytes:
    """XXH3-64 of the content (format 2), or BLAKE2b-128 (``legacy``: format 1's recorded hashes)."""
    parts = [content] if isinstance(content, bytes) else content
    if not legacy and len(parts) == 1:
        return xxhash.xxh3_64_digest(parts[0])
    h = hashlib.blake2b(digest_size=DIGEST) if legacy else xxhash.xxh3_64()
    for p in parts:
        h.update(p)
    return h.digest()


Job = tuple[str, str, int, Any, "bytes | None", int, int]  # name, path, sz, data, recorded hash, perm, mtime


def unpack_file(
    name: str, path: str, sz: int, data: Data, h: bytes | None, perm: int, mt: int, umask: int | None
) -> tuple[int, bytes]:
    """One file row: its content checked (size, zlib stream, recorded hash) and written; returns
    (size, its hash as a flush compares it). Damaged when the row is not what was written for it."""
    try:
        content = content_of(sz, data)
    except (ValueError, zlib.error) as exc:
        raise Damaged(f"entry {name}: {exc}") from None
    legacy = h is not None and len(h) == DIGEST
    if h is not None and hash_of(content, legacy) != h:
        raise Damaged(f"entry {name}: content does not match its hash")
    write_file(path, content, perm, mt, umask)
    size = len(content) if isinstance(content, bytes) else sum(len(p) for p in content)
    return size, h if h is not None and not legacy else hash_of(content, False)


def write_spans(image: str, size: int, jobs: list[Job], umask: int | None) -> list[tuple[int, bytes]]:
    """In a worker process: the files of ``jobs``, whose data are spans of the file ``image``
    (``size`` bytes, written that far by the mount's reader), mapped here for this batch only (a
    mapping kept would keep a removed working copy's memory)."""
    fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    try:
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    view = memoryview(mm)
    try:
        out = []
        for name, path, sz, spans, h, perm, mt in jobs:
            pieces = [view[a:b] for a, b in spans] if isinstance(spans, list) else spans
            out.append(unpack_file(name, path, sz, pieces, h, perm, mt, umask))
            del pieces
        return out
    finally:
        view.release()
        with contextlib.suppress(BufferError):
            mm.close()


_MODULE = "snaplab.agent.fs.writers"  # as the writer processes run it (here it may be __main__)
_IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["snaplab"].__file__ or "")))


class Stopped(BrokenExecutor):
    """A writer process died or answered nothing that parses: its batch's files are not known."""


class _Worker:
    """One writer process: ``python -m snaplab.agent.fs.writers`` (no copy of the agent's threads,
    none of its modules but this one's), batches and answers as length-prefixed pickles on its
    stdin and stdout; it ends when its stdin closes (the agent stopped or died)."""

    def __init__(self) -> None:
        env = dict(os.environ)  # snaplab importable there as here (a checkout not installed, tests)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_IMPORT_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", _MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=env
        )

    def call(self, request: tuple[Any, ...]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            _send(self.proc.stdin, request)
            status, value = _receive(self.proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
            raise Stopped(f"writer process {self.proc.pid}: {exc or type(exc).__name__}") from None
        if status != "ok":
            raise value
        return value

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _send(f: Any, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack(">Q", len(data)) + data)
    f.flush()


def _receive(f: Any) -> Any:
    head = f.read(8)
    if len(head) < 8:
        raise EOFError("no answer")
    (n,) = struct.unpack(">Q", head)
    data = f.read(n)
    if len(data) < n:
        raise EOFError("a short answer")
    return pickle.loads(data)


class Writers:
    """PROCESSES writer processes and a thread per process that waits on it (in a pipe read, without
    the GIL); ``submit`` returns a Future of ``write_spans``'s answer."""

    def __init__(self, n: int) -> None:
        self.idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self.workers: list[_Worker] = []
        self.lock = threading.Lock()
        for _ in range(n):
            w = _Worker()
            self.workers.append(w)
            self.idle.put(w)
        self.threads = ThreadPoolExecutor(n, thread_name_prefix="mount-writer")

    def submit(self, request: tuple[Any, ...]) -> Future[Any]:
        return self.threads.submit(self._call, request)

    def _call(self, request: tuple[Any, ...]) -> Any:
        w = self.idle.get()
        try:
            out = w.call(request)
        except Stopped:
            self._replace(w)
            raise
        self.idle.put(w)
        return out

    def _replace(self, w: _Worker) -> None:
        """A dead writer's place is taken by a new one (for the next batches)."""
        w.close()
        with self.lock:
            if w in self.workers:
                self.workers.remove(w)
            fresh = _Worker()
            self.workers.append(fresh)
        self.idle.put(fresh)

    def pids(self) -> list[int]:
        with self.lock:
            return [w.proc.pid for w in self.workers]

    def close(self) -> None:
        self.threads.shutdown(wait=True)
        with self.lock:
            for w in self.workers:
                w.close()
            self.workers.clear()


_lock = threading.Lock()
_pool: Writers | None = None
_failed = False  # the processes could not be started here: threads from now on


def pool() -> Writers | None:
    """The writer processes (started at the first mount that asks), or None: threads then."""
    global _pool, _failed
    with _lock:
        if _pool is None and PROCESSES > 0 and not _failed:
            try:
                _pool = Writers(PROCESSES)
                atexit.register(shutdown)
            except OSError as exc:
                log.warning("file writer processes not started (%s): threads write a mount's files", exc)
                _failed = True
        return _pool


def submit(jobs: list[Job], image: str, size: int, umask: int | None) -> Future[list[tuple[int, bytes]]] | None:
    """``write_spans`` of ``jobs`` in a writer process; None when there is none (threads then)."""
    p = pool()
    if p is None:
        return None
    try:
        return p.submit((image, size, jobs, umask))
    except RuntimeError:  # shut down meanwhile (the agent stops)
        return None


def pids() -> list[int]:
    """The writer processes' ids (benchmarks count their CPU)."""
    with _lock:
        return [] if _pool is None else _pool.pids()


def shutdown() -> None:
    """Stop the writer processes (started again when a mount asks)."""
    global _pool
    with _lock:
        p, _pool = _pool, None
    if p is not None:
        p.close()


def _serve() -> int:
    """A writer process's loop: a batch in, its answer out, until stdin closes."""
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, not into the answers
    while True:
        try:
            request = _receive(inp)
        except EOFError:
            return 0
        try:
            answer: tuple[str, object] = ("ok", write_spans(*request))
        except Damaged as exc:
            answer = ("err", exc)
        except Exception as exc:  # noqa: BLE001 - handed back: the mount falls back to SQLite's pass
            answer = ("err", Damaged(f"writer process: {type(exc).__name__}: {exc}"))
        _send(out, answer)


if __name__ == "__main__":
    sys.exit(_serve())
