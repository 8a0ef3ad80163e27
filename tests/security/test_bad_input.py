"""Issue 8 item 11: bad input gets an iSM line or status, never a traceback, and a log line at most.

The attacks of the issue: command lines with non-UTF-8 arguments or standard input gave tracebacks
(the command process could not put them in its request); an error had no iSM id; garbage protobuf
filled manager.log with tracebacks. Now: iSM11100 from the command process, iSM19006
(INVALID_ARGUMENT) from every daemon with exactly one log line per bad request.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from snaplab.common.rpc import ClientTLS, make_channel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # labtools, harness: see labtools' docstring
from harness.fuzz_services import alive
from labtools import RefLab

pytestmark = pytest.mark.timeout(180)

BIN = Path(sys.executable).parent
GARBAGE = 50


def command(
    lab: RefLab, argv: list[bytes], stdin: bytes = b"", **env: str
) -> subprocess.CompletedProcess[bytes]:
    """A console script run with raw bytes, as a shell would hand them over."""
    e = {**os.environ, "SNAPLAB_LAB": str(lab.folder), "SNAPLAB_HOST": "test01", **env}
    return subprocess.run(
        [bytes(BIN / argv[0].decode()), *argv[1:]],
        input=stdin,
        env=e,
        capture_output=True,
        timeout=60,
        check=False,
    )


def one_error(p: subprocess.CompletedProcess[bytes], line: str) -> None:
    assert p.returncode == 1 and p.stdout == b"", p
    assert p.stderr.decode() == line + "\n", p.stderr
    assert b"Traceback" not in p.stderr


def test_command_lines_that_are_not_text_get_an_ism_line(ref_lab: RefLab) -> None:
    lab = ref_lab
    one_error(
        command(lab, [b"iSMsc_query", b"-bv", b"bv\xff\xfe001", b"-bvflg", b"ld"]),
        "iSMsc_query:Error: iSM11100: Command syntax is incorrect. (argument 2 is not valid UTF-8 text)",
    )
    one_error(
        command(lab, [b"DISKPART"], stdin=b"list disk\n\xc3\x28\n"),
        "DISKPART:Error: iSM11100: Command syntax is incorrect. (standard input is not valid UTF-8 text (byte 10))",
    )
    one_error(
        command(lab, [b"FORMAT", b"Z:"], stdin=b"\xff"),
        "FORMAT:Error: iSM11100: Command syntax is incorrect. (standard input is not valid UTF-8 text (byte 0))",
    )
    p = command(lab, [b"iSMvollist", b"-a"], SNAPLAB_HOST="")
    assert (
        p.returncode == 1
        and p.stderr.startswith(b"iSMvollist:Error: iSM11101: ")
        and b"SNAPLAB_HOST" in p.stderr
    )
    # Limits the agent keeps: too many arguments, a NUL in stdin.
    one_error(
        command(lab, [b"iSMvollist", *[b"-a"] * 300]),
        "iSMvollist:Error: iSM19005: Specified name is invalid. (argv: 301 values, at most 256)",
    )
    one_error(
        command(lab, [b"DISKPART"], stdin=b"list disk\n\x00\n"),
        "DISKPART:Error: iSM19005: Specified name is invalid. (stdin: character \\x00 is not allowed)",
    )
    # An output the terminal's encoding cannot show is escaped, not a UnicodeEncodeError.
    p = command(
        lab, [b"iSMsc_query", b"-bv", "bv\u00e9\u65e5".encode(), b"-bvflg", b"ld"], PYTHONIOENCODING="ascii"
    )
    assert (
        p.returncode == 1
        and p.stderr.startswith(b"iSMsc_query:Error: iSM")
        and b"\\xe9\\u65e5" in p.stderr
        and b"Traceback" not in p.stderr
    )


def _garbage_to(channel: grpc.Channel, methods: list[str], rng: random.Random) -> list[str]:
    codes = []
    for i in range(GARBAGE):
        data = rng.randbytes(rng.randrange(1, 200))
        try:
            channel.unary_unary(
                methods[i % len(methods)], request_serializer=None, response_deserializer=None
            )(data, timeout=10)
            codes.append("OK")
        except grpc.RpcError as exc:
            codes.append(f"{exc.code().name} {(exc.details() or '')[:8]}")  # type: ignore[attr-defined]
    return codes


@pytest.mark.parametrize("service", ["manager", "array", "agent"])
def test_garbage_protobuf_is_one_log_line_per_request(ref_lab: RefLab, service: str) -> None:
    lab = ref_lab
    rt = lab.runtime
    if service == "manager":
        channel = make_channel(rt["manager"]["target"], ClientTLS.from_folder(lab.pki, "business01"))
        methods = [
            f"/snaplab.v1.Manager/{m}"
            for m in ("Enrol", "Route", "Snapshot", "Configure", "Monitor", "Events")
        ]
        log, pid = lab.log("manager.log"), rt["manager"]["pid"]
    elif service == "array":
        channel = make_channel(
            rt["arrays"][lab.ARRAY]["target"], ClientTLS.from_folder(lab.pki, "business01")
        )
        methods = [
            f"/snaplab.v1.Array/{m}"
            for m in ("Configure", "Create", "Query", "LinkInfoOf", "Disks", "Describe")
        ]
        log, pid = lab.log(f"array-{lab.ARRAY}.log"), rt["arrays"][lab.ARRAY]["pid"]
    else:
        channel = grpc.insecure_channel(f"unix:{rt['hosts']['test01']['socket']}")
        methods = ["/snaplab.v1.Agent/Run"]
        log, pid = lab.log("agent-test01.log"), rt["hosts"]["test01"]["pid"]
    before = log.read_text().count("\n")
    try:
        codes = _garbage_to(channel, methods, random.Random(11))
    finally:
        channel.close()
    # Random bytes that happen to decode are answered by the service like any other request.
    refused = [c for c in codes if c == "INVALID_ARGUMENT iSM19006"]
    assert len(refused) >= GARBAGE * 0.8, codes
    assert all(c.split()[0] in ("OK", "INVALID_ARGUMENT", "PERMISSION_DENIED", "NOT_FOUND") for c in codes), (
        codes
    )
    new = log.read_text().splitlines()[before:]
    assert len([line for line in new if "iSM19006" in line]) == len(refused)
    assert len(new) <= GARBAGE and not any("Traceback" in line for line in new), new[:5]
    assert alive(pid)
