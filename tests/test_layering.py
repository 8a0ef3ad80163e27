"""The daemons depend on the contract and the shared packages, never on each other's code.

Every ``import`` in a daemon's folder (function-local ones too) is resolved to its absolute module
name and checked against what that folder may import: a host (``agent/``) must not reach into the
array's or the manager's code, the array not into the others', and the shared packages
(``snaplab/common``, ``snaplab/san``) not into any daemon. ``deploy/`` starts all of them and may
import each. docs/architecture.md draws the same map.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SHARED = ("snaplab.common", "snaplab.san", "snaplab.v1")
# folder -> (its package, what else of snaplab it may import)
ALLOWED: dict[str, tuple[str, tuple[str, ...]]] = {
    "array": ("snaplab.array", SHARED),
    "manager": ("snaplab.manager", SHARED),
    "agent": ("snaplab.agent", SHARED),
    "snaplab/common": ("snaplab.common", SHARED),
    "snaplab/san": ("snaplab.san", SHARED),
}


def _package_of(folder: str, path: Path) -> str:
    package, _ = ALLOWED[folder]
    rel = path.relative_to(ROOT / folder).parent.parts
    return ".".join((package, *rel))


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of ``snaplab`` code in one file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from snaplab import array`` imports the subpackage: name it in full.
            if module == "snaplab":
                found += [(node.lineno, f"snaplab.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, m) for line, m in found if m == "snaplab" or m.startswith("snaplab.")]


def _allowed(module: str, own: str, shared: tuple[str, ...]) -> bool:
    if module == "snaplab":
        return True  # the import root itself holds nothing but the version
    return any(module == p or module.startswith(p + ".") for p in (own, *shared))


def violations() -> list[str]:
    out = []
    for folder, (own, shared) in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module in imports_of(path, _package_of(folder, path)):
                if not _allowed(module, own, shared):
                    out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return out


def test_no_daemon_imports_another_daemons_code() -> None:
    assert violations() == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The checker itself must catch absolute, relative-looking and function-local forms.
    src = tmp_path / "host.py"
    src.write_text(
        "from snaplab.array.engine import ArrayEngine\n"
        "def f():\n    from snaplab import manager\n"
        "import snaplab.deploy.lab\n"
        "from ..array import blockstore\n"
    )
    found = sorted(m for _, m in imports_of(src, "snaplab.agent"))
    assert found == ["snaplab.array", "snaplab.array.engine", "snaplab.deploy.lab", "snaplab.manager"]
    assert not any(_allowed(m, "snaplab.agent", SHARED) for m in found)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_every_folder_is_scanned(folder: str) -> None:
    assert list((ROOT / folder).rglob("*.py")), folder
