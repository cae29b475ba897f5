"""Running the `ssl-coded` console script as a user does, and checking its one-line errors."""

import subprocess
import sys
from pathlib import Path

SSL_CODED = str(Path(sys.executable).parent / "ssl-coded")  # the console script of this environment


def run_cli(*args, cwd):
    return subprocess.run([SSL_CODED, *args], cwd=cwd, capture_output=True, text=True)


def run_cli_together(*commands, cwd):
    """Several independent commands at once (each starts the interpreter and imports the frameworks, most
    of its time): their CompletedProcess results, in order."""
    processes = [
        subprocess.Popen([SSL_CODED, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in commands
    ]
    results = []
    for args, process in zip(commands, processes, strict=True):
        stdout, stderr = process.communicate()
        results.append(subprocess.CompletedProcess([SSL_CODED, *args], process.returncode, stdout, stderr))
    return results


def one_line_error(result, *needles):
    """Exit status 2 and exactly one line on stderr, `ssl-coded: error: ...`, holding every needle."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssl-coded: error:"), result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
