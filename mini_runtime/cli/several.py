"""docker's client with several containers (`stop a b c`): each one's outcome said in the order
asked, failures on stderr, exit 1 if any; stop, kill, pause and unpause act on all at once."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from mini_runtime.errors import MiniError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    Outcome = tuple[str, object, MiniError | None]   # a container as typed, its result, its error


def each(containers: list[str], act: Callable[[str], object], failed_line: str = "",
         parallel: bool = False, fatal: tuple[type[MiniError], ...] = ()) -> int:
    """docker's way with several containers: each one's name (or result) printed as it is done,
    in the order asked; failures said on stderr, and exit 1 if any. `failed_line`: the client's
    last line that names them all (start's "failed to start containers: a, b"). An error of a
    `fatal` kind ends the command (raised), as a flag refused by docker's client would."""
    failed = []
    for text, result, error in (at_once if parallel else one_by_one)(containers, act):
        if isinstance(error, fatal):
            raise error
        if error is None:
            print(text if result is None else result, flush=True)
        else:
            print(f"Error response from daemon: {error}", file=sys.stderr, flush=True)
            failed.append(text)
    if failed and failed_line:
        print(f"Error: {failed_line}: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def one_by_one(containers: list[str], act: Callable[[str], object]) -> Iterator[Outcome]:
    """Each container's (text, result, error), one after the other: `start`, `wait`, `restart`."""
    for text in containers:
        yield outcome(text, act)


def outcome(text: str, act: Callable[[str], object]) -> Outcome:
    """One container's (text, result, error): a MiniError is its outcome; anything else, raised."""
    try:
        return text, act(text), None
    except MiniError as e:
        return text, None, e


def at_once(containers: list[str], act: Callable[[str], object], most: int = 50) -> Iterator[Outcome]:
    """As one_by_one, but up to `most` at a time, as docker's client does for stop, kill, pause
    and unpause: stopping five shells that ignore SIGTERM takes one timeout, not five. A thread
    each: what they do is wait on their monitors' sockets."""
    if len(containers) < 2:
        yield from one_by_one(containers, act)
        return
    import threading

    outcomes: list[Outcome] = [("", None, None)] * len(containers)
    crashed: dict[int, BaseException] = {}             # (not a MiniError: raised here, as it was)

    def work(i: int) -> None:
        try:
            outcomes[i] = outcome(containers[i], act)
        except BaseException as e:
            crashed[i] = e
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(containers))]
    for thread in threads[:most]:
        thread.start()
    for i, thread in enumerate(threads):
        thread.join()
        if i + most < len(threads):
            threads[i + most].start()
        if i in crashed:
            raise crashed[i]
        yield outcomes[i]
