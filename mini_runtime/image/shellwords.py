"""The words of a Dockerfile instruction, as buildkit's shell lexer reads them (`shell/lex.go`).

`ENV`, `LABEL`, `WORKDIR`, `USER`, `VOLUME` and `EXPOSE` take words that look like a shell's but
are not run by one: the builder itself removes the quotes, the backslashes and expands `$NAME`,
`${NAME}`, `${NAME:-default}`, `${NAME:+alternative}` and `${NAME:?message}` against the image's
environment. Nothing else of a shell is there (no globs, no `$(...)`, no `~`).

- `'...'` keeps everything as written; `"..."` expands `$` and lets `\\` escape `"`, `$` and `\\`;
  outside quotes `\\` takes the next character as it is.
- `word()` gives one string (whitespace stays); `words()` splits at unquoted whitespace, also
  inside an expanded value (only `EXPOSE $PORTS` uses it).
- `split_raw()` is the parser's step before: the line's words with their quotes still on.
"""

from __future__ import annotations

from mini_runtime.errors import InvalidParameter
from mini_runtime.units import go_quote

ESCAPE = "\\"
SPECIAL = "@*#?-$!0"  # one-character parameters: they expand to nothing here


class _Lexer:
    """One pass over `text`; `out` is a list of words, the last one open."""

    def __init__(self, text: str, env: list[str], split: bool) -> None:
        self.text, self.i, self.env, self.split = text, 0, env, split
        self.out: list[str] = [""]
        self.open = False  # is there a word in progress (for split mode)

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def add(self, chars: str, raw: bool) -> None:
        """Append to the current word; in split mode unquoted whitespace ends it."""
        if raw or not self.split:
            self.out[-1] += chars
            self.open = self.open or bool(chars) or raw
            return
        for ch in chars:
            if ch.isspace():
                if self.open:
                    self.out.append("")
                    self.open = False
            else:
                self.out[-1] += ch
                self.open = True

    def run(self, stop: str = "") -> None:
        """Read up to `stop` (the `}` of `${x:-...}`) or to the end."""
        while self.i < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return
            if ch == "'":
                self.next()
                self.add(self._single(), raw=True)
            elif ch == '"':
                self.next()
                self.add(self._double(), raw=True)
            elif ch == "$":
                self.next()
                self.add(self._dollar(), raw=False)
            else:
                self.next()
                if ch == ESCAPE:
                    if self.i >= len(self.text):
                        break  # a lone backslash at the end is dropped
                    self.add(self.next(), raw=True)
                else:
                    self.add(ch, raw=False)
        if stop:
            raise InvalidParameter(f"unexpected end of statement while looking for matching {stop}")

    def _single(self) -> str:
        end = self.text.find("'", self.i)
        if end < 0:
            raise InvalidParameter("unexpected end of statement while looking for matching single-quote")
        chars, self.i = self.text[self.i:end], end + 1
        return chars

    def _double(self) -> str:
        chars = ""
        while True:
            ch = self.next()
            if ch == "":
                raise InvalidParameter("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                return chars
            if ch == "$":
                chars += self._dollar()
            elif ch == ESCAPE and self.peek() in ('"', "$", ESCAPE):
                chars += self.next()
            else:
                chars += ch

    def _name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            name = ""
            while self.peek().isdigit():
                name += self.next()
            return name
        if ch and ch in SPECIAL:
            return self.next()
        name = ""
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            name += self.next()
        return name

    def lookup(self, name: str) -> str | None:
        """The first `NAME=value` of the environment wins, as in buildkit's getEnv."""
        for entry in self.env:
            key, equals, value = entry.partition("=")
            if key == name:
                return value if equals else ""
        return None

    def _dollar(self) -> str:
        if self.peek() != "{":
            name = self._name()
            return "$" if name == "" else (self.lookup(name) or "")
        self.next()
        name = self._name()
        ch = self.next()
        if ch == "}":
            return self.lookup(name) or ""
        if ch != ":":
            raise InvalidParameter("missing ':' in substitution")
        modifier = self.next()
        inner = _Lexer(self.text, self.env, split=False)
        inner.i = self.i
        inner.run(stop="}")
        argument, self.i = inner.out[0], inner.i
        value = self.lookup(name)
        if modifier == "-":
            return value if value else argument
        if modifier == "+":
            return argument if value else ""
        if modifier == "?":
            if not value:
                raise InvalidParameter(f"{name}: {argument or 'is not allowed to be unset'}")
            return value
        raise InvalidParameter(f"unsupported modifier ({modifier}) in substitution")


def _process(text: str, env: list[str], split: bool) -> list[str]:
    lexer = _Lexer(text, env, split)
    try:
        lexer.run()
    except InvalidParameter as e:
        raise InvalidParameter(f"failed to process {go_quote(text)}: {e}") from None
    return lexer.out if not split or lexer.open else lexer.out[:-1]


def word(text: str, env: list[str]) -> str:
    """`text` as one word: quotes and escapes removed, variables expanded."""
    return _process(text, env, split=False)[0]


def words(text: str, env: list[str]) -> list[str]:
    """`text` as words: split where whitespace is not quoted, also inside expanded values."""
    return _process(text, env, split=True)


def split_raw(text: str) -> list[str]:
    """The parser's split of `ENV a="x y" b=1` into `a="x y"`, `b=1`: at whitespace outside
    quotes, with the quotes and backslashes left for word() (buildkit's parseWords)."""
    found, current, quote, escaped = [], "", "", False
    for ch in text:
        if escaped:
            current, escaped = current + ch, False
        elif ch == ESCAPE:
            current, escaped = current + ch, True
        elif quote:
            current += ch
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            current, quote = current + ch, ch
        elif ch.isspace():
            if current:
                found.append(current)
            current = ""
        else:
            current += ch
    if current:
        found.append(current)
    return found
