"""The web console's login, session, CSRF and Origin rules (manager/web/auth.py), without a lab."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from snaplab.common.errors import SnapLabError
from snaplab.manager.web.auth import SESSION_SECONDS, ConsoleAuth, check_origin, load_or_make_token


def refused(msg_id: str, fn, *args) -> None:
    with pytest.raises(SnapLabError) as exc:
        fn(*args)
    assert exc.value.msg_id == msg_id


def test_token_is_private_and_kept(tmp_path: Path) -> None:
    token = load_or_make_token(tmp_path)
    assert len(token) >= 32
    assert stat.S_IMODE((tmp_path / "console.token").stat().st_mode) == 0o600
    assert load_or_make_token(tmp_path) == token  # a restarted manager keeps its operators logged in


def test_login_sessions_and_csrf() -> None:
    now = [1000.0]
    auth = ConsoleAuth("t" * 43, clock=lambda: now[0])
    refused("iSM31350", auth.login, "")
    refused("iSM31350", auth.login, None)
    refused("iSM31350", auth.login, "t" * 42)
    sid, session = auth.login("t" * 43)
    assert auth.session(sid) is session
    refused("iSM31351", auth.session, None)
    refused("iSM31351", auth.session, "forged")
    auth.check_csrf(session, session.csrf)
    refused("iSM31352", auth.check_csrf, session, None)
    flipped = ("y" if session.csrf[0] == "x" else "x") + session.csrf[1:]  # a token one character off
    refused("iSM31352", auth.check_csrf, session, flipped)
    now[0] += SESSION_SECONDS + 1
    refused("iSM31351", auth.session, sid)  # expired
    sid2, _ = auth.login("t" * 43)
    auth.logout(sid2)
    refused("iSM31351", auth.session, sid2)


def test_origin() -> None:
    own = "https://127.0.0.1:4443"
    check_origin(own, "same-origin", own)
    check_origin(None, None, own)  # a script's request (no browser): the token and CSRF still apply
    refused("iSM31352", check_origin, "https://evil.example", "cross-site", own)
    refused("iSM31352", check_origin, "null", "cross-site", own)
    refused("iSM31352", check_origin, None, "cross-site", own)


def test_snaplab_console_without_a_running_lab(tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "snaplab.deploy.cli", "--lab", str(tmp_path / "lab"), "console"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == f"snaplab: error: iSM31354: Operator console is not running. (no lab runs in {tmp_path / 'lab'})\n"


def test_lab_file_console_setting() -> None:
    from snaplab.deploy.errors import LabError
    from snaplab.deploy.spec import LabSpec

    arrays = '[[arrays]]\nname = "A"\n'
    assert LabSpec.parse(arrays).console == "127.0.0.1:0"  # loopback unless configured
    assert LabSpec.parse('[lab]\nconsole = "off"\n' + arrays).console == ""
    assert LabSpec.parse('[lab]\nconsole = "198.18.0.1:8443"\n' + arrays).console == "198.18.0.1:8443"
    for bad in ('"8443"', '"host:99999"', "8443"):
        with pytest.raises(LabError, match="console"):
            LabSpec.parse(f"[lab]\nconsole = {bad}\n" + arrays)
