"""Go's text/template, the subset docker's `--format` uses: the lexer (Go's
text/template/parse/lex.go). `template_parse.py` builds the tree, `template.py` executes it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mini_runtime.errors import InvalidParameter
from mini_runtime.tuples import named_tuple

KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
            "continue"}
#: docker's functions (cli/templates) and Go's builtins that we provide.
FUNCTIONS = {"json", "split", "join", "title", "lower", "upper", "pad", "truncate", "and", "or",
             "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
             "le", "gt", "ge"}
SPACE = " \t\r\n"
TERMINATORS = set(SPACE) | set(".,|:)(")
NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*|0[bB][01_]*|0[oO][0-7_]*|"
                    r"[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?[\d_]+)?)")
GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|[abfnrtv\\'\"])")
SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                  "\\": "\\", "'": "'", '"': '"'}


class TemplateError(InvalidParameter):
    """A --format that Go's text/template would reject; the message is Go's. `parsing`: it did
    not even parse, which docker's commands say in words of their own (and its inspect with exit
    64, its exit_code then)."""

    exit_code: int | None = None

    def __init__(self, message: str, parsing: bool = False) -> None:
        super().__init__(message)
        self.parsing = parsing


@named_tuple
class Token:
    kind: str   # text, left, right, space, field, dot, var, ident, keyword, string, number,
    value: str  # bool, nil, pipe, lparen, rparen, declare, assign, char, error, eof
    pos: int
    line: int


def unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]

    def one(m: re.Match[str]) -> str:
        code = m[1]
        if code in SIMPLE_ESCAPES:
            return SIMPLE_ESCAPES[code]
        return chr(int(code, 8) if code[0].isdigit() else int(code[1:], 16))
    return GO_ESCAPE.sub(one, text[1:-1])


def lex(src: str) -> list[Token]:
    """Go's lexer: text and {{actions}}, with {{- and -}} trimming the space around them."""
    tokens: list[Token] = []
    pos = 0

    def add(kind: str, value: str, at: int) -> None:
        tokens.append(Token(kind, value, at, src.count("\n", 0, at) + 1))

    while pos < len(src):
        start = src.find("{{", pos)
        text = src[pos:] if start < 0 else src[pos:start]
        trim_left = start >= 0 and src[start + 2:start + 3] == "-" and src[start + 3:start + 4] in tuple(SPACE)
        if trim_left:
            text = text.rstrip(SPACE)
        if text:
            add("text", text, pos)
        if start < 0:
            break
        pos = start + (4 if trim_left else 2)
        if src.startswith("/*", pos):  # a comment: nothing is emitted
            end = src.find("*/", pos)
            if end < 0:
                add("error", "unclosed comment", pos)
                return tokens
            pos = end + 2
            trim = src.startswith(" -}}", pos)
            if not trim and not src.startswith("}}", pos):
                add("error", "comment ends before closing delimiter", pos)
                return tokens
            pos += 4 if trim else 2
            if trim:
                pos = len(src) - len(src[pos:].lstrip(SPACE))
            continue
        add("left", "{{", start)
        pos, ok = lex_action(src, pos, add)
        if not ok:
            return tokens
    add("eof", "", len(src))
    return tokens


def lex_action(src: str, pos: int, add: Callable[[str, str, int], None]) -> tuple[int, bool]:
    """The inside of one action; returns the position after its closing delimiter."""
    depth = 0
    while True:
        trim = src.startswith("-}}", pos + 1) and src[pos:pos + 1] in tuple(SPACE)
        if trim or src.startswith("}}", pos):
            if depth:
                add("error", "unclosed left paren", pos)
                return pos, False
            add("right", "}}", pos + (2 if trim else 0))
            pos += 4 if trim else 2
            return (len(src) - len(src[pos:].lstrip(SPACE)) if trim else pos), True
        if pos >= len(src):
            add("error", "unclosed action", pos)
            return pos, False
        c, start = src[pos], pos
        if c in SPACE:
            while pos < len(src) and src[pos] in SPACE and not src.startswith(" -}}", pos):
                pos += 1
            if pos == start:  # the space of " -}}"
                pos += 1
            add("space", src[start:pos], start)
            continue
        if c == ":":
            if not src.startswith(":=", pos):
                add("error", "expected :=", pos)
                return pos, False
            add("declare", ":=", pos)
            pos += 2
            continue
        simple = {"=": "assign", "|": "pipe", "(": "lparen", ")": "rparen"}
        if c in simple:
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth < 0:
                add("error", "unexpected right paren", pos)
                return pos, False
            add(simple[c], c, pos)
            pos += 1
            continue
        if c in "\"`":
            end = pos + 1
            while end < len(src) and src[end] != c and not (c == '"' and src[end] == "\n"):
                end += 2 if c == '"' and src[end] == "\\" else 1
            if end >= len(src) or src[end] != c:
                add("error", "unterminated quoted string" if c == '"' else
                    "unterminated raw quoted string", pos)
                return pos, False
            add("string", src[pos:end + 1], pos)
            pos = end + 1
            continue
        if c in "$." and not (c == "." and src[pos + 1:pos + 2].isdigit()):
            end = pos + 1
            while end < len(src) and (src[end].isalnum() or src[end] == "_"):
                end += 1
            word = src[pos:end]
            if end < len(src) and src[end] not in TERMINATORS and not src.startswith("}}", end):
                add("error", f"bad character U+{ord(src[end]):04X} '{src[end]}'", end)
                return end, False
            add("dot" if word == "." else "var" if c == "$" else "field", word, pos)
            pos = end
            continue
        if c in "+-0123456789" or c == ".":  # Go's scanNumber is loose; the parser checks
            end = NUMBER.match(src, pos).end()
            if end < len(src) and (src[end].isalnum() or src[end] == "_"):
                add("error", f'bad number syntax: "{src[pos:end + 1]}"', pos)
                return pos, False
            add("number", src[pos:end], pos)
            pos = end
            continue
        if c.isalnum() or c == "_":
            end = pos
            while end < len(src) and (src[end].isalnum() or src[end] == "_"):
                end += 1
            word = src[pos:end]
            if end < len(src) and src[end] not in TERMINATORS and not src.startswith("}}", end):
                add("error", f"bad character U+{ord(src[end]):04X} '{src[end]}'", end)
                return end, False
            kind = ("keyword" if word in KEYWORDS else "bool" if word in ("true", "false")
                    else "nil" if word == "nil" else "ident")
            add(kind, word, pos)
            pos = end
            continue
        if c.isprintable() and ord(c) < 0x80:
            add("char", c, pos)
            pos += 1
            continue
        add("error", f"unrecognized character in action: U+{ord(c):04X} '{c}'", pos)
        return pos, False


def describe(token: Token) -> str:
    """How Go names a token in an error: EOF, <if>, "}" (quoted, at most 10 bytes)."""
    if token.kind == "eof":
        return "EOF"
    if token.kind in ("keyword", "dot", "nil"):  # Go's keyword items, "." and nil among them
        return f"<{token.value}>"
    text = token.value if len(token.value) <= 10 else token.value[:10]
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return quoted if len(token.value) <= 10 else quoted + "..."
