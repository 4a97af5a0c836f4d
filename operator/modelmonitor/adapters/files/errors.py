"""The one error type the data readers raise."""

from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be read as asked; the message is one line for a user.

    The message names the file and what is wrong with it, so the command line can print
    it as is (``modelmonitor check`` exits 2 with it) instead of a traceback.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.path}: {self.reason}")
