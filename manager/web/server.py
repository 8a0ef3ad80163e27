"""The web console's HTTPS server (aiohttp), run in the manager's own event loop beside its gRPC server.

Pages are static files of this package (``static/``); the data comes from a small JSON API, and
the event log streams as server-sent events. Every ``/api/`` route but login needs a session;
every POST also needs the session's CSRF token and the console's own ``Origin`` (auth.py). The
server answers only on the address it was given (loopback unless the lab configures another) and
only to a ``Host`` it serves as, so a DNS-rebinding page cannot reach it by another name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from snaplab.common.errors import E, SnapLabError, Status
from snaplab.common.pki import identity_from_pem
from snaplab.common.rpc import SnapLabClientError

from .api import ManagerApi, checked_op
from .auth import COOKIE, CSRF_HEADER, SESSION_SECONDS, ConsoleAuth, check_origin

log = logging.getLogger("snaplab.manager.web")

STATIC = Path(__file__).with_name("static")
BACKLOG = 500  # events a page gets when it opens: the log may hold 10 000 and more
BACKLOG_LIMIT = 2_000  # events in that one reply at most (a reconnect after long: the rest streams)
SRA_WARNING_PERCENT = 80  # the gauge's warning mark (the guide's operators act before the SRA fills)
BODY_LIMIT = 16 * 1024  # a POST from the page is a few fields

_STATUS_HTTP = {
    Status.UNAUTHENTICATED: 401,
    Status.PERMISSION_DENIED: 403,
    Status.INVALID_ARGUMENT: 400,
    Status.NOT_FOUND: 404,
    Status.UNAVAILABLE: 503,
    Status.INTERNAL: 500,
}
_GRPC_HTTP = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 500,
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _sse(ev: dict[str, Any]) -> bytes:
    return f"id: {ev['seq']}\ndata: {json.dumps(ev)}\n\n".encode()


def _refusal(status: int, msg_id: str, text: str) -> web.Response:
    return web.json_response({"msg_id": msg_id, "text": text, "error": f"{msg_id}: {text}"}, status=status)


@dataclass
class ConsoleConfig:
    host: str
    port: int
    cert_file: Path
    key_file: Path
    ca_file: Path


def _tls(cfg: ConsoleConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(cfg.ca_file))
    ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL  # the admin's client certificate logs in by itself (no token)
    return ctx


def _peer_is_admin(request: web.Request) -> bool:
    sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        return False
    try:
        ident = identity_from_pem(ssl.DER_cert_to_PEM_cert(der).encode())
    except Exception:
        return False
    return ident.role == "admin"


class Console:
    """The console's routes over ``api`` (the manager as admin) and ``auth``."""

    def __init__(self, api: ManagerApi, auth: ConsoleAuth, last_seq: Callable[[], int]) -> None:
        self.api = api
        self.auth = auth
        self.last_seq = last_seq
        self.hosts: set[str] = set()  # Host headers we answer to, set once the port is known
        # What the event log last said of each server's agent (the lab's host stop/kill/start):
        # followed from the log's start by one Watch of its own, so no page has to read 10,000 events.
        self.host_states: dict[str, str] = {}

    async def follow_hosts(self) -> None:
        async for ev in self.api.watch(0):
            if ev["msg_id"] == E.HOST_DOWN.msg_id:
                self.host_states[ev["source"]] = "crashed" if ev["text"].endswith(": crashed)") else "stopped"
            elif ev["msg_id"] == E.HOST_UP.msg_id:
                self.host_states[ev["source"]] = "running"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=BODY_LIMIT)
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_get("/api/session", self._session)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/op", self._op)
        return app

    # -- checks of every request -----------------------------------------------------------------
    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.host not in self.hosts:
            return _refusal(421, E.CONSOLE_FORBIDDEN.msg_id,
                            E.CONSOLE_FORBIDDEN.text.format(detail=f"host {request.host[:80]}"))
        try:
            if request.method not in ("GET", "HEAD"):
                check_origin(request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site"),
                             f"https://{request.host}")
            if request.path.startswith("/api/") and request.path != "/api/login":
                session = self.auth.session(request.cookies.get(COOKIE))
                if request.method not in ("GET", "HEAD"):
                    self.auth.check_csrf(session, request.headers.get(CSRF_HEADER))
            response = await handler(request)
        except SnapLabError as exc:
            response = _refusal(_STATUS_HTTP.get(exc.status, 409), exc.msg_id, exc.text)
        except SnapLabClientError as exc:
            response = _refusal(_GRPC_HTTP.get(exc.code, 409), exc.msg_id or "", exc.text)
        except web.HTTPException as exc:
            if exc.status >= 400:
                m = E.CONSOLE_REQUEST
                response = _refusal(exc.status, m.msg_id, m.text.format(detail=exc.reason))
            else:
                raise
        except Exception as exc:  # a page gets the catalogue's internal error, never a traceback
            log.exception("console request %s failed", request.path)
            m = E.INTERNAL
            response = _refusal(500, m.msg_id, m.text.format(detail=type(exc).__name__))
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _json(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            raise SnapLabError(E.CONSOLE_REQUEST, detail="the body is not JSON") from None

    # -- pages and sessions ----------------------------------------------------------------------
    async def _index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _login(self, request: web.Request) -> web.Response:
        body = await self._json(request) if request.can_read_body else {}
        token = body.get("token") if isinstance(body, dict) else None
        if not token and _peer_is_admin(request):
            sid, session = self.auth.open_session()
        else:
            sid, session = self.auth.login(token)
        response = web.json_response({"csrf": session.csrf})
        response.set_cookie(COOKIE, sid, httponly=True, secure=True, samesite="Strict", path="/",
                            max_age=SESSION_SECONDS)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self.auth.logout(request.cookies.get(COOKIE))
        response = web.json_response({})
        response.del_cookie(COOKIE, path="/")
        return response

    async def _session(self, request: web.Request) -> web.Response:
        return web.json_response({"csrf": self.auth.session(request.cookies.get(COOKIE)).csrf})

    # -- data ------------------------------------------------------------------------------------
    async def _state(self, _request: web.Request) -> web.Response:
        state = await self.api.monitor()
        state["sra_warning_percent"] = SRA_WARNING_PERCENT
        state["host_states"] = self.host_states
        return web.json_response(state)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: the last BACKLOG events (or those after Last-Event-ID), then live."""
        after_text = request.headers.get("Last-Event-ID") or request.query.get("after", "")
        try:
            after = int(after_text) if after_text else max(0, self.last_seq() - BACKLOG)
        except ValueError:
            raise SnapLabError(E.CONSOLE_REQUEST, detail="after must be an event number") from None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS})
        await response.prepare(request)
        head = self.last_seq()
        await response.write(f"retry: 1000\nevent: head\ndata: {json.dumps({'seq': head})}\n\n".encode())
        try:
            # The backlog up to the head in one reply and one write, then the live stream after it.
            seq = max(0, after)
            if head > seq:
                backlog = await self.api.events(seq, min(head - seq, BACKLOG_LIMIT))
                if backlog:
                    await response.write(b"".join(_sse(ev) for ev in backlog))
                    seq = backlog[-1]["seq"]
            async for ev in self.api.watch(seq):
                await response.write(_sse(ev))
        except (ConnectionResetError, SnapLabClientError):
            pass  # the page went away, or the manager is stopping: the browser reconnects
        return response

    async def _op(self, request: web.Request) -> web.Response:
        op, fields = checked_op(await self._json(request))
        return web.json_response({"op": op, "reply": await self.api.operate(op, fields)})


class ConsoleServer:
    """Start and stop the console in the running loop."""

    def __init__(self, cfg: ConsoleConfig, console: Console) -> None:
        self.cfg = cfg
        self.console = console
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> int:
        self.runner = web.AppRunner(self.console.app(), handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.cfg.host, self.cfg.port, ssl_context=_tls(self.cfg),
                           shutdown_timeout=1.0)
        await site.start()
        server = site._server  # aiohttp keeps the asyncio server here; its socket tells the port
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.console.hosts = _served_hosts(self.cfg.host, self.port)
        self._follower = asyncio.ensure_future(self._follow())
        return self.port

    async def _follow(self) -> None:
        try:
            await self.console.follow_hosts()
        except SnapLabClientError as exc:  # the manager stopping; the page then shows no host states
            log.info("console stops following the event log: %s", exc)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except asyncio.CancelledError:
                pass
        if self.runner is not None:
            await asyncio.wait_for(self.runner.cleanup(), 5.0)


def _served_hosts(host: str, port: int) -> set[str]:
    names = {f"{host}:{port}"}
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return names
    if ip.version == 6:
        names = {f"[{host}]:{port}"}
    if ip.is_loopback:
        names |= {f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
    return names
