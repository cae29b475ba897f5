"""docs/RELIABILITY.md names the test behind each promise; every name must be a test that exists, so the
page cannot go on citing a test that was renamed or removed."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "RELIABILITY.md"
DEFAULT = "tests/training/test_run_transaction.py"  # the page's table names tests here without their file


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def cited() -> list[tuple[str, str]]:
    """(file, test) for every `test_...` or `tests/...py::test_...` in backticks on the page."""
    found = []
    for path, name in re.findall(r"`(?:(tests/[\w/]+\.py)::)?(test_\w+)`", PAGE.read_text()):
        found.append((path or DEFAULT, name))
    return found


def test_every_test_the_page_cites_exists():
    citations = cited()
    assert len(citations) >= 30
    missing = [f"{path}::{name}" for path, name in citations if name not in defined_tests(ROOT / path)]
    assert not missing, f"docs/RELIABILITY.md cites tests that do not exist: {missing}"


def test_the_readme_links_the_page():
    assert "(docs/RELIABILITY.md)" in (ROOT / "README.md").read_text()
