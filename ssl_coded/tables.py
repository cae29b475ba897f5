"""Markdown tables, written one way for every report (the run summary, evaluations, studies, attacks).

Example:
    >>> print(markdown_table(["model", "top-1"], [["simclr", "0.9100"]]))
    | model | top-1 |
    |---|---|
    | simclr | 0.9100 |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the header, its rule and one line per row of already formatted cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
