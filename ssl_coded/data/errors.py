"""The one error of the data layer: missing or malformed data, its message naming the fix."""

from __future__ import annotations


class DatasetError(ValueError):
    """Missing or malformed data; the message names the fix."""

    def __init__(self, message: str = "") -> None:
        # A DataLoader worker's error comes back re-raised as DatasetError("Caught DatasetError in DataLoader
        # worker process 0.\nOriginal Traceback ...\n...DatasetError: <message>"): keep the message alone, so
        # that an unreadable file met in a worker is still the one line that names it and the fix.
        marker = "DatasetError: "
        if message.startswith("Caught DatasetError") and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)
