"""`mini doctor` and `mini version`."""

from __future__ import annotations


from mini_runtime import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse


def add_doctor(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("doctor", help="Check this machine for what containers need.",
                   description="Check this machine for everything the course needs.",
                   usage="mini doctor")


def add_version(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("version", help="Show the version.", usage="mini version")


def doctor(_args: argparse.Namespace) -> int:
    from mini_runtime import backend

    return backend.connect().system_check()


def version(_args: argparse.Namespace) -> int:
    print(f"mini version {__version__}")
    return 0


PARSERS = {"doctor": add_doctor, "version": add_version}
HANDLERS = {"doctor": doctor, "version": version}
