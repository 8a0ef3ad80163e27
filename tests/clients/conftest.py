"""The client tests' lab: one reference lab per test module (tests/clients/clientlab.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clientlab import lab  # noqa: F401 - the fixture

