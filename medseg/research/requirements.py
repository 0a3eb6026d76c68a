"""Optional packages of the research commands, imported with a clear message when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from medseg.errors import ConfigError


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ConfigError saying how to install it (the ``research`` extra).

    Raises:
        ConfigError: the package is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ConfigError(
            f"{purpose} needs the '{module.split('.')[0]}' package, which is not installed; "
            "install it with `pip install 'medseg[research]'`"
        ) from None
