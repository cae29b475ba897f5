"""Warnings about the user's run (not the frameworks'): shown once each, as one line on the command line.

Example:
    >>> warn_once("kNN: k=200 is larger than the bank (170 rows); every row votes")
"""

from __future__ import annotations

import warnings


class RunWarning(UserWarning):
    """Something about the user's run that they should know; the command line prints it as one line."""


_shown: set[str] = set()


def warn_once(message: str) -> None:
    """Warn with `message` the first time this process sees it."""
    if message not in _shown:
        _shown.add(message)
        warnings.warn(message, RunWarning, stacklevel=3)
