"""The errors every layer may raise for bad input: one line that names the problem and the fix (the
command line prints it and exits with status 2)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A recipe, override or option that does not fit the schema; the message names the fix."""
