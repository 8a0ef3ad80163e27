"""A host flooding the array with writes it must refuse (tests/security/test_refusal_cost.py).

``python -m harness.refusal_flood TARGET CERTS HOST LD STREAMS RATE``: each of STREAMS threads writes
4 KiB to LD (which access control does not give HOST), RATE times a second at most (as fast as the
array answers, if slower), until stdin closes; then prints
the number of refusals (all of them iSM31042, or it exits 1). Its own process, so the flood's client
work does not share an interpreter with the callers the test measures.
"""

from __future__ import annotations

import sys
import threading
import time

from snaplab.common.rpc import ClientTLS
from snaplab.common.rpc_errors import SnapLabClientError
from snaplab.san.array_client import ArrayClient

DENIED = "iSM31042"


def main(argv: list[str]) -> int:
    target, certs, host, ld, streams, rate = argv[0], argv[1], argv[2], argv[3], int(argv[4]), float(argv[5])
    stop = threading.Event()
    counts = [0] * streams
    wrong: list[str] = []

    def flood(i: int) -> None:
        with ArrayClient(target, ClientTLS.from_folder(certs, host)) as client:
            due = time.monotonic()
            while not stop.wait(max(0.0, due - time.monotonic())):
                due += 1 / rate
                try:
                    client.write(ld, 0, b"\x66" * 4096)
                    wrong.append("a write was done")
                except SnapLabClientError as exc:
                    if exc.msg_id != DENIED:
                        wrong.append(str(exc))
                counts[i] += 1

    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    print("flooding", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(30)
    print(sum(counts), flush=True)
    if wrong:
        print(wrong[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
