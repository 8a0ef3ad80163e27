"""The Array gRPC service (``grpc.aio``): authorise the caller by certificate role, convert (serde), call the engine.

Every RPC is a coroutine on the server's event loop; the engine (which blocks: a lock, SQLite, data
files) runs in thread pools, one for control roles (manager, admin) and one for everyone else, so
control traffic never queues behind hosts' I/O, and a non-control caller has at most
``CALLER_SLOTS`` engine calls queued or running at once. A stream between messages and a ``Wait``
hold no thread: waits sleep until the engine commits (one watcher thread for all of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from snaplab.common.chaos import ChaosEngine, Firing, crash_now
from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity
from snaplab.common.rpc import current_identity, translate_errors
from snaplab.v1 import array_pb2 as pb
from snaplab.v1 import array_pb2_grpc

from . import serde
from .checkpoint_calls import CheckpointCallsMixin
from .engine import ArrayEngine

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Array"].full_name
WAIT_METHOD = f"/{SERVICE_NAME}/Wait"  # a wait, for the server's per-caller limits (rpc_guard)
DEFAULT_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024
MAX_HEAD = 4096  # ReadHeads: enough for a partition table's first sectors
POOL_THREADS = 8  # engine threads per pool (control, others); the engine's lock serialises most calls anyway
CALLER_SLOTS = 2  # engine calls a non-control caller may have queued or running at once
QUICK_LOOKUPS = 8  # a look-up batch this small runs on the event loop when the engine is free
QUERY_ANSWERS_KEPT = 8192  # generations (and BVs) in the Query answers kept: ~2 MiB at most
# A wait re-checks its condition at least this often, even if no commit woke it, and at most this often.
_WAIT_SLICE = 1.0
_WAIT_RECHECK = 0.02

CONTROL_ROLES = ("manager", "admin")  # configuration, snapshot operations, faults
VIEW_ROLES = ("manager", "admin", "host")  # query, linkinfo, describe, disks (a host: what it is given)
IO_ROLES = ("host", "admin")  # block I/O: a host as itself, an admin unrestricted

log = logging.getLogger("snaplab.array")


def _authorise(ident: Identity, roles: tuple[str, ...], what: str) -> Identity:
    if ident.role not in roles:
        raise SnapLabError(E.CONTROL_DENIED, detail=f"{ident.role} {ident.name} may not {what}")
    return ident


class _CallerSlots:
    """At most ``n`` engine calls per caller queued or running in the shared pool, so one caller's
    streams cannot fill the pool's queue ahead of everyone else. Used on the event loop only."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._slots: dict[tuple[str, str], tuple[asyncio.Semaphore, int]] = {}

    async def acquire(self, key: tuple[str, str]) -> None:
        sem, users = self._slots.get(key) or (asyncio.Semaphore(self.n), 0)
        self._slots[key] = (sem, users + 1)
        try:
            await sem.acquire()
        except BaseException:
            self._drop(key)
            raise

    def release(self, key: tuple[str, str]) -> None:
        self._slots[key][0].release()
        self._drop(key)

    def _drop(self, key: tuple[str, str]) -> None:
        sem, users = self._slots[key]
        if users <= 1:
            del self._slots[key]
        else:
            self._slots[key] = (sem, users - 1)


class _Commits:
    """Wakes the waits on the server's event loop after each engine commit, from one thread for all."""

    def __init__(self, engine: ArrayEngine) -> None:
        self.version = 0
        self._waiters = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._stop = False
        self._thread = threading.Thread(
            target=engine.watch_commits, args=(self._committed, lambda: self._stop), name="array-commits", daemon=True
        )
        self._thread.start()

    def _committed(self) -> None:  # the watcher thread, under the engine's lock
        loop = self._loop
        if self._waiters and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self.version += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        self._loop = asyncio.get_running_loop()
        self._waiters += 1
        try:
            yield
        finally:
            self._waiters -= 1

    async def changed_since(self, seen: int, timeout: float) -> None:
        """Return once a commit after version ``seen`` happened, or after ``timeout`` seconds."""
        if self.version != seen:
            return
        if self._event is None:
            self._event = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()

    def close(self) -> None:
        self._stop = True  # the watcher ends within a second, or at once when the engine closes


