"""Test harnesses that drive the real daemons from outside: the crash harness (tests/test_crash.py, bench/soak_crash.py)."""
