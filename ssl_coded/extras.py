"""Optional dependencies: an import that needs a missing extra fails with one line naming it."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType


class MissingExtraError(ImportError):
    """A module of an optional extra is not installed; the message names the pip command."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or fail with the `pip install 'ssl-coded[extra]'` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{module} is not installed: it comes with the {extra!r} extra (pip install 'ssl-coded[{extra}]')"
        ) from error


def require_installed(modules: tuple[str, ...], extra: str) -> None:
    """Fail with one line if any of `modules` is missing (found without importing it)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(
                f"{module} is not installed: it comes with the {extra!r} extra (pip install 'ssl-coded[{extra}]')"
            )


def check_same_tree(module_file: str, name: str) -> None:
    """Refuse a subpackage (`eval/`, `recipes/`) that comes from another tree than `ssl_coded` itself.

    In a checkout both sit beside `ssl_coded/`, in a wheel inside it; an editable install with
    PYTHONPATH pointing at another checkout would otherwise mix the two trees silently.
    """
    import ssl_coded

    here, core = Path(module_file).resolve().parent, Path(ssl_coded.__file__).resolve().parent
    if here.parent not in (core, core.parent):
        raise ImportError(
            f"{name} comes from {here} but ssl_coded from {core}: two checkouts are mixed "
            "(an editable install and PYTHONPATH?); use one of them"
        )
