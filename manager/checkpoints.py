"""The manager's part of a lab checkpoint (issue 10 part 3): its tables in manager.db, and the RPCs.

A checkpoint keeps the manager's state: the enrolled hosts, the host definitions and how far each
array's own events were copied (their numbering rolls back with the array). The event log itself
is not cut back: it is append-only so that a ``Watch`` or the console never sees a sequence number
twice; a checkpoint records the log's position (``event_seq``: read the events after it for what
happened since) and a rollback is one event of its own (iSM31296). What the manager only holds in
memory about the arrays (the generations and faults last seen, the description caches) starts
afresh, so a rollback is not reported as snapshots that disappeared.
"""

from __future__ import annotations

import json
import time

import grpc

from snaplab.common.errors import E, SnapLabError
from snaplab.common.rpc import current_identity, translate_errors
from snaplab.v1 import checkpoint_pb2

from .roles import ADMIN_ROLE
from .roles import require_role as _require
from .state import ManagerState

TABLES = ("hosts", "host_definitions", "array_events_seen")
SOURCE = "lab"


def _create(state: ManagerState) -> None:
    state.db.conn.execute(
        "CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, taken REAL, event_seq INTEGER, data TEXT)"
    )


def take(state: ManagerState, name: str) -> checkpoint_pb2.CheckpointReply:
    """Keep the manager's tables under ``name`` (iSM31292 if the name is taken)."""
    with state._lock:
        _create(state)
        state.flush()  # event_seq counts every event logged so far, look-ups' too
        conn = state.db.conn
        if conn.execute("SELECT 1 FROM checkpoints WHERE name=?", [name]).fetchone():
            raise SnapLabError(E.CHECKPOINT_EXISTS, name=name)
        data = {}
        for t in TABLES:
            cur = conn.execute(f"SELECT * FROM {t}")
            cols = [d[0] for d in cur.description]
            data[t] = {"columns": cols, "rows": [list(r) for r in cur.fetchall()]}
        seq, taken = state.last_seq, time.time()
        state._write("INSERT INTO checkpoints VALUES (?,?,?,?)", [name, taken, seq, json.dumps(data)])
    e = SnapLabError(E.CHECKPOINT_TAKEN, name=name)
    state.log_event(SOURCE, "INFO", "checkpoint", e.msg_id, e.text)
    return checkpoint_pb2.CheckpointReply(name=name, taken_at=taken, event_seq=seq)


def rollback(state: ManagerState, name: str) -> checkpoint_pb2.CheckpointReply:
    """The manager's tables as checkpoint ``name`` kept them; later checkpoints are dropped."""
    with state._lock:
        _create(state)
        conn = state.db.conn
        row = conn.execute("SELECT taken, event_seq, data FROM checkpoints WHERE name=?", [name]).fetchone()
        if row is None:
            raise SnapLabError(E.CHECKPOINT_NOT_FOUND, name=name)
        taken, seq, data = float(row[0]), int(row[1]), json.loads(row[2])
        changes = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for t in TABLES:
                saved = data.get(t, {"columns": [], "rows": []})
                changes += conn.execute(f"DELETE FROM {t}").rowcount
                if saved["rows"]:
                    cols = ", ".join(saved["columns"])
                    marks = ", ".join("?" for _ in saved["columns"])
                    conn.executemany(f"INSERT INTO {t} ({cols}) VALUES ({marks})", saved["rows"])
            conn.execute("DELETE FROM checkpoints WHERE taken > ?", [taken])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        state.reload()
    e = SnapLabError(E.CHECKPOINT_ROLLED_BACK, name=name)
    state.log_event(SOURCE, "NOTICE", "rollback", e.msg_id, e.text)
    return checkpoint_pb2.CheckpointReply(name=name, taken_at=taken, event_seq=seq, changes=changes)


def delete(state: ManagerState, name: str) -> checkpoint_pb2.CheckpointReply:
    with state._lock:
        _create(state)
        if state._write("DELETE FROM checkpoints WHERE name=?", [name]).rowcount == 0:
            raise SnapLabError(E.CHECKPOINT_NOT_FOUND, name=name)
    return checkpoint_pb2.CheckpointReply(name=name)


@translate_errors
class CheckpointCallsMixin:
    """``CheckpointTake``/``CheckpointRollback``/``CheckpointDelete`` of the Manager service (admin only)."""

    async def CheckpointTake(
        self, request: checkpoint_pb2.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> checkpoint_pb2.CheckpointReply:
        _require(current_identity(context), ADMIN_ROLE, "take checkpoints")
        return take(self.state, _name(request))  # type: ignore[attr-defined]

    async def CheckpointRollback(
        self, request: checkpoint_pb2.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> checkpoint_pb2.CheckpointReply:
        _require(current_identity(context), ADMIN_ROLE, "roll back to checkpoints")
        reply = rollback(self.state, _name(request))  # type: ignore[attr-defined]
        self.observer.reset()  # type: ignore[attr-defined]
        for link in self.arrays.links:  # type: ignore[attr-defined]
            link.invalidate()
        return reply

    async def CheckpointDelete(
        self, request: checkpoint_pb2.CheckpointRequest, context: grpc.aio.ServicerContext
    ) -> checkpoint_pb2.CheckpointReply:
        _require(current_identity(context), ADMIN_ROLE, "delete checkpoints")
        return delete(self.state, _name(request))  # type: ignore[attr-defined]


def _name(request: checkpoint_pb2.CheckpointRequest) -> str:
    if not request.name:
        raise SnapLabError(E.CHECKPOINT_BAD_NAME, detail="a checkpoint needs a name")
    return request.name
