"""Package namespaces whose names load their module on first use (PEP 562).

The training engine pulls in cirq, numba and scipy (seconds); ``qstore --help``, ``qstore export``
and a starting server never need it, so ``qstore.training`` and ``qstore.federated`` export
their names this way. Each package also imports them under ``TYPE_CHECKING`` for type checkers
(tests/test_contracts.py checks the two lists agree).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` exporting ``modules[m]`` from submodule ``m``."""
    home = {name: module for module, names in modules.items() for name in names}
    exported = sorted(home)

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return exported

    return exported, __getattr__, __dir__
