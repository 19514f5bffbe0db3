"""Go's text/template, the subset docker's `--format` uses: the parser (Go's
text/template/parse/parse.go), with Go's error messages ("template: :1: unexpected "}" in
operand"), so a format that works with docker works here and a broken one fails alike.
"""

from __future__ import annotations


from mini_runtime.cli.formatting import go_quote
from mini_runtime.cli.template_lex import FUNCTIONS, TemplateError, Token, describe, lex, unquote
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any, NoReturn

# Nodes of the tree. `pos` is the byte offset in the template, for error messages.
@named_tuple
class Text:
    text: str


@named_tuple
class Pipe:
    pos: int
    decl: list[str]
    assign: bool
    cmds: list[Any]


@named_tuple
class Action:
    pos: int
    pipe: Pipe


@named_tuple
class Control:
    kind: str  # if, range, with
    pos: int
    pipe: Pipe
    body: list[Any]
    orelse: list[Any]


@named_tuple
class Jump:
    kind: str
    pos: int


@named_tuple
class Command:
    pos: int
    args: list[Any]


@named_tuple
class Field:
    pos: int
    names: tuple[str, ...]


@named_tuple
class Variable:
    pos: int
    name: str
    names: tuple[str, ...]


@named_tuple
class Chain:
    pos: int
    node: Any
    names: tuple[str, ...]


@named_tuple
class Dot:
    pos: int


@named_tuple
class Identifier:
    pos: int
    name: str


@named_tuple
class Constant:
    pos: int
    value: Any
    text: str


END = "end"
ELSE = "else"


def number(text: str) -> int | float:
    """A number constant as Go reads it; TemplateError for what only looked like one ("-")."""
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        try:
            return float(clean)
        except ValueError:
            raise TemplateError(f'illegal number syntax: "{text}"') from None


