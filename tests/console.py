"""Running the `ssl-coded` console script as a user does, and checking its one-line errors."""

import subprocess
import sys
from pathlib import Path

SSL_CODED = str(Path(sys.executable).parent / "ssl-coded")  # the console script of this environment


def run_cli(*args, cwd):
    return subprocess.run([SSL_CODED, *args], cwd=cwd, capture_output=True, text=True)


def one_line_error(result, *needles):
    """Exit status 2 and exactly one line on stderr, `ssl-coded: error: ...`, holding every needle."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssl-coded: error:"), result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
