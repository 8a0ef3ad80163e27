"""What stops a lab command: ``LabError`` (one line, no traceback); ``LabFileError`` (``file:where:``)."""

from __future__ import annotations


class LabError(Exception):
    """Anything that stops a lab command: reported as one line, never as a traceback."""


class LabFileError(LabError):
    """A problem in a lab file: ``file:where: what``."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}:{where}: {problem}" if where else f"{source}: {problem}")


def one_line(exc: Exception) -> str:
    """An exception's text on one line (a daemon's refusal may span several)."""
    return " ".join(str(exc).split())


def first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