class Parser:
    """A recursive-descent parser over the lexer's tokens, structured like Go's."""

    def __init__(self, src: str) -> None:
        self.tokens = lex(src)
        self.i = 0
        self.vars = ["$"]
        self.ranges = 0  # how many {{range}} we are in: {{break}} needs one

    def parse(self) -> list[Any]:
        nodes = []
        while self.peek().kind != "eof":
            node = self.text_or_action()
            if node in (END, ELSE):
                self.error(f"unexpected {{{{{node}}}}}")
            nodes.append(node)
        return nodes

    # --- tokens ---
    def error(self, message: str) -> NoReturn:
        line = self.tokens[max(self.i - 1, 0)].line
        raise TemplateError(f"template: :{line}: {message}")

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind == "error":
            self.i += 1
            self.error(token.value)
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def next_non_space(self) -> Token:
        token = self.next()
        while token.kind == "space":
            token = self.next()
        return token

    def peek_non_space(self) -> Token:
        while self.peek().kind == "space":
            self.next()
        return self.peek()

    def unexpected(self, token: Token, context: str) -> NoReturn:
        self.error(f"unexpected {describe(token)} in {context}")

    def expect(self, kind: str, context: str) -> Token:
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    # --- structure ---
    def text_or_action(self) -> Any:
        token = self.next_non_space()
        if token.kind == "text":
            return Text(token.value)
        if token.kind == "left":
            return self.action()
        self.unexpected(token, "input")

    def action(self) -> Any:
        token = self.next_non_space()
        if token.kind == "keyword":
            if token.value == "end":
                self.expect("right", "end")
                return END
            if token.value == "else":
                if not (self.peek_non_space().kind == "keyword"
                        and self.peek().value in ("if", "with")):
                    self.expect("right", "else")
                return ELSE
            if token.value in ("if", "range", "with"):
                return self.control(token.value, token.pos)
            if token.value in ("break", "continue"):
                self.expect("right", f"{{{{{token.value}}}}}")
                if not self.ranges:
                    self.error(f"{{{{{token.value}}}}} outside {{{{range}}}}")
                return Jump(token.value, token.pos)
            self.error(f"{{{{{token.value}}}}} is not supported")
        self.i -= 1
        return Action(token.pos, self.pipeline("command", "right"))

    def control(self, kind: str, pos: int) -> Control:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        self.ranges += kind == "range"
        body, after = self.item_list()
        orelse: list[Any] = []
        if after == ELSE:
            chained = self.peek()
            if chained.kind == "keyword" and chained.value == kind and kind in ("if", "with"):
                self.next()
                orelse = [self.control(kind, chained.pos)]  # {{else if}}: its {{end}} is ours
            else:
                orelse, after = self.item_list()
                if after != END:
                    self.error(f"expected end; found {{{{{after}}}}}")
        del self.vars[mark:]
        self.ranges -= kind == "range"
        return Control(kind, pos, pipe, body, orelse)

    def item_list(self) -> tuple[list[Any], str]:
        nodes = []
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if node in (END, ELSE):
                return nodes, node
            nodes.append(node)
        self.error("unexpected EOF")

    # --- pipelines ---
    def pipeline(self, context: str, end: str) -> Pipe:
        pos = self.peek_non_space().pos
        decl: list[str] = []
        assign = False
        while self.peek_non_space().kind == "var":
            save, var = self.i, self.next_non_space()
            after = self.peek_non_space()
            if after.kind in ("declare", "assign"):
                self.next_non_space()
                assign = after.kind == "assign"
                decl.append(var.value)
                self.vars.append(var.value)
                break
            if after.kind == "char" and after.value == ",":
                self.next_non_space()
                decl.append(var.value)
                self.vars.append(var.value)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().kind in ("var", "right", "rparen"):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            self.i = save
            break
        cmds: list[Command] = []
        while True:
            token = self.next_non_space()
            if token.kind == end:
                if not cmds:
                    self.error(f"missing value for {context}")
                for stage, cmd in enumerate(cmds[1:], start=2):
                    if isinstance(cmd.args[0], (Constant, Dot)):
                        self.error(f"non executable command in pipeline stage {stage}")
                return Pipe(pos, decl, assign, cmds)
            if token.kind in ("bool", "number", "dot", "field", "ident", "nil", "string", "var",
                              "lparen"):
                self.i -= 1
                cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def command(self) -> Command:
        pos = self.peek_non_space().pos
        args = []
        while True:
            self.peek_non_space()
            node = self.operand()
            if node is not None:
                args.append(node)
            token = self.next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self.i -= 1
            elif token.kind != "pipe":
                self.unexpected(token, "operand")
            break
        if not args:
            self.error("empty command")
        return Command(pos, args)

    def operand(self) -> Any:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        names = []
        while self.peek().kind == "field":
            names.append(self.next().value[1:])
        if isinstance(node, Field):
            return Field(node.pos, node.names + tuple(names))
        if isinstance(node, Variable):
            return Variable(node.pos, node.name, node.names + tuple(names))
        if isinstance(node, (Constant, Dot)):
            self.error(f"unexpected . after term {go_quote(text(node))}")
        return Chain(node.pos, node, tuple(names))

    def number(self, text: str) -> int | float:
        try:
            return number(text)
        except TemplateError as e:
            self.error(str(e))

    def term(self) -> Any:
        token = self.next_non_space()
        kind, value, pos = token.kind, token.value, token.pos
        if kind == "ident":
            if value not in FUNCTIONS:
                self.error(f'function "{value}" not defined')
            return Identifier(pos, value)
        if kind == "var":
            if value not in self.vars:
                self.error(f'undefined variable "{value}"')
            return Variable(pos, value, ())
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        simple = {"dot": lambda: Dot(pos), "field": lambda: Field(pos, (value[1:],)),
                  "nil": lambda: Constant(pos, None, value),
                  "bool": lambda: Constant(pos, value == "true", value),
                  "number": lambda: Constant(pos, self.number(value), value),
                  "string": lambda: Constant(pos, unquote(value), value)}
        if kind in simple:
            return simple[kind]()
        self.i -= 1
        return None


def parse(src: str) -> list[Any]:
    """The tree of a template, or TemplateError with Go's message."""
    return Parser(src).parse()


def text(node: Any) -> str:
    """A node as Go prints it in an execution error: `.State.Pid`, `index .X "k"`."""
    if isinstance(node, Field):
        return "." + ".".join(node.names)
    if isinstance(node, Variable):
        return node.name + "".join("." + n for n in node.names)
    if isinstance(node, Chain):
        return f"({text(node.node)})" + "".join("." + n for n in node.names)
    if isinstance(node, Dot):
        return "."
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Constant):
        return node.text
    if isinstance(node, Command):
        return " ".join(f"({text(a)})" if isinstance(a, Pipe) else text(a) for a in node.args)
    if isinstance(node, Pipe):
        head = ", ".join(node.decl) + (" = " if node.assign else " := ") if node.decl else ""
        return head + " | ".join(text(c) for c in node.cmds)
    return ""
