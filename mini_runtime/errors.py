"""Errors a user can cause, each of a *kind* that fixes how every face reports it.

The kinds are the Engine API's (moby's errdefs): a kind carries the HTTP status the daemon
(chapter 09) answers with. The exit code of the CLI depends on the command as well as the error
(docker: 125 when `run`/`create` or a flag failed, 126/127 when the command cannot be executed or
found, 1 for any other failed command): `mini_runtime.cli.exit_code()` decides it, in one place.
The pipeline never prints: it raises these, and the CLI prints `mini: <message>` on one line.
"""

from __future__ import annotations


class MiniError(Exception):
    """A failure of the runtime that the user can act on. Unless a subclass says otherwise, it is
    the runtime's own fault or the system's (HTTP 500)."""

    http_status = 500


class System(MiniError):
    """Something on this machine failed (a mount, a cgroup write): errdefs.System."""


class NotFound(MiniError):
    """No such container, image, or file (errdefs.NotFound)."""

    http_status = 404


class Conflict(MiniError):
    """The request clashes with the state: a name in use, an image in use (errdefs.Conflict)."""

    http_status = 409


class InvalidParameter(MiniError):
    """A value the request should not have had (errdefs.InvalidParameter)."""

    http_status = 400


class Unavailable(MiniError):
    """The machine lacks what the request needs: a controller, a kernel feature (errdefs.Unavailable)."""

    http_status = 503


class NotRunning(Conflict):
    """An act on a container's process (kill, exec, attach, top, pause, resize) when it has none:
    docker's errNotRunning, worded once here whichever module finds it."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"Container {container_id} is not running")


class UsageError(InvalidParameter):
    """Bad flags or arguments."""


class BadArguments(UsageError):
    """Too few or too many arguments, or an unknown command: cobra's checks, docker's exit 1
    (a bad flag is 125)."""


class Exercise(UsageError):
    """A flag or command whose work the reference runtime leaves to an exercise's *extend* part:
    it exists, and says whose it is, with docker's 125 (as for a flag docker does not know)."""

    def __init__(self, what: str, folder: str) -> None:
        super().__init__(f"{what}: exercise {folder[:2]}'s extension, not in the reference runtime "
                         f"(exercises/{folder}/README.md: the grader plugs your solution in)")


class ImageNotFound(NotFound):
    """The image is not in the local store: docker's "No such image: NAME" (`run` and `create`
    say it as docker's CLI does, about to pull: cli.main)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No such image: {name}")
        self.name = name


class InvalidReference(InvalidParameter):
    """An image name that docker would reject too."""


class ExecError(InvalidParameter):
    """The container process could not execute its command: 127 when it does not exist, 126 when
    it cannot be executed (docker's own numbers for the CLI)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotStarted(System):
    """The container could not start and stays as it was (`created`, or exited), with nothing of
    the attempt left: a published host port in use or not ours. docker's "driver failed
    programming external connectivity on endpoint NAME (ID): ..." (HTTP 500)."""


def reworded(error: MiniError, message: str) -> MiniError:
    """`error` saying `message` instead: the same kind (class, so HTTP status and exit code) and
    attributes. Not `type(error)(message)`: a kind's constructor may take something else than
    the whole message (NotRunning an id, ImageNotFound a name, ExecError a code too)."""
    again = type(error).__new__(type(error))
    Exception.__init__(again, message)
    again.__dict__.update(vars(error))
    return again


def reason(error: BaseException) -> str:
    """An error as one line in Go's style, as docker prints it: an OSError is "PATH: no such
    file or directory", not Python's "[Errno 2] No such file or directory: 'PATH'"."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror.lower()
        if error.filename is None:
            return text
        where = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else f"{error.filename}"
        return f"{where}: {text}"
    return str(error)
