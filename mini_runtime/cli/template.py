"""`--format` for `inspect` and `ps`: Go's text/template, the subset docker users write.

    mini inspect -f '{{.State.Pid}}' web          mini inspect -f '{{json .Config}}' web
    mini ps --format 'table {{.ID}}\\t{{.Names}}'   mini inspect -f '{{range .Args}}{{.}} {{end}}' web

Values print as Go prints them (maps as `map[k:v]` with sorted keys, lists as `[a b]`, `<nil>`,
`<no value>` for a key that is not there, numbers as their JSON text); `json` encodes as Go's
encoding/json does (keys in the data's order, no HTML escaping). docker's own functions (json,
join, split, upper, lower, title, pad, truncate) and Go's builtins are here. Errors are Go's,
after docker's "template parsing error: " (ps words it its own way: see cli/lifecycle.py).
"""

from __future__ import annotations

from mini_runtime.cli import formatting
from mini_runtime.cli.template_funcs import (FUNCTIONS, HEADER_FUNCTIONS, MISSING, go_print,
                                             go_type, truth)
from mini_runtime.cli.template_lex import TemplateError
from mini_runtime.cli.template_parse import (Action, Chain, Command, Constant, Control, Dot,
                                             Field, Identifier, Jump, Pipe, Text, Variable, parse,
                                             text)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any


def render(format: str, data: Any, missing_key_error: bool = False,
           fields: frozenset[str] | None = None) -> str:
    """`format` executed on `data` (no newline added: docker's inspect adds one per object).
    With `missing_key_error`, a key that is not there is an error (docker's inspect runs its
    fallback on raw JSON with missingkey=error); otherwise it prints "<no value>". `fields`:
    those of docker's type for `data` (inspect's ContainerJSON): where docker's typed run fails
    and its fallback says so, so does this: a name at the top that the type has not, and a
    name anywhere that is a key but for its case (`.State.status`: Go's fields are Status)."""
    return Executor(format, parse_format(format), data, missing_key_error, fields=fields).run()


def render_table(format: str, rows: list[dict], headers: dict[str, str], struct: str) -> str:
    """`ps --format`: each row executed and ended with a newline. A format that starts with
    "table" also gets a header (the same template on `headers`, docker's field titles such as
    {"ID": "CONTAINER ID"}) and columns aligned by tabwriter(10, 3); `\\t` and `\\n` written
    as two characters in the format become a tab and a newline, as docker's formatter does.
    A row is a Go struct in docker (`struct` names its type): a field it does not have is an
    error, not "<no value>"."""
    is_table = format.startswith("table")
    if is_table:
        format = format[len("table"):]
    format = format.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tree = parse_format(format)
    body = "".join(Executor(format, tree, row, struct=struct).run() + "\n" for row in rows)
    if not is_table:
        return body
    header = Executor(format, tree, headers, header=True).run() + "\n"
    return formatting.tabwriter(header + body, minwidth=10, padding=3)


def check(format: str) -> None:
    """Parse `format` before anything is asked of the engine, as docker's inspect, info and
    version do; a template that does not parse is docker's StatusError 64 (EX_USAGE)."""
    try:
        parse_format(format)
    except TemplateError as e:
        e.exit_code = 64
        raise


def parse_format(format: str) -> list[Any]:
    """The parsed template. Nesting deeper than Python's stack allows ({{if}} in {{if}}, ( in (,
    a few hundred deep) is refused with Go's words for its own limit, not a traceback."""
    try:
        return parse(format)
    except TemplateError as e:
        raise TemplateError(f"template parsing error: {e}", parsing=True) from None
    except RecursionError:
        raise TemplateError("template parsing error: template: :1: max expression depth exceeded",
                            parsing=True) from None


# --- execution ----------------------------------------------------------------------------------

class ExecError(Exception):
    """Raised at a node, turned into Go's "template: :1:2: executing ... at <.X>: ..." message."""

    def __init__(self, node: Any, message: str) -> None:
        super().__init__(message)
        self.node = node


class Break(Exception):
    """{{break}} (or {{continue}}, with `next_item`) leaving the body of a range."""

    def __init__(self, next_item: bool) -> None:
        self.next_item = next_item


