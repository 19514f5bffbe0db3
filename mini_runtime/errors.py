"""Errors a user can cause, each with the exit code docker gives for it.

The CLI prints `mini: <message>` on one line and exits with `exit_code`:
125 when the runtime itself failed (bad flag, unknown image), 126 when the command cannot be
executed, 127 when it does not exist. Anything else is the container's own exit code.
"""

from __future__ import annotations


class MiniError(Exception):
    """A failure of the runtime that the user can act on (docker's exit 125)."""

    exit_code = 125


class UsageError(MiniError):
    """Bad flags or arguments."""


class ImageNotFound(MiniError):
    """The image is not in the local store."""


class InvalidReference(MiniError):
    """An image name that docker would reject too."""


class ExecError(MiniError):
    """The container process could not execute its command (126 or 127)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
