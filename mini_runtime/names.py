"""Container names: docker's rule for a valid one, and a generated `adjective_surname` when the
user gives none (`mini run` without `--name` -> "plucky_noether").

docker (moby pkg/namesgenerator, daemon/names.go) draws an adjective and the surname of a
notable scientist or engineer; on a clash it draws again with a random digit appended, five more
times, and then falls back to the container's short id. Our word lists are our own.
"""

from __future__ import annotations

import random
import re
from typing import Callable

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
    return name.removeprefix("/")


def generate(taken: Callable[[str], bool], fallback: str | None = None,
             rng: random.Random | None = None) -> str:
    """A free generated name: `taken(name)` says whether a container already has it. After
    docker's six draws, `fallback` (docker uses the short id), or more draws if there is none."""
    rng = rng or random.Random()
    for attempt in range(ATTEMPTS if fallback is not None else 1000):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt:
            name += str(rng.randrange(10))
        if not taken(name):
            return name
    if fallback is None:
        raise InvalidParameter("no free container name could be generated")
    return fallback
