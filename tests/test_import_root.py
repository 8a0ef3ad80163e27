"""The standard library's ``array`` module must never be shadowed by our ``array/`` daemon folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _is_ours(module: object) -> bool:
    origin = getattr(module, "__file__", None) or ""
    paths = list(getattr(module, "__path__", []) or [])
    return any(str(p).startswith(str(ROOT)) for p in [origin, *paths] if p)


def test_stdlib_array_in_process() -> None:
    import array

    import snaplab.array

    assert callable(array.array)
    assert array.array("b", [1, 2]).tolist() == [1, 2]
    assert sys.modules["array"] is array
    assert sys.modules["array"] is not snaplab.array
    assert not _is_ours(sys.modules["array"])
    assert _is_ours(snaplab.array)


def test_stdlib_array_from_repo_root() -> None:
    # cwd = repo root puts ./array on sys.path first ('' entry): it must still lose to the stdlib module.
    # socket and multiprocessing import array themselves, so they are checked too.
    code = (
        "import array, socket, multiprocessing, snaplab.array, sys; array.array('b'); "
        "assert sys.modules['array'] is array and array is not snaplab.array; "
        "print(getattr(array, '__file__', 'builtin'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not out.stdout.strip().startswith(str(ROOT))

