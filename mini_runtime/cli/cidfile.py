"""`run --cidfile FILE` / `create --cidfile FILE`: the new container's id, written to FILE.

Why: a script that starts a container in the foreground never sees its id (the output is the
container's), yet it needs it to `stop`, `logs` or `rm` it later; a service manager keeps it to
know which container is "its" one. docker's client writes the file, not the daemon: it is
created before the container (so a FILE that cannot be written leaves no container behind), it
must not exist yet (another running container's FILE is not overwritten: a second copy of a
service is refused), and it is removed again if the create fails. Nothing removes it later:
`rm` of the container leaves it, as docker's does.
"""

from __future__ import annotations

import os

from mini_runtime.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any


class CidFileError(UsageError):
    """The FILE of --cidfile exists, or cannot be created. docker's exit codes: `create` 1; `run`
    125, but 127 or 126 when the reason reads "no such file or directory" or "permission denied"
    (docker's client reads any such failure of `run` as a command not found or not executable)."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.exit_code = 1 if command == "create" else \
            127 if "no such file or directory" in message else 126 if "permission denied" in message else 125


def create(engine: Any, config: Any, command: str, **settings: Any) -> str:
    """ContainerCreate with config.cidfile: FILE made first, the id written into it (no newline,
    as docker's), FILE removed if the create fails. Returns the id."""
    path = config.cidfile
    if os.path.exists(path):                            # (docker's os.Stat: a symlink is followed)
        raise CidFileError("container ID file found, make sure the other container isn't running "
                           f"or delete {path}", command)
    try:
        file = open(path, "x")                          # (not there a moment ago: never truncate one)
    except OSError as e:
        raise CidFileError(f"failed to create the container ID file: open {path}: "
                           f"{(e.strerror or str(e)).lower()}", command) from None
    written = False
    try:
        container_id = engine.container_create(config, **settings)["Id"]
        file.write(container_id)
        file.flush()
        written = True
    finally:
        file.close()
        if not written:
            os.remove(path)
    return container_id