class Executor:
    """Runs a parsed template on data; `src` is its text, for the positions in errors."""

    def __init__(self, src: str, tree: list[Any], data: Any, missing_key_error: bool = False,
                 header: bool = False, struct: str | None = None, fields: frozenset[str] | None = None) -> None:
        self.src, self.tree, self.data = src, tree, data
        self.missing_key_error, self.struct, self.typed = missing_key_error, struct, fields
        self.funcs = HEADER_FUNCTIONS if header else FUNCTIONS
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.out: list[str] = []

    def run(self) -> str:
        try:
            self.walk(self.tree, self.data)
        except ExecError as e:
            raise TemplateError(f"template parsing error: template: {self.where(e.node)}: "
                                f"{e}") from None
        except RecursionError:
            raise TemplateError("template parsing error: template: :1: exceeded maximum "
                                "template depth") from None
        return "".join(self.out)

    def where(self, node: Any) -> str:
        """Go's ErrorContext: ":LINE:COL: executing "" at <node>", COL counted from 0 on the
        first line and from the line's start after it, the node cut at 20 characters."""
        pos = getattr(node, "pos", 0)
        line = self.src.count("\n", 0, pos) + 1
        column = pos if line == 1 else pos - self.src.rfind("\n", 0, pos) - 1
        context = text(node)
        context = context[:20] + "..." if len(context) > 20 else context
        return f':{line}:{column}: executing "" at <{context}>'

    def walk(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Jump):
                raise Break(node.kind == "continue")
            elif isinstance(node, Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(go_print(value))
            else:
                self.control(node, dot)

    def control(self, node: Control, dot: Any) -> None:
        mark = len(self.vars)
        if node.kind == "range":
            value = self.pipe(node.pipe, dot, declare=False)
            items = self.iterate(node, value)
            for key, item in items:
                inner = len(self.vars)
                names = node.pipe.decl
                if len(names) == 2:
                    self.vars += [(names[0], key), (names[1], item)]
                elif names:
                    self.vars.append((names[0], item))
                try:
                    self.walk(node.body, item)
                except Break as jump:
                    if not jump.next_item:
                        break
                finally:
                    del self.vars[inner:]
            if not items:
                self.walk(node.orelse, dot)
        else:
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            else:
                self.walk(node.orelse, dot)
        del self.vars[mark:]

    def iterate(self, node: Control, value: Any) -> list[tuple[Any, Any]]:
        if isinstance(value, dict):
            return [(k, value[k]) for k in sorted(value)]
        if isinstance(value, (list, tuple)):
            return list(enumerate(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return [(i, i) for i in range(value)]
        if value is None or value is MISSING:
            return []
        raise ExecError(node.pipe, f"range can't iterate over {go_print(value)}")

    def pipe(self, pipe: Pipe, dot: Any, declare: bool = True) -> Any:
        value: Any = MISSING
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, value if i else MISSING, piped=i > 0)
        if declare:
            for name in pipe.decl:
                if pipe.assign:
                    found = [i for i, (n, _) in enumerate(self.vars) if n == name]
                    if not found:
                        raise ExecError(pipe, f"undefined variable: {name}")
                    self.vars[found[-1]] = (name, value)
                else:
                    self.vars.append((name, value))
        return value

    def command(self, cmd: Command, dot: Any, final: Any, piped: bool) -> Any:
        first = cmd.args[0]
        if isinstance(first, Identifier):
            args = [self.arg(a, dot) for a in cmd.args[1:]] + ([final] if piped else [])
            return self.call(first, cmd, args)
        if len(cmd.args) > 1 or piped:
            if isinstance(first, Field):
                method = self.fields(first, dot, first.names)
                if callable(method):  # a row's method, as ps's {{.Label "key"}}
                    args = [self.arg(a, dot) for a in cmd.args[1:]] + ([final] if piped else [])
                    if len(args) != 1:
                        raise ExecError(first, f"wrong number of args for {first.names[-1]}: want 1 got {len(args)}")
                    if len(cmd.args) > 1 and isinstance(cmd.args[1], Constant) and not isinstance(args[0], str):
                        raise ExecError(cmd.args[1], f"expected string; found {text(cmd.args[1])}")
                    if not isinstance(args[0], str):
                        raise ExecError(first, f"wrong type for value; expected string; got {go_type(args[0])}")
                    return method(args[0])
                raise ExecError(first, f"{first.names[-1]} is not a method but has arguments")
            raise ExecError(first, f"can't give argument to non-function {text(first)}")
        if isinstance(first, Constant) and first.value is None:
            raise ExecError(first, "nil is not a command")
        return self.arg(first, dot)

    def arg(self, node: Any, dot: Any) -> Any:
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Constant):
            return node.value
        if isinstance(node, Field):
            value = self.fields(node, dot, node.names)
            if callable(value):
                raise ExecError(node, f"wrong number of args for {node.names[-1]}: want 1 got 0")
            return value
        if isinstance(node, Variable):
            value = next(v for n, v in reversed(self.vars) if n == node.name)
            return self.fields(node, value, node.names)
        if isinstance(node, Chain):
            return self.fields(node, self.arg(node.node, dot), node.names)
        if isinstance(node, Pipe):
            return self.pipe(node, dot)
        raise ExecError(node, f"can't handle {text(node)}")

    def fields(self, node: Any, value: Any, names: tuple[str, ...]) -> Any:
        for name in names:
            if value is MISSING:
                if self.missing_key_error:
                    raise ExecError(node, f'nil data; no entry for key "{name}"')
                return MISSING
            if value is None:
                raise ExecError(node, f"nil pointer evaluating interface {{}}.{name}")
            if not isinstance(value, dict):
                raise ExecError(node, f"can't evaluate field {name} in type {go_type(value)}")
            if name not in value:
                if name == "ID" and self.typed is not None and value is self.data and "Id" in value:
                    value = value["Id"]     # (Go's field ID, JSON's key Id: docker's typed run reads
                    continue                # `.ID`, its fallback on the JSON `.Id`)
                if self.struct and value is self.data:
                    raise ExecError(node, f"can't evaluate field {name} in type {self.struct}")
                if self.missing_key_error or self.typed is not None and (
                        value is self.data and name not in self.typed
                        or any(key.lower() == name.lower() for key in value)):
                    raise ExecError(node, f'map has no entry for key "{name}"')
                return MISSING
            value = value[name]
        return value

    def call(self, ident: Identifier, cmd: Command, args: list[Any]) -> Any:
        function, low, high = self.funcs[ident.name]
        if not low <= len(args) <= (high if high >= 0 else len(args)):
            want = f"at least {low}" if high < 0 else str(low)
            raise ExecError(ident, f"wrong number of args for {ident.name}: want {want} got {len(args)}")
        args = [None if a is MISSING else a for a in args]
        try:
            return function(*args)
        except TypeError as e:  # an argument of the wrong type: Go finds it before the call
            raise ExecError(ident, str(e)) from None
        except (ValueError, IndexError) as e:
            raise ExecError(cmd, f"error calling {ident.name}: {e}") from None

