"""What the web console asks of the manager: the same gRPC API as every other client, as the lab's admin.

The console is one more admin client (like ``iSMsc_*`` in the management server's shell): each
operation is one ``Manager`` call over a loopback channel with the admin certificate, so it is
checked, forwarded and written to the event log exactly as from the CLI. Replies become JSON for
the page; requests from the page are checked here field by field before they become protos.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import ClientTLS, call_error
from snaplab.common.rpc_client import make_aio_channel
from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb
from snaplab.v1 import manager_pb2_grpc

CALL_TIMEOUT = 30.0
SV_FLAGS = ("ld", "relgen", "ld.relgen")
LV_MODES = ("rw", "ro", "nr", "na")
FIELD_LIMIT = 64  # characters of any one field from the page (names are 32 at most: validation.py)

# op -> (required fields, optional fields)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "create": (("bv",), ("array", "sv", "svflg", "cyclic")),
    "delete": (("bv", "sv"), ("array", "svflg")),
    "restore": (("bv", "sv"), ("array", "svflg", "derivsv")),
    "guard": (("bv", "sv", "on"), ("array", "svflg")),
    "link": (("lv", "sv"), ("array", "svflg", "mode")),
    "unlink": (("lv",), ("array", "sv", "svflg")),
    "fault_inject": (("kind", "target"), ("array",)),
    "fault_clear": (("kind", "target"), ("array",)),
}


def as_json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


def event_json(ev: mpb.Event) -> dict[str, Any]:
    """One event for the page: by hand, as json_format costs ten times more and a page opens on 500."""
    return {"seq": ev.seq, "time": ev.time, "source": ev.source, "classification": ev.classification,
            "operation": ev.operation, "msg_id": ev.msg_id, "text": ev.text}


def _bad(detail: str) -> SnapLabError:
    return SnapLabError(E.CONSOLE_REQUEST, detail=detail)


def checked_op(body: object) -> tuple[str, dict[str, Any]]:
    """(op, fields) of a POSTed operation, every field of the right type and size (iSM31353 if not)."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    op = body.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise _bad(f"op must be one of {', '.join(OPS)}")
    required, optional = OPS[op]
    fields = {k: v for k, v in body.items() if k != "op"}
    unknown = sorted(set(fields) - set(required) - set(optional))
    if unknown:
        raise _bad(f"{op} takes no field {unknown[0][:FIELD_LIMIT]!r}")
    for key in required:
        if key not in fields or fields[key] in ("", None):
            raise _bad(f"{op} needs {key}")
    for key, value in fields.items():
        if key in ("on", "cyclic"):
            if not isinstance(value, bool):
                raise _bad(f"{key} must be true or false")
        elif not isinstance(value, str) or len(value) > FIELD_LIMIT:
            raise _bad(f"{key} must be a text of at most {FIELD_LIMIT} characters")
    if fields.get("svflg", "ld") not in SV_FLAGS:
        raise _bad(f"svflg must be one of {', '.join(SV_FLAGS)}")
    if fields.get("mode", "rw") not in LV_MODES:
        raise _bad(f"mode must be one of {', '.join(LV_MODES)}")
    if fields.get("derivsv", "keep") not in ("keep", "delete"):
        raise _bad("derivsv must be keep or delete")
    if op == "create" and bool(fields.get("sv")) == bool(fields.get("cyclic")):
        raise _bad("create needs either sv or cyclic")
    return op, fields


def _sv(f: dict[str, Any]) -> apb.SvRef | None:
    return apb.SvRef(sv=f["sv"], svflg=f.get("svflg", "ld")) if f.get("sv") else None


def control_request(op: str, f: dict[str, Any]) -> mpb.ControlRequest:
    """The ``Manager.Snapshot`` request of a snapshot operation (as console/snapshot.py builds them)."""
    array = f.get("array", "")
    if op == "create":
        req = apb.CreateRequest(bv=f["bv"], sv=_sv(f), cyclic=bool(f.get("cyclic")))
        return mpb.ControlRequest(array=array, via=f["bv"], create=req)
    if op == "delete":
        return mpb.ControlRequest(array=array, via=f["bv"], delete=apb.DeleteRequest(bv=f["bv"], sv=_sv(f)))
    if op == "restore":
        req = apb.RestoreRequest(bv=f["bv"], sv=_sv(f), derivsv=f.get("derivsv", "keep"))
        return mpb.ControlRequest(array=array, via=f["bv"], restore=req)
    if op == "guard":
        req = apb.GuardRequest(bv=f["bv"], sv=_sv(f), on=f["on"])
        return mpb.ControlRequest(array=array, via=f["bv"], guard=req)
    if op == "link":
        req = apb.LinkRequest(lv=f["lv"], sv=_sv(f), mode=f.get("mode", "rw"))
        return mpb.ControlRequest(array=array, via=f["lv"], link=req)
    if op == "unlink":
        return mpb.ControlRequest(array=array, via=f["lv"], unlink=apb.UnlinkRequest(lv=f["lv"], sv=_sv(f)))
    raise _bad(f"{op} is not a snapshot operation")


class ManagerApi:
    """The manager's own API as the admin, over a loopback channel (create it in the serving loop)."""

    def __init__(self, target: str, tls: ClientTLS) -> None:
        self._channel = make_aio_channel(target, tls)
        self._stub = manager_pb2_grpc.ManagerStub(self._channel)

    async def _call(self, method: str, request: Any, timeout: float = CALL_TIMEOUT) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise call_error(exc) from exc

    async def monitor(self) -> dict[str, Any]:
        return as_json(await self._call("Monitor", mpb.MonitorRequest()))

    async def operate(self, op: str, f: dict[str, Any]) -> dict[str, Any]:
        if op in ("fault_inject", "fault_clear"):
            req = mpb.ManagedFault(array=f.get("array", ""), fault=apb.FaultRequest(kind=f["kind"], target=f["target"]))
            state = await self._call("InjectFault" if op == "fault_inject" else "ClearFault", req)
            return {"faults": list(state.faults)}
        return as_json(await self._call("Snapshot", control_request(op, f)))

    async def events(self, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` events after ``after_seq``, in one reply (a page's backlog: one message,
        where a Watch would stream it event by event)."""
        reply = await self._call("Events", mpb.EventsRequest(after_seq=after_seq, limit=limit))
        return [event_json(ev) for ev in reply.events]

    async def watch(self, after_seq: int) -> AsyncIterator[dict[str, Any]]:
        """The event log after ``after_seq``, then live (the Watch stream; ends when the caller stops)."""
        call = self._stub.Watch(mpb.EventsRequest(after_seq=after_seq))
        try:
            async for ev in call:
                yield event_json(ev)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise call_error(exc) from exc
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()