@translate_errors
class ArrayServicer(CheckpointCallsMixin, array_pb2_grpc.ArrayServicer):
    """One array's service. Identity is the caller's certificate (CN = name, OU = role), never a field."""

    def __init__(self, engine: ArrayEngine) -> None:
        self.engine = engine
        self._control_pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="array-ctl")
        self._pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="array-io")
        self._slots = _CallerSlots(CALLER_SLOTS)
        self._commits = _Commits(engine)
        self._stopping = False
        self._reading: dict[grpc.aio.ServicerContext, asyncio.Timeout] = {}  # Lookup streams waiting for a batch
        # The chaos rules of this array (set by the daemon): a Lookup stream's look-ups are each
        # `Query`/`LinkInfoOf` to them, as the unary calls they stand for (the interceptor sees one stream).
        self.chaos: ChaosEngine | None = None
        self.lookup_port = 0  # the look-up socket's port (set by the daemon; 0: none)
        self._answers: dict[str, tuple[tuple[int, int, int], pb.QueryReply]] = {}  # BV -> its last Query answer
        self._answers_size = 0  # their generations and BVs (QUERY_ANSWERS_KEPT)

    def shutdown(self) -> None:
        """End every Lookup stream now (they never end by themselves) so the server drains at once;
        their callers resend what was left unanswered over the unary RPCs, or find the array gone.
        Call it on the server's event loop."""
        self._stopping = True
        now = asyncio.get_running_loop().time()
        for reading in list(self._reading.values()):
            reading.reschedule(now)

    def close(self) -> None:
        """After the server stopped: end the watcher and the engine threads."""
        self._commits.close()
        self._control_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)

    # -- helpers (private: not translated, not RPCs) -------------------------------------------
    async def _run(self, ident: Identity, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the caller's engine pool. A caller's slot is freed when the call
        has ended in its thread, not when the caller stopped waiting for it."""
        call = functools.partial(fn, *args, **kwargs)
        if ident.role in CONTROL_ROLES:
            return await asyncio.wrap_future(self._control_pool.submit(call))
        key = (ident.name, ident.role)
        await self._slots.acquire(key)
        try:
            future = self._pool.submit(call)
        except BaseException:
            self._slots.release(key)
            raise
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._slots.release, key))
        return await asyncio.wrap_future(future)

    async def _run_quick(self, ident: Identity, fn: Callable[..., Any], *args: Any) -> Any:
        """A quick read-only call: on the event loop at once if the engine's lock is free (no thread
        hand-off, the common case of routing's look-ups), else as :meth:`_run`."""
        with self.engine.lock_if_free() as free:
            if free:
                return fn(*args)
        return await self._run(ident, fn, *args)

    def _spawn(self, ident: Identity, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        """:meth:`_run` started now, awaited later (block I/O overlaps the engine with the network)."""
        task = asyncio.ensure_future(self._run(ident, fn, *args, **kwargs))
        task.add_done_callback(_retrieved)
        return task

    async def _call(
        self, context: grpc.aio.ServicerContext, roles: tuple[str, ...], what: str,
        fn: Callable[[Any, Identity], Any], request: Any,
    ) -> Any:
        """One unary RPC: authorise, then ``fn(request, ident)`` in the caller's engine pool."""
        ident = _authorise(current_identity(context), roles, what)
        return await self._run(ident, fn, request, ident)

    def _lds(self, names: Iterable[str]) -> list[dict]:
        wanted = set(names)
        return [d for d in self.engine.describe()["lds"] if d["name"] in wanted]

    @staticmethod
    def _io_host(ident: Identity) -> str | None:
        """The host block I/O is done as: the calling host, or None (unrestricted) for an admin."""
        return ident.name if ident.role == "host" else None

    # -- configuration -------------------------------------------------------------------------
    async def Configure(self, request: pb.ConfigRequest, context: grpc.aio.ServicerContext) -> pb.ConfigReply:
        return await self._call(context, CONTROL_ROLES, "configure the array", self._configure, request)

    def _configure(self, request: pb.ConfigRequest, ident: Identity) -> pb.ConfigReply:
        op, args, kwargs = serde.config_call(request)
        removed = [self.engine.ld(args[0]).name] if op == "unbind_ld" else []
        result = getattr(self.engine, op)(*args, **kwargs)
        if op == "delete_generations":
            removed = list(result)
        return serde.config_reply(self._lds(serde.made_ld_names(result)), removed)

    # -- snapshot operations -------------------------------------------------------------------
    async def Create(self, request: pb.CreateRequest, context: grpc.aio.ServicerContext) -> pb.Generation:
        return await self._call(context, CONTROL_ROLES, "create snapshots", self._create, request)

    def _create(self, request: pb.CreateRequest, ident: Identity) -> pb.Generation:
        args, kwargs = serde.create_call(request)
        # consistency: SnapLab extension (iSMsc_create -quiesce), "" for the guide's create
        return serde.generation_msg(self.engine.create_labelled(*args, consistency=request.consistency, **kwargs))

    async def Delete(self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext) -> pb.DeleteReply:
        return await self._call(context, CONTROL_ROLES, "delete snapshots", self._delete, request)

    def _delete(self, request: pb.DeleteRequest, ident: Identity) -> pb.DeleteReply:
        args, kwargs = serde.delete_call(request)
        return pb.DeleteReply(deleted_sv=self.engine.delete(*args, **kwargs) or "")

    async def Restore(self, request: pb.RestoreRequest, context: grpc.aio.ServicerContext) -> pb.Generation:
        return await self._call(context, CONTROL_ROLES, "restore snapshots", self._restore, request)

    def _restore(self, request: pb.RestoreRequest, ident: Identity) -> pb.Generation:
        args, kwargs = serde.restore_call(request)
        return serde.generation_msg(self.engine.restore(*args, **kwargs))

    async def Wait(self, request: pb.WaitRequest, context: grpc.aio.ServicerContext) -> pb.Generation:
        """Check the condition; until it holds, sleep (holding no thread) until a commit or a slice passed."""
        ident = _authorise(current_identity(context), CONTROL_ROLES, "wait for snapshots")
        args, kwargs = serde.wait_call(request, context.time_remaining())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + kwargs.pop("timeout")
        with self._commits.watching():
            while True:
                seen = self._commits.version  # before the check: a commit during it is not missed
                checked = loop.time()
                try:
                    return serde.generation_msg(
                        await self._run_quick(ident, functools.partial(self.engine.wait, *args, **kwargs, timeout=0))
                    )
                except SnapLabError as exc:
                    left = deadline - loop.time()
                    if exc.msg_id != E.WAIT_TIMEOUT.msg_id or left <= 0:
                        raise
                await self._commits.changed_since(seen, min(left, _WAIT_SLICE))
                # Commits can come by the hundred a second (host writes, restore batches): check at most
                # every _WAIT_RECHECK, so many waits cost the engine little.
                await asyncio.sleep(max(0.0, checked + _WAIT_RECHECK - loop.time()))

    async def Guard(self, request: pb.GuardRequest, context: grpc.aio.ServicerContext) -> pb.Generation:
        return await self._call(context, CONTROL_ROLES, "guard snapshots", self._guard, request)

    def _guard(self, request: pb.GuardRequest, ident: Identity) -> pb.Generation:
        args, kwargs = serde.guard_call(request)
        if request.hold or request.release:  # SnapLab extension (holds.py): a named hold, not the guard
            if request.hold and request.release:
                raise serde.bad("give hold or release, not both")
            fn = self.engine.hold if request.hold else self.engine.release
            sv = fn(*args, name=request.hold or request.release)
            return serde.generation_msg(self.engine.generation_info(request.bv, sv))
        sv = self.engine.guard(*args, **kwargs)
        return serde.generation_msg(self.engine.generation_info(request.bv, sv))

    async def Link(self, request: pb.LinkRequest, context: grpc.aio.ServicerContext) -> pb.LinkInfo:
        return await self._call(context, CONTROL_ROLES, "link volumes", self._link, request)

    def _link(self, request: pb.LinkRequest, ident: Identity) -> pb.LinkInfo:
        args, kwargs = serde.link_call(request)
        return serde.linkinfo_msg(self.engine.link(*args, **kwargs))

    async def Unlink(self, request: pb.UnlinkRequest, context: grpc.aio.ServicerContext) -> pb.LinkInfo:
        return await self._call(context, CONTROL_ROLES, "unlink volumes", self._unlink, request)

    def _unlink(self, request: pb.UnlinkRequest, ident: Identity) -> pb.LinkInfo:
        args, kwargs = serde.unlink_call(request)
        return serde.linkinfo_msg(self.engine.unlink(*args, **kwargs))

    async def Query(self, request: pb.QueryRequest, context: grpc.aio.ServicerContext) -> pb.QueryReply:
        ident = _authorise(current_identity(context), VIEW_ROLES, "query snapshots")
        return await self._run_quick(ident, self._query, request, ident)

    async def LinkInfoOf(self, request: pb.VolumeRef, context: grpc.aio.ServicerContext) -> pb.LinkInfo:
        ident = _authorise(current_identity(context), VIEW_ROLES, "query links")
        return await self._run_quick(ident, self._linkinfo, request, ident)

    def _query(self, request: pb.QueryRequest, ident: Identity) -> pb.QueryReply:
        _authorise(ident, VIEW_ROLES, "query snapshots")
        bv = serde.required(request.bv, "bv")
        if ident.role == "host":  # a host looks up only what the manager would route for it
            self.engine.check_host_lookup(ident.name, bv)
        # Routing queries a BV on every routed operation; while nothing changed, the answer is
        # the one built last (engine.state_version), not rebuilt per generation each time.
        version = self.engine.state_version
        held = self._answers.get(bv)
        if held is not None and held[0] == version:
            return held[1]
        reply = serde.query_msg(self.engine.query(bv))
        size = len(reply.generations) + 1
        if held is not None:
            self._answers_size -= len(held[1].generations) + 1
        if self._answers_size + size > QUERY_ANSWERS_KEPT:
            self._answers.clear()
            self._answers_size = 0
        if size <= QUERY_ANSWERS_KEPT:
            self._answers[bv] = (version, reply)
            self._answers_size += size
        return reply

    def _linkinfo(self, request: pb.VolumeRef, ident: Identity) -> pb.LinkInfo:
        _authorise(ident, VIEW_ROLES, "query links")
        name = serde.required(request.name, "name")
        if ident.role == "host":
            self.engine.check_host_lookup(ident.name, name)
        return serde.linkinfo_msg(self.engine.linkinfo(name))

    async def Lookup(
        self, request_iterator: AsyncIterator[pb.LookupBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.LookupReplies]:
        ident = current_identity(context)  # a caller without an identity is refused before the stream starts
        batches = request_iterator.__aiter__()
        while not self._stopping:
            try:
                # A read that shutdown() can end: it reschedules this timeout to now.
                async with asyncio.timeout(None) as reading:
                    self._reading[context] = reading
                    batch = await batches.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                break
            finally:
                self._reading.pop(context, None)
            yield await self.answer_lookups(batch, ident)
        raise SnapLabError(E.STOPPING, name="disk array")

    async def answer_lookups(
        self, batch: pb.LookupBatch, ident: Identity, firings: dict[int, Firing] | None = None
    ) -> pb.LookupReplies:
        """A checked batch's replies, each as its unary RPC would answer (the Lookup stream and the
        look-up socket, lookup_socket.py, both answer through this). ``firings``: the chaos rules'
        decisions for it if already made (``lookup_firings``)."""
        if firings is None:
            firings = self.lookup_firings(batch)
        if firings:
            delay = max(f.latency for f in firings.values())
            if delay:
                await asyncio.sleep(delay)
            for f in firings.values():
                if f.crash:
                    crash_now(f)
        run = self._run_quick if len(batch.requests) <= QUICK_LOOKUPS else self._run
        return _with_firings(await run(ident, self._lookup_batch, batch, ident), firings)

    def answer_lookups_now(
        self, batch: pb.LookupBatch, ident: Identity, firings: dict[int, Firing]
    ) -> pb.LookupReplies | None:
        """``answer_lookups`` without waiting, when it would not wait (no chaos delay or crash, a
        small batch, the engine's lock free: the common case); else None."""
        if len(batch.requests) > QUICK_LOOKUPS or any(f.latency or f.crash for f in firings.values()):
            return None
        with self.engine.lock_if_free() as free:
            if not free:
                return None
            replies = self._lookup_batch(batch, ident)
        return _with_firings(replies, firings)

    def lookup_firings(self, batch: pb.LookupBatch) -> dict[int, Firing]:
        """The chaos rules' firings for a batch's look-ups, by id (each look-up is its unary call)."""
        if self.chaos is None:
            return {}
        firings: dict[int, Firing] = {}
        for r in batch.requests:
            op = r.WhichOneof("op")
            if op is None:
                continue
            subject = r.query.bv if op == "query" else r.linkinfo.name
            f = self.chaos.decide(("Lookup", "Query" if op == "query" else "LinkInfoOf"), subject)
            if f is not None:
                firings[r.id] = f
        return firings

    def _lookup_batch(self, batch: pb.LookupBatch, ident: Identity) -> list[pb.LookupReply]:
        return [self._lookup_one(r, ident) for r in batch.requests]

    def _lookup_one(self, request: pb.LookupRequest, ident: Identity) -> pb.LookupReply:
        """One look-up answered as its unary RPC would be: the reply, or the status it would end with."""
        op = request.WhichOneof("op")
        try:
            if op == "query":
                return pb.LookupReply(id=request.id, query=self._query(request.query, ident))
            if op == "linkinfo":
                return pb.LookupReply(id=request.id, linkinfo=self._linkinfo(request.linkinfo, ident))
            raise serde.bad("LookupRequest names no look-up")
        except Exception as exc:
            if not isinstance(exc, SnapLabError):
                log.exception("unexpected error in ArrayServicer.Lookup (%s)", op)
                exc = SnapLabError(E.INTERNAL, detail=type(exc).__name__)
            return pb.LookupReply(
                id=request.id,
                code=getattr(grpc.StatusCode, exc.status.name).value[0],
                details=str(exc),
                msg_id=exc.msg_id,
            )

    # -- block I/O -----------------------------------------------------------------------------
    async def Read(self, request: pb.ReadRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.DataChunk]:
        ident = _authorise(current_identity(context), IO_ROLES, "read volumes")
        host = self._io_host(ident)
        ld = serde.required(request.ld, "ld")
        if request.offset < 0 or request.length < 0 or request.chunk_size < 0:
            raise serde.bad("offset, length and chunk_size must not be negative")
        chunk = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK)
        offset, end = request.offset, request.offset + request.length
        # The first chunk is read before the stream starts, so access, faults and a bad LD come back
        # as the call's status rather than after some data.
        first, capacity = await self._run(ident, self._read_first, ld, offset, min(chunk, request.length), host)
        if end > capacity:
            raise SnapLabError(E.BAD_RANGE, detail=f"{offset}+{request.length} > {capacity}")
        pos = offset + len(first)
        # The next chunk is read while this one is sent.
        ahead = self._spawn(ident, self.engine.read, ld, pos, min(chunk, end - pos), host=host) if pos < end else None
        try:
            if first:
                yield pb.DataChunk(data=first)
            while ahead is not None:
                data = await ahead
                pos += len(data)
                ahead = None
                if pos < end and data:
                    ahead = self._spawn(ident, self.engine.read, ld, pos, min(chunk, end - pos), host=host)
                yield pb.DataChunk(data=data)
        finally:
            if ahead is not None:
                ahead.cancel()

    def _read_first(self, ld: str, offset: int, length: int, host: str | None) -> tuple[bytes, int]:
        data = self.engine.read(ld, offset, length, host=host)
        return data, self.engine.ld(ld).capacity

    async def ReadHeads(self, request: pb.ReadHeadsRequest, context: grpc.aio.ServicerContext) -> pb.ReadHeadsReply:
        ident = _authorise(current_identity(context), IO_ROLES, "read volumes")
        if not 0 <= request.length <= MAX_HEAD:
            raise serde.bad(f"length must be 0 to {MAX_HEAD}")
        lds = [serde.required(x, "lds") for x in request.lds]
        answers = await self._run(ident, self.engine.read_heads, lds, request.length, host=self._io_host(ident))
        return pb.ReadHeadsReply(heads=[_head(ld, a) for ld, a in zip(lds, answers)])

    async def Write(
        self, request_iterator: AsyncIterator[pb.WriteChunk], context: grpc.aio.ServicerContext
    ) -> pb.WriteReply:
        ident = _authorise(current_identity(context), IO_ROLES, "write volumes")
        host = self._io_host(ident)
        first_ld = ""
        total = 0
        writing: asyncio.Task[Any] | None = None
        # Each chunk is committed (durable) when engine.write returns, and the next is written only
        # after it (the next is received meanwhile); a refusal mid-stream keeps the chunks before it
        # and reports the error.
        try:
            async for chunk in request_iterator:
                first_ld = first_ld or chunk.ld
                ld = chunk.ld or first_ld
                if not ld:
                    raise serde.bad("the first WriteChunk must name the LD")
                if chunk.offset < 0:
                    raise serde.bad("offset must not be negative")
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self._write_queued(ident, context, ld, chunk.offset, chunk.data, host))
                writing.add_done_callback(_retrieved)
                total += len(chunk.data)
            if writing is not None:
                await writing
                writing = None
        finally:
            if writing is not None:
                writing.cancel()
        return pb.WriteReply(bytes_written=total)

    async def _write_queued(
        self, ident: Identity, context: grpc.aio.ServicerContext, ld: str, offset: int, data: bytes, host: str | None
    ) -> None:
        """One chunk's write. A pool whose SRA-full policy is ``queue`` refuses it with iSM31277 while
        the SRA is full: it is retried after each commit (space may have been freed) until the pool's
        timeout or the call's deadline, holding no engine thread and no caller slot meanwhile."""
        try:  # the common case: written at once, no commit watching on the hot path
            return await self._run(ident, self.engine.write, ld, offset, data, host=host)
        except SnapLabError as exc:
            if exc.msg_id != E.SRA_FULL_QUEUED.msg_id:
                raise
        loop = asyncio.get_running_loop()
        timeout = await self._run(ident, self.engine.sra_queue_timeout, ld)
        left = context.time_remaining()
        deadline = loop.time() + (timeout if left is None else min(timeout, max(0.0, left - 0.5)))
        with self._commits.watching():
            while True:
                seen = self._commits.version  # before the retry: a commit during it is not missed
                try:
                    return await self._run(ident, self.engine.write, ld, offset, data, host=host)
                except SnapLabError as exc:
                    if exc.msg_id != E.SRA_FULL_QUEUED.msg_id:
                        raise
                left = deadline - loop.time()
                if left <= 0:
                    raise SnapLabError(E.SRA_FULL_QUEUE_TIMEOUT, detail=f"{ld}: no space freed in {timeout:g} s")
                await self._commits.changed_since(seen, min(left, _WAIT_SLICE))
                await asyncio.sleep(_WAIT_RECHECK)

    async def Disks(self, request: pb.DisksRequest, context: grpc.aio.ServicerContext) -> pb.DisksReply:
        return await self._call(context, VIEW_ROLES, "list disks", self._disks, request)

    def _disks(self, request: pb.DisksRequest, ident: Identity) -> pb.DisksReply:
        if ident.role == "host":
            if request.host and request.host != ident.name:
                raise SnapLabError(
                    E.CONTROL_DENIED, detail=f"host {ident.name} may not list disks of {request.host}"
                )
            host = ident.name
        else:
            host = serde.required(request.host, "host")
        names = [x.name for x in self.engine.visible_lds(host)]
        by_name = {d["name"]: d for d in self._lds(names)}
        return pb.DisksReply(lds=[serde.ld_msg(by_name[n]) for n in names if n in by_name])

    # -- monitoring and faults -----------------------------------------------------------------
    async def Describe(self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext) -> pb.ArrayState:
        return await self._call(context, VIEW_ROLES, "describe the array", self._describe, request)

    def _describe(self, request: pb.DescribeRequest, ident: Identity) -> pb.ArrayState:
        host = ident.name if ident.role == "host" else request.for_host
        if request.routing and not host:  # the manager's routing view (routing_view.py)
            state = serde.routing_state_msg(self.engine.routing_view(request.known_version))
            state.lookup_port = self.lookup_port
            return state
        if ident.role == "host":  # its own part only: nothing of other hosts or LDs it is not given
            state = serde.array_state_msg(self.engine.describe_for_host(host))
        elif request.for_host:  # the manager answering a host's iSMview with that host's rights
            if ident.role != "manager":
                raise SnapLabError(E.CONTROL_DENIED, detail=f"{ident.role} {ident.name} may not describe for a host")
            state = serde.array_state_msg(self.engine.describe_for_host(host))
        else:
            state = serde.array_state_msg(self.engine.describe())
        # SnapLab extension (groups.py): the consistency groups; a host's, those of BVs it sees only
        seen = {ld.name for ld in state.lds}
        state.groups.extend(pb.GroupInfo(name=g["name"], bvs=g["bvs"]) for g in self.engine.group_list()
                            if not host or set(g["bvs"]) <= seen)
        return state

    async def InjectFault(self, request: pb.FaultRequest, context: grpc.aio.ServicerContext) -> pb.ArrayState:
        return await self._call(context, CONTROL_ROLES, "inject faults", self._inject_fault, request)

    def _inject_fault(self, request: pb.FaultRequest, ident: Identity) -> pb.ArrayState:
        self.engine.inject_fault(serde.required(request.kind, "kind"), serde.required(request.target, "target"))
        return serde.array_state_msg(self.engine.describe())

    async def ClearFault(self, request: pb.FaultRequest, context: grpc.aio.ServicerContext) -> pb.ArrayState:
        return await self._call(context, CONTROL_ROLES, "clear faults", self._clear_fault, request)

    def _clear_fault(self, request: pb.FaultRequest, ident: Identity) -> pb.ArrayState:
        self.engine.clear_fault(serde.required(request.kind, "kind"), serde.required(request.target, "target"))
        return serde.array_state_msg(self.engine.describe())

    # -- consistency groups (SnapLab extension, issue 14: groups.py) ------------------------------
    async def Group(self, request: pb.GroupRequest, context: grpc.aio.ServicerContext) -> pb.GroupReply:
        return await self._call(context, CONTROL_ROLES, "operate consistency groups", self._group, request)

    def _group(self, request: pb.GroupRequest, ident: Identity) -> pb.GroupReply:
        method, args, kwargs = serde.group_call(request)
        return serde.group_reply(getattr(self.engine, method)(*args, **kwargs))

    # -- persistent reservations (reservations.py) ---------------------------------------------
    async def SetReservation(
        self, request: pb.ReservationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Reservation:
        return await self._call(context, CONTROL_ROLES, "set reservations", self._set_reservation, request)

    def _set_reservation(self, request: pb.ReservationRequest, ident: Identity) -> pb.Reservation:
        ld = self.engine.ld(serde.required(request.ld, "ld"))
        previous = self.engine.set_reservation(ld.name, request.owner)
        return pb.Reservation(ld=ld.name, owner=request.owner, previous=previous)


def _head(ld: str, answer: bytes | SnapLabError) -> pb.LdHead:
    if isinstance(answer, SnapLabError):
        return pb.LdHead(ld=ld, code=answer.status.name, details=str(answer), msg_id=answer.msg_id)
    return pb.LdHead(ld=ld, data=answer)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A spawned engine call nobody awaits any more (its stream ended) must not log "never retrieved"."""
    if not task.cancelled():
        task.exception()


def add_to_server(engine: ArrayEngine, server: grpc.aio.Server) -> ArrayServicer:
    servicer = ArrayServicer(engine)
    array_pb2_grpc.add_ArrayServicer_to_server(servicer, server)
    return servicer


def _with_firings(replies: list[pb.LookupReply], firings: dict[int, Firing]) -> pb.LookupReplies:
    if firings:
        replies = [_chaos_reply(r, firings[r.id]) if r.id in firings else r for r in replies]
    return pb.LookupReplies(replies=replies)


def _chaos_reply(reply: pb.LookupReply, f: Firing) -> pb.LookupReply:
    """A look-up's reply as the refusal a chaos rule makes of it (a delay alone keeps the reply)."""
    if f.error is not None:
        code = getattr(grpc.StatusCode, f.error.status.name).value[0]
        return pb.LookupReply(id=reply.id, code=code, details=str(f.error), msg_id=f.error.msg_id)
    if f.status:
        code = getattr(grpc.StatusCode, f.status).value[0]
        return pb.LookupReply(id=reply.id, code=code, details=f"chaos rule {f.rule.id}: {f.status} on {f.op}")
    return reply
