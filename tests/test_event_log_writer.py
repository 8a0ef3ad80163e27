"""The manager's event log: a look-up's event (``durable=False``) is committed by the writer thread
within a few ms, a state change's before ``log_event`` returns, with the pending ones first (issue 12)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from snaplab.manager.state import DB_FILE, ManagerState


def _committed(folder: Path) -> list[tuple[int, str]]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(folder / DB_FILE) as db:
        return [(int(r[0]), r[1]) for r in db.execute("SELECT seq, text FROM events ORDER BY seq")]


def test_lookup_events_are_committed_soon_and_state_changes_at_once_in_order(tmp_path: Path) -> None:
    st = ManagerState(tmp_path)
    try:
        st.log_event("h", "INFO", "iSMsc_query", "iSM19014", "q1", durable=False)
        st.log_event("h", "INFO", "iSMsc_query", "iSM19014", "q2", durable=False)
        ev = st.log_event("h", "INFO", "iSMsc_create", "iSM19010", "c1")  # durable: the pending go first
        assert ev.seq == 3
        assert _committed(tmp_path) == [(1, "q1"), (2, "q2"), (3, "c1")]

        st.log_event("h", "INFO", "iSMsc_query", "iSM19014", "q3", durable=False)
        deadline = time.monotonic() + 5
        while len(_committed(tmp_path)) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _committed(tmp_path)[-1] == (4, "q3")  # by the writer thread, nothing else written

        st.log_event("h", "INFO", "iSMsc_query", "iSM19014", "q4", durable=False)
        assert [(e.seq, e.text) for e in st.events(3)] == [(4, "q3"), (5, "q4")]  # a read sees pending ones
        assert st.last_seq == 5
        st.log_event("h", "INFO", "iSMsc_query", "iSM19014", "q5", durable=False)
    finally:
        st.close()
    assert [t for _s, t in _committed(tmp_path)] == ["q1", "q2", "c1", "q3", "q4", "q5"]  # close commits the rest
    again = ManagerState(tmp_path)
    try:
        assert again.log_event("h", "INFO", "iSMsc_create", "iSM19010", "c2").seq == 7
    finally:
        again.close()
