"""Tests of the documents and of docs/includes.py (a docs tool outside the wheel, loaded from its path)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("includes", Path(__file__).parents[2] / "docs" / "includes.py")
includes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(includes)
