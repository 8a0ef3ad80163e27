"""SnapLab: a lab emulator of a DynamicSnapVolume disk array, its management server and SnapControl hosts.

The daemons' code lives in the top-level folders ``array/``, ``manager/`` and ``agent/`` (no
``__init__.py`` there, so the standard library's ``array`` module is never shadowed); they are
subpackages of this import root: ``snaplab.array``, ``snaplab.manager``, ``snaplab.agent``.
"""

import os as _os

# In a source checkout (editable install) the daemon folders sit beside this package: put the
# checkout root on our package path so ``snaplab.array`` resolves to ``<root>/array``.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(_os.path.join(_root, "array")):
    __path__.append(_root)  # noqa: F821 - __path__ is defined for packages

__version__ = "0.1.0"

# ``snaplab.Lab`` and its result types (deploy/api.py), imported on first use: ``import snaplab`` stays
# cheap for the daemons and command processes that import this root.
_API = ("Lab", "Result", "CommandError", "Event", "Generation", "BvQuery", "Host")


def __getattr__(name: str) -> object:
    if name in _API:
        from snaplab.deploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'snaplab' has no attribute {name!r}")
