#!/usr/bin/env python3
"""Write tests/file_seconds.json from a pytest ``--durations=0`` report.

The suite runs on two pytest-xdist workers, one test file per worker at a time (README "Test");
tests/conftest.py starts the files that take longest first so that neither worker is left with a
long file at the end while the other idles. Refresh the weights after adding slow tests:

    python3 -m pytest -p no:cacheprovider -n 2 --dist loadfile --durations=0 -q > /tmp/durations.txt
    python3 tools/test_weights.py /tmp/durations.txt
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^\s*([0-9.]+)s\s+(setup|call|teardown)\s+(\S+?)::")
OUT = Path(__file__).resolve().parent.parent / "tests" / "file_seconds.json"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    seconds: dict[str, float] = defaultdict(float)
    for line in Path(argv[0]).read_text().splitlines():
        m = LINE.match(line)
        if m:
            seconds[m.group(3)] += float(m.group(1))
    if not seconds:
        print(f"{argv[0]}: no durations found (run pytest with --durations=0)", file=sys.stderr)
        return 1
    ordered = {f: round(s, 1) for f, s in sorted(seconds.items(), key=lambda kv: -kv[1])}
    OUT.write_text(json.dumps(ordered, indent=1) + "\n")
    print(f"{OUT}: {len(ordered)} files, {sum(ordered.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
