"""The optional extras of ``pip install dcltal[...]``: importing one, or one line saying which to install."""
from __future__ import annotations

import importlib
from types import ModuleType

from dcltal.errors import UserError

EXTRAS = {"viz": "matplotlib", "tensorboard": "tensorboard", "h5": "h5py"}  # extra -> the module it installs


def require(extra: str, what: str) -> ModuleType:
    """The extra's module, imported; a UserError naming the extra where it is not installed."""
    name = EXTRAS[extra]
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UserError(f"{what} needs {name}, which is not installed: pip install 'dcltal[{extra}]'") from None
