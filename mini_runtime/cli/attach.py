"""`mini attach`, and the attached part of `run -i/-t` and `start -a/-i` (chapter 06): our
terminal joined to a container's streams through its monitor, until it ends or we detach."""

from __future__ import annotations

import os
import sys

from mini_runtime import backend
from mini_runtime.cli.flags import add_detach_keys
from mini_runtime.errors import Conflict, MiniError, NotFound

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse


def add_attach(sub: argparse._SubParsersAction) -> None:
    from argparse import BooleanOptionalAction  # (--sig-proxy=false: argparse parses this command)

    text = "Attach local standard input, output, and error streams to a running container."
    attach = sub.add_parser("attach", help=text, description=text, usage="mini attach [OPTIONS] CONTAINER")
    add_detach_keys(attach)
    attach.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    attach.add_argument("--sig-proxy", action=BooleanOptionalAction, default=True,
                        help="proxy all received signals to the process (non-TTY mode only; default true)")
    attach.add_argument("container", metavar="CONTAINER")


#: What an attached client passes on to the container without a tty (docker's sig-proxy): with
#: one, ctrl-C is a byte on the pty, and the container's terminal makes it its signal.
PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def proxy_signals(engine: backend.Backend, container_id: str) -> dict:
    """Each signal of PROXIED that reaches us is the container's `kill -s`, not our end: docker's
    attached client, so that ctrl-C or a `kill` reaches the program, which decides. Returns the
    handlers to put back."""
    import signal

    def forward(number: int, _frame: object) -> None:
        try:
            engine.container_kill(container_id, number)
        except MiniError:
            pass                                        # (it has just ended)
    return {sig: signal.signal(sig, forward) for sig in (getattr(signal, name) for name in PROXIED)}


def session(engine: backend.Backend, container_id: str, attached: backend.Attached, *, stdin: bool,
            keys: bytes, proxy: bool = True) -> bool:
    """Relay until the stream ends (False) or the user detaches (True: the container carries on;
    what the client says then is its caller's: docker's differ). With a tty our terminal is raw meanwhile, and its size follows;
    without, our signals are the container's (`proxy`)."""
    import signal

    from mini_runtime.cli import terminal

    out = 1 if os.isatty(1) else 0

    def resized() -> None:
        size = terminal.window_size(out)
        if size:
            try:
                engine.container_resize(container_id, *size)
            except MiniError:
                pass                                    # (it has just ended)
    raw_fd = 0 if attached.tty and stdin and os.isatty(0) else -1
    previous = proxy_signals(engine, container_id) if proxy and not attached.tty else {}
    try:
        if raw_fd < 0:
            detached = terminal.relay(attached.stream, tty=attached.tty, stdin=0 if stdin else None,
                                      detach_keys=keys)
        else:
            with terminal.raw(raw_fd):
                detached = terminal.relay(attached.stream, tty=True, stdin=0, detach_keys=keys,
                                          on_resize=resized)
    finally:
        attached.stream.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return detached


def resize_now(engine: backend.Backend, container_id: str) -> None:
    """The container's pty gets our terminal's size before it starts (`stty size` is right)."""
    from mini_runtime.cli import terminal

    size = terminal.window_size(1) or terminal.window_size(0)
    if size:
        engine.container_resize(container_id, *size)


def attach(args: argparse.Namespace) -> int:
    """docker attach: to a running container only; its exit code when it ends. Detaching is an
    error here, unlike in run and start: docker 20.10's attach returns the escape as its error,
    so it says `read escape sequence` and exits 1 (its run and start treat it as success)."""
    from mini_runtime.cli import terminal

    keys = terminal.detach_sequence(args.detach_keys)
    engine = backend.connect()
    found = engine.container_inspect(args.container)
    state = found["State"]
    if not state["Running"]:
        raise Conflict("You cannot attach to a stopped container, start it first")
    if state["Paused"]:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    if terminal.stdin_refused(not args.no_stdin, bool(found["Config"].get("Tty"))):
        return 1
    stdin = not args.no_stdin and bool(found["Config"].get("OpenStdin"))
    attached = engine.container_attach(found["Id"], stdin=stdin)
    if attached.tty:
        try:
            resize_now(engine, found["Id"])
        except MiniError:
            pass
    if session(engine, found["Id"], attached, stdin=stdin, keys=keys, proxy=args.sig_proxy):
        print("read escape sequence", file=sys.stderr)
        return 1
    try:
        return engine.container_wait(found["Id"])["StatusCode"]
    except NotFound:
        return 0                                        # --rm: gone already


PARSERS = {"attach": add_attach}
HANDLERS = {"attach": attach}
