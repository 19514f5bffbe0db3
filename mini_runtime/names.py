"""Container names: docker's rule for a valid one, a generated `adjective_surname` when the
user gives none (`mini run` without `--name` -> "plucky_noether"), and the index of who holds
each name.

docker (moby pkg/namesgenerator, daemon/names.go) draws an adjective and the surname of a
notable scientist or engineer; on a clash it draws again with a random digit appended, five more
times, and then falls back to the container's short id. Our word lists are our own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from mini_runtime import paths
from mini_runtime.errors import InvalidParameter

VALID_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
VALID_NAME = re.compile(rf"/?{VALID_CHARS}+")
ATTEMPTS = 6  # docker: one plain draw, then five with a digit

ADJECTIVES = """
able agile airy amber ample ardent artful astute balmy bashful blithe bouncy breezy bright
brisk bubbly calm candid careful cheerful chipper civil cozy crisp curious dapper daring deft
devoted diligent dynamic earnest easy fair fearless fluent fond frank gentle genial glad
gleeful golden grateful handy hearty honest humble jaunty joyful jubilant kindly lively loyal
lucky mellow merry mighty mindful nimble noble patient perky placid plucky polite proud prudent
punctual quick quiet radiant rapid ready resolute robust rosy rugged savvy sincere snappy spry
steady sturdy sunny swift tidy tireless tranquil upright vivid warm wise witty zesty cosmic
sprightly thoughtful whimsical verdant lucent stellar
""".split()

SURNAMES = """
abel adleman agnesi aiken alhazen amdahl ampere archimedes armstrong aryabhata atanasoff
avogadro babbage backus bardeen bell bellman bernoulli bhaskara biruni bohr boole bose boyle
brahmagupta brattain brunel burnell cannon carson cauchy cerf chandrasekhar chebyshev church
cook cori cray curie dalton darwin dedekind diesel diffie dijkstra dirac eckert edison eiffel
einstein elion engelbart euclid euler faraday fermat fermi feynman fleming floyd fourier
franklin fulkerson galileo galois gauss germain goddard gosling hamilton hamming hawking
hejlsberg hellman hertz hilbert hodgkin hollerith hooke hopper hubble huffman huygens hypatia
iverson jacobi jacquard jemison jenner joule kahn kalam karp kay kelvin kepler khwarizmi kilby
kleene kleinrock knuth kolmogorov korolev kovalevskaya lagrange lamarr lamport laplace
lavoisier leavitt legendre lehmann leibniz licklider liskov lovelace markov marconi mauchly
maxwell mcclintock meitner mendel mendeleev merkle metcalfe milner minsky moore morse naur
neumann newton noether noyce nyquist ohm pascal pasteur pauli pauling payne perlis pike planck
poincare postel rabin raman ramanujan rivest ritchie rubin sagan salk sanger sarabhai shamir
shannon somerville stroustrup sutherland tarjan tesla thacker thompson torvalds turing viterbi
volta watt wiener wilkes wirth wozniak wu yao yonath zuse
""".split()


def validate(name: str) -> str:
    """The name without its optional leading "/", or InvalidParameter with docker's message
    (`docker run --name 'a b'`: exit 125)."""
    if not VALID_NAME.fullmatch(name.removeprefix("/")):
        raise InvalidParameter(f"Invalid container name ({name}), only {VALID_CHARS} are allowed")
    if len(name.removeprefix("/")) > MAX_NAME:
        raise InvalidParameter(f"Invalid container name ({name[:20]}...): at most {MAX_NAME} characters "
                               "(mini's name index has a file named after it, and a file name has at most 255)")
    return name.removeprefix("/")


#: docker has no limit of its own; mini's name index (a link per name) needs room for a suffix.
MAX_NAME = 200


class UrandomDraws:
    """generate's draws from os.urandom: the `random` module would add ~0.6 ms to every
    `mini run` without --name (the bias of `% len` over 32 random bits is negligible here)."""

    @staticmethod
    def randrange(n: int) -> int:
        return int.from_bytes(os.urandom(4), "big") % n

    def choice(self, words: list[str]) -> str:
        return words[self.randrange(len(words))]


def generate(taken: Callable[[str], bool], fallback: str | None = None,
             rng: UrandomDraws | None = None) -> str:
    """A free generated name: `taken(name)` says whether a container already has it. After
    docker's six draws, `fallback` (docker uses the short id), or more draws if there is none."""
    rng = rng or UrandomDraws()
    for attempt in range(ATTEMPTS if fallback is not None else 1000):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt:
            name += str(rng.randrange(10))
        if not taken(name):
            return name
    if fallback is None:
        raise InvalidParameter("no free container name could be generated")
    return fallback


# >>> name-index
def index_dir() -> Path:
    """The name index: a symlink per name, to the id of the container that holds it (`ls -l
    $MINI_ROOT/names`). docker keeps its names in the daemon's memory; mini has no daemon, and
    reading every record to check one name would make each start slower than the last. Beside
    containers/, not in it: a listing of containers/ holds containers only."""
    return paths.state_root() / "names"


def indexed(name: str) -> str | None:
    """The id `name` points to, if any (the container may be gone: the caller checks)."""
    if not VALID_NAME.fullmatch(name.removeprefix("/")):
        return None                                 # (never a path: "../x" is no name)
    try:
        return os.readlink(index_dir() / name.removeprefix("/"))
    except OSError:
        return None


def claim(name: str, container_id: str) -> None:
    """Point `name` at the container (under the record lock; over a stale link)."""
    link = index_dir() / name.removeprefix("/")
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    os.symlink(container_id, tmp)
    os.replace(tmp, link)


def release(name: str, container_id: str) -> None:
    """Give `name` back, if this container holds it."""
    if indexed(name) == container_id:
        (index_dir() / name.removeprefix("/")).unlink(missing_ok=True)


def build_index(held: Iterable[tuple[str, str]]) -> None:
    """The index from (name, id) pairs, made aside and renamed into place."""
    tmp = index_dir().with_name(f".names.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    for name, container_id in held:
        if VALID_NAME.fullmatch(name.removeprefix("/")) and not (tmp / name.removeprefix("/")).is_symlink():
            os.symlink(container_id, tmp / name.removeprefix("/"))
    tmp.rename(index_dir())
# <<< name-index
