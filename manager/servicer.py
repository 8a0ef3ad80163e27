"""The Manager gRPC service: identity from the certificate, routing checks, forwarding to arrays, the event log.

It runs on a ``grpc.aio`` server: every RPC is a coroutine on the daemon's one event loop, waiting
on the arrays without holding a thread. The routing rules and the state stay plain synchronous code
(``routing``, ``ManagerState``: quick, never waiting on the network).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.pki import Identity
from snaplab.common.rpc import SnapLabClientError, current_identity, translate_errors
from snaplab.v1 import array_pb2, manager_pb2, manager_pb2_grpc

from . import enrolment, routing, serde
from .arrays import CALL_TIMEOUT, ArrayLink, ArrayRegistry
from .checkpoints import CheckpointCallsMixin
from .cluster_calls import ClusterCallsMixin
from .messages import SC_DONE, M
from .observe import Observer
from .roles import ADMIN_ROLE, HOST_ROLE
from .roles import require_role as _require
from .state import CLUSTER_ROLES, HOST_ROLES, HostDefinition, HostRecord, ManagerState
from .witness import Witness

SERVICE_NAME = manager_pb2.DESCRIPTOR.services_by_name["Manager"].full_name
WATCH_POLL = 0.5  # seconds a Watch sleeps between checks that its client is still there
WAIT_DEFAULT = 60.0
VIEW_ROLES = ("host", "admin", "manager")
BAD_LICENCE = ("product fault", "capacity short")
MONITOR_TIMEOUT = 5.0  # seconds state monitoring waits for one array before showing it "unknown"

log = logging.getLogger("snaplab.manager")
T = TypeVar("T")


def _safe_text(fn: Callable[..., T], *args: object, default: T) -> T:
    """Event-log text of a request; a request too odd to describe is still served and logged."""
    try:
        return fn(*args)
    except Exception:
        log.exception("cannot describe request")
        return default


def _rpc_timeout(context: grpc.aio.ServicerContext, wanted: float) -> float:
    """The forwarded call's timeout: ``wanted``, never beyond our own caller's deadline."""
    left = context.time_remaining()
    return wanted if left is None else max(0.1, min(wanted, left))


class _NeedViaState(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


async def _check_route(
    ident: Identity,
    host: HostRecord,
    view: routing.ArrayView,
    op: routing.ControlOp,
    via: str,
    fetch: Callable[[str], Awaitable[routing.ViaState]],
) -> routing.Decision:
    """``routing.check_route`` with a live link state that must be awaited: the rules run until one
    needs the state of ``via``, which is then fetched, and run again (they are pure and cheap), so
    they are checked in the same order and the state is fetched only when a rule needs it."""
    known: dict[str, routing.ViaState] = {}

    def via_state(name: str) -> routing.ViaState:
        try:
            return known[name]
        except KeyError:
            raise _NeedViaState(name) from None

    while True:
        try:
            return routing.check_route(ident, host, view, op, via, via_state)
        except _NeedViaState as need:
            known[need.name] = await fetch(need.name)


async def _group_members(
    link: ArrayLink, view: routing.ArrayView, op: routing.ControlOp, request: array_pb2.GroupRequest
) -> tuple[routing.ControlOp, array_pb2.GroupRequest]:
    """A host's group operation with the group's members as the array's view has them (looked up
    anew once if the view does not know the group); the array refuses it if they changed since."""
    members = view.groups.get(op.group)
    if members is None:
        link.invalidate()
        members = (await link.view()).groups.get(op.group)
    if members is None:
        raise SnapLabError(E.GROUP_NOT_FOUND, name=op.group)
    forwarded = array_pb2.GroupRequest()
    forwarded.CopyFrom(request)
    del forwarded.members[:]
    forwarded.members.extend(members)
    return dataclasses.replace(op, members=tuple(members)), forwarded


def _retrieved(task: asyncio.Future[object]) -> None:
    """Done callback of an operation that may outlive its caller: its error is logged, not left unseen."""
    if not task.cancelled():
        task.exception()


# Routed operations that change nothing: cancelled with their caller (see ManagerServicer._logged).
_CANCELLABLE_OPS = ("query", "linkinfo", "wait")
# A host's probe of one of its routes (ControlRequest.probe) that finds the LD elsewhere: not logged.
PROBE_MISSES = frozenset((E.NOT_FOUND.msg_id, E.ARRAY_UNKNOWN.msg_id, E.CV_RULE.msg_id))


class _EventSignal:
    """Wakes the Watch streams when the state logs an event (the state calls ``fire`` from any thread)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._waiters: set[asyncio.Future[None]] = set()

    def arm(self) -> asyncio.Future[None]:
        """A future the next event completes: arm before reading the log, so none slips in between."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(fut)
        return fut

    def disarm(self, fut: asyncio.Future[None]) -> None:
        self._waiters.discard(fut)

    async def wait(self, fut: asyncio.Future[None], timeout: float) -> None:
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    def fire(self) -> None:
        if not self._waiters:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


@translate_errors
class ManagerServicer(ClusterCallsMixin, CheckpointCallsMixin, manager_pb2_grpc.ManagerServicer):
    """The management server. Who calls is the certificate's (CN, OU) only; no request field names a caller.

    Create it in the event loop that serves it."""

    def __init__(self, state: ManagerState, arrays: ArrayRegistry, observer: Observer | None = None) -> None:
        self.state = state
        self.arrays = arrays
        self.observer = observer or Observer(state)
        self._stopping = False
        self._signal = _EventSignal()
        state.add_listener(self._signal.fire)
        self.witness = Witness()
        self._claims = asyncio.Lock()  # one takeover decision at a time
        # Each refusal of a routing rule (B3), by its iSM id: the daemon's metrics (manager/metrics.py).
        self.on_route_refused: Callable[[str], None] = lambda _msg_id: None

    # -- helpers (private: not translated, not RPCs) -----------------------------------------------
    def shutdown(self) -> None:
        """End every Watch stream promptly (called before the server drains)."""
        self._stopping = True
        self._signal.fire()

    def _event(
        self, source: str, classification: str, operation: str, msg_id: str, text: str, *, durable: bool = True
    ) -> None:
        try:
            self.state.log_event(source, classification, operation, msg_id, text, durable=durable)
        except Exception:  # an event that cannot be written must not fail the operation it records
            log.exception("cannot log event")

    async def _logged(
        self,
        source: str,
        operation: str,
        detail: str | Callable[[], str],
        body: Callable[[], Awaitable[T]],
        done: Callable[[T], tuple[str, str, str]],
        *,
        finish: bool = True,
        quiet: frozenset[str] = frozenset(),
    ) -> T:
        """Run one operation and log it: ``done(result)`` gives (classification, msg_id, text) of a
        success; a refusal is logged as ERROR with its own iSM id and text, then raised.

        ``finish``: an operation that changes something runs to its end and is logged even if its
        caller goes away meanwhile (the caller's call is cancelled, not the operation). Without it
        (look-ups, waits) the caller going away cancels the operation, and the array call it waits
        on, and nothing is logged. ``detail`` may be a function, read when the event is written
        (it names the array the operation went to, known only once routed). ``quiet``: iSM ids of refusals that are not logged (a host's
        probe of one of its routes). The event of an operation that changes something is committed
        before the answer; a look-up's (``finish`` False) by the state's writer within a few ms
        (``ManagerState.log_event(durable=False)``: no commit of its own on the hot path)."""
        if not finish:
            return await self._run_logged(source, operation, detail, body, done, quiet, durable=False)
        task = asyncio.ensure_future(self._run_logged(source, operation, detail, body, done, quiet))
        task.add_done_callback(_retrieved)
        return await asyncio.shield(task)

    async def _run_logged(
        self,
        source: str,
        operation: str,
        detail: str | Callable[[], str],
        body: Callable[[], Awaitable[T]],
        done: Callable[[T], tuple[str, str, str]],
        quiet: frozenset[str] = frozenset(),
        *,
        durable: bool = True,
    ) -> T:
        def suffix_now() -> str:
            text = detail() if callable(detail) else detail
            return f" [{text}]" if text else ""

        try:
            result = await body()
        except SnapLabError as exc:
            suffix = suffix_now()
            if exc.msg_id not in quiet:
                self._event(source, "ERROR", operation, exc.msg_id, exc.text + suffix, durable=durable)
            raise
        except SnapLabClientError as exc:
            suffix = suffix_now()
            if (exc.msg_id or "") not in quiet:
                self._event(source, "ERROR", operation, exc.msg_id or "", exc.text + suffix, durable=durable)
            raise
        except Exception as exc:
            self._event(
                source,
                "ERROR",
                operation,
                E.INTERNAL.msg_id,
                E.INTERNAL.text.format(detail=type(exc).__name__) + suffix_now(),
                durable=durable,
            )
            raise
        classification, msg_id, text = done(result)
        self._event(source, classification, operation, msg_id, text + suffix_now(), durable=durable)
        return result

    async def _register(self, link: ArrayLink, definition: HostDefinition) -> None:
        """Register a host with one array as the configuration defines it there."""
        await link.call(
            "Configure",
            array_pb2.ConfigRequest(
                register_host=array_pb2.RegisterHost(
                    name=definition.name,
                    wwns=list(definition.wwns),
                    ports=list(definition.ports),
                    platform=definition.platform,
                )
            ),
        )
        link.invalidate()

    async def _forward(
        self, link: ArrayLink, method: str, request: object, context: grpc.aio.ServicerContext
    ) -> object:
        if method == "Wait":
            wanted = (getattr(request, "timeout_seconds", 0.0) or WAIT_DEFAULT) + 5.0
        else:
            wanted = CALL_TIMEOUT
        return await link.call(method, request, _rpc_timeout(context, wanted))

    async def _after_op(self, link: ArrayLink, op: routing.ControlOp, request: object, reply: object) -> None:
        """What the manager's own operation changed goes into the observer's baseline (observe.py)."""
        if isinstance(reply, array_pb2.Generation) and op.kind == "create" and op.bv:
            self.observer.ours(link.key, op.bv, reply.sv, reply.create_time)
        elif isinstance(reply, array_pb2.DeleteReply) and op.bv and reply.deleted_sv:
            self.observer.ours(link.key, op.bv, reply.deleted_sv, None)
        elif op.kind == "restore" and op.bv and getattr(request, "derivsv", "") == "delete":
            self.observer.forget(link.key, op.bv)
        if isinstance(reply, array_pb2.GroupReply):  # a consistency group's operation (issue 14)
            if op.group_op in ("create", "delete", "restore"):
                for bv in reply.bvs:
                    self.observer.forget(link.key, bv)
            if op.group_op in ("link", "unlink"):
                link.invalidate()
        if isinstance(reply, array_pb2.QueryReply):
            await self._query_seen(link, reply)
        if op.kind in ("link", "unlink"):
            link.invalidate()

    async def _query_seen(self, link: ArrayLink, reply: array_pb2.QueryReply) -> None:
        """Report generations gone from a BV since the manager last looked. The array's own events
        are copied first (a fresh Describe), so one it logged itself is not logged twice."""
        gone = self.observer.query_seen(link.key, reply)
        if not gone:
            return
        link.invalidate()
        try:
            state = await link.describe()
        except (SnapLabError, SnapLabClientError):
            pass
        else:
            self.observer.array_events_seen(link.key, state.events)
        self.observer.report_gone(link.key, reply.bv, gone)

    @staticmethod
    def _sc_done(operation: str) -> Callable[[object], tuple[str, str, str]]:
        msg = SC_DONE.get(operation)

        def done(reply: object) -> tuple[str, str, str]:
            deleted = getattr(reply, "deleted", None)
            if operation == "iSMsc_delete" and deleted is not None and not deleted.deleted_sv:
                # -auto found the SV already free: the host prints this notice, so the log says the same.
                return "NOTICE", E.NOTHING_TO_DELETE.msg_id, E.NOTHING_TO_DELETE.text.split(" (")[0]
            return "INFO", msg.msg_id if msg else "", msg.text if msg else f"{operation} done."

        return done

    @staticmethod
    def _with_array(
        request: manager_pb2.ControlRequest, detail: str, routed: list[ArrayLink]
    ) -> Callable[[], str]:
        """The event's detail naming the array the operation went to (every event about an array
        names it), once known; before that, what the request said."""

        def text() -> str:
            if not routed or request.array or request.WhichOneof("op") is None:
                return detail
            return _safe_text(serde.describe_control, request, "Route", routed[0].last_name, default=("", detail))[1]

        return text

    # -- B2: enrolment -------------------------------------------------------------------------
    async def Enrol(
        self, request: manager_pb2.EnrolRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.EnrolReply:
        ident = current_identity(context)
        detail = f"role {request.role or '-'}, wwn {','.join(request.wwns) or '-'}, port {','.join(request.ports) or '-'}"

        async def body() -> manager_pb2.EnrolReply:
            _require(ident, HOST_ROLE, "enrol as a host")
            if request.role not in HOST_ROLES:
                raise SnapLabError(E.BAD_ARGUMENT, detail=f"role must be one of {', '.join(HOST_ROLES)}")
            if request.cluster_role not in CLUSTER_ROLES:
                raise SnapLabError(E.BAD_ARGUMENT, detail="cluster_role must be active or standby")
            if request.cluster_role and not request.cluster:
                raise SnapLabError(E.BAD_ARGUMENT, detail="cluster_role needs a cluster name")
            claim = enrolment.Claim.of(ident.name, request.wwns, request.ports)
            defined = {d.array: d for d in self.state.definitions(ident.name)}
            registered: dict[str, array_pb2.Host] = {}
            others: list[tuple[str, frozenset[str]]] = [
                (h.name, frozenset(h.wwns)) for h in self.state.hosts() if h.name != ident.name
            ]
            others += [(d.name, frozenset(d.wwns)) for d in self.state.definitions() if d.name != ident.name]
            reachable = []
            for link in self.arrays.links:
                try:
                    state = await link.describe()
                except SnapLabError as exc:
                    if exc.msg_id != E.ARRAY_UNREACHABLE.msg_id:
                        raise
                    self._event(ident.name, "WARNING", "Enrol", exc.msg_id, exc.text)
                    continue
                reachable.append(link)
                for h in state.hosts:
                    if h.name == ident.name:
                        registered[link.key] = h
                    else:
                        others.append((h.name, frozenset(w.lower() for w in h.wwns)))
                if link.key not in defined and link.key in registered:
                    # Defined on the array itself by an admin (only admin and manager register hosts there).
                    defined[link.key] = serde.host_definition(link.key, registered[link.key])
            definitions = [defined[k] for k in sorted(defined)]
            enrolment.check(claim, definitions, others)
            for link in reachable:
                d = defined.get(link.key)
                if d is not None and not serde.registered_as(registered.get(link.key), d):
                    await self._register(link, d)
            cluster = self._configured_cluster(ident.name, request.cluster)
            host = enrolment.record(ident.name, definitions)
            self.state.enrol(
                host.name,
                request.role,
                platform=host.platform,
                wwns=host.wwns,
                ports=host.ports,
                cluster=cluster,
                cluster_role=(request.cluster_role or "standby") if cluster else "",
            )
            if cluster:  # a node that (re)starts counts as heard: it is booting, not gone
                self.witness.beat(cluster, host.name)
            return manager_pb2.EnrolReply(
                arrays=[
                    manager_pb2.ArrayEndpoint(name=x.last_name, target=x.target) for x in self.arrays.links
                ]
            )

        try:
            return await self._logged(
                ident.name,
                "Enrol",
                detail,
                body,
                lambda _r: ("INFO", M.ENROLLED.msg_id, M.ENROLLED.text.format(detail=f"{ident.name}")),
            )
        except SnapLabError as exc:
            if exc.msg_id in (E.HOST_MISMATCH.msg_id, E.HOST_NOT_DEFINED.msg_id):
                log.warning("enrolment of %s refused: %s", ident.name, exc)
            raise

    # -- B3: control I/O of a host -------------------------------------------------------------
    async def Route(
        self, request: manager_pb2.ControlRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.ControlReply:
        ident = current_identity(context)
        operation, detail = _safe_text(serde.describe_control, request, default=("Route", ""))
        routed: list[ArrayLink] = []

        async def body() -> manager_pb2.ControlReply:
            host = routing.check_caller(ident, self.state.host(ident.name))
            op, method, array_request = serde.control_op(request)
            link = await self.arrays.get(request.array, via=request.via)
            routed.append(link)
            view = await link.view()
            definition = None
            if ident.name not in view.host_paths:  # the definitions are read only then: not per op
                definition = next((d for d in self.state.definitions(host.name) if d.array == link.key), None)
            if definition is not None:
                # The array lost (or never got: it was down at enrolment) this host's registration.
                try:
                    await self._register(link, definition)
                    view = await link.view()
                except SnapLabError:
                    pass
                except SnapLabClientError as exc:
                    log.warning("cannot register %s with %s: %s", host.name, link.key, exc)

            if op.kind == "group":  # SnapLab extension: the members are the array's (issue 14)
                op, array_request = await _group_members(link, view, op, array_request)
            answered: list[object] = []

            async def via_state(name: str) -> routing.ViaState:
                if op.kind == "query" and name == op.bv:
                    # A query through its BV: the Query reply carries the BV's link state
                    # (bv_link_lv), and a query changes nothing, so it is forwarded now and its
                    # reply decides the link rule: one array round trip instead of two (LinkInfoOf,
                    # then Query). Its reply is used only if the route is allowed; if the array
                    # refuses the query, the link rule is checked as below first, so the refusal
                    # the host gets is the same as before.
                    try:
                        reply = await self._forward(link, method, array_request, context)
                    except (SnapLabError, SnapLabClientError):
                        pass
                    else:
                        if isinstance(reply, array_pb2.QueryReply) and reply.bv == name:
                            answered.append(reply)
                            return routing.ViaState(
                                linked=bool(reply.bv_link_lv), bv_linked_lv=reply.bv_link_lv
                            )
                return serde.via_state(await link.call("LinkInfoOf", array_pb2.VolumeRef(name=name)))

            try:
                await _check_route(ident, host, view, op, request.via, via_state)
            except SnapLabError as exc:
                self.on_route_refused(exc.msg_id)
                raise
            reply = answered[0] if answered else await self._forward(link, method, array_request, context)
            await self._after_op(link, op, array_request, reply)
            return serde.control_reply(reply)

        finish = request.WhichOneof("op") not in _CANCELLABLE_OPS
        quiet = PROBE_MISSES if request.probe else frozenset()
        return await self._logged(
            ident.name,
            operation,
            self._with_array(request, detail, routed),
            body,
            self._sc_done(operation),
            finish=finish,
            quiet=quiet,
        )

    # -- B4: snapshot operations of the management server itself ---------------------------------
    async def Snapshot(
        self, request: manager_pb2.ControlRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.ControlReply:
        ident = current_identity(context)
        operation, detail = _safe_text(serde.describe_control, request, default=("Route", ""))

        routed: list[ArrayLink] = []

        async def body() -> manager_pb2.ControlReply:
            _require(ident, ADMIN_ROLE, "operate snapshots from the management server")
            op, method, array_request = serde.control_op(request)
            link = await self.arrays.get(request.array, via=request.via or op.acts_on)
            routed.append(link)
            reply = await self._forward(link, method, array_request, context)
            await self._after_op(link, op, array_request, reply)
            return serde.control_reply(reply)

        finish = request.WhichOneof("op") not in _CANCELLABLE_OPS
        return await self._logged(
            ident.name,
            operation,
            self._with_array(request, detail, routed),
            body,
            self._sc_done(operation),
            finish=finish,
        )

    # -- B1: configuration ---------------------------------------------------------------------
    async def Configure(
        self, request: manager_pb2.ManagedConfig, context: grpc.aio.ServicerContext
    ) -> array_pb2.ConfigReply:
        ident = current_identity(context)
        detail = _safe_text(serde.config_text, request.request, default="")
        configured: list[ArrayLink] = []
        done: list[bool] = []

        async def body() -> array_pb2.ConfigReply:
            _require(ident, ADMIN_ROLE, "configure disk arrays")
            if request.request.WhichOneof("op") is None:
                raise SnapLabError(E.BAD_ARGUMENT, detail="ConfigRequest names no operation")
            link = await self.arrays.get(request.array)
            configured.append(link)
            if request.request.WhichOneof("op") == "assign_access":
                await self._refuse_shared_non_bv(link, request.request.assign_access)
            try:
                reply = await link.call("Configure", request.request)
            finally:
                link.invalidate()
            if request.request.WhichOneof("op") == "register_host":
                # The host definition enrolment checks against (B2), kept even while the array is away.
                r = request.request.register_host
                # iSMcfg hostadd names no cluster: a node defined again stays the node the lab made it.
                before = next((d for d in self.state.definitions(r.name) if d.array == link.key), None)
                cluster = request.cluster or (before.cluster if before else "")
                self.state.define_host(
                    link.key,
                    r.name,
                    wwns=r.wwns,
                    ports=r.ports,
                    platform=r.platform or "windows",
                    cluster=cluster,
                )
            if request.request.WhichOneof("op") in ("add_generations", "delete_generations"):
                self.observer.forget(link.key, getattr(request.request, request.request.WhichOneof("op")).bv)
            done.append(True)
            return reply

        def where() -> str:  # a refusal names the array too (a success names it in its text)
            if configured and not done:
                return f"{configured[0].last_name}: {detail}"
            return detail

        return await self._logged(
            ident.name,
            "Configure",
            where,
            body,
            lambda _r: (
                "INFO",
                M.CONFIGURED.msg_id,
                M.CONFIGURED.text.format(
                    detail=configured[0].last_name if configured else request.array or "-"
                ),
            ),
        )

    # -- B5: monitoring --------------------------------------------------------------------------
    async def Monitor(
        self, request: manager_pb2.MonitorRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.MonitorReply:
        ident = current_identity(context)
        _require(ident, VIEW_ROLES, "monitor the disk arrays")
        links = await self.arrays.select(request.array)
        # Every array at once, each within MONITOR_TIMEOUT: one that is frozen or gone shows as
        # "unknown" and never holds up the others or the caller.
        # A host (its own iSMview) sees each array's configuration as the array shows it to that
        # host: its own record and ports, the LDs it is given and their pools; of the servers, only
        # itself. The snapshot lists stay whole: the host commands find an SV's BV in them (as before).
        for_host = ident.name if ident.role == "host" else ""
        out = await asyncio.gather(*(self._monitor_one(link, for_host) for link in links))
        hosts = [h for h in self.state.hosts() if not for_host or h.name == for_host]
        return manager_pb2.MonitorReply(
            arrays=out,
            hosts=[serde.host_msg(h, self.witness.age(h.cluster, h.name) if h.cluster else None) for h in hosts],
        )

    async def _monitor_one(self, link: ArrayLink, for_host: str = "") -> manager_pb2.ArrayMonitor:
        snapshots: list[array_pb2.QueryReply] = []
        state: array_pb2.ArrayState | None = None
        try:
            async with asyncio.timeout(MONITOR_TIMEOUT):
                state = await link.describe()
                self.observer.faults_seen(link.key, state.faults)
                self.observer.array_events_seen(link.key, state.events)
                whole = state
                if for_host:
                    state = await link.call("Describe", array_pb2.DescribeRequest(for_host=for_host))
                for ld in whole.lds:
                    if ld.type != "BV":
                        continue
                    try:
                        reply = await link.call("Query", array_pb2.QueryRequest(bv=ld.name))
                    except (SnapLabError, SnapLabClientError):
                        continue  # unbound since Describe, or the array went away: leave it out
                    await self._query_seen(link, reply)
                    snapshots.append(reply)
        except TimeoutError:
            if state is None:
                log.warning("%s did not answer Describe within %.0f s", link.key, MONITOR_TIMEOUT)
                self.observer.reachability(link.key, False)
            else:
                snapshots = []  # a partial list would look like lost snapshots: show the array without it
        except (SnapLabError, SnapLabClientError) as exc:
            log.warning("cannot describe %s: %s", link.key, exc)
            state = None
        if state is None:
            return manager_pb2.ArrayMonitor(
                state=array_pb2.ArrayState(name=link.last_name, product_id=link.last_product_id),
                target=link.target,
                resource_state="unknown",
                monitoring="stopped",
            )
        bad = bool(state.faults) or any(v in BAD_LICENCE for v in state.licences.values())
        return manager_pb2.ArrayMonitor(
            state=state,
            target=link.target,
            resource_state="fault" if bad else "ready",
            monitoring="running",
            snapshots=snapshots,
        )

    # -- B6: event log ---------------------------------------------------------------------------
    async def Events(
        self, request: manager_pb2.EventsRequest, context: grpc.aio.ServicerContext
    ) -> manager_pb2.EventsReply:
        ident = current_identity(context)
        _require(ident, VIEW_ROLES, "read the event log")
        if request.limit < 0:
            raise SnapLabError(E.BAD_ARGUMENT, detail="limit must not be negative")
        events = self.state.events(request.after_seq, request.limit)
        return manager_pb2.EventsReply(events=[serde.event_msg(e) for e in events])

    async def Watch(
        self, request: manager_pb2.EventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[manager_pb2.Event]:
        ident = current_identity(context)
        _require(ident, VIEW_ROLES, "watch the event log")
        # A client going away cancels this coroutine wherever it waits; the poll is only a backstop.
        seq = request.after_seq
        while not self._stopping and not self.state.closed:
            armed = self._signal.arm()
            events = self.state.events(seq)
            if not events:
                await self._signal.wait(armed, WATCH_POLL)
                continue
            self._signal.disarm(armed)
            for ev in events:
                yield serde.event_msg(ev)
                seq = ev.seq

    # -- faults (A13) ----------------------------------------------------------------------------
    async def InjectFault(
        self, request: manager_pb2.ManagedFault, context: grpc.aio.ServicerContext
    ) -> array_pb2.ArrayState:
        return await self._fault(request, context, inject=True)

    async def ClearFault(
        self, request: manager_pb2.ManagedFault, context: grpc.aio.ServicerContext
    ) -> array_pb2.ArrayState:
        return await self._fault(request, context, inject=False)

    async def _fault(
        self, request: manager_pb2.ManagedFault, context: grpc.aio.ServicerContext, *, inject: bool
    ) -> array_pb2.ArrayState:
        ident = current_identity(context)
        operation = "InjectFault" if inject else "ClearFault"
        resolved: list[ArrayLink] = []

        def detail() -> str:  # the array's name even when the request left it to the manager
            name = resolved[0].last_name if resolved else request.array or "-"
            return f"{name}: {request.fault.kind}:{request.fault.target}"

        async def body() -> array_pb2.ArrayState:
            _require(ident, ADMIN_ROLE, "set or clear faults")
            link = await self.arrays.get(request.array)
            resolved.append(link)
            try:
                state = await link.call(operation, request.fault)
            finally:
                link.invalidate()
            self.observer.faults_seen(link.key, state.faults, ours=True)
            return state

        msg = M.FAULT_SET if inject else M.FAULT_CLEARED
        return await self._logged(
            ident.name,
            operation,
            "",
            body,
            lambda _s: ("WARNING" if inject else "NOTICE", msg.msg_id, msg.text.format(detail=detail())),
        )


def add_to_server(servicer: ManagerServicer, server: grpc.aio.Server) -> None:
    manager_pb2_grpc.add_ManagerServicer_to_server(servicer, server)
