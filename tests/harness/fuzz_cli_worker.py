"""Runs fuzzed command lines through the command processes' ``main`` (``snaplab.agent.cli``) in this one process.

Reads JSON lines ``{"argv": [base64...], "stdin": base64}`` on stdin (argv[0] is the command name),
runs each as the console script would (``sys.argv`` decoded as Python decodes a real argv, the bytes
as standard input, SNAPLAB_HOST/SNAPLAB_LAB from the environment), and writes one JSON line per case:
``{"name", "code", "stdout", "stderr", "raised"}`` (``raised``: the traceback of anything that escaped
``main``). Stops after the number of seconds given as its argument.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
import traceback

from snaplab.agent import cli


def run_case(argv: list[bytes], data: bytes) -> dict[str, object]:
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr
    streams = (
        io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    sys.argv = [os.fsdecode(a) for a in argv]
    sys.stdin, sys.stdout, sys.stderr = streams
    raised = ""
    code: object = None
    try:
        code = cli.main()
    except BaseException:  # noqa: BLE001 - what escapes main is the finding
        raised = traceback.format_exc()
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved
        for s in streams:
            s.flush()
            s.detach()  # keep the buffers open for reading
    return {
        "name": cli._command_name(os.fsdecode(argv[0])),
        "code": code if isinstance(code, int) else -1,
        "stdout": out.getvalue().decode("utf-8", "replace"),
        "stderr": err.getvalue().decode("utf-8", "replace"),
        "raised": raised,
    }


def main() -> int:
    deadline = time.monotonic() + float(sys.argv[1])
    results = sys.stdout
    for line in sys.stdin.buffer:
        if time.monotonic() > deadline:
            break
        case = json.loads(line)
        argv = [base64.b64decode(a) for a in case["argv"]]
        result = run_case(argv, base64.b64decode(case["stdin"]))
        results.write(json.dumps(result) + "\n")
        results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
