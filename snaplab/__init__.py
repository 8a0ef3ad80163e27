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
